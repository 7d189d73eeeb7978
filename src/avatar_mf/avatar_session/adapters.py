"""The avatar subprotocols as channel services (docs/protocol.md).

Each is a thin adapter: it validates what arrives on its channel and hands it to the call's
:class:`~avatar_mf.avatar_session.session.AvatarSession`. Nothing a UE sends can raise out of
a service: bad input becomes an ``error`` message on the call's metadata channel (for the
audio channel's 50 messages a second, at most one per reason a second; every one counted).
"""

from __future__ import annotations

import logging
from collections import Counter

from avatar_mf.arf.units import ArfDecodeError, check_unit
from avatar_mf.avatar_session.session import AvatarSession
from avatar_mf.channels.base import ChannelContext
from avatar_mf.protocol.audio import AUDIO_SAMPLE_RATE, AudioError, AudioReceiver
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


#: Seconds between two ``error`` replies of one reason on one audio channel (all are counted).
AUDIO_ERROR_INTERVAL = 1.0


class AudioService:
    """``avatar-mf-audio``: raw audio messages (:mod:`avatar_mf.protocol.audio`), the UE's
    voice without RTP, into the session as the same ``AudioIn`` frames as RTP voice.

    A message the receiver refuses is answered ``error`` ``bad-audio`` (the reason in the
    text); one the session refuses, with its code (``unsupported``, ``conflict``). Errors of
    one reason go out at most once per :data:`AUDIO_ERROR_INTERVAL` seconds; every message is
    counted in the node's ``SessionStats.audio_messages`` and on :attr:`receiver`.
    """

    def __init__(self, session: AvatarSession, channel: ChannelContext) -> None:
        self._session = session
        self._channel = channel
        self._clock = session.deps.clock
        self._stats = session.deps.stats.audio_messages
        self.receiver = AudioReceiver()
        #: Refusals by the session (voice not agreed, or taken from RTP), by code.
        self.session_refused: Counter[str] = Counter()
        #: Errors not sent because one of the same reason went out less than a second ago.
        self.errors_held = 0
        self._last_error: dict[str, float] = {}

    def on_message(self, data: str | bytes) -> None:
        now = self._clock.now()
        if isinstance(data, str):
            self._refuse(self.receiver.refuse_text(), now)
            return
        try:
            audio = self.receiver.receive(data, now)
        except AudioError as exc:
            self._refuse(exc, now)
            return
        error = self._session.on_audio_message(audio.pcm, audio.timestamp, AUDIO_SAMPLE_RATE)
        if error is None:
            self._stats["accepted"] += 1
            return
        self.session_refused[error.code] += 1
        self._stats[error.code] += 1
        self._answer(error.code, error, now)

    def _refuse(self, exc: AudioError, now: float) -> None:
        self._stats[exc.reason] += 1
        error = MetadataError(exc.code, f"audio message refused: {exc.reason}: {exc.message}")
        self._answer(exc.reason, error, now)

    def _answer(self, key: str, error: MetadataError, now: float) -> None:
        last = self._last_error.get(key)
        if last is not None and now - last < AUDIO_ERROR_INTERVAL:
            self.errors_held += 1
            return
        self._last_error[key] = now
        self._session.reply_error(error)

    def on_close(self) -> None:
        self._session.detach("audio", self._channel)
