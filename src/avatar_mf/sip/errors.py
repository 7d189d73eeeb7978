"""SIP errors that carry the answer to send (RFC 3261 sections 8.2, 21).

A :class:`SipError` raised anywhere in the SIP layer names the response the UAS should send:
``status``, ``reason`` and any ``headers`` the response must carry (``Unsupported`` for 420,
RFC 3261 8.2.2.3; ``Accept`` / ``Accept-Encoding`` for 415, RFC 3261 8.2.3; ``Warning``).

:class:`SipParseError` is raised by the wire parser. When the start line and enough headers were
read to build a response (RFC 3261 8.2.6.2 needs Via, From, To, Call-ID, CSeq), ``partial``
holds that request so the transport can still answer it. :class:`FramingError` additionally
means the byte stream has lost its framing (RFC 3261 18.3) and the connection must be closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avatar_mf.sip.message import Request

#: Reason phrases: every RFC 3261 code (section 21) plus the common later ones.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

_CLASS_REASONS = {
    1: "Trying",
    2: "OK",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def default_reason(status: int) -> str:
    """The reason phrase for ``status``, falling back to its class (RFC 3261 21)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_REASONS.get(status // 100, "Unknown")


class SipError(Exception):
    """A failure that maps to a SIP response.

    Attributes:
        status: the response code to answer with (4xx-6xx).
        reason: the reason phrase to send; also the exception message.
        headers: extra ``(name, value)`` header fields the response must carry.
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]

    def __init__(
        self,
        status: int = 500,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.reason = reason if reason is not None else default_reason(status)
        self.headers = tuple(headers)
        super().__init__(f"{self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.reason!r})"


class SipParseError(SipError):
    """The bytes are not a well-formed SIP message (default status 400).

    Attributes:
        partial: the request as far as it could be read, when the start line and the headers
            needed to answer (RFC 3261 8.2.6.2) were parsed; ``None`` otherwise (for example when
            the bytes were a response, which is never answered, RFC 3261 18.1.2).
        close_connection: on a stream transport the framing is lost and the connection must be
            closed (RFC 3261 18.3). Always ``False`` for datagrams.
    """

    partial: Request | None
    close_connection: bool

    def __init__(
        self,
        status: int = 400,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        partial: Request | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(status, reason, headers=headers)
        self.partial = partial
        self.close_connection = close_connection


class FramingError(SipParseError):
    """A stream (TCP/TLS) lost its message framing: answer if possible, then close it.

    Raised or returned by :class:`avatar_mf.sip.parser.StreamFramer` when Content-Length is
    missing or unusable, or the buffered message exceeds the size limit (RFC 3261 18.3).
    """

    def __init__(
        self,
        status: int = 400,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        partial: Request | None = None,
    ) -> None:
        super().__init__(status, reason, headers=headers, partial=partial, close_connection=True)
