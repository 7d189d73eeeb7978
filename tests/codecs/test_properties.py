"""Every decoder, fed arbitrary bytes: a CodecError or whole 20 ms frames, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.codecs import CodecError, audio_codec
from avatar_mf.codecs.base import AudioDecoder

FORMATS = [
    ("PCMU", 8000, {}),
    ("PCMA", 8000, {}),
    ("AMR-WB", 16000, {}),
    ("AMR-WB", 16000, {"octet-align": "1"}),
    ("AMR", 8000, {}),
    ("AMR", 8000, {"octet-align": "1"}),
    ("opus", 48000, {}),
]


def decoders() -> list[tuple[str, AudioDecoder]]:
    out = []
    for name, rate, fmtp in FORMATS:
        codec = audio_codec(name, rate, fmtp)
        if codec is not None:  # AMR-WB needs libvo-amrwbenc0
            out.append((f"{name} {fmtp}", codec.decoder()))
    return out


@pytest.mark.parametrize(("label", "decoder"), decoders())
@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_decode_raises_only_codec_error(
    label: str, decoder: AudioDecoder, data: list[bytes]
) -> None:
    for payload in data:
        try:
            pcm = decoder.decode(payload)
        except CodecError:
            continue
        assert len(pcm) % 640 == 0
    assert len(decoder.conceal()) == 640
