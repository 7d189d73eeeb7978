"""Structured SIP header values: Via, CSeq, name-addr (RFC 3261 sections 20, 25.1).

* Via (RFC 3261 20.42, 18.2.1; RFC 3581 ``rport``): ``sent-protocol LWS sent-by *(SEMI via-params)``
  with LWS allowed around ``/``, ``:``, ``;`` and ``=`` (RFC 3261 25.1 ``SLASH``, ``COLON``,
  ``SEMI``, ``EQUAL``); IPv6 references keep their brackets (RFC 3261 19.1.1, RFC 5118).
* CSeq (RFC 3261 20.16): ``1*DIGIT LWS Method``; the number must be below 2**31 (RFC 3261 8.1.1.5).
* name-addr / addr-spec (RFC 3261 20.10, 20.20, 20.39, 25.1): quoted display names with
  ``quoted-pair`` escapes, token display names, ``<URI>``; in the addr-spec form, parameters
  after ``;`` belong to the header, not to the URI. ``*`` is accepted for Contact (RFC 3261 10.2.2).

Everything here is a pure function over ``str``. Malformed input raises
:class:`~avatar_mf.sip.errors.SipParseError` (400); nothing else escapes.

:func:`parse_via`, :func:`parse_cseq` and :func:`parse_name_addr` keep their last results
(``functools.lru_cache``, :data:`PARSE_CACHE_SIZE` values each, values up to
:data:`PARSE_CACHE_MAX_LENGTH` characters so that a peer cannot make the caches large): the
layers of the stack each read the same Via, CSeq, From and To of a message (transaction
matching, validation, routing, dialog, user agent), and the values they return are frozen, so
a repeated parse is a dictionary look-up. Errors are not cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatar_mf.lru import cached_parser
from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.message import Headers

__all__ = [
    "CSeq",
    "NameAddr",
    "Params",
    "Via",
    "format_params",
    "get_param",
    "is_display_tokens",
    "is_token",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addrs",
    "parse_params",
    "parse_via",
    "parse_vias",
    "quote_string",
    "split_host_port",
    "unquote_string",
]

#: ``(name, value)`` pairs in wire order; names lower-cased, ``None`` for a flag parameter.
Params = tuple[tuple[str, str | None], ...]

#: RFC 3261 25.1 ``token`` characters.
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t"
_DIGITS = frozenset("0123456789")
# Unquoted parameter values are gen-value = token / host (RFC 3261 25.1); real UEs also send
# ``/``, ``@``, ``=`` and the like, so only characters that would break framing are refused.
_BAD_VALUE_CHARS = frozenset(' \t"<>,;\\' + "".join(map(chr, range(32))) + "\x7f")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_MAX_CSEQ = 2**31 - 1
#: Values kept by each cached parser: the messages of the calls being set up at once.
PARSE_CACHE_SIZE = 1024
#: Longer values are parsed every time (real Via, CSeq, From and To values are far shorter).
PARSE_CACHE_MAX_LENGTH = 512


_cached = cached_parser(size=PARSE_CACHE_SIZE, max_length=PARSE_CACHE_MAX_LENGTH)
"""The parse cache of :func:`parse_via`, :func:`parse_cseq` and the like."""


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 ``token``."""
    return bool(text) and TOKEN_CHARS.issuperset(text)


def _bad(what: str) -> SipParseError:
    return SipParseError(400, f"Bad {what}")


# --------------------------------------------------------------------------- quoted strings


def _scan_quoted(text: str, start: int) -> int:
    """Index just after the quoted-string that opens at ``text[start] == '"'``."""
    i = start + 1
    while True:
        quote = text.find('"', i)
        if quote < 0:
            raise SipParseError(400, "Unterminated quoted string")
        backslash = text.find("\\", i, quote)
        if backslash < 0:
            return quote + 1
        i = backslash + 2  # skip the quoted-pair


def unquote_string(quoted: str) -> str:
    """Contents of a ``quoted-string`` (RFC 3261 25.1) with ``quoted-pair`` escapes resolved."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise SipParseError(400, "Bad quoted string")
    inner = quoted[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        ch = inner[i]
        if ch == "\\" and i + 1 < n:
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def quote_string(text: str) -> str:
    """Write ``text`` as a ``quoted-string``, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- parameters


def _split_semis(text: str) -> list[str]:
    """Split at ``;`` outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = _scan_quoted(text, i)
            continue
        if ch == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _check_value(value: str) -> None:
    if not value:
        raise _bad("parameter value")
    if value[0] == '"':
        if _scan_quoted(value, 0) != len(value):
            raise _bad("parameter value")
        return
    if not _BAD_VALUE_CHARS.isdisjoint(value):
        raise _bad("parameter value")


def parse_params(text: str) -> Params:
    """Parse ``*(SEMI generic-param)`` content (the text after the first ``;``).

    ``text`` must not include the leading ``;``. Names are lower-cased; values are kept as on
    the wire (quoted strings keep their quotes). LWS around ``;`` and ``=`` is allowed.
    """
    out: list[tuple[str, str | None]] = []
    for part in _split_semis(text):
        eq = part.find("=")
        if eq < 0:
            name = part.strip(_WS)
            value: str | None = None
        else:
            name = part[:eq].strip(_WS)
            value = part[eq + 1 :].strip(_WS)
            _check_value(value)
        if not is_token(name):
            raise _bad("parameter")
        out.append((name.lower(), value))
    return tuple(out)


def format_params(params: Params) -> str:
    """``;name=value;flag`` for the given parameters (empty string for none)."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def get_param(params: Params, name: str) -> str | None:
    """Value of the first parameter called ``name`` (``None`` if absent or a flag)."""
    key = name.lower()
    for n, v in params:
        if n == key:
            return v
    return None


