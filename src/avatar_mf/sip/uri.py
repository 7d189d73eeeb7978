"""SIP, SIPS and tel URIs (RFC 3261 sections 19.1, 25.1; RFC 3966; RFC 5118 for IPv6).

* :class:`SipUri`: ``sip:`` / ``sips:`` URIs (RFC 3261 19.1.1). The userinfo ends at the ``@``
  (``;`` and ``?`` are legal inside the user part, RFC 3261 25.1 ``user-unreserved``; RFC 4475
  3.1.1.9). User, password, parameters and headers are stored unescaped (RFC 3261 19.1.2,
  19.1.4: ``%6C%72`` and ``lr`` are the same parameter) and escaped again by ``str()``; IPv6
  references keep their brackets.
* :class:`TelUri`: ``tel:`` (RFC 3966): the number and its parameters, kept as written.
* :class:`AbsoluteUri`: any other ``absoluteURI`` (RFC 3261 25.1), e.g. ``isbn:...`` in a To
  header (RFC 4475 3.3.4), stored as ``scheme`` + ``rest``.

:func:`parse_uri` accepts any scheme; :func:`parse_sip_uri` raises ``SipError(416)`` for a scheme
other than sip/sips (RFC 3261 8.2.2.1). Malformed URIs raise
:class:`~avatar_mf.sip.errors.SipParseError` (400). Both keep their last results in the same
bounded cache as the header parsers (:data:`~avatar_mf.sip.headers.PARSE_CACHE_SIZE` values of
up to :data:`~avatar_mf.sip.headers.PARSE_CACHE_MAX_LENGTH` characters): the Request-URIs a node
sees are mostly its own address and the Contacts it hands out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from avatar_mf.lru import cached_parser
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import (
    PARSE_CACHE_MAX_LENGTH,
    PARSE_CACHE_SIZE,
    Params,
    get_param,
    split_host_port,
)

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "parse_sip_uri",
    "parse_uri",
    "uri_scheme",
]

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SCHEME_CHARS = frozenset(_ALNUM + "+-.")
_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 3261 25.1: characters written without escaping in each URI component.
_MARK = "-_.!~*'()"
_USER_SAFE = _MARK + "&=+$,;?/"
_PASSWORD_SAFE = _MARK + "&=+$,"
_PARAM_SAFE = _MARK + "[]/:&+$"
_HEADER_SAFE = _MARK + "[]/?:+$"
# Never legal unescaped anywhere in a SIP URI.
_FORBIDDEN = frozenset(' \t\r\n"<>\\^`{|}#' + "".join(map(chr, range(32))) + "\x7f")
# Refused in an URI of another scheme: whatever would break the header it sits in.
_GENERIC_FORBIDDEN = frozenset(' \t\r\n"<>' + "".join(map(chr, range(32))) + "\x7f")


def _bad(what: str) -> SipParseError:
    return SipParseError(400, f"Bad {what}")


def _check_escapes(text: str, what: str) -> None:
    """Every ``%`` must start an ``escaped`` triplet (RFC 3261 25.1)."""
    n = len(text)
    i = text.find("%")
    while i >= 0:
        if i + 2 >= n or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            raise _bad(what)
        i = text.find("%", i + 3)


def _unescape(text: str, what: str) -> str:
    if "%" not in text:
        return text
    _check_escapes(text, what)
    return unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def uri_scheme(text: str) -> str | None:
    """The lower-cased scheme of an absoluteURI, or ``None`` if ``text`` does not start with one."""
    colon = text.find(":")
    if colon <= 0:
        return None
    scheme = text[:colon]
    if not scheme[0].isascii() or not scheme[0].isalpha() or not _SCHEME_CHARS.issuperset(scheme):
        return None
    return scheme.lower()


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 19.1.1).

    Attributes:
        scheme: ``"sip"`` or ``"sips"`` (lower case).
        user: the user part, unescaped; ``None`` when there is no userinfo.
        password: the password, unescaped; ``None`` when absent.
        host: hostname, IPv4 address or bracketed IPv6 reference, as written.
        port: the port, ``None`` when absent.
        params: uri-parameters, names lower-cased, names and values unescaped.
        headers: ``?name=value&...`` headers, unescaped, in order.
    """

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    password: str | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        key = name.lower()
        return any(n == key for n, _ in self.params)

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value is not None else None

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                out.append(":")
                out.append(_escape(self.password, _PASSWORD_SAFE))
            out.append("@")
        out.append(self.host_port)
        for name, value in self.params:
            out.append(";")
            out.append(_escape(name, _PARAM_SAFE))
            if value is not None:
                out.append("=")
                out.append(_escape(value, _PARAM_SAFE))
        sep = "?"
        for name, value in self.headers:
            out.append(sep)
            out.append(_escape(name, _HEADER_SAFE))
            out.append("=")
            out.append(_escape(value, _HEADER_SAFE))
            sep = "&"
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): ``number`` as written (``+1-201-555-0123``) and its params."""

    number: str
    params: Params = ()

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def __str__(self) -> str:
        tail = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self.params)
        return f"tel:{self.number}{tail}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absoluteURI (RFC 3261 25.1): ``scheme`` (lower case) and everything after ':'."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _split_params(text: str, what: str) -> Params:
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if not name:
            raise _bad(what)
        uname = _unescape(name, what).lower()
        if eq:
            if not value:
                raise _bad(what)
            out.append((uname, _unescape(value, what)))
        else:
            out.append((uname, None))
    return tuple(out)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    if not _FORBIDDEN.isdisjoint(rest):
        raise _bad("SIP URI")
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        colon = userinfo.find(":")
        if colon >= 0:
            user_text, pw_text = userinfo[:colon], userinfo[colon + 1 :]
            password = _unescape(pw_text, "SIP URI password")
        else:
            user_text = userinfo
        if not user_text:
            raise _bad("SIP URI user")
        user = _unescape(user_text, "SIP URI user")
    headers: tuple[tuple[str, str], ...] = ()
    qmark = rest.find("?")
    if qmark >= 0:
        rest, headers_text = rest[:qmark], rest[qmark + 1 :]
        hdrs: list[tuple[str, str]] = []
        for item in headers_text.split("&"):
            hname, eq, hvalue = item.partition("=")
            if not hname or not eq:
                raise _bad("SIP URI header")
            hdrs.append((_unescape(hname, "SIP URI header"), _unescape(hvalue, "SIP URI header")))
        headers = tuple(hdrs)
    semi = rest.find(";")
    params: Params = ()
    if semi >= 0:
        rest, params = rest[:semi], _split_params(rest[semi + 1 :], "SIP URI parameter")
    if not rest or rest[0] in " \t" or rest[-1] in " \t":
        raise _bad("SIP URI host")
    host, port = split_host_port(rest)
    return SipUri(scheme, user, host, port, password, params, headers)


def _parse_tel(rest: str) -> TelUri:
    if not rest or not _FORBIDDEN.isdisjoint(rest):
        raise _bad("tel URI")
    number, _, ptext = rest.partition(";")
    if not number:
        raise _bad("tel URI")
    params: Params = ()
    if ptext:
        out: list[tuple[str, str | None]] = []
        for part in ptext.split(";"):
            name, eq, value = part.partition("=")
            if not name:
                raise _bad("tel URI")
            out.append((name.lower(), value if eq else None))
        params = tuple(out)
    return TelUri(number, params)


_cached = cached_parser(size=PARSE_CACHE_SIZE, max_length=PARSE_CACHE_MAX_LENGTH)


@_cached
def parse_uri(text: str) -> Uri:
    """Parse any absoluteURI; sip/sips and tel are parsed structurally."""
    scheme = uri_scheme(text)
    if scheme is None:
        raise _bad("URI")
    rest = text[len(scheme) + 1 :]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if not rest or not _GENERIC_FORBIDDEN.isdisjoint(rest):
        raise _bad("URI")
    return AbsoluteUri(scheme, rest)


@_cached
def parse_sip_uri(text: str) -> SipUri:
    """Parse a sip/sips URI; any other scheme raises ``SipError(416)`` (RFC 3261 8.2.2.1)."""
    scheme = uri_scheme(text)
    if scheme is None:
        raise _bad("URI")
    if scheme != "sip" and scheme != "sips":
        raise SipError(416, "Unsupported URI Scheme")
    return _parse_sip(scheme, text[len(scheme) + 1 :])
