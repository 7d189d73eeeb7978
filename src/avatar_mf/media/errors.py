"""Errors of the data channel media layer; each carries the SIP status to answer with."""

from __future__ import annotations


class MediaError(Exception):
    """Base class. ``status_hint`` is the SIP final response the lead should send when the error
    happens while answering an offer."""

    status_hint: int = 500

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint


class MediaParamsError(MediaError, ValueError):
    """The remote transport parameters cannot be used (488 Not Acceptable Here)."""

    status_hint = 488


class MediaResourceError(MediaError, OSError):
    """No local resource (socket) could be allocated (503 Service Unavailable)."""

    status_hint = 503


class SessionStateError(MediaError, RuntimeError):
    """The operation does not fit the session's state (e.g. sending after close)."""


class UnknownStreamError(MediaError, KeyError):
    """No data channel with that stream id in this session."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class ChannelNotOpenError(MediaError, RuntimeError):
    """The data channel exists but is not open (yet or any more)."""


class MessageTooLargeError(MediaError, ValueError):
    """The message exceeds the peer's ``a=max-message-size`` (RFC 8841 section 6)."""
