"""The audio codec contract every codec of the MF implements, and the PCM format inside the MF.

Inside the MF, audio is **16 kHz, mono, signed 16-bit little-endian PCM** in ``bytes``, cut in
**20 ms frames** (:data:`FRAME_SAMPLES` = 320 samples = :data:`FRAME_BYTES` = 640 bytes). A codec
converts between that and RTP payloads (resampling inside when its own rate differs):

* :class:`AudioEncoder` ``encode(pcm20ms) -> payload``: one RTP payload for one 20 ms frame.
* :class:`AudioDecoder` ``decode(payload) -> pcm``: PCM for every frame the payload carries (a
  whole number of 20 ms frames; AMR can pack several frames in one packet, RFC 4867 section
  4.3); ``conceal() -> pcm``: one 20 ms frame for a lost packet (the codec's packet loss
  concealment, or silence).
* :class:`AudioCodec`: the negotiated codec (``spec``), a factory of encoders and decoders (one
  of each per stream: they keep state), and ``answer_fmtp(offered)``, the ``a=fmtp`` parameters
  the MF puts in its SDP answer.

Errors: :class:`CodecError` for a payload that cannot be decoded or a PCM frame of the wrong
size. Codec objects are not thread-safe; one stream's encoder or decoder is used by one worker
at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

#: The MF's internal PCM sample rate (Hz), channel count and sample width (bytes).
PCM_RATE = 16000
PCM_CHANNELS = 1
PCM_SAMPLE_BYTES = 2
#: One frame: 20 ms.
FRAME_MS = 20
FRAME_SAMPLES = PCM_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * PCM_SAMPLE_BYTES
#: 20 ms of silence in the MF's PCM format.
SILENCE = bytes(FRAME_BYTES)


class CodecError(ValueError):
    """A payload that does not decode, a PCM frame of the wrong size, a codec that failed.

    ``reason`` is a short stable label for metrics; the error is not retryable (the frame is
    dropped and concealed).
    """

    retryable = False

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Fmtp(Mapping[str, str]):
    """An immutable, hashable ``a=fmtp`` parameter map (names lower-cased, RFC 4855 s3)."""

    __slots__ = ("_items",)

    def __init__(self, params: Mapping[str, str] | None = None) -> None:
        items = {k.strip().lower(): str(v).strip() for k, v in (params or {}).items()}
        self._items: tuple[tuple[str, str], ...] = tuple(sorted(items.items()))

    def __getitem__(self, key: str) -> str:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Fmtp({dict(self._items)!r})"


def parse_fmtp(text: str) -> Fmtp:
    """Parse the parameter part of ``a=fmtp:<pt> <params>`` (``k=v; k2=v2``, RFC 4855 s3).

    A parameter without ``=`` maps to ``""``. Parameter names are case-insensitive.
    """
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip()
    return Fmtp(params)


def format_fmtp(params: Mapping[str, str]) -> str:
    """The ``a=fmtp`` parameter text for ``params`` (``k=v;k2=v2``), in the mapping's order."""
    return ";".join(f"{k}={v}" if v != "" else k for k, v in params.items())


@dataclass(frozen=True, slots=True)
class AudioCodecSpec:
    """One audio format as SDP names it (RFC 8866 ``a=rtpmap`` / ``a=fmtp``).

    ``name`` is the encoding name as written in rtpmap (``"AMR-WB"``, ``"PCMU"``, ``"opus"``),
    ``clock_rate`` the RTP clock (Hz), ``channels`` the rtpmap channel count, ``fmtp`` the
    format parameters (empty when none).
    """

    name: str
    clock_rate: int
    channels: int = 1
    fmtp: Fmtp = field(default_factory=Fmtp)

    @property
    def samples_per_frame_rtp(self) -> int:
        """RTP timestamp increment per 20 ms frame (160 at 8 kHz, 320 at 16 kHz, 960 at 48)."""
        return self.clock_rate * FRAME_MS // 1000


class AudioEncoder(Protocol):
    def encode(self, pcm20ms: bytes) -> bytes:
        """One RTP payload for one 20 ms frame of 16 kHz mono s16le PCM (640 bytes)."""
        ...


class AudioDecoder(Protocol):
    def decode(self, payload: bytes) -> bytes:
        """16 kHz mono s16le PCM for every frame in ``payload``; :class:`CodecError` if bad."""
        ...

    def conceal(self) -> bytes:
        """20 ms of PCM standing in for a lost frame (the codec's PLC, or silence)."""
        ...


class AudioCodec(Protocol):
    @property
    def spec(self) -> AudioCodecSpec: ...

    def encoder(self) -> AudioEncoder:
        """A new encoder (one per outgoing stream: it keeps state)."""
        ...

    def decoder(self) -> AudioDecoder:
        """A new decoder (one per incoming stream: it keeps state)."""
        ...

    def answer_fmtp(self, offered: Mapping[str, str]) -> dict[str, str]:
        """The ``a=fmtp`` parameters the MF answers with for this offered format."""
        ...


def check_frame(pcm20ms: bytes) -> None:
    """Raise :class:`CodecError` unless ``pcm20ms`` is exactly one 20 ms PCM frame."""
    if len(pcm20ms) != FRAME_BYTES:
        raise CodecError("frame_size", f"{len(pcm20ms)} bytes, expected {FRAME_BYTES}")
