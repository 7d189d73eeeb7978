"""Sans-IO HTTP/1.1 request parser for a message-oriented transport (RFC 9112).

:class:`RequestParser` is fed the messages of one bootstrap data channel in order and returns
complete :class:`~avatar_mf.http.messages.HttpRequest` objects, or
:class:`~avatar_mf.http.messages.HttpError` objects carrying the status to answer. A request may
span several messages and one message may hold several requests: message boundaries do not
delimit requests, except after an error that lost the framing (below).

What is implemented, by RFC 9112 section:

- 2.2: lines end in CRLF; a bare LF is accepted as a line end, a bare CR is an error; empty
  lines before a request-line are ignored.
- 3: ``method SP request-target SP HTTP-version``, single spaces; the method is a token; the
  target is visible ASCII in origin-form (``/...``), absolute-form (``scheme:...``),
  authority-form (CONNECT only) or asterisk-form (OPTIONS only). ``HTTP/1.x`` is accepted
  (x > 1 is kept as received and handled as 1.1, RFC 9110 2.5); another major version gets 505.
  A request-line longer than the head limit gets 414.
- 3.2: more than one Host field is a 400. A missing Host is accepted (deviation: UEs on a data
  channel have no authority to name; the channel is the connection).
- 5: ``name: OWS value OWS``; whitespace before the colon and obs-fold continuation lines are
  rejected with 400 (5.1, 5.2); control characters other than HTAB in a value are rejected.
  Field names are lower-cased; values are decoded as latin-1 (obs-text kept).
- 6.1, 6.3: the body is framed by Content-Length only. Chunked bodies are not decoded: a
  request whose final transfer coding is chunked gets 411 (Length Required), other final
  codings can not be framed (400), an unknown coding before chunked gets 501; Transfer-Encoding
  together with Content-Length, Transfer-Encoding in HTTP/1.0, and invalid or conflicting
  Content-Length values are 400. Identical repeated Content-Length values are accepted.
- Limits: the head (request-line and fields) beyond ``max_head_size`` or more than
  ``max_headers`` fields gets 431; head plus content beyond ``max_size`` gets 413 (the content
  is then skipped, so the next request still parses).
- Work per message: one data channel message yields at most ``max_requests_per_message``
  requests and ``max_errors_per_message`` errors. Past either, the rest of the message is
  dropped as after a framing error (``recoverable=False``; a request limit adds one 429 error
  saying so). A message of thousands of tiny bad requests thus costs a few error answers, not
  one per request (issue 9: 256 KB of them blocked the loop ~0.5 s and drew 16-37x their size
  in answers).

Recovery. An error whose request extent is known is *recoverable*: the request is skipped and
parsing goes on. The extent is known when the head was complete and either its Content-Length
was valid or, for a head with malformed fields, it mentions neither Content-Length nor
Transfer-Encoding (so it has no content). Otherwise (framing errors, oversized heads, malformed
fields next to a framing field) a stream server would close the connection (RFC 9112 9.6).
A data channel cannot be closed by this service, but it is message-oriented, so the parser
discards everything it holds and ignores messages until one *starts* like a request-line
(optional empty lines, a method token, a space). The error says so: ``recoverable=False``.
Call :meth:`RequestParser.feed` exactly once per data channel message for this to work.
"""

from __future__ import annotations

import re
from dataclasses import replace
from enum import Enum, auto

from avatar_mf.http.messages import Headers, HttpError, HttpRequest

__all__ = [
    "DEFAULT_MAX_ERRORS_PER_MESSAGE",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_REQUESTS_PER_MESSAGE",
    "DEFAULT_MAX_SIZE",
    "RequestParser",
]

#: Default limit of a whole request (head and content), bytes.
DEFAULT_MAX_SIZE = 65536
#: Default limit of the head (request-line, fields, blank line), bytes.
DEFAULT_MAX_HEAD_SIZE = 16384
#: Default limit of the number of header field lines.
DEFAULT_MAX_HEADERS = 100
#: Default most requests one message yields (pipelining more in one message is abuse).
DEFAULT_MAX_REQUESTS_PER_MESSAGE = 64
#: Default most errors one message yields before the rest of it is dropped.
DEFAULT_MAX_ERRORS_PER_MESSAGE = 4

_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DIGITS = re.compile(r"[0-9]+")
#: A Content-Length with more digits than this (1 PB) is refused without skipping its content.
_MAX_LENGTH_DIGITS = 15
#: The start of a message that may begin a request: empty lines, a method, a space.
_REQUEST_START = re.compile(rb"(?:\r?\n)*[!#$%&'*+\-.^_`|~0-9A-Za-z]+ ")


class _State(Enum):
    HEAD = auto()  # waiting for a complete head
    BODY = auto()  # head parsed, waiting for the content
    SKIP = auto()  # skipping the content of a rejected request of known length
    RESYNC = auto()  # framing lost: ignoring messages until one starts like a request


