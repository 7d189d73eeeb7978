"""Codecs for the media plane: G.711, AMR-WB, AMR-NB, Opus; H.264 and VP8 video
(:mod:`avatar_mf.codecs.video`). Sans-IO, no sockets.

The contract and the MF's internal PCM format are in :mod:`avatar_mf.codecs.base`; the
registry (:mod:`avatar_mf.codecs.registry`) says which codecs this host serves. A low floor of
the tree: it imports nothing of the product above it.
"""

from avatar_mf.codecs.base import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    PCM_RATE,
    AudioCodec,
    AudioCodecSpec,
    AudioDecoder,
    AudioEncoder,
    CodecError,
    Fmtp,
    format_fmtp,
    parse_fmtp,
)
from avatar_mf.codecs.registry import audio_codec, supported_audio

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "PCM_RATE",
    "AudioCodec",
    "AudioCodecSpec",
    "AudioDecoder",
    "AudioEncoder",
    "CodecError",
    "Fmtp",
    "audio_codec",
    "format_fmtp",
    "parse_fmtp",
    "supported_audio",
]
