"""The one error the RTP layer raises: :class:`RtpError` (RFC 3550 section 5.1 / 6.4 checks).

A malformed datagram is dropped and counted by the caller, never answered: the error carries
a short machine-readable ``reason`` (for a metrics label) and is never retryable.
"""

from __future__ import annotations


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP or RTCP packet.

    ``reason`` is a short stable label (``"version"``, ``"padding"``, ``"csrc"``,
    ``"extension"``, ``"short"``, ...) suitable as a metrics label; the message says more.
    """

    retryable = False

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