def _has_param(params: Params, name: str) -> bool:
    key = name.lower()
    return any(n == key for n, _ in params)


def _with_param(params: Params, name: str, value: str | None) -> Params:
    key = name.lower()
    if value is not None:
        _check_value(value)
    if not is_token(key):
        raise _bad("parameter")
    out = [(n, v) for n, v in params if n != key]
    if len(out) == len(params):
        return (*params, (key, value))
    # Replace in place: keep the position of the first occurrence.
    result: list[tuple[str, str | None]] = []
    placed = False
    for n, v in params:
        if n == key:
            if not placed:
                result.append((key, value))
                placed = True
        else:
            result.append((n, v))
    return tuple(result)


# --------------------------------------------------------------------------- host / port


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (LWS allowed around ``:``); IPv6 references keep brackets.

    The host must be a hostname, IPv4 address or bracketed IPv6 reference (RFC 3261 25.1
    ``hostport``); the port 0..65535.
    """
    s = text.strip(_WS)
    if not s:
        raise _bad("host")
    if s[0] == "[":
        end = s.find("]")
        if end < 0:
            raise _bad("IPv6 reference")
        host = s[: end + 1]
        inner = host[1:-1]
        if not inner or not frozenset("0123456789abcdefABCDEF:.").issuperset(inner):
            raise _bad("IPv6 reference")
        rest = s[end + 1 :].lstrip(_WS)
    else:
        colon = s.find(":")
        if colon < 0:
            host, rest = s, ""
        else:
            host, rest = s[:colon].rstrip(_WS), s[colon:]
        if not host or not _HOST_CHARS.issuperset(host):
            raise _bad("host")
    if not rest:
        return host, None
    if rest[0] != ":":
        raise _bad("host")
    port_text = rest[1:].strip(_WS)
    if not port_text or len(port_text) > 5 or not _DIGITS.issuperset(port_text):
        raise _bad("port")
    port = int(port_text)
    if port > 65535:
        raise _bad("port")
    return host, port


def _hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


# --------------------------------------------------------------------------- Via


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header field value (RFC 3261 20.42).

    Attributes:
        protocol: ``protocol-name/protocol-version``, normally ``"SIP/2.0"``.
        transport: upper-cased transport token (``UDP``, ``TCP``, ``TLS``, ``SCTP``, ``WS`` ...).
        host: the sent-by host; IPv6 references keep their brackets.
        port: the sent-by port, ``None`` when absent.
        params: via-params in wire order, names lower-cased, ``None`` for flags (``rport``).
    """

    protocol: str
    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def has_rport(self) -> bool:
        """``rport`` is present, with or without a value (RFC 3581)."""
        return _has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        """The numeric ``rport`` value, ``None`` if absent, valueless or not a number."""
        value = get_param(self.params, "rport")
        if value is None or not value.isdigit() or not value.isascii():
            return None
        return int(value)

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as it appears in the header."""
        return _hostport(self.host, self.port)

    def with_param(self, name: str, value: str | None) -> Via:
        """A copy with ``name`` set to ``value`` (replaced in place or appended)."""
        params = _with_param(self.params, name, value)
        # The constructor, not dataclasses.replace: the same object, several times cheaper.
        return Via(self.protocol, self.transport, self.host, self.port, params)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


@_cached
def parse_via(value: str) -> Via:
    """Parse one ``via-parm``. Raises :class:`SipParseError` (400) if malformed."""
    s = value.strip(_WS)
    name, sep1, rest = s.partition("/")
    version, sep2, rest = rest.partition("/")
    name = name.strip(_WS)
    version = version.strip(_WS)
    if not sep1 or not sep2 or not is_token(name) or not is_token(version):
        raise _bad("Via")
    rest = rest.lstrip(_WS)
    i = 0
    n = len(rest)
    while i < n and rest[i] in TOKEN_CHARS:
        i += 1
    transport = rest[:i]
    if not transport or i >= n or rest[i] not in _WS:
        raise _bad("Via")
    sent_by_and_params = rest[i:].lstrip(_WS)
    semi = sent_by_and_params.find(";")
    if semi < 0:
        sent_by, params_text = sent_by_and_params, None
    else:
        sent_by, params_text = sent_by_and_params[:semi], sent_by_and_params[semi + 1 :]
    host, port = split_host_port(sent_by)
    params = parse_params(params_text) if params_text is not None else ()
    return Via(f"{name}/{version}", transport.upper(), host, port, params)


def parse_vias(headers: Headers) -> list[Via]:
    """Every Via value in order: all Via lines, comma-separated lists split (RFC 3261 7.3.1)."""
    return [parse_via(item) for item in headers.get_list("Via")]


# --------------------------------------------------------------------------- CSeq


@dataclass(frozen=True, slots=True)
class CSeq:
    """A CSeq header value (RFC 3261 20.16)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@_cached
