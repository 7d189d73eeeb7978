"""Which audio codecs the MF serves, in its order of preference, and how to get one.

:func:`supported_audio` lists what the MF can offer or accept (SDP ``a=rtpmap`` names and
clocks), best first: AMR-WB, AMR (-NB), PCMU, PCMA, Opus. telephone-event (RFC 4733) is not a
codec: :mod:`avatar_mf.rtp.telephone_event` handles it. :func:`audio_codec` turns one offered
format (rtpmap name, clock rate, fmtp) into an :class:`~avatar_mf.codecs.base.AudioCodec`, or
``None`` when the MF cannot serve it: unknown names (EVS: no implementation is available),
parameters it cannot meet, or a codec whose library is missing on this host (logged once, at
the first look-up, with the reason).

:class:`CodecRegistry` holds the per-host availability (which optional libraries loaded); the
module functions use one default registry built on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cache
from typing import Generic, Literal, TypeVar

import av

from avatar_mf.codecs.amr import AmrCodec
from avatar_mf.codecs.base import AudioCodec, AudioCodecSpec, Fmtp
from avatar_mf.codecs.g711 import G711Codec
from avatar_mf.codecs.opus import OpusCodec
from avatar_mf.codecs.vo_amrwbenc import VoAmrWbEnc, load_vo_amrwbenc

log = logging.getLogger(__name__)

#: A factory for one codec name: (clock_rate, fmtp) -> codec or None.
Factory = Callable[[int, Fmtp], AudioCodec | None]

SpecT = TypeVar("SpecT")
CodecT = TypeVar("CodecT")


def _g711(name: str) -> Factory:
    def make(clock_rate: int, fmtp: Fmtp) -> AudioCodec | None:
        return G711Codec(name) if clock_rate == 8000 else None

    return make


class Registry(Generic[SpecT, CodecT]):
    """The codecs of one kind (audio, video) available on this host, in preference order.

    ``factories`` maps an upper-cased rtpmap name to ``(spec offered by default, factory)``;
    ``unavailable`` maps names whose library is missing to the reason (logged once).
    """

    #: What the warning for a missing library calls these codecs.
    kind = "audio"

    def __init__(
        self,
        factories: Mapping[str, tuple[SpecT, Callable[[int, Fmtp], CodecT | None]]],
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self._factories = dict(factories)
        self._unavailable = dict(unavailable or {})
        self._logged: set[str] = set()

    def supported(self) -> tuple[SpecT, ...]:
        return tuple(spec for spec, _ in self._factories.values())

    def unavailable(self) -> dict[str, str]:
        """Codec names this host cannot serve, with the reason."""
        return dict(self._unavailable)

    def codec(self, name: str, clock_rate: int, fmtp: Mapping[str, str]) -> CodecT | None:
        key = name.upper()
        entry = self._factories.get(key)
        if entry is None:
            reason = self._unavailable.get(key)
            if reason is not None and key not in self._logged:
                self._logged.add(key)
                log.warning("%s codec %s not offered: %s", self.kind, name, reason)
            return None
        return entry[1](clock_rate, Fmtp(fmtp))


class CodecRegistry(Registry[AudioCodecSpec, AudioCodec]):
    """The audio codecs available on this host, in preference order."""


def _amr(wideband: bool, library: VoAmrWbEnc | None) -> Factory:
    def make(clock_rate: int, fmtp: Fmtp) -> AudioCodec | None:
        return AmrCodec.from_offer(
            wideband=wideband, clock_rate=clock_rate, fmtp=fmtp, encoder_library=library
        )

    return make


def pyav_codecs_missing(*names: tuple[str, Literal["r", "w"]]) -> str | None:
    """Why PyAV cannot serve these (codec name, "r"|"w") pairs, or ``None`` when it can."""
    for name, mode in names:
        try:
            av.CodecContext.create(name, mode)
        except (av.FFmpegError, ValueError) as exc:
            return f"PyAV/FFmpeg has no {name} {'decoder' if mode == 'r' else 'encoder'} ({exc})"
    return None


def build_registry(
    amrwb_library: VoAmrWbEnc | str | None = None,
) -> CodecRegistry:
    """The registry for this host: every codec whose implementation loads.

    ``amrwb_library`` is the AMR-WB encoder library, or the reason it is missing (loaded from
    the system when ``None``).
    """
    factories: dict[str, tuple[AudioCodecSpec, Factory]] = {}
    unavailable: dict[str, str] = {"EVS": "no EVS implementation is available to the MF"}
    library = load_vo_amrwbenc() if amrwb_library is None else amrwb_library
    missing = pyav_codecs_missing(("amrwb", "r"))
    if isinstance(library, str) or missing:
        unavailable["AMR-WB"] = missing or str(library)
    else:
        factories["AMR-WB"] = (AudioCodecSpec("AMR-WB", 16000), _amr(True, library))
    missing = pyav_codecs_missing(("amrnb", "r"), ("libopencore_amrnb", "w"))
    if missing:
        unavailable["AMR"] = missing
    else:
        factories["AMR"] = (AudioCodecSpec("AMR", 8000), _amr(False, None))
    for name in ("PCMU", "PCMA"):
        factories[name] = (AudioCodecSpec(name, 8000), _g711(name))
    missing = pyav_codecs_missing(("libopus", "r"), ("libopus", "w"))
    if missing:
        unavailable["OPUS"] = missing
    else:
        factories["OPUS"] = (AudioCodecSpec("opus", 48000, 2), OpusCodec.from_offer)
    return CodecRegistry(factories, unavailable)


@cache
def default_registry() -> CodecRegistry:
    """The process's registry, built on first use (probing libraries happens once)."""
    return build_registry()


def supported_audio() -> tuple[AudioCodecSpec, ...]:
    """The audio formats the MF serves, in its preference order."""
    return default_registry().supported()


def audio_codec(name: str, clock_rate: int, fmtp: Mapping[str, str]) -> AudioCodec | None:
    """The codec for one offered format, or ``None`` when the MF cannot serve it."""
    return default_registry().codec(name, clock_rate, fmtp)
