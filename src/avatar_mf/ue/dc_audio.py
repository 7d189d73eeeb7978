"""The test UE's voice without RTP: PCM sent as raw audio messages on an ``avatar-mf-audio``
data channel (docs/protocol.md section 7, :mod:`avatar_mf.protocol.audio`).

:data:`AUDIO_STREAM` is the channel the UE offers (``a=dcmap:1006
label="avatar-audio";subprotocol="avatar-mf-audio";ordered=0;max-retr=0``: unordered and never
retransmitted, live audio is better lost than late). :class:`DcAudioSender` cuts 16 kHz mono
PCM (:func:`~avatar_mf.ue.rtp_audio.read_wav` reads a WAV of any rate) into messages of
``frame_ms`` (20 by default) with a sequence number and a 16 kHz timestamp starting at random
values, as an RTP sender's, and sends them paced by the event loop clock. :meth:`messages`
is the sans-IO part (the messages, in order).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Final

from avatar_mf.protocol.audio import (
    AUDIO_SAMPLE_RATE,
    MAX_AUDIO_SAMPLES,
    MIN_AUDIO_SAMPLES,
    AudioFormat,
    encode_audio,
)
from avatar_mf.protocol.names import SUBPROTOCOL_AUDIO
from avatar_mf.sdp.datachannel import DcMap

__all__ = ["AUDIO_STREAM", "DcAudioSender"]

#: The audio channel a test UE offers with ``--audio-dc``.
AUDIO_STREAM: Final = DcMap(
    1006, label="avatar-audio", subprotocol=SUBPROTOCOL_AUDIO, ordered=False, max_retr=0
)


class DcAudioSender:
    """Sends ``pcm`` (16 kHz mono s16le) on ``stream_id`` through ``send`` (``UeCall.send``).

    The last message is padded with silence to a whole frame. ``rng`` draws the first
    sequence number and timestamp (seed it for repeatable messages).
    """

    def __init__(
        self,
        send: Callable[[int, bytes], None],
        pcm: bytes,
        *,
        stream_id: int = AUDIO_STREAM.stream_id,
        frame_ms: int = 20,
        audio_format: AudioFormat = AudioFormat.S16LE,
        rng: random.Random | None = None,
    ) -> None:
        samples = AUDIO_SAMPLE_RATE * frame_ms // 1000
        if not MIN_AUDIO_SAMPLES <= samples <= MAX_AUDIO_SAMPLES:
            raise ValueError(f"frame_ms {frame_ms}: a message carries 10 to 60 ms")
        self._send = send
        self.stream_id = stream_id
        self.frame_samples = samples
        self.audio_format = audio_format
        rng = rng if rng is not None else random.Random()
        self.first_sequence = rng.getrandbits(16)
        self.first_timestamp = rng.getrandbits(32)
        frame = 2 * samples
        pcm = pcm[: len(pcm) & ~1]
        self._pcm = pcm + bytes(-len(pcm) % frame)
        self.messages_sent = 0
        #: Loop time of the first message sent (None before).
        self.first_sent: float | None = None

    @property
    def frames(self) -> int:
        return len(self._pcm) // (2 * self.frame_samples)

    @property
    def period(self) -> float:
        """Seconds of audio per message."""
        return self.frame_samples / AUDIO_SAMPLE_RATE

    @property
    def seconds(self) -> float:
        """Seconds of audio in all the messages (how long :meth:`run` takes)."""
        return self.frames * self.period

    def summary(self) -> dict[str, object]:
        """What a call's summary says of the audio sent (``ue call``/``ue listen``)."""
        return {
            "stream": self.stream_id,
            "messages_sent": self.messages_sent,
            "seconds_sent": round(self.messages_sent * self.period, 3),
        }

    def messages(self) -> Iterator[bytes]:
        """Every message, in order."""
        frame = 2 * self.frame_samples
        for index in range(self.frames):
            yield encode_audio(
                self.first_sequence + index,
                self.first_timestamp + index * self.frame_samples,
                self._pcm[index * frame : (index + 1) * frame],
                self.audio_format,
            )

    async def run(self) -> int:
        """Send every message at its time (one per ``frame_ms``); returns how many."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.first_sent = start
        period = self.period
        for index, message in enumerate(self.messages()):
            delay = start + index * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send(self.stream_id, message)
            self.messages_sent += 1
        return self.messages_sent
