"""Shared fixtures: the real recorded speech corpus (tools/voice_corpus.py built it).

``corpus``: the five LibriVox utterances (one reader, 24.7 s; the long ones the stage tests
stream); ``speech``: every utterance of the folder (15, five groups of source and speaker),
for the held-out accuracy split by group.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_mf.stages.voice.corpus import Utterance, load_corpus

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def speech() -> list[Utterance]:
    utterances = load_corpus(DATA)
    assert len(utterances) == 16
    return utterances


@pytest.fixture(scope="session")
def corpus(speech: list[Utterance]) -> list[Utterance]:
    librivox = [u for u in speech if u.name.startswith("sense_and_sensibility")]
    assert len(librivox) == 5
    return librivox
