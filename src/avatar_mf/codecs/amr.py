"""AMR-WB and AMR (-NB) codecs for RTP (RFC 4867) with SDP offer/answer rules (section 8).

* AMR-WB: decoded by FFmpeg's native decoder through PyAV, encoded by libvo-amrwbenc
  (:mod:`avatar_mf.codecs.vo_amrwbenc`); 16 kHz, no resampling.
* AMR: FFmpeg's decoder and the opencore encoder (``libopencore_amrnb``) through PyAV; 8 kHz,
  resampled to and from the MF's 16 kHz.

Payloads: :mod:`avatar_mf.codecs.amr_payload` (octet-aligned or bandwidth-efficient as
negotiated). The MF sends one frame per packet (20 ms), CMR 15 (it requests no mode), and
encodes in the highest mode of the negotiated mode-set (all modes when none): 23.85 kbit/s for
AMR-WB, 12.2 kbit/s for AMR. A CMR received from the peer (:meth:`AmrEncoder.request_mode`)
lowers or raises the sending mode within the mode-set, one neighbouring mode per step when
``mode-change-neighbor=1`` and only every other frame when ``mode-change-period=2``.

Decoding: every frame of a payload gives 20 ms of PCM. SID frames (comfort noise: FFmpeg does
not implement AMR DTX) and NO_DATA give silence; SPEECH_LOST and frames with Q=0 give
:meth:`AmrDecoder.conceal` (silence: FFmpeg has no AMR loss concealment either).

Offer/answer (RFC 4867 section 8.3.1), :meth:`AmrCodec.answer_fmtp`:

* ``octet-align`` must be the same in the answer: the MF answers with the offer's value;
* ``mode-set``: when offered, the answer repeats it and the MF sends only those modes; when
  absent, the MF sends any mode and answers without one;
* ``mode-change-period``, ``mode-change-neighbor``: honoured for the MF's sending side (above);
  the answer says ``mode-change-capability=2`` (the MF can restrict changes to every other
  frame);
* ``crc``, ``robust-sorting``, ``interleaving``, more than one channel: not supported -- the
  registry does not serve such a format (it is left out of the answer);
* ``max-red``: the MF sends no redundancy (nothing to answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from avatar_mf.codecs.amr_payload import (
    AMR_NB_RATES,
    NO_DATA,
    NO_REQUEST,
    SPEECH_LOST,
    AmrFrame,
    AmrPayload,
    build_amr,
    parse_amr,
    parse_storage_frame,
    speech_modes,
    storage_frame,
)
from avatar_mf.codecs.base import (
    FRAME_BYTES,
    SILENCE,
    AudioCodecSpec,
    CodecError,
    Fmtp,
    check_frame,
)
from avatar_mf.codecs.resample import Downsampler, Upsampler
from avatar_mf.codecs.vo_amrwbenc import VoAmrWbEnc

_UNSUPPORTED = ("crc", "robust-sorting", "interleaving")
#: FFmpeg's decoders, by "wideband".
_DECODERS = {True: "amrwb", False: "amrnb"}


def parse_mode_set(value: str, wideband: bool) -> tuple[int, ...] | None:
    """The modes of a ``mode-set`` value, sorted; ``None`` if a value is not a speech mode."""
    try:
        modes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        return None
    if not modes or any(not 0 <= m < speech_modes(wideband) for m in modes):
        return None
    return tuple(modes)


def _flag(fmtp: Fmtp, name: str) -> str | None:
    """``"0"`` or ``"1"`` for a boolean parameter (absent = ``"0"``), ``None`` if invalid."""
    value = fmtp.get(name, "0")
    return value if value in ("0", "1") else None


class AmrCodec:
    """One negotiated AMR or AMR-WB format (built by :meth:`from_offer`)."""

    def __init__(
        self,
        *,
        wideband: bool,
        fmtp: Fmtp,
        octet_aligned: bool,
        modes: tuple[int, ...],
        encoder_library: VoAmrWbEnc | None,
    ) -> None:
        self.wideband = wideband
        self.octet_aligned = octet_aligned
        self.modes = modes
        self._fmtp = fmtp
        self._library = encoder_library
        name, rate = ("AMR-WB", 16000) if wideband else ("AMR", 8000)
        self._spec = AudioCodecSpec(name, rate, 1, fmtp)

    @classmethod
    def from_offer(
        cls,
        *,
        wideband: bool,
        clock_rate: int,
        fmtp: Fmtp,
        encoder_library: VoAmrWbEnc | None = None,
        channels: int = 1,
    ) -> AmrCodec | None:
        """The codec for an offered format, or ``None`` when the MF cannot serve it."""
        if clock_rate != (16000 if wideband else 8000) or channels != 1:
            return None
        if wideband and encoder_library is None:
            return None
        octet = _flag(fmtp, "octet-align")
        if octet is None:
            return None
        for name in _UNSUPPORTED:
            if name in fmtp and fmtp[name] not in ("", "0"):
                return None
        if "mode-set" in fmtp:
            modes = parse_mode_set(fmtp["mode-set"], wideband)
            if modes is None:
                return None
        else:
            modes = tuple(range(speech_modes(wideband)))
        if fmtp.get("mode-change-period", "1") not in ("1", "2"):
            return None
        if _flag(fmtp, "mode-change-neighbor") is None:
            return None
        return cls(
            wideband=wideband,
            fmtp=fmtp,
            octet_aligned=octet == "1",
            modes=modes,
            encoder_library=encoder_library,
        )

    @property
    def spec(self) -> AudioCodecSpec:
        return self._spec

    def answer_fmtp(self, offered: Mapping[str, str]) -> dict[str, str]:
        offer = Fmtp(offered)
        answer: dict[str, str] = {}
        if offer.get("octet-align", "0") == "1":
            answer["octet-align"] = "1"
        if "mode-set" in offer:
            answer["mode-set"] = ",".join(str(m) for m in self.modes)
        answer["mode-change-capability"] = "2"
        return answer

    def encoder(self) -> AmrEncoder:
        return AmrEncoder(self)

    def decoder(self) -> AmrDecoder:
        return AmrDecoder(self)

    def _frame_encoder(self) -> _WbFrameEncoder | _NbFrameEncoder:
        if self.wideband:
            assert self._library is not None  # from_offer refuses AMR-WB without it
            return _WbFrameEncoder(self._library)
        return _NbFrameEncoder()

    @property
    def change_period(self) -> int:
        return int(self._fmtp.get("mode-change-period", "1"))

    @property
    def change_neighbor(self) -> bool:
        return self._fmtp.get("mode-change-neighbor", "0") == "1"


class _WbFrameEncoder:
    def __init__(self, library: VoAmrWbEnc) -> None:
        self._state = library.open()

    def encode(self, pcm20ms: bytes, mode: int) -> bytes:
        return self._state.encode(pcm20ms, mode)


class _NbFrameEncoder:
    """opencore AMR-NB through PyAV: 8 kHz s16 frames of 160 samples, mode set by bit rate."""

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("libopencore_amrnb", "w")
        self._ctx.sample_rate = 8000
        self._ctx.layout = "mono"
        self._ctx.format = "s16"
        self._ctx.bit_rate = AMR_NB_RATES[-1]
        self._ctx.open()
        self._down = Downsampler(2)
        self._pts = 0

    def encode(self, pcm20ms: bytes, mode: int) -> bytes:
        self._ctx.bit_rate = AMR_NB_RATES[mode]
        frame = av.AudioFrame(format="s16", layout="mono", samples=160)
        frame.sample_rate = 8000
        frame.pts = self._pts
        self._pts += 160
        frame.planes[0].update(self._down.process(pcm20ms))
        packets = [bytes(p) for p in self._ctx.encode(frame)]
        if len(packets) != 1:
            raise CodecError("encoder", f"opencore gave {len(packets)} frames for one")
        return packets[0]


class AmrEncoder:
    """16 kHz PCM frames -> one-frame RFC 4867 payloads in the negotiated layout."""

    def __init__(self, codec: AmrCodec) -> None:
        self._codec = codec
        self._frames = codec._frame_encoder()
        self.mode = codec.modes[-1]
        self._target = self.mode
        self._count = 0

    def request_mode(self, cmr: int) -> None:
        """Apply a CMR from the peer: send the highest allowed mode not above it (15 = none)."""
        if cmr == NO_REQUEST or not 0 <= cmr < speech_modes(self._codec.wideband):
            return
        allowed = [m for m in self._codec.modes if m <= cmr]
        self._target = allowed[-1] if allowed else self._codec.modes[0]

    def _step_mode(self) -> None:
        if self._target == self.mode or self._count % self._codec.change_period:
            return
        if not self._codec.change_neighbor:
            self.mode = self._target
            return
        modes = self._codec.modes
        i = modes.index(self.mode)
        self.mode = modes[i + 1] if self._target > self.mode else modes[i - 1]

    def encode(self, pcm20ms: bytes) -> bytes:
        check_frame(pcm20ms)
        self._step_mode()
        self._count += 1
        stored = self._frames.encode(pcm20ms, self.mode)
        frame = parse_storage_frame(stored, wideband=self._codec.wideband)
        return build_amr(
            AmrPayload(NO_REQUEST, (frame,)),
            wideband=self._codec.wideband,
            octet_aligned=self._codec.octet_aligned,
        )


class AmrDecoder:
    """RFC 4867 payloads -> 16 kHz PCM, 20 ms per frame in the payload."""

    def __init__(self, codec: AmrCodec) -> None:
        self._codec = codec
        wb = codec.wideband
        self._ctx = cast(AudioCodecContext, av.CodecContext.create(_DECODERS[wb], "r"))
        self._ctx.sample_rate = 16000 if wb else 8000
        self._ctx.layout = "mono"
        self._up = None if wb else Upsampler(2)
        self._speech_types = speech_modes(wb)
        #: The last CMR the peer sent (15 = no request); feed it to the encoder.
        self.last_cmr = NO_REQUEST

    def decode(self, payload: bytes) -> bytes:
        parsed = parse_amr(
            payload, wideband=self._codec.wideband, octet_aligned=self._codec.octet_aligned
        )
        self.last_cmr = parsed.cmr
        return b"".join(self._decode_frame(f) for f in parsed.frames)

    def _decode_frame(self, frame: AmrFrame) -> bytes:
        if frame.ft == NO_DATA or frame.ft >= self._speech_types:  # SID, NO_DATA
            return self._silence()
        if frame.ft == SPEECH_LOST or not frame.q:
            return self.conceal()
        try:
            decoded = list(self._ctx.decode(av.Packet(storage_frame(frame))))
        except (av.FFmpegError, ValueError) as exc:
            raise CodecError("decoder", str(exc)) from exc
        if len(decoded) != 1:
            raise CodecError("decoder", f"{len(decoded)} frames decoded from one")
        samples = decoded[0].to_ndarray().reshape(-1)
        pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
        if self._up is not None:
            pcm = self._up.process(pcm)
        if len(pcm) != FRAME_BYTES:
            raise CodecError("decoder", f"{len(pcm)} bytes decoded, expected {FRAME_BYTES}")
        return bytes(pcm)

    def _silence(self) -> bytes:
        if self._up is not None:
            return self._up.process(bytes(FRAME_BYTES // 2))
        return SILENCE

    def conceal(self) -> bytes:
        return self._silence()
