"""Events a :class:`~avatar_mf.media.session.DataChannelSession` reports, and a queue for them.

A session calls its ``on_event`` handler synchronously, in order, from the event loop. Exactly one
terminal event ends a session: :class:`SessionClosed` or :class:`SessionFailed`, sent after every
resource of the session has been released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class SessionConnected:
    """The SCTP association is up (ICE, DTLS and SCTP done); negotiated channels open next."""

    setup_seconds: float
    """Time from :meth:`start` to the association, by the session's clock."""


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """The data channel on ``stream_id`` can send and receive."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """One message arrived on ``stream_id`` (str for WebRTC String PPIDs, bytes for Binary)."""

    stream_id: int
    data: str | bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The data channel on ``stream_id`` is closed (stream reset, or the session ended)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """Terminal: the session ended after it had connected, or was closed before connecting."""

    reason: str
    """``"closed"`` for :meth:`close`; otherwise what ended it, e.g. ``"dtls closed"``."""


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """Terminal: connectivity never completed, e.g. ``"setup timeout in DTLS"`` (the layer
    still not up), ``"ice failed"``, ``"dtls handshake failed"``."""

    reason: str


SessionEvent = (
    SessionConnected | ChannelOpened | MessageReceived | ChannelClosed | SessionClosed
    | SessionFailed
)
EventHandler = Callable[[SessionEvent], None]
TERMINAL_EVENTS = (SessionClosed, SessionFailed)

E = TypeVar("E", bound=SessionConnected | ChannelOpened | MessageReceived | ChannelClosed
            | SessionClosed | SessionFailed)


class SessionEventQueue:
    """An ``on_event`` handler that buffers events for coroutines (tests, test UEs).

    Pass the queue itself as ``on_event``. The buffer is unbounded: a production consumer that
    may fall behind should use its own handler.
    """

    def __init__(self) -> None:
        self._events: list[SessionEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: SessionEvent) -> None:
        self._events.append(event)
        self._changed.set()

    def __len__(self) -> int:
        return len(self._events)

    def pending(self) -> list[SessionEvent]:
        """The buffered events, oldest first (a copy)."""
        return list(self._events)

    async def get(self) -> SessionEvent:
        """The oldest buffered event, waiting for one if needed (bound it with
        ``asyncio.timeout``)."""
        while not self._events:
            self._changed.clear()
            await self._changed.wait()
        return self._events.pop(0)

    async def wait_for(self, kind: type[E], where: Callable[[E], bool] | None = None) -> E:
        """Take the oldest buffered event of type ``kind`` (matching ``where``), waiting if
        needed (bound it with ``asyncio.timeout``); other events stay buffered in order."""
        while True:
            for index, event in enumerate(self._events):
                if isinstance(event, kind) and (where is None or where(event)):
                    del self._events[index]
                    return event
            self._changed.clear()
            await self._changed.wait()
