"""Recorded speech with phone alignments, for training and scoring the voice stage.

A corpus folder holds ``<id>.wav`` (16 kHz mono s16) and ``<id>.phone.json`` (pocketsphinx
alignment JSON) pairs. :func:`load_corpus` reads them; :func:`hop_inputs` runs the streaming
front end (:class:`.sphinx_mfcc.SphinxFeatures`, then the acoustic scorer) over an
utterance in 20 ms packets exactly as the stage does and gives the per-hop inputs and
labels. Frames are scored at 30 fps: the frame at time ``t`` is decided at hop
:func:`hop_of` ``(t)`` (the hop whose window is centred nearest ``t``; the acoustic front
end's 410-sample window ends where the 400-sample one does, 0.3 ms earlier centre).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.acoustic_model import AcousticScorer, shipped_scorer
from avatar_mf.stages.voice.features import HOP, SAMPLE_RATE, WINDOW
from avatar_mf.stages.voice.labels import PhoneSpan, frame_labels, read_alignment
from avatar_mf.stages.voice.sphinx_mfcc import SphinxFeatures

#: Samples per 20 ms packet.
PACKET = 320


@dataclass(frozen=True, slots=True)
class Utterance:
    name: str
    pcm: NDArray[np.int16] = field(repr=False)
    phones: tuple[PhoneSpan, ...] = field(repr=False)

    @property
    def duration(self) -> float:
        return self.pcm.size / SAMPLE_RATE


def read_wav(path: Path) -> NDArray[np.int16]:
    """16 kHz mono s16 samples of a WAV file."""
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path.name}: not 16 kHz mono s16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def load_corpus(folder: Path) -> list[Utterance]:
    """Every ``*.wav`` with its ``*.phone.json`` in ``folder``, sorted by name."""
    out = []
    for wav in sorted(folder.glob("*.wav")):
        alignment = wav.with_suffix(".phone.json")
        if alignment.exists():
            out.append(Utterance(wav.stem, read_wav(wav), read_alignment(alignment)))
    return out


def hop_centres(count: int) -> NDArray[np.float64]:
    """Centre time of each hop's window, seconds."""
    ends = (np.arange(count) + 1) * HOP
    return (ends - WINDOW / 2) / SAMPLE_RATE


def hop_of(times: NDArray[np.float64]) -> NDArray[np.int64]:
    """The hop whose window centre is nearest each time."""
    index = np.round((times * SAMPLE_RATE + WINDOW / 2) / HOP - 1).astype(np.int64)
    return np.maximum(index, 0)


def hop_inputs(
    utterance: Utterance, scorer: AcousticScorer | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(hops, HOP_FEATURES) inputs and (hops,) viseme labels of an utterance (the last
    :data:`.sphinx_mfcc.DELTA_DELAY` hops, whose deltas the utterance does not complete, have
    no row). ``scorer``: the shipped acoustic scorer unless given."""
    scorer = scorer if scorer is not None else shipped_scorer()
    front = SphinxFeatures()
    rows = np.concatenate(
        [front.push(utterance.pcm[s : s + PACKET]) for s in range(0, utterance.pcm.size, PACKET)]
    )
    hops = scorer.scores(rows)
    return hops, frame_labels(utterance.phones, hop_centres(hops.shape[0]))


def frame_times(duration: float, rate: float = 30.0) -> NDArray[np.float64]:
    """Times of the frames at ``rate`` within ``duration`` seconds."""
    return np.arange(int(duration * rate)) / rate
