"""Where messages come from and where responses go (sans-IO).

- RFC 3261 18.2.1: a server transport stamps ``received`` on the top Via when the sent-by host
  differs from the packet's source address.
- RFC 3581 section 4: when the top Via carries an empty ``rport``, the server fills it with the
  source port (and always adds ``received``).
- RFC 3261 18.2.2 + RFC 3581 section 4: a response over a reliable transport goes back on the
  connection the request came on; over UDP it goes to ``received`` (or the sent-by host) at
  ``rport`` when present, else at the sent-by port (default 5060). Multicast ``maddr`` is not
  supported: a node in an IMS lab never receives multicast requests.

The stamped top Via is put into :func:`~avatar_mf.sip.headers.parse_via`'s cache as it is
written, so the layers above do not parse it again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.headers import Via, parse_via
from avatar_mf.sip.message import Headers, Request, Response, split_header_list
from avatar_mf.sip.peer import Peer

DEFAULT_SIP_PORT = 5060


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _same_address(a: str, b: str) -> bool:
    if a == b:
        return True  # the usual case: the sent-by host is the address the packet came from
    try:
        return ipaddress.ip_address(_bare_host(a)) == ipaddress.ip_address(_bare_host(b))
    except ValueError:
        return False


def top_via(headers: Headers) -> str | None:
    """The first Via element of ``headers`` (``headers.get_list("Via")[0]``, None without
    one), splitting only the first Via line that has an element rather than every line."""
    for name, value in headers.items:
        if name != "Via":
            continue
        if "," not in value:
            element = value.strip()
            if element:
                return element
            continue
        elements = split_header_list(value)
        if elements:
            return elements[0]
    return None


def _stamp(top: Via, received: str, rport: str | None) -> Via:
    """``top`` with ``received`` set and, unless ``rport`` is None, ``rport`` filled in: each
    replaces the first parameter of its name in place (dropping repeats) or is appended, as
    :meth:`Via.with_param` does; in one pass (the values come from the socket, not a peer)."""
    params: list[tuple[str, str | None]] = []
    has_received = False
    has_rport = False
    for name, value in top.params:
        if name == "received":
            if not has_received:
                params.append((name, received))
                has_received = True
        elif name == "rport" and rport is not None:
            if not has_rport:
                params.append((name, rport))
                has_rport = True
        else:
            params.append((name, value))
    if not has_received:
        params.append(("received", received))
    if rport is not None and not has_rport:
        params.append(("rport", rport))
    return Via(top.protocol, top.transport, top.host, top.port, tuple(params))


def stamp_received(request: Request, source: Peer) -> Request:
    """Apply RFC 3261 18.2.1 and RFC 3581 to the top Via of an incoming request."""
    vias = request.headers.get_all("Via")
    if not vias:
        return request
    first_line = vias[0]
    # The top Via is the first element of the first Via header line.
    elements = split_header_list(first_line)
    if not elements:
        raise SipParseError(400, "Empty Via")
    top = parse_via(elements[0])
    if top.has_rport and top.rport is None:
        changed = _stamp(top, _bare_host(source.host), str(source.port))
    elif not _same_address(top.host, source.host):
        changed = _stamp(top, _bare_host(source.host), None)
    else:
        return request
    stamped = str(changed)
    # Every layer above reads the top Via again (transaction matching, validation, routing):
    # the stamped value is new to the parse cache, and its parse is ``changed``.
    parse_via.prime(stamped, changed)
    new_first = ", ".join([stamped, *elements[1:]]) if len(elements) > 1 else stamped
    items = list(request.headers.items)
    for i, (name, _value) in enumerate(items):
        if name == "Via":
            items[i] = (name, new_first)
            break
    return request.with_headers(Headers(tuple(items)))


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to send a response: a connection id for streams, an address for datagrams."""

    host: str
    port: int
    connection_id: int | None


def response_destination(response: Response, source: Peer) -> Destination:
    """RFC 3261 18.2.2 with RFC 3581: the destination of a response to a request from source."""
    if source.reliable:
        return Destination(source.host, source.port, source.connection_id)
    first = top_via(response.headers)
    if first is None:
        return Destination(source.host, source.port, None)
    top = parse_via(first)
    host = top.received or top.host
    rport = top.rport  # a property that searches the parameters: read once
    port = rport if rport is not None else top.port or DEFAULT_SIP_PORT
    return Destination(_bare_host(host), port, None)