def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be 0..2**31-1 (RFC 3261 8.1.1.5)."""
    s = value.strip(_WS)
    i = 0
    n = len(s)
    while i < n and s[i] in _DIGITS:
        i += 1
    number = s[:i]
    method = s[i:].lstrip(_WS)
    if not number or i >= n or s[i] not in _WS or not is_token(method):
        raise _bad("CSeq")
    if len(number) > 12 or int(number) > _MAX_CSEQ:
        raise SipParseError(400, "CSeq number out of range")
    return CSeq(int(number), method)


# --------------------------------------------------------------------------- name-addr


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route-style value (RFC 3261 20.10, 25.1 ``name-addr / addr-spec``).

    Attributes:
        display: the display name (quoted-pair escapes resolved), ``None`` when absent.
        uri: the URI exactly as written between ``<>`` (or the addr-spec), ``"*"`` for a
            wildcard Contact.
        params: header parameters (``tag``, ``expires``, ``q`` ...), names lower-cased.
    """

    display: str | None
    uri: str
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with the ``tag`` parameter set."""
        return NameAddr(self.display, self.uri, _with_param(self.params, "tag", tag))

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(self.display, self.uri, _with_param(self.params, name, value))

    def __str__(self) -> str:
        if self.uri == "*":
            return "*" + format_params(self.params)
        if self.display is None:
            head = f"<{self.uri}>"
        elif is_display_tokens(self.display):
            head = f"{self.display} <{self.uri}>"
        else:
            head = f"{quote_string(self.display)} <{self.uri}>"
        return head + format_params(self.params)


def is_display_tokens(text: str) -> bool:
    """True if ``text`` can be written unquoted: ``*(token LWS)`` (RFC 3261 25.1)."""
    words = text.split(" ")
    return all(is_token(w) for w in words)


_URI_BAD_CHARS = frozenset(' \t\r\n<>"')


def _check_uri_text(uri: str) -> None:
    # RFC 3261 25.1: an absoluteURI has a scheme and no whitespace, '<', '>' or '"'.
    colon = uri.find(":")
    if colon <= 0 or not uri[0].isascii() or not uri[0].isalpha():
        raise _bad("URI")
    if not _URI_BAD_CHARS.isdisjoint(uri):
        raise _bad("URI")


@_cached
def parse_name_addr(value: str) -> NameAddr:
    """Parse ``(name-addr / addr-spec) *(SEMI param)`` or ``*`` (Contact wildcard).

    Raises :class:`SipParseError` (400) on an unterminated quote, a non-token display name,
    LWS inside ``<>`` (RFC 4475 3.1.2.14) or a URI with no scheme.
    """
    s = value.strip(_WS)
    if not s:
        raise _bad("address")
    first = s[0]
    display: str | None
    if first == "*":
        rest = s[1:].lstrip(_WS)
        if not rest or rest[0] == ";":  # the wildcard; "* <sip:...>" names "*" (a token)
            return NameAddr(None, "*", parse_params(rest[1:]) if rest else ())
    if first == '"':
        end = _scan_quoted(s, 0)
        display = unquote_string(s[:end])
        rest = s[end:].lstrip(_WS)
        if not rest or rest[0] != "<":
            raise _bad("display name")
    else:
        lt = s.find("<")
        if lt < 0:
            return _parse_addr_spec(s)
        words = s[:lt].split()
        for w in words:
            if not is_token(w):
                raise _bad("display name")
        display = " ".join(words) if words else None
        rest = s[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise _bad("address")
    uri = rest[1:gt]
    _check_uri_text(uri)
    tail = rest[gt + 1 :].lstrip(_WS)
    if not tail:
        return NameAddr(display, uri, ())
    if tail[0] != ";":
        raise _bad("address")
    return NameAddr(display, uri, parse_params(tail[1:]))


def _parse_addr_spec(s: str) -> NameAddr:
    # RFC 3261 20.10: without <>, everything after the first ';' is a header parameter.
    semi = s.find(";")
    params: Params
    if semi < 0:
        uri, params = s, ()
    else:
        uri, params = s[:semi].rstrip(_WS), parse_params(s[semi + 1 :])
    if "?" in uri or "," in uri:
        raise _bad("addr-spec")
    _check_uri_text(uri)
    return NameAddr(None, uri, params)


def parse_name_addrs(headers: Headers, name: str) -> list[NameAddr]:
    """Every element of a list-valued address header (Contact, Route, Record-Route)."""
    return [parse_name_addr(item) for item in headers.get_list(name)]
