"""The acoustic scorer: the ONNX graph scores each codebook by its best Gaussian, the shipped
file is the pinned one, and on real speech its best phone agrees with the aligned phone far
more often than chance (which only a correct front end and correctly read codebooks give)."""

from __future__ import annotations

import hashlib
import math
from importlib import resources

import numpy as np
import pytest

from avatar_mf.stages.voice.acoustic_export import SCORE_FLOOR, SCORE_SCALE, to_onnx
from avatar_mf.stages.voice.acoustic_model import (
    ACOUSTIC_RESOURCE,
    ACOUSTIC_SHA256,
    AcousticScorer,
    shipped_scorer,
)
from avatar_mf.stages.voice.corpus import PACKET, Utterance, hop_centres
from avatar_mf.stages.voice.onnx_model import ModelMismatch
from avatar_mf.stages.voice.sphinx_mfcc import SphinxFeatures


def _mixture_scores(x: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Direct: per codebook, the sum over streams of the best Gaussian's log N(x; mu, var)
    (every Gaussian weighted 1 / densities)."""
    codebooks, streams, densities, dims = means.shape
    out = np.zeros((x.shape[0], codebooks))
    for c in range(codebooks):
        for s in range(streams):
            xs = x[:, None, s * dims : (s + 1) * dims]
            mu, var = means[c, s][None], variances[c, s][None]
            log_n = -0.5 * np.sum((xs - mu) ** 2 / var + np.log(2 * math.pi * var), axis=2)
            out[:, c] += log_n.max(axis=1) - math.log(densities)
    return out


def test_the_graph_computes_best_gaussian_log_likelihoods() -> None:
    rng = np.random.default_rng(8)
    means = rng.normal(0.0, 2.0, (5, 3, 6, 13)).astype(np.float32)
    variances = rng.uniform(0.3, 3.0, (5, 3, 6, 13)).astype(np.float32)
    phones = ("SIL", "AA", "B", "CH", "D")
    data = to_onnx(means, variances, phones)
    assert to_onnx(means, variances, phones) == data  # deterministic bytes
    scorer = AcousticScorer(data)
    assert scorer.phones == phones and scorer.size == 5
    x = rng.normal(0.0, 2.0, (40, 39))
    direct = _mixture_scores(x, means.astype(np.float64), variances.astype(np.float64))
    expected = np.maximum(direct - direct.max(axis=1, keepdims=True), SCORE_FLOOR) / SCORE_SCALE
    assert np.allclose(scorer.scores(x), expected, atol=1e-4)
    assert scorer.scores(np.zeros((0, 39))).shape == (0, 5)


def test_the_shipped_scorer_is_the_pinned_file() -> None:
    data = resources.files("avatar_mf.stages.voice").joinpath(ACOUSTIC_RESOURCE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ACOUSTIC_SHA256
    scorer = shipped_scorer()
    assert scorer.size == 42 and scorer.input_size == 39
    assert scorer.phones[:3] == ("+NSN+", "+SPN+", "AA") and "SIL" in scorer.phones
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    with pytest.raises(ModelMismatch):
        AcousticScorer(bytes(changed), sha256=ACOUSTIC_SHA256)


def test_the_model_licence_ships_beside_it() -> None:
    """The BSD-style licences ask a binary redistribution to reproduce their notices."""
    text = (
        resources.files("avatar_mf.stages.voice").joinpath("acoustic_model.LICENSE").read_text()
    )
    assert "Carnegie Mellon University" in text and "Alpha Cephei Inc." in text
    assert "Redistributions in binary form must reproduce" in text


def test_the_best_codebook_is_the_aligned_phone_far_above_chance(
    speech: list[Utterance],
) -> None:
    """Every hop of the 16 recorded utterances: the best-scoring of the 42 phones is the
    aligned phone (silence and noise counted as SIL) on about a third of the hops; always
    answering the corpus's commonest phone (SIL) gets fewer than a quarter, chance 1/42."""
    scorer = shipped_scorer()
    index = {p: i for i, p in enumerate(scorer.phones)}
    right = total = 0
    truths = []
    for utterance in speech:
        front = SphinxFeatures()
        rows = np.concatenate(
            [
                front.push(utterance.pcm[s : s + PACKET])
                for s in range(0, utterance.pcm.size, PACKET)
            ]
        )
        best = scorer.scores(rows).argmax(axis=1)
        centres = hop_centres(rows.shape[0])
        truth = np.full(rows.shape[0], index["SIL"])
        for span in utterance.phones:
            phone = span.phone.upper().rstrip("012")
            truth[(centres >= span.start) & (centres < span.end)] = index.get(phone, index["SIL"])
        truths.append(truth)
        right += int((best == truth).sum())
        total += truth.size
    commonest = np.bincount(np.concatenate(truths)).max() / total
    assert commonest < 0.25
    assert right / total > max(0.28, commonest + 0.08), (right / total, commonest)
