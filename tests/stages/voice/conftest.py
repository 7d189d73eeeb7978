"""Shared fixtures: the real recorded speech corpus (LibriVox + pocketsphinx alignments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_mf.stages.voice.corpus import Utterance, load_corpus

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def corpus() -> list[Utterance]:
    utterances = load_corpus(DATA)
    assert len(utterances) == 5
    return utterances
