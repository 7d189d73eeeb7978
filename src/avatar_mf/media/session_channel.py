"""A pre-negotiated data channel (RFC 8831 section 6.5) that reports to its session directly.

aiortc's :class:`~aiortc.RTCDataChannel` is a pyee event emitter. The session used to add three
listeners per channel (open, message, close); in pyee every ``add_listener`` takes a lock and
first emits a ``new_listener`` event, so a four-channel call paid twelve emits before any packet
(about 4 % of the MF's CPU per SIPp call). :class:`SessionChannel` hands those three events to
one callable instead, then emits them as before, so listeners other code adds still run, after
the session's, as they did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcsctptransport import RTCSctpTransport

ChannelEventSink = Callable[["SessionChannel", str, tuple[Any, ...]], None]
"""``sink(channel, event, args)`` for ``open``, ``message`` (args: the data) and ``close``."""

_SESSION_EVENTS = frozenset(("open", "message", "close"))


class SessionChannel(RTCDataChannel):
    """An :class:`~aiortc.RTCDataChannel` whose open/message/close go to ``sink`` first."""

    def __init__(
        self,
        transport: RTCSctpTransport,
        parameters: RTCDataChannelParameters,
        sink: ChannelEventSink,
    ) -> None:
        self._sink = sink
        super().__init__(transport, parameters)

    def emit(self, event: str, *args: Any, **kwargs: Any) -> bool:
        if event in _SESSION_EVENTS:
            self._sink(self, event, args)
            if not self._events.get(event):
                # Nobody else listens (the usual case): skip pyee's lock and list copy, which
                # cost as much as the rest of a message's delivery.
                return False
        return super().emit(event, *args, **kwargs)
