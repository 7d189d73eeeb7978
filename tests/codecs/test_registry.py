"""The codec registry: preference order, look-up by SDP name and clock, missing codecs."""

from __future__ import annotations

import logging

import pytest

from avatar_mf.codecs import (
    AudioCodecSpec,
    Fmtp,
    audio_codec,
    format_fmtp,
    parse_fmtp,
    supported_audio,
)
from avatar_mf.codecs.registry import CodecRegistry, build_registry


def test_g711_found_case_insensitively_at_8000_only() -> None:
    codec = audio_codec("pcmu", 8000, {})
    assert codec is not None and codec.spec.name == "PCMU"
    assert codec.spec.samples_per_frame_rtp == 160
    assert audio_codec("PCMA", 16000, {}) is None
    assert codec.answer_fmtp({}) == {}


def test_unknown_and_evs_are_not_served() -> None:
    assert audio_codec("EVS", 16000, {}) is None
    assert audio_codec("X-NOPE", 8000, {}) is None
    assert "EVS" in build_registry().unavailable()


def test_missing_codec_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    registry = CodecRegistry({}, {"AMR-WB": "libvo-amrwbenc.so.0 not found"})
    with caplog.at_level(logging.WARNING):
        assert registry.codec("AMR-WB", 16000, {}) is None
        assert registry.codec("amr-wb", 16000, {}) is None
    assert [r.getMessage() for r in caplog.records] == [
        "audio codec AMR-WB not offered: libvo-amrwbenc.so.0 not found"
    ]


def test_supported_in_preference_order() -> None:
    names = [s.name for s in supported_audio()]
    assert names.index("PCMU") < names.index("PCMA")
    assert "EVS" not in names


def test_fmtp_parse_format_and_hash() -> None:
    fmtp = parse_fmtp(" mode-set=0,2,4 ; Octet-Align=1;robust-sorting ")
    assert dict(fmtp) == {"mode-set": "0,2,4", "octet-align": "1", "robust-sorting": ""}
    assert fmtp == Fmtp({"OCTET-ALIGN": "1", "mode-set": "0,2,4", "robust-sorting": ""})
    assert hash(fmtp) == hash(Fmtp(dict(fmtp)))
    assert (
        format_fmtp({"mode-set": "0,2", "octet-align": "1", "x": ""})
        == "mode-set=0,2;octet-align=1;x"
    )
    spec = AudioCodecSpec("opus", 48000, 2, fmtp)
    assert spec.samples_per_frame_rtp == 960
    assert {spec: 1}[spec] == 1
