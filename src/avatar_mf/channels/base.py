"""The contract between a call's data channels and the services that run on them.

A service is created per channel when the channel opens, chosen by the channel's subprotocol
(``http`` for bootstrap channels, ``3gpp-ar-metadata``, ``3gpp-ar-animation`` ...). It receives
every message of its channel in order and sends through its :class:`ChannelContext`. Services
never touch sockets or aiortc: the context is all they see, so they are tested with
:class:`avatar_mf.testing.channels.RecordingChannel` and no network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from avatar_mf.sip.feature_tags import AvatarFeatureTags


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a service knows about its channel and call."""

    call_id: str
    stream_id: int
    label: str
    subprotocol: str
    #: The peer's a=max-message-size (0: no limit): never send a larger message.
    max_message_size: int
    #: The caller's identity (P-Asserted-Identity or From URI).
    identity: str
    #: The Request-URI of the INVITE (a room URI names the room).
    request_uri: str
    #: The caller's avatar feature tags from its Contact (``+sip.3gpp-avatar-support``,
    #: ``+sip.app-subtype``; RFC 3840), parsed once per call: an input of the avatar
    #: function negotiation (TR 26.813 A.1).
    avatar_tags: AvatarFeatureTags = AvatarFeatureTags()
    #: The room the call joins when its Request-URI does not name it (both legs of a two-leg
    #: call: the room made for the pair); empty: the room the Request-URI names.
    room: str = ""
    #: The ``a=dcsa`` attributes of the call's data channel m-line, verbatim (RFC 8864; e.g.
    #: ``3gpp-avatar-profiles:arf-face-v1``): the avatar negotiation reads its own from them.
    dcsa: tuple[str, ...] = ()


class ChannelContext(Protocol):
    @property
    def info(self) -> ChannelInfo: ...

    def send(self, data: str | bytes) -> None:
        """Queue one message on the channel (must respect ``info.max_message_size``)."""
        ...

    def buffered_amount(self) -> int:
        """Bytes queued and not yet sent on this channel (for back-pressure)."""
        ...


class ChannelService(Protocol):
    def on_message(self, data: str | bytes) -> None:
        """One message from the peer, in channel order. Must not block the event loop."""
        ...

    def on_close(self) -> None:
        """The channel or the call ended; release what the service holds."""
        ...


#: Creates the service of one channel.
ServiceFactory = Callable[[ChannelContext], ChannelService]


class EchoService:
    """Diagnostic loopback: every message goes back on the channel it came on."""

    def __init__(self, channel: ChannelContext) -> None:
        self._channel = channel

    def on_message(self, data: str | bytes) -> None:
        self._channel.send(data)

    def on_close(self) -> None:
        pass