class _Reject(Exception):
    """A rejected request. ``skip`` is the content length still to drop when the request's
    extent is known (recoverable), None when the framing is lost."""

    def __init__(self, status: int, detail: str, *, skip: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.skip = skip


class RequestParser:
    """Incremental HTTP/1.1 request parser; one per channel. Never raises on input."""

    def __init__(
        self,
        max_size: int = DEFAULT_MAX_SIZE,
        *,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_requests_per_message: int = DEFAULT_MAX_REQUESTS_PER_MESSAGE,
        max_errors_per_message: int = DEFAULT_MAX_ERRORS_PER_MESSAGE,
    ) -> None:
        if max_size < 16 or max_head_size < 16 or max_headers < 1:
            raise ValueError("limits too small to hold a request")
        if max_requests_per_message < 1 or max_errors_per_message < 1:
            raise ValueError("a message must be allowed one request and one error")
        self.max_size = max_size
        self.max_head_size = min(max_head_size, max_size)
        self.max_headers = max_headers
        self.max_requests_per_message = max_requests_per_message
        self.max_errors_per_message = max_errors_per_message
        self._buf = bytearray()
        self._state = _State.HEAD
        self._scan_from = 0
        self._remaining = 0  # BODY: content still missing; SKIP: bytes still to drop
        self._head: tuple[str, str, str, Headers] | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a request not yet complete."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """True between requests (nothing partial is held)."""
        return self._state is _State.HEAD and not self._buf

    def feed(self, data: bytes) -> list[HttpRequest | HttpError]:
        """Add one data channel message; return the requests and errors it completed, in order."""
        if self._state is _State.RESYNC:
            if not _REQUEST_START.match(data):
                return []
            self._state = _State.HEAD
        self._buf += data
        out: list[HttpRequest | HttpError] = []
        while True:
            if self._over_budget(out):
                break
            if self._state is _State.HEAD:
                if not self._parse_head(out):
                    break
            elif self._state is _State.BODY:
                if len(self._buf) < self._remaining:
                    break
                assert self._head is not None
                method, target, version, headers = self._head
                body = bytes(self._buf[: self._remaining])
                del self._buf[: self._remaining]
                out.append(HttpRequest(method, target, version, headers, body))
                self._head = None
                self._state = _State.HEAD
            elif self._state is _State.SKIP:
                dropped = min(self._remaining, len(self._buf))
                del self._buf[:dropped]
                self._remaining -= dropped
                if self._remaining:
                    break
                self._state = _State.HEAD
            else:  # RESYNC: everything after the error in this message is dropped
                break
        return out

    def _over_budget(self, out: list[HttpRequest | HttpError]) -> bool:
        """True (and the rest of the message dropped) once this message yielded its share."""
        errors = sum(1 for item in out if isinstance(item, HttpError))
        requests = len(out) - errors
        if errors < self.max_errors_per_message and requests < self.max_requests_per_message:
            return False
        if self._state is _State.RESYNC or (self._state is _State.HEAD and not self._buf):
            return True  # nothing of this message is left to drop
        if requests >= self.max_requests_per_message:
            detail = f"more than {self.max_requests_per_message} requests in one message"
            self._lose_framing(out, 429, detail)
        else:
            last = out[-1]
            if isinstance(last, HttpError):  # the error that used up the budget
                out[-1] = replace(last, recoverable=False)
            self._drop_rest()
        return True

    # ------------------------------------------------------------------ head

    def _parse_head(self, out: list[HttpRequest | HttpError]) -> bool:
        """Parse a head if one is complete; False when more data is needed."""
        self._skip_empty_lines()
        if not self._buf:
            return False
        match = _END_OF_HEAD.search(self._buf, max(0, self._scan_from - 3))
        if match is None:
            self._scan_from = len(self._buf)
            if len(self._buf) > self.max_head_size:
                self._lose_framing(out, *self._oversized_head())
            return False
        self._scan_from = 0
        head_size = match.end()
        if head_size > self.max_head_size:
            self._lose_framing(out, *self._oversized_head())
            return True
        head = bytes(self._buf[: match.start()])
        del self._buf[:head_size]
        try:
            request, length = self._parse_head_bytes(head)
        except _Reject as rejected:
            if rejected.skip is None:
                self._lose_framing(out, rejected.status, rejected.detail)
            else:
                out.append(HttpError(rejected.status, rejected.detail))
                self._skip(rejected.skip)
            return True
        if head_size + length > self.max_size:
            out.append(HttpError(413, f"request larger than {self.max_size} bytes"))
            self._skip(length)
            return True
        self._head = request
        self._remaining = length
        self._state = _State.BODY
        return True

    def _skip_empty_lines(self) -> None:
        """RFC 9112 2.2: ignore empty lines received before a request-line."""
        start = 0
        buf = self._buf
        while True:
            if buf.startswith(b"\r\n", start):
                start += 2
            elif buf.startswith(b"\n", start):
                start += 1
            else:
                break
        if start:
            del buf[:start]
            self._scan_from = max(0, self._scan_from - start)

    def _oversized_head(self) -> tuple[int, str]:
        first_line_end = self._buf.find(b"\n")
        if first_line_end < 0 or first_line_end >= self.max_head_size:
            if _REQUEST_START.match(self._buf):
                return 414, f"request-line longer than {self.max_head_size} bytes"
            return 400, "malformed request-line"
        return 431, f"request header section larger than {self.max_head_size} bytes"

    def _skip(self, length: int) -> None:
        self._remaining = length
        self._state = _State.SKIP if length else _State.HEAD

    def _lose_framing(self, out: list[HttpRequest | HttpError], status: int, detail: str) -> None:
        out.append(HttpError(status, detail, recoverable=False))
        self._drop_rest()

    def _drop_rest(self) -> None:
        """Discard what is held and wait for a message that starts like a request."""
        self._buf.clear()
        self._scan_from = 0
        self._head = None
        self._remaining = 0
        self._state = _State.RESYNC

    def _parse_head_bytes(self, head: bytes) -> tuple[tuple[str, str, str, Headers], int]:
        try:
            lines = head.split(b"\n")
            for i, line in enumerate(lines):
                if line.endswith(b"\r"):
                    line = lines[i] = line[:-1]
                if b"\r" in line:
                    raise _Reject(400, "bare CR in request head")
            if len(lines) - 1 > self.max_headers:
                raise _Reject(431, f"more than {self.max_headers} header fields")
            headers = _parse_fields(lines[1:])
        except _Reject as rejected:
            # The head's extent is known. Without any mention of a framing field there is no
            # content either (RFC 9112 6.3 rule 7), so the next request can still be found.
            lowered = head.lower()
            if b"content-length" in lowered or b"transfer-encoding" in lowered:
                raise
            raise _Reject(rejected.status, rejected.detail, skip=0) from None
        length = _content_length(headers, http10=lines[0].endswith(b" HTTP/1.0"))
        # From here on the request's extent is known: a rejection skips its content.
        try:
            method, target, version = _parse_request_line(lines[0])
        except _Reject as rejected:
            raise _Reject(rejected.status, rejected.detail, skip=length) from None
        semantic_error = _check_semantics(method, target, headers)
        if semantic_error is not None:
            raise _Reject(400, semantic_error, skip=length)
        return (method, target, version, headers), length


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise _Reject(400, "malformed request-line")
    method, target, version = parts
    if not _TOKEN_BYTES.fullmatch(method):
        raise _Reject(400, "invalid method")
    if not _TARGET.fullmatch(target):
        raise _Reject(400, "invalid request-target")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise _Reject(400, "malformed HTTP-version")
    if match.group(1) != b"1":
        raise _Reject(505, "only HTTP/1.x is supported")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def _parse_fields(lines: list[bytes]) -> Headers:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise _Reject(400, "obsolete line folding in header field")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN_BYTES.fullmatch(name):
            raise _Reject(400, "malformed header field")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise _Reject(400, "invalid character in header field value")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
    return tuple(headers)


def _content_length(headers: Headers, *, http10: bool) -> int:
    """The content length (RFC 9112 6.3); raises _Reject when the framing is unusable."""
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name == "transfer-encoding"
        for coding in value.split(",")
    ]
    lengths = [value for name, value in headers if name == "content-length"]
    if codings:
        if lengths:
            raise _Reject(400, "both Transfer-Encoding and Content-Length")
        if http10:
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        if not all(codings) or codings[-1] != "chunked" or codings.count("chunked") > 1:
            raise _Reject(400, "request content length cannot be determined")
        if len(codings) > 1:
            raise _Reject(501, "unsupported transfer coding")
        raise _Reject(411, "chunked request content is not supported")
    if not lengths:
        return 0
    values = {item.strip() for value in lengths for item in value.split(",")}
    if len(values) != 1:
        raise _Reject(400, "conflicting Content-Length values")
    (value,) = values
    if not _DIGITS.fullmatch(value):
        raise _Reject(400, "invalid Content-Length")
    if len(value) > _MAX_LENGTH_DIGITS:
        raise _Reject(413, "Content-Length too large")
    return int(value)


def _check_semantics(method: str, target: str, headers: Headers) -> str | None:
    """What makes a well-framed request unacceptable, or None."""
    if target == "*":
        if method != "OPTIONS":
            return "asterisk-form request-target outside OPTIONS"
    elif method != "CONNECT" and not target.startswith("/") and not _SCHEME.match(target):
        return "invalid request-target form"  # CONNECT's authority-form is refused later
    if sum(1 for name, _ in headers if name == "host") > 1:
        return "more than one Host field"
    return None
