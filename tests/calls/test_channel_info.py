"""The caller's Contact feature tags reach every channel service of the call (ChannelInfo)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.channels.base import ChannelContext, ChannelInfo, EchoService
from avatar_mf.config import AppConfig
from avatar_mf.media.session import StreamSpec
from avatar_mf.protocol.names import SUBPROTOCOL_METADATA
from avatar_mf.sip.feature_tags import AvatarFeatureTags, AvatarSupport
from avatar_mf.ua.media_seam import CallInfo


def call_info(contact: str) -> CallInfo:
    return CallInfo(
        call_id="c1",
        request_uri="sip:mf@127.0.0.1",
        from_uri="sip:ue1@127.0.0.1",
        to_uri="sip:mf@127.0.0.1",
        identity="sip:ue1@127.0.0.1",
        contact=contact,
        source_host="127.0.0.1",
    )


def open_metadata_channel(contact: str) -> ChannelInfo:
    seen: list[ChannelInfo] = []

    def service(channel: ChannelContext) -> EchoService:
        seen.append(channel.info)
        return EchoService(channel)

    media: Any = None  # never used before an offer is answered
    factory = CallSessionFactory(media, AppConfig(), {SUBPROTOCOL_METADATA: service})
    session = CallMediaSession(factory, call_info(contact), lambda reason: None)
    # The association's view the session reads when a channel opens (streams, remote limits).
    stream = StreamSpec(1000, label="meta", subprotocol=SUBPROTOCOL_METADATA)
    dc: Any = SimpleNamespace(streams={1000: stream}, remote=None)
    session.dc = dc
    session._open_service(1000)
    (info,) = seen
    return info


def test_channel_info_carries_the_callers_avatar_tags() -> None:
    info = open_metadata_channel(
        '<sip:ue1@127.0.0.1:5070>;+sip.app-subtype="webrtc-datachannel";'
        '+sip.3gpp-avatar-support="avatar-assisted"'
    )
    assert info.avatar_tags == AvatarFeatureTags(AvatarSupport.ASSISTED, datachannel=True)
    assert (info.stream_id, info.subprotocol) == (1000, SUBPROTOCOL_METADATA)


def test_a_contact_without_tags_gives_unknown_support() -> None:
    info = open_metadata_channel("<sip:ue1@127.0.0.1:5070>")
    assert info.avatar_tags == AvatarFeatureTags(AvatarSupport.UNKNOWN, datachannel=False)
