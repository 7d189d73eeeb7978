"""Fixtures for the stage tests: the process's espeak-ng engine (skipped when not installed)."""

from __future__ import annotations

import pytest

from avatar_mf.stages.animation_data.espeak import (
    EspeakEngine,
    SpeechEngineUnavailable,
    espeak_engine,
)
from avatar_mf.stages.animation_data.text_animation import TextToAnimation


@pytest.fixture(scope="session")
def engine() -> EspeakEngine:
    try:
        return espeak_engine()
    except SpeechEngineUnavailable as exc:  # the Makefile installs it; say what is missing
        pytest.skip(str(exc))


@pytest.fixture
def animator(engine: EspeakEngine) -> TextToAnimation:
    return TextToAnimation(engine=engine)
