"""HTTP/1.1 messages: requests, responses and protocol errors (RFC 9110, RFC 9112).

Plain frozen values, no I/O. :class:`HttpResponse.serialize` writes the wire form of RFC 9112
section 4 with its own framing: ``Content-Length`` is always computed here (a response to a data
channel request is never chunked), so a response's ``headers`` must not carry
``Content-Length`` or ``Transfer-Encoding``. There is no ``Connection`` handling: on a bootstrap
data channel the channel is the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

__all__ = [
    "Headers",
    "HttpError",
    "HttpProtocolError",
    "HttpRequest",
    "HttpResponse",
    "error_response",
    "http_date",
    "reason_phrase",
]

#: Header fields in order, as (name, value) pairs. Request header names are lower case.
Headers = tuple[tuple[str, str], ...]

#: RFC 9110 5.6.2 token (field names, methods).
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 9110 5.5 field-value characters (VCHAR, obs-text, SP, HTAB) as text decoded from latin-1.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
#: Framing fields the serializer owns.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status``, or "" for an unregistered code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def http_date(timestamp: float) -> str:
    """``timestamp`` (Unix seconds) as an RFC 9110 5.6.7 IMF-fixdate."""
    return formatdate(timestamp, usegmt=True)


def _no_body(status: int) -> bool:
    """Statuses whose responses never have content (RFC 9110 6.4.1)."""
    return status < 200 or status in (204, 304)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One complete request, as parsed by :class:`avatar_mf.http.parser.RequestParser`."""

    method: str
    """Request method, case-sensitive as received (``GET``, ``HEAD`` ...)."""
    target: str
    """The request-target as received (origin-form ``/path?query``, or absolute-form)."""
    version: str
    """``HTTP/1.0`` or ``HTTP/1.1`` (a higher 1.x minor version is kept as received)."""
    headers: Headers = ()
    """Header fields in order; names lower-cased, values with surrounding whitespace removed."""
    body: bytes = b""
    """The content (framed by Content-Length; empty when there is none)."""

    def header(self, name: str) -> str | None:
        """The field ``name`` (any case), its lines combined with ", " (RFC 9110 5.3); None if
        absent."""
        values = self.header_values(name)
        return ", ".join(values) if values else None

    def header_values(self, name: str) -> list[str]:
        """Every line of the field ``name`` (any case), in order."""
        key = name.lower()
        return [value for field, value in self.headers if field == key]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response to serialize. Raises ValueError on construction if a field could not be put
    on the wire safely (bad status, a CR or LF in a header, a framing header)."""

    status: int
    """Status code, 100..599."""
    reason: str = ""
    """Reason phrase; "" uses the standard phrase of the status."""
    headers: Headers = ()
    """Header fields in order. Never Content-Length or Transfer-Encoding: see serialize()."""
    body: bytes = b""
    """The content. Must be empty for 1xx, 204 and 304."""
    content_length: int | None = None
    """For a response to HEAD whose ``body`` is not the selected representation (a proxied HEAD):
    the Content-Length the GET would have had. None: ``len(body)``."""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not 100..599")
        if not _FIELD_VALUE.fullmatch(self.reason):
            raise ValueError("reason phrase has characters not allowed on the wire")
        for name, value in self.headers:
            if not TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a token")
            if name.lower() in _FRAMING:
                raise ValueError(f"{name} is computed by serialize(), not given in headers")
            if not _FIELD_VALUE.fullmatch(value):
                raise ValueError(f"header {name} has characters not allowed on the wire")
        if self.body and _no_body(self.status):
            raise ValueError(f"a {self.status} response has no content")
        if self.content_length is not None and self.content_length < 0:
            raise ValueError("content_length must not be negative")

    def header(self, name: str) -> str | None:
        """The first value of the field ``name`` (any case), or None."""
        key = name.lower()
        return next((value for field, value in self.headers if field.lower() == key), None)

    def serialize(self, *, head: bool = False) -> bytes:
        """The response on the wire (RFC 9112 section 4), always delimited by Content-Length.

        ``head``: answer to a HEAD request, so the same header fields (Content-Length included)
        and no content (RFC 9110 9.3.2). Responses that never have content (1xx, 204, 304) carry
        no Content-Length (RFC 9110 8.6); their end is known to the recipient.
        """
        reason = self.reason or reason_phrase(self.status)
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        body = b""
        if not _no_body(self.status):
            length = len(self.body)
            if head and self.content_length is not None:
                length = self.content_length
            lines.append(f"Content-Length: {length}")
            body = b"" if head else self.body
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def error_response(status: int, detail: str = "", headers: Headers = ()) -> HttpResponse:
    """A short ``text/plain`` answer: ``<status> <reason>[: detail]``."""
    text = f"{status} {reason_phrase(status)}".rstrip()
    if detail:
        text += f": {detail}"
    return HttpResponse(
        status,
        headers=(
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
            *headers,
        ),
        body=(text + "\n").encode(),
    )


@dataclass(frozen=True, slots=True)
class HttpError:
    """A request that could not be accepted, carrying its answer.

    Returned by the parser in place of a request (never raised by it).
    """

    status: int
    """The status to answer with: 400, 411, 413, 414, 431, 501 or 505."""
    detail: str
    """What was wrong, for the response body and the logs (never echoes request bytes)."""
    recoverable: bool = True
    """True: the request's extent was known and skipped, parsing goes on with the next request.
    False: framing was lost; the parser discarded everything it held and resynchronises at the
    next data channel message that starts like a request line."""
    headers: Headers = ()
    """Extra header fields for the answer (e.g. ``Allow``)."""

    def response(self) -> HttpResponse:
        """The answer to send."""
        return error_response(self.status, self.detail, self.headers)


class HttpProtocolError(Exception):
    """Raised by the sans-IO helpers (e.g. request-target parsing); carries its answer."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(f"{error.status}: {error.detail}")
        self.error = error
