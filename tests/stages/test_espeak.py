"""The libespeak-ng binding: phoneme events, duration, audio, input limits, errors, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from avatar_mf.stages.animation_data.espeak import (
    MAX_TEXT_CHARS,
    EspeakEngine,
    SpeechEngineUnavailable,
    clean_text,
)


def test_hello_world_phonemes_in_time_order(engine: EspeakEngine) -> None:
    speech = engine.synthesize("hello world", language="en-US")
    names = [p for _, p in speech.phonemes]
    starts = [ms for ms, _ in speech.phonemes]
    # espeak-ng's en-us reading: h @ l oU | w 3: l d, then the final pause.
    assert [p for p in names if not p.startswith("_")] == ["h", "@", "l", "oU", "w", "3:", "l", "d"]
    assert all(b > a for a, b in zip(starts, starts[1:], strict=False))
    assert 0 <= starts[0] < 50
    assert speech.sample_rate == 22050
    assert 0.5 < speech.duration < 1.5
    assert starts[-1] / 1000 <= speech.duration + 0.01
    assert [w[1:] for w in speech.words] == [(1, 5), (7, 5)]
    assert speech.audio is None


def test_audio_has_one_int16_per_sample(engine: EspeakEngine) -> None:
    speech = engine.synthesize("Testing audio.", language="en-us", audio=True)
    assert speech.audio is not None
    assert len(speech.audio) == 2 * speech.samples > 0
    assert any(speech.audio)


def test_same_request_same_timeline(engine: EspeakEngine) -> None:
    first = engine.synthesize("Repeat after me, please.", language="en-us")
    engine.synthesize("Something else in between.", language="de")
    assert engine.synthesize("Repeat after me, please.", language="en-us") == first


def test_rate_changes_duration(engine: EspeakEngine) -> None:
    slow = engine.synthesize("How fast can you talk?", language="en-us", words_per_minute=120)
    fast = engine.synthesize("How fast can you talk?", language="en-us", words_per_minute=300)
    assert fast.duration < 0.7 * slow.duration


def test_voice_name_and_language_fallback(engine: EspeakEngine) -> None:
    assert engine.synthesize("Guten Tag", language="de-AT").phonemes
    assert engine.synthesize("hello", language="xx", voice="en-us").voice == "en-us"
    with pytest.raises(ValueError, match="no voice for language"):
        engine.synthesize("hello", language="xx-YY")
    with pytest.raises(ValueError, match="no voice named"):
        engine.synthesize("hello", language="en", voice="no-such-voice")


def test_text_limits(engine: EspeakEngine) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_TEXT_CHARS}"):
        engine.synthesize("a " * MAX_TEXT_CHARS, language="en")
    empty = engine.synthesize(" \n\t\x00\x1b ", language="en")
    assert empty.phonemes == () and empty.samples == 0 and empty.duration == 0.0
    # Markup and phoneme escapes are plain text: espeak-ng reads them out, never obeys them.
    spoken = engine.synthesize("[[h@l'oU]] <break time='3s'/> ok", language="en-us")
    starts = [ms for ms, _ in spoken.phonemes]
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) < 1000  # no 3 s break
    assert len(spoken.words) >= 4  # the markup was read as words


def test_clean_text() -> None:
    assert clean_text("  a\x00b\u200bc\r\n\td\x7f  ") == "a b c d"
    assert clean_text("e\u0301") == "\u00e9"


def test_missing_library_names_the_debian_package() -> None:
    with pytest.raises(SpeechEngineUnavailable, match="libespeak-ng1"):
        EspeakEngine(library="libespeak-ng-not-here.so.9")


def test_threads_share_the_engine(engine: EspeakEngine) -> None:
    texts = [f"Thread number {i} is talking." for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda t: engine.synthesize(t, language="en-us"), texts))
    for text, speech in zip(texts, parallel, strict=True):
        assert speech == engine.synthesize(text, language="en-us")
        assert len(speech.words) == 5
