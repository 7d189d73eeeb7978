"""A fake data channel for service tests: records what a service sends."""

from __future__ import annotations

from dataclasses import dataclass, field

from avatar_mf.channels.base import ChannelInfo
from avatar_mf.sip.feature_tags import AvatarFeatureTags


def channel_info(
    *,
    stream_id: int = 1000,
    subprotocol: str = "",
    label: str = "",
    max_message_size: int = 65536,
    call_id: str = "test-call",
    identity: str = "sip:ue1@127.0.0.1",
    request_uri: str = "sip:mf@127.0.0.1",
    avatar_tags: AvatarFeatureTags | None = None,
) -> ChannelInfo:
    return ChannelInfo(
        call_id=call_id,
        stream_id=stream_id,
        label=label,
        subprotocol=subprotocol,
        max_message_size=max_message_size,
        identity=identity,
        request_uri=request_uri,
        avatar_tags=avatar_tags if avatar_tags is not None else AvatarFeatureTags(),
    )


@dataclass
class RecordingChannel:
    """Implements :class:`avatar_mf.channels.base.ChannelContext`; ``sent`` holds every message."""

    info: ChannelInfo = field(default_factory=channel_info)
    sent: list[str | bytes] = field(default_factory=list)
    buffered: int = 0

    def send(self, data: str | bytes) -> None:
        limit = self.info.max_message_size
        size = len(data.encode() if isinstance(data, str) else data)
        if limit and size > limit:
            raise AssertionError(f"message of {size} bytes exceeds max-message-size {limit}")
        self.sent.append(data)

    def buffered_amount(self) -> int:
        return self.buffered
