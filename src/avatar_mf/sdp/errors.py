"""SDP errors that carry their SIP answer.

Two outcomes of a bad offer, following RFC 3261:

* :class:`SdpError` -- the body is not well-formed SDP (RFC 8866 section 9 grammar, or an
  attribute that the MF must interpret violates its own ABNF: RFC 8864 dcmap/dcsa, RFC 8122
  fingerprint, RFC 4145 setup, RFC 8842 tls-id, RFC 8839 ICE). Answer **400 Bad Request**
  (RFC 3261 section 21.4.1).
* :class:`SdpNotAcceptable` -- the SDP is well-formed but offers nothing the MF can accept.
  Answer **488 Not Acceptable Here** (RFC 3261 section 21.4.26) with a ``Warning`` header
  (RFC 3261 section 20.43) whose 3xx code says why (304 media type not available, 305
  incompatible media format, ...).

``SdpNotAcceptable`` is a subclass of ``SdpError``: a caller that only wants "answer with
``err.status`` and ``err.warning``" catches ``SdpError``.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 3261 section 20.43 warn-codes (the SDP related ones).
WARN_INCOMPATIBLE_NETWORK_PROTOCOL = 300
WARN_INCOMPATIBLE_ADDRESS_FORMAT = 301
WARN_INCOMPATIBLE_TRANSPORT = 302
WARN_INCOMPATIBLE_BANDWIDTH_UNITS = 303
WARN_MEDIA_TYPE_NOT_AVAILABLE = 304
WARN_INCOMPATIBLE_MEDIA_FORMAT = 305
WARN_ATTRIBUTE_NOT_UNDERSTOOD = 306
WARN_PARAMETER_NOT_UNDERSTOOD = 307
WARN_MULTICAST_NOT_AVAILABLE = 330
WARN_UNICAST_NOT_AVAILABLE = 331
WARN_INSUFFICIENT_BANDWIDTH = 370
WARN_MISCELLANEOUS = 399

#: Longest warn-text put in a Warning header; longer texts are cut (the full text stays in
#: the exception message for logs).
MAX_WARNING_TEXT = 200


@dataclass(frozen=True, slots=True)
class SdpWarning:
    """The content of one SIP ``Warning`` header value (RFC 3261 section 20.43).

    ``code`` is a 3xx warn-code, ``text`` the human readable warn-text (unquoted). The
    warn-agent (host name of the MF) is not known to the SDP layer: pass it to
    :meth:`header_value`.
    """

    code: int
    text: str

    def header_value(self, agent: str) -> str:
        """``<code> <agent> "<text>"`` with the text escaped as an RFC 3261 quoted-string."""
        text = self.text
        if len(text) > MAX_WARNING_TEXT:
            text = text[: MAX_WARNING_TEXT - 3] + "..."
        # quoted-string: escape backslash and double quote; drop control characters.
        cleaned = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)
        escaped = cleaned.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.code} {agent} "{escaped}"'


class SdpError(ValueError):
    """Malformed SDP: answer ``status`` (400) with ``warning``.

    ``detail`` is the problem alone, ``line`` the 1-based line number in the received body
    when known; ``str(err)`` combines both (``"SDP line 7: bad m= line ..."``).
    """

    status: int
    reason_phrase: str
    detail: str
    line: int | None
    warning: SdpWarning

    def __init__(
        self,
        detail: str,
        *,
        line: int | None = None,
        status: int = 400,
        reason_phrase: str = "Bad Request",
        warn_code: int = WARN_MISCELLANEOUS,
    ) -> None:
        self.detail = detail
        self.line = line
        self.status = status
        self.reason_phrase = reason_phrase
        message = f"SDP line {line}: {detail}" if line is not None else f"SDP: {detail}"
        self.warning = SdpWarning(warn_code, message)
        super().__init__(message)


class SdpNotAcceptable(SdpError):
    """Well-formed SDP that offers nothing acceptable: answer 488 with ``warning``."""

    def __init__(
        self,
        detail: str,
        *,
        warn_code: int = WARN_MISCELLANEOUS,
        line: int | None = None,
    ) -> None:
        super().__init__(
            detail,
            line=line,
            status=488,
            reason_phrase="Not Acceptable Here",
            warn_code=warn_code,
        )
