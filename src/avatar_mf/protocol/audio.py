"""Raw audio messages on the ``avatar-mf-audio`` data channel (sans-IO; docs/protocol.md
section 7).

A UE that sends no RTP (a browser page on the data channel application, a UE whose IMS stack
keeps the microphone to itself) can still drive the MF's voice-driven animation (TR 26.813
D.3.1, network-centric animation data from the UE's voice): it sends its microphone as binary
messages on a data channel of subprotocol ``avatar-mf-audio`` (this product's name, like
``avatar-mf-transfer``; 3GPP has none), negotiated with ``a=dcmap`` (RFC 8864) like the
others. Live audio is better late-dropped than late: the channel should be unordered and
partially reliable (``ordered=0;max-retr=0``, or a small ``max-time``, RFC 8864 5.1.1); the
MF takes any.

Each message is one packet of 16 kHz mono 16-bit PCM behind an 8-byte header, all header
fields big-endian (network order)::

      0         1        2          4            8
      | version | format | sequence | timestamp  | samples (10 to 60 ms)
        1         1 or 2   uint16     uint32: the first sample's time at 16 kHz

* ``version`` 1.
* ``format`` 1: little-endian samples (``s16le``: what the MF decodes to, what a browser's
  ``Int16Array`` holds on every common CPU); 2: big-endian samples, RFC 3551 4.5.11 ``L16``
  network byte order. Either way the samples are 16 kHz, mono, signed 16-bit.
* ``sequence`` +1 per message, wrapping at 2^16; ``timestamp`` + the samples of the previous
  message, wrapping at 2^32 (both start anywhere), exactly as an RTP packet's (RFC 3550 5.1),
  so the voice stage places the packets on the sender's timeline as it does RTP: a gap
  (lost or held messages) is filled with silence, a late or repeated one is dropped.
* 160 to 960 samples (10 to 60 ms), whole samples; 20 ms (640 bytes, 648 with the header) is
  the usual. A message must fit the MF's ``a=max-message-size``: 1024 bytes allows up to
  30 ms.

:func:`parse_audio` and :func:`encode_audio` are the codec; :class:`AudioReceiver` is one
channel's receiving side: it refuses what cannot be used (each refusal an :class:`AudioError`
with the reason, counted), notices a timestamp far off the sender's clock, and re-anchors
when a sender restarts its clock (two consecutive messages agree on the new position, as
RFC 3550 A.1 does for sequence numbers), so what it passes on stays on one timeline.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from avatar_mf.protocol.names import ErrorCode

__all__ = [
    "AUDIO_HEADER_SIZE",
    "AUDIO_SAMPLE_RATE",
    "AUDIO_VERSION",
    "MAX_AUDIO_SAMPLES",
    "MIN_AUDIO_SAMPLES",
    "REFUSALS",
    "AudioError",
    "AudioFormat",
    "AudioMessage",
    "AudioReceiver",
    "ReceivedAudio",
    "encode_audio",
    "parse_audio",
]

#: Bytes of the header: version, format, sequence, timestamp.
AUDIO_HEADER_SIZE: Final = 8
AUDIO_VERSION: Final = 1
#: The samples' rate, and the timestamp's clock.
AUDIO_SAMPLE_RATE: Final = 16000
#: 10 ms and 60 ms of samples: the shortest and the longest message.
MIN_AUDIO_SAMPLES: Final = AUDIO_SAMPLE_RATE // 100
MAX_AUDIO_SAMPLES: Final = 6 * AUDIO_SAMPLE_RATE // 100
#: A timestamp further than this (seconds) from where the sender's clock should be now is
#: far off.
MAX_SKEW: Final = 2.0

_HEADER: Final = struct.Struct("!BBHI")
_U16: Final = 1 << 16
#: Sequence numbers remembered to tell a duplicate from a late message (2.5 s of 20 ms).
_RECENT: Final = 128
_U32: Final = 1 << 32


class AudioFormat(IntEnum):
    """The ``format`` byte: the samples' byte order (16 kHz mono signed 16-bit either way)."""

    S16LE = 1  # little-endian
    L16 = 2  # big-endian, RFC 3551 4.5.11


