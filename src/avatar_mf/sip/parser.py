"""SIP wire parser and stream framer, sans-IO (RFC 3261 sections 7, 18.3, 20.14; RFC 5626 3.5.1).

:func:`parse_message` turns one datagram (or one framed stream message) into a
:class:`~avatar_mf.sip.message.Request` or :class:`~avatar_mf.sip.message.Response`:

* CRLFs before the start line are skipped (RFC 3261 7.5).
* Request-Line ``Method SP Request-URI SP SIP-Version`` with exactly one SP between elements and
  none at the end (RFC 3261 7.1, 25.1; RFC 4475 3.1.2.7-3.1.2.10 are answered 400); a version
  other than SIP/2.0 is answered 505 (RFC 3261 8.2.6 / 21.5.6, RFC 4475 3.1.2.16).
  Status-Line with a three-digit code 100-699 and any (possibly empty, UTF-8) reason phrase
  (RFC 3261 7.2, RFC 4475 3.1.1.12, 3.1.1.13, 3.1.2.19).
* Header fields: names are tokens, case-insensitive, compact forms expanded through
  :func:`~avatar_mf.sip.message.canonical_name`; ``*(SP/HTAB) ":"`` (RFC 3261 25.1 ``HCOLON``);
  folded lines are unfolded to one SP (RFC 3261 7.3.1); repeated headers keep their order;
  values are UTF-8 (RFC 3261 7.3.1 / 25.1 ``TEXT-UTF8``). Bare CR or LF inside the header
  section is refused.
* Body framing by Content-Length (RFC 3261 18.3, 20.14): on a datagram a missing Content-Length
  means the rest of the datagram; a value larger than what was received is 400 (RFC 4475
  3.1.2.2); a smaller one truncates (the extra octets are discarded, RFC 4475 3.1.1.8). Negative,
  non-numeric or repeated Content-Length values are 400 (RFC 4475 3.1.2.3, 3.3.9).
* Mandatory headers (RFC 3261 8.1.1): To, From, CSeq, Call-ID and Via; Max-Forwards is only a
  SHOULD for a UAS (RFC 3261 8.1.1.6) and RFC 2543 peers omit it (RFC 4475 3.4.1), so its absence
  is tolerated. CSeq is parsed here since every transaction needs it (RFC 4475 3.1.2.4, 3.1.2.5).
* Messages larger than ``max_size`` are 513 Message Too Large (RFC 3261 18.1.1, 21.5.14).

Every failure is a :class:`~avatar_mf.sip.errors.SipParseError` carrying the status to answer
with and, when the request could be read far enough to answer it (a start line that is not a
Status-Line, a readable header section and at least one Via), ``partial``. An ACK is never
answered (RFC 3261 17.2.1), so an ACK never comes back as ``partial``. Responses never do either:
a malformed response is silently discarded (RFC 3261 18.1.2).

:class:`StreamFramer` cuts a TCP/TLS byte stream into messages (RFC 3261 18.3): Content-Length is
mandatory there, its absence or an unusable value loses the framing and yields a
:class:`~avatar_mf.sip.errors.FramingError` (the connection must be closed after answering). A
``CRLFCRLF`` keep-alive ping between messages yields :data:`KeepAlivePing` so the transport can
answer with a ``CRLF`` pong (RFC 5626 3.5.1). Parsing never raises anything but
:class:`SipParseError` for any input bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from avatar_mf.sip.errors import FramingError, SipParseError
from avatar_mf.sip.headers import TOKEN_CHARS, parse_cseq
from avatar_mf.sip.message import SIP_VERSION, Headers, Request, Response, canonical_name

__all__ = [
    "DEFAULT_MAX_SIZE",
    "KeepAlivePing",
    "StreamFramer",
    "StreamItem",
    "is_keepalive",
    "parse_message",
]

DEFAULT_MAX_SIZE = 65535

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_WS = " \t"
_DIGITS = frozenset("0123456789")
_SCHEME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_URI_FORBIDDEN = frozenset(' \t<>"' + "".join(map(chr, range(32))) + "\x7f")
_REQUEST_MANDATORY = ("Via", "To", "From", "Call-ID", "CSeq")
_MAX_CONTENT_LENGTH_DIGITS = 10


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """A ``CRLFCRLF`` keep-alive ping read from a stream; answer it with ``CRLF`` (RFC 5626)."""


StreamItem = Request | Response | SipParseError | KeepAlivePing


@lru_cache(maxsize=512)
def _header_name(raw: str) -> str | None:
    """Canonical name for a raw header name, or ``None`` if it is not a token."""
    if not raw or not TOKEN_CHARS.issuperset(raw):
        return None
    return canonical_name(raw)


@dataclass(slots=True)
class _Head:
    """A header section read as far as framing needs; errors found in the start line wait.

    Internal and short-lived (one parse), hence not frozen.
    """

    is_request: bool
    method: str
    uri: str
    status: int
    reason: str
    headers: Headers
    names: frozenset[str]
    content_length: int | None
    content_length_error: str | None
    start_error: SipParseError | None


def _parse_start_line(line: str) -> tuple[bool, str, str, int, str, SipParseError | None]:
    """(is_request, method, uri, status, reason, deferred error) for a start line."""
    if line[:4].upper() == "SIP/":
        # A Status-Line (RFC 3261 7.2): never answered, so its errors carry no partial.
        version, sp1, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != SIP_VERSION:
            return False, "", "", 0, "", SipParseError(505, "Version Not Supported")
        if not sp1 or len(code) != 3 or not _DIGITS.issuperset(code) or not 100 <= int(code) <= 699:
            return False, "", "", 0, "", SipParseError(400, "Bad Status-Line")
        return False, "", "", int(code), reason, None
    parts = line.split(" ")
    method = parts[0]
    uri = parts[1] if len(parts) > 1 else ""
    if len(parts) != 3 or not method or not uri or not parts[2]:
        return True, method, uri, 0, "", SipParseError(400, "Bad Request-Line")
    version = parts[2]
    if not TOKEN_CHARS.issuperset(method):
        return True, method, uri, 0, "", SipParseError(400, "Bad Request-Line: method")
    colon = uri.find(":")
    if (
        colon <= 0
        or uri[0] not in _SCHEME_FIRST
        or not _SCHEME_CHARS.issuperset(uri[:colon])
        or not _URI_FORBIDDEN.isdisjoint(uri)
    ):
        return True, method, uri, 0, "", SipParseError(400, "Bad Request-URI")
    if version.upper() != SIP_VERSION:
        if _looks_like_sip_version(version):
            return True, method, uri, 0, "", SipParseError(505, "Version Not Supported")
        return True, method, uri, 0, "", SipParseError(400, "Bad Request-Line: version")
    return True, method, uri, 0, "", None


def _looks_like_sip_version(version: str) -> bool:
    # RFC 3261 25.1: SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
    if version[:4].upper() != "SIP/":
        return False
    major, dot, minor = version[4:].partition(".")
    return bool(dot and major and minor and _DIGITS.issuperset(major + minor))


def _parse_head(head: bytes) -> _Head:
    """Parse the start line and header fields (``head`` excludes the blank line)."""
    if head.count(b"\n") != head.count(_CRLF) or head.count(b"\r") != head.count(_CRLF):
        raise SipParseError(400, "Bare CR or LF in header section")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError(400, "Header section is not UTF-8") from None
    lines = text.split("\r\n")
    is_request, method, uri, status, reason, start_error = _parse_start_line(lines[0])

    items: list[list[str]] = []
    for line in lines[1:]:
        first = line[:1]
        if first == " " or first == "\t":
            if not items:
                raise SipParseError(400, "Continuation line before any header")
            cont = line.strip(_WS)
            prev = items[-1]
            if cont:
                prev[1] = f"{prev[1]} {cont}" if prev[1] else cont
            continue
        colon = line.find(":")
        if colon <= 0:
            raise SipParseError(400, "Malformed header line")
        name = _header_name(line[:colon].rstrip(_WS))
        if name is None:
            raise SipParseError(400, "Malformed header name")
        items.append([name, line[colon + 1 :].strip(_WS)])

    pairs = tuple((n, v) for n, v in items)
    names = frozenset(n for n, _ in pairs)
    content_length: int | None = None
    cl_error: str | None = None
    if "Content-Length" in names:
        values = [v for n, v in pairs if n == "Content-Length"]
        if len(values) > 1:
            cl_error = "Multiple Content-Length values"
        else:
            value = values[0]
            if (
                not value
                or len(value) > _MAX_CONTENT_LENGTH_DIGITS
                or not _DIGITS.issuperset(value)
            ):
                cl_error = "Bad Content-Length"
            else:
                content_length = int(value)
    return _Head(
        is_request,
        method,
        uri,
        status,
        reason,
        Headers(pairs),
        names,
        content_length,
        cl_error,
        start_error,
    )


def _partial(head: _Head) -> Request | None:
    """The request to answer an error with, when there is one to answer (see module doc)."""
    if not head.is_request or head.method == "ACK" or "Via" not in head.names:
        return None
    return Request(head.method, head.uri, head.headers)


def _finish(head: _Head, body: bytes) -> Request | Response:
    """Build the message, raising deferred start-line errors and mandatory-header errors."""
    if head.start_error is not None:
        err = head.start_error
        raise SipParseError(err.status, err.reason, partial=_partial(head))
    names = head.names
    missing = [n for n in _REQUEST_MANDATORY if n not in names]
    if missing:
        raise SipParseError(400, f"Missing {', '.join(missing)} header", partial=_partial(head))
    try:
        parse_cseq(head.headers.get("CSeq") or "")
    except SipParseError as exc:
        raise SipParseError(exc.status, exc.reason, partial=_partial(head)) from None
    if head.is_request:
        return Request(head.method, head.uri, head.headers, body)
    return Response(head.status, head.reason, head.headers, body)


def _skip_leading_crlf(data: bytes) -> int:
    i = 0
    n = len(data)
    while i + 1 < n and data[i] == 13 and data[i + 1] == 10:
        i += 2
    return i


def is_keepalive(datagram: bytes) -> bool:
    """True for a datagram made of CRLFs only: a keep-alive to drop silently, not a message.

    RFC 5626 uses STUN for UDP keep-alives, but many UEs send ``CRLFCRLF`` (or a lone ``CRLF``)
    over UDP as well; RFC 3261 7.5 lets a receiver ignore them.
    """
    return bool(datagram) and not datagram.replace(_CRLF, b"")


def parse_message(
    data: bytes, *, datagram: bool = True, max_size: int = DEFAULT_MAX_SIZE
) -> Request | Response:
    """Parse one complete SIP message (RFC 3261 7, 18.3).

    Args:
        data: the datagram, or one message already framed from a stream.
        datagram: ``True`` for UDP (a missing Content-Length means "the rest of the datagram");
            ``False`` for a stream message, where Content-Length is mandatory.
        max_size: larger inputs are refused with 513 Message Too Large.

    Raises:
        SipParseError: with the status to answer and ``partial`` when the request can be
            answered. Nothing else is ever raised.
    """
    start = _skip_leading_crlf(data)
    end = data.find(_HEAD_END, start)
    too_large = len(data) - start > max_size
    if end < 0:
        if too_large:
            raise SipParseError(513, "Message Too Large")
        raise SipParseError(400, "Incomplete header section")
    head = _parse_head(data[start:end])
    if too_large:
        raise SipParseError(513, "Message Too Large", partial=_partial(head))
    if head.content_length_error is not None:
        raise SipParseError(400, head.content_length_error, partial=_partial(head))
    rest_start = end + 4
    length = head.content_length
    if length is None:
        if not datagram:
            raise SipParseError(400, "Missing Content-Length", partial=_partial(head))
        body = data[rest_start:]
    else:
        if length > len(data) - rest_start:
            raise SipParseError(400, "Content-Length larger than message", partial=_partial(head))
        body = data[rest_start : rest_start + length]
    return _finish(head, body)


class StreamFramer:
    """Cut a reliable byte stream (TCP, TLS) into SIP messages (RFC 3261 18.3).

    Feed it whatever the socket returned; it returns, in order, every complete message, every
    :class:`SipParseError` for a message it could frame but not parse (answer it if ``partial``
    is set; the stream stays usable), a :class:`~avatar_mf.sip.errors.FramingError` when the
    framing is lost (answer if possible, then close the connection; the framer then ignores
    further input), and :class:`KeepAlivePing` for each ``CRLFCRLF`` ping (RFC 5626 3.5.1).
    """

    __slots__ = ("_buf", "_closed", "_head", "_head_end", "_max_size", "_scan_from")

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self._max_size = max_size
        self._scan_from = 0
        self._head: _Head | None = None
        self._head_end = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once a :class:`FramingError` was returned: the connection must be closed."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[StreamItem]:
        """Add received bytes; return every item they complete."""
        if self._closed:
            return []
        self._buf += data
        out: list[StreamItem] = []
        while not self._closed:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _fail(self, err: FramingError) -> FramingError:
        self._closed = True
        self._buf.clear()
        self._head = None
        return err

    def _next(self) -> StreamItem | None:
        buf = self._buf
        if self._head is None:
            # Between messages: CRLFCRLF is a keep-alive ping, a lone CRLF is skipped
            # (RFC 5626 3.5.1, RFC 3261 7.5).
            while buf[:1] == b"\r":
                if buf[:4] == _HEAD_END:
                    del buf[:4]
                    self._scan_from = 0
                    return KeepAlivePing()
                if _HEAD_END.startswith(buf):
                    return None  # "\r", "\r\n" or "\r\n\r": maybe the start of a ping
                if buf[:2] != _CRLF:
                    break  # a lone CR: let the header parser refuse it
                del buf[:2]
                self._scan_from = 0
            end = buf.find(_HEAD_END, self._scan_from)
            if end < 0:
                if len(buf) > self._max_size:
                    return self._fail(FramingError(513, "Message Too Large"))
                self._scan_from = max(0, len(buf) - 3)
                return None
            self._scan_from = 0
            try:
                head = _parse_head(bytes(buf[:end]))
            except SipParseError as exc:
                return self._fail(FramingError(exc.status, exc.reason))
            if head.content_length_error is not None:
                return self._fail(
                    FramingError(400, head.content_length_error, partial=_partial(head))
                )
            if head.content_length is None:
                return self._fail(
                    FramingError(400, "Missing Content-Length", partial=_partial(head))
                )
            if end + 4 + head.content_length > self._max_size:
                return self._fail(FramingError(513, "Message Too Large", partial=_partial(head)))
            self._head = head
            self._head_end = end + 4
        head = self._head
        stop = self._head_end + (head.content_length or 0)
        if len(buf) < stop:
            return None
        body = bytes(buf[self._head_end : stop])
        del buf[:stop]
        self._head = None
        try:
            return _finish(head, body)
        except SipParseError as exc:
            return exc
