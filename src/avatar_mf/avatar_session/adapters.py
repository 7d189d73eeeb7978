"""The avatar subprotocols as channel services (docs/protocol.md).

Each is a thin adapter: it validates what arrives on its channel and hands it to the call's
:class:`~avatar_mf.avatar_session.session.AvatarSession`. Nothing a UE sends can raise out of
a service: bad input becomes an ``error`` message on the call's metadata channel.
"""

from __future__ import annotations

import logging

from avatar_mf.arf.units import ArfDecodeError, check_unit
from avatar_mf.avatar_session.session import AvatarSession
from avatar_mf.channels.base import ChannelContext
from avatar_mf.protocol.metadata import MetadataError, parse_message
from avatar_mf.protocol.names import ErrorCode

log = logging.getLogger(__name__)


class MetadataService:
    """``3gpp-ar-metadata``: JSON control messages (text) and transfer chunks (binary)."""

    def __init__(self, session: AvatarSession, channel: ChannelContext) -> None:
        self._session = session
        self._channel = channel

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self._session.on_chunk(data)
            return
        try:
            message = parse_message(data, max_size=self._session.settings.max_metadata_size)
        except MetadataError as exc:
            self._session.reply_error(exc)
            return
        self._session.on_metadata(message)

    def on_close(self) -> None:
        self._session.detach("metadata", self._channel)


class AnimationService:
    """``3gpp-ar-animation``: one ARF animation unit per binary message, relayed to the room."""

    def __init__(self, session: AvatarSession, channel: ChannelContext) -> None:
        self._session = session
        self._channel = channel
        self.units = 0
        self.rejected = 0

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.rejected += 1
            self._session.reply_error(
                MetadataError(ErrorCode.BAD_UNIT, "animation channels carry binary units, not text")
            )
            return
        try:
            is_config = check_unit(data)  # decode_unit's checks, no unit built
        except ArfDecodeError as exc:
            self.rejected += 1
            self._session.reply_error(
                MetadataError(
                    ErrorCode.BAD_UNIT, f"animation unit rejected: {exc.code}: {exc.message}"
                )
            )
            return
        self.units += 1
        # Unknown unit types are forwarded unchanged: receivers skip them (ISO/IEC 23090-39).
        self._session.on_animation_unit(data, is_config=is_config)

    def on_close(self) -> None:
        self._session.detach("animation", self._channel)


class TransferChannelService:
    """``avatar-mf-transfer``: binary chunk messages of base avatar transfers."""

    def __init__(self, session: AvatarSession, channel: ChannelContext) -> None:
        self._session = session
        self._channel = channel

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self._session.reply_error(
                MetadataError(
                    ErrorCode.BAD_CHUNK, "transfer channels carry binary chunks, not text"
                )
            )
            return
        self._session.on_chunk(data)

    def on_close(self) -> None:
        self._session.detach("transfer", self._channel)