# Why a message was refused (the ``reason`` of :class:`AudioError`, and the counters' key).
TEXT: Final = "text"
SHORT: Final = "short"
VERSION: Final = "version"
FORMAT: Final = "format"
ODD_LENGTH: Final = "odd-length"
TOO_SHORT: Final = "too-short"
TOO_LONG: Final = "too-long"
FAR_TIMESTAMP: Final = "far-timestamp"
#: Every refusal reason.
REFUSALS: Final = (TEXT, SHORT, VERSION, FORMAT, ODD_LENGTH, TOO_SHORT, TOO_LONG, FAR_TIMESTAMP)


class AudioError(ValueError):
    """A message the MF cannot use: ``code`` (``bad-audio``) for the ``error`` reply, ``reason``
    one of the refusal reasons, ``message`` for humans."""

    code: str
    reason: str
    message: str

    def __init__(self, reason: str, message: str, code: str = ErrorCode.BAD_AUDIO) -> None:
        self.code = str(code)
        self.reason = str(reason)
        self.message = message
        super().__init__(f"{self.code}: {reason}: {message}")


@dataclass(frozen=True, slots=True)
class AudioMessage:
    """One audio message. ``pcm`` is always little-endian (s16le), whatever ``format`` the
    message had on the wire."""

    sequence: int
    timestamp: int
    pcm: bytes = field(repr=False)
    format: AudioFormat = AudioFormat.S16LE

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2


def _swap16(data: bytes | bytearray | memoryview) -> bytes:
    out = bytearray(len(data))
    out[0::2] = data[1::2]
    out[1::2] = data[0::2]
    return bytes(out)


def encode_audio(
    sequence: int,
    timestamp: int,
    pcm: bytes,
    audio_format: AudioFormat = AudioFormat.S16LE,
) -> bytes:
    """One message for little-endian ``pcm`` (swapped to big-endian for ``L16``). Raises
    ValueError for what :func:`parse_audio` would refuse."""
    if len(pcm) % 2:
        raise ValueError(f"{len(pcm)} bytes of PCM: not whole 16-bit samples")
    if not MIN_AUDIO_SAMPLES <= len(pcm) // 2 <= MAX_AUDIO_SAMPLES:
        raise ValueError(f"{len(pcm) // 2} samples: a message carries 160 to 960 (10-60 ms)")
    payload = _swap16(pcm) if audio_format == AudioFormat.L16 else pcm
    header = _HEADER.pack(AUDIO_VERSION, audio_format, sequence % _U16, timestamp % _U32)
    return header + payload


def parse_audio(data: bytes | bytearray | memoryview) -> AudioMessage:
    """Parse one message; :class:`AudioError` for a message that is not a valid one."""
    if len(data) < AUDIO_HEADER_SIZE:
        raise AudioError(SHORT, f"{len(data)} bytes: an audio message has an 8-byte header")
    version, fmt, sequence, timestamp = _HEADER.unpack_from(data, 0)
    if version != AUDIO_VERSION:
        raise AudioError(VERSION, f"version {version}, expected {AUDIO_VERSION}")
    if fmt not in (AudioFormat.S16LE, AudioFormat.L16):
        raise AudioError(FORMAT, f"format {fmt}: 1 (s16le) or 2 (L16, big-endian)")
    payload = memoryview(data)[AUDIO_HEADER_SIZE:]
    if len(payload) % 2:
        raise AudioError(ODD_LENGTH, f"{len(payload)} bytes of samples: not whole 16-bit samples")
    samples = len(payload) // 2
    if samples < MIN_AUDIO_SAMPLES:
        raise AudioError(TOO_SHORT, f"{samples} samples: at least 160 (10 ms at 16 kHz)")
    if samples > MAX_AUDIO_SAMPLES:
        raise AudioError(TOO_LONG, f"{samples} samples: at most 960 (60 ms at 16 kHz)")
    audio_format = AudioFormat(fmt)
    pcm = _swap16(payload) if audio_format == AudioFormat.L16 else bytes(payload)
    return AudioMessage(sequence, timestamp, pcm, audio_format)


@dataclass(frozen=True, slots=True)
class ReceivedAudio:
    """An accepted message: its samples (s16le) and its timestamp on the receiver's
    timeline (the sender's own, moved on only when the sender restarted its clock)."""

    pcm: bytes = field(repr=False)
    timestamp: int
    sequence: int


def _signed(value: int, modulus: int) -> int:
    value %= modulus
    return value - modulus if value >= modulus // 2 else value


