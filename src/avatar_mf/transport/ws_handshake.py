"""Whether a WebSocket opening handshake may become a SIP WebSocket connection (sans-IO).

* RFC 7118 section 4 (with RFC 6455 section 4.1): the client must offer the WebSocket
  subprotocol ``sip`` in ``Sec-WebSocket-Protocol``; a handshake that does not is refused
  (400) rather than completed without a subprotocol, since the peer would then not speak SIP.
* RFC 6455 section 10.2 and RFC 6454: a browser sends the ``Origin`` of the page that opens
  the connection; when an allow-list is configured, other origins are refused (403). A
  handshake without ``Origin`` does not come from a browser page and is not subject to it.

The request path is not checked: any path is accepted (RFC 7118 leaves it to the server).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "SIP_SUBPROTOCOL",
    "HandshakeRefusal",
    "handshake_refusal",
    "normalize_origin",
    "offered_subprotocols",
]

#: The WebSocket subprotocol of SIP (RFC 7118 section 4, IANA WebSocket Subprotocol Name).
SIP_SUBPROTOCOL = "sip"


@dataclass(frozen=True, slots=True)
class HandshakeRefusal:
    """The HTTP answer to a refused opening handshake."""

    status: int
    reason: str


def offered_subprotocols(header_values: Iterable[str]) -> tuple[str, ...]:
    """The subprotocols of every ``Sec-WebSocket-Protocol`` header (comma-separated tokens),
    in order."""
    return tuple(
        token.strip() for value in header_values for token in value.split(",") if token.strip()
    )


def normalize_origin(origin: str) -> str:
    """``Origin`` in the form the allow-list keeps: lower case, no default port, no slash."""
    text = origin.strip().lower()
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text  # "null" (an opaque origin) and the like: compared as they are
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    netloc = parts.netloc
    if default_port is not None:
        netloc = netloc.removesuffix(f":{default_port}")
    return f"{parts.scheme}://{netloc}"


def handshake_refusal(
    *,
    subprotocols: Iterable[str],
    origin: str | None,
    allowed_origins: frozenset[str],
) -> HandshakeRefusal | None:
    """None when the handshake may proceed, else the answer to send.

    ``subprotocols``: the ``Sec-WebSocket-Protocol`` header values; ``origin``: the ``Origin``
    header, None if absent; ``allowed_origins``: normalized origins (:func:`normalize_origin`),
    empty to allow any.
    """
    if SIP_SUBPROTOCOL not in offered_subprotocols(subprotocols):
        return HandshakeRefusal(400, "the WebSocket subprotocol 'sip' is required (RFC 7118)")
    if allowed_origins and origin is not None and normalize_origin(origin) not in allowed_origins:
        return HandshakeRefusal(403, "origin not allowed")
    return None