@dataclass(slots=True)
class _Anchor:
    """Where the sender's clock was at an arrival: (its timestamp, the receiver's time)."""

    timestamp: int
    sequence: int
    at: float


class AudioReceiver:
    """The receiving side of one audio channel (sans-IO; times are given by the caller).

    :meth:`receive` returns a :class:`ReceivedAudio` or raises :class:`AudioError`. Besides
    the codec's refusals, a message whose timestamp is more than ``max_skew`` seconds away
    from where the sender's clock should be (the last accepted message's timestamp plus the
    time since it arrived) is refused ``far-timestamp``; if the next message follows it
    (sequence + 1, timestamp where that one's clock says), the sender restarted its clock:
    the receiver re-anchors on it, and shifts what it passes on so the timeline goes on from
    where it was (the refused message is lost). Counters: :attr:`accepted`,
    :attr:`refused` (by reason), :attr:`lost` (sequence numbers skipped and not arrived
    since), :attr:`late` and :attr:`duplicates` (behind the newest: passed on, the voice
    stage drops them), :attr:`restarts`.
    """

    def __init__(self, *, max_skew: float = MAX_SKEW, rate: int = AUDIO_SAMPLE_RATE) -> None:
        self.max_skew = max_skew
        self.rate = rate
        self._anchor: _Anchor | None = None
        self._candidate: _Anchor | None = None
        #: Added to the sender's timestamps (mod 2^32) after a restart.
        self._offset = 0
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.restarts = 0
        #: The sequence numbers of the last _RECENT messages placed (oldest first).
        self._recent: dict[int, None] = {}

    def refuse_text(self) -> AudioError:
        """A text message on the audio channel: counted, and the error to answer with."""
        self.refused[TEXT] += 1
        return AudioError(TEXT, "audio channels carry binary audio messages, not text")

    def receive(self, data: bytes | bytearray | memoryview, now: float) -> ReceivedAudio:
        try:
            message = parse_audio(data)
            self._place(message, now)
        except AudioError as exc:
            self.refused[exc.reason] += 1
            raise
        self.accepted += 1
        timestamp = (message.timestamp + self._offset) % _U32
        return ReceivedAudio(message.pcm, timestamp, message.sequence)

    def _place(self, message: AudioMessage, now: float) -> None:
        anchor = self._anchor
        if anchor is None:
            self._anchor = _Anchor(message.timestamp, message.sequence, now)
            self._seen(message.sequence)
            return
        if self._near(anchor, message, now):
            self._candidate = None
            step = _signed(message.sequence - anchor.sequence, _U16)
            if step > 0:
                self.lost += step - 1
                self._anchor = _Anchor(message.timestamp, message.sequence, now)
            elif message.sequence in self._recent:
                self.duplicates += 1
            else:
                self.lost -= 1  # counted lost when the gap was seen: it came late
                self.late += 1
            self._seen(message.sequence)
            return
        candidate = self._candidate
        if (
            candidate is not None
            and (message.sequence - candidate.sequence) % _U16 == 1
            and self._near(candidate, message, now)
        ):
            # The sender restarted its clock: go on from where the old timeline is now.
            self.restarts += 1
            expected = anchor.timestamp + round((now - anchor.at) * self.rate) + self._offset
            self._offset = (expected - message.timestamp) % _U32
            self._anchor = _Anchor(message.timestamp, message.sequence, now)
            self._candidate = None
            self._recent.clear()
            self._seen(message.sequence)
            return
        self._candidate = _Anchor(message.timestamp, message.sequence, now)
        expected = anchor.timestamp + round((now - anchor.at) * self.rate)
        off = _signed(message.timestamp - expected, _U32) / self.rate
        raise AudioError(
            FAR_TIMESTAMP,
            f"timestamp {message.timestamp} is {off:+.1f} s from the sender's clock "
            f"(at most {self.max_skew:g} s)",
        )

    def _seen(self, sequence: int) -> None:
        if len(self._recent) >= _RECENT:
            self._recent.pop(next(iter(self._recent)))
        self._recent[sequence] = None

    def _near(self, anchor: _Anchor, message: AudioMessage, now: float) -> bool:
        expected = anchor.timestamp + round((now - anchor.at) * self.rate)
        return abs(_signed(message.timestamp - expected, _U32)) <= self.max_skew * self.rate
