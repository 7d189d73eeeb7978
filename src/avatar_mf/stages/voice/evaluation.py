"""Scoring the voice stage on recorded speech: frame accuracy and look-ahead, streamed.

:func:`stream_utterance` feeds an utterance to a session's stage in 20 ms RTP-timed packets,
exactly as the media plane delivers them, and keeps what came out after each packet;
:func:`score` compares the stage's per-frame decisions (30 fps) with the phone alignment:
15-viseme and 5-group accuracy (issue 13's mapping, :mod:`.labels`). A frame the stage gated
as silence counts as ``sil``. :func:`held_out_by_group` is the honest figure: each group of
utterances (one source and speaker) scored by a model trained without it; :func:`training_set`
is what every model is trained on (each group weighted alike). Used by the tests
(with a floor), ``tools/train_voice_visemes.py`` and ``bench/voice_animation.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.pipeline.frames import AnimationUnitFrame, AudioIn, Frame
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.voice.acoustic_model import AcousticScorer, shipped_scorer
from avatar_mf.stages.voice.corpus import PACKET, Utterance, hop_inputs
from avatar_mf.stages.voice.labels import COARSE_OF_VISEME, frame_labels
from avatar_mf.stages.voice.model import (
    LOOKAHEAD,
    VisemeClassifier,
    VisemeModel,
    coarse_probabilities,
    fit,
    stack_context,
)
from avatar_mf.stages.voice.stage import VoiceStage, VoiceToAnimation


@dataclass
class StreamResult:
    """A streamed utterance: decisions, and the packet after which each frame came out."""

    decisions: list[tuple[float, NDArray[np.float64] | None]]
    #: (media time of the frame, index of the packet whose arrival released it).
    released: list[tuple[float, int]] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Score:
    frames: int
    right5: int
    right15: int

    @property
    def accuracy5(self) -> float:
        return self.right5 / self.frames if self.frames else 0.0

    @property
    def accuracy15(self) -> float:
        return self.right15 / self.frames if self.frames else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.frames + other.frames, self.right5 + other.right5, self.right15 + other.right15
        )


def packets(
    pcm: NDArray[np.int16], *, participant: str = "p1", rtp_start: int = 1000
) -> list[AudioIn]:
    """The utterance as 20 ms AudioIn frames with consecutive 16 kHz RTP timestamps."""
    out = []
    for k, start in enumerate(range(0, pcm.size - PACKET + 1, PACKET)):
        chunk = pcm[start : start + PACKET].astype("<i2").tobytes()
        out.append(AudioIn(participant, chunk, rtp_timestamp=rtp_start + k * PACKET))
    return out


def stream_utterance(
    provider: VoiceToAnimation, context: StageContext, utterance: Utterance
) -> StreamResult:
    """Open a stage (recording its decisions) and feed it the utterance packet by packet."""
    stage = provider.open(context)
    assert isinstance(stage, VoiceStage) and stage.decisions is not None
    result = StreamResult(stage.decisions)
    for k, frame in enumerate(packets(utterance.pcm, participant=context.participant)):
        for out in stage.process_inline(frame):
            result.frames.append(out)
            if isinstance(out, AnimationUnitFrame) and not out.is_config:
                if out.media_time is not None and (
                    not result.released or result.released[-1][0] != out.media_time
                ):
                    result.released.append((out.media_time, k))
    return result


def score(decisions: list[tuple[float, NDArray[np.float64] | None]], utterance: Utterance) -> Score:
    """Accuracy of the decisions against the utterance's phone alignment."""
    if not decisions:
        return Score(0, 0, 0)
    times = np.array([t for t, _ in decisions])
    truth = frame_labels(utterance.phones, times)
    probabilities = np.zeros((len(decisions), 15))
    for i, (_, p) in enumerate(decisions):
        if p is None:
            probabilities[i, 0] = 1.0
        else:
            probabilities[i] = p
    right15 = int((probabilities.argmax(axis=1) == truth).sum())
    coarse = coarse_probabilities(probabilities).argmax(axis=1)
    right5 = int((coarse == COARSE_OF_VISEME[truth]).sum())
    return Score(len(decisions), right5, right15)


def group_of(utterance: Utterance) -> str:
    """The source-and-speaker group of an utterance: its name before the first ``-``."""
    return utterance.name.split("-", 1)[0]


def group_weights(groups: list[str], sizes: list[int]) -> NDArray[np.float64]:
    """Per-row training weights that make every group (source and speaker) count as much
    as another, whatever its length: each of ``sizes[i]`` rows of a group ``groups[i]`` weighs
    1 / (the group's total rows). Mean 1 over all rows."""
    totals: dict[str, int] = {}
    for group, size in zip(groups, sizes, strict=True):
        totals[group] = totals.get(group, 0) + size
    weights = np.concatenate(
        [np.full(size, 1.0 / totals[group]) for group, size in zip(groups, sizes, strict=True)]
    )
    out: NDArray[np.float64] = weights / weights.mean()
    return out


def training_set(
    utterances: list[Utterance],
    lookahead: int,
    *,
    hops: dict[str, tuple[NDArray[np.float64], NDArray[np.int64]]] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Stacked inputs, labels and group-balancing weights (:func:`group_weights`) of
    utterances, for :func:`.model.fit` (``hops``: their :func:`.corpus.hop_inputs`, computed
    here with the shipped acoustic scorer when not given)."""
    if hops is None:
        scorer = shipped_scorer()
        hops = {u.name: hop_inputs(u, scorer) for u in utterances}
    rows = [hops[u.name] for u in utterances]
    inputs = np.concatenate([stack_context(h, lookahead) for h, _ in rows])
    labels = np.concatenate([lab for _, lab in rows])
    weights = group_weights([group_of(u) for u in utterances], [lab.size for _, lab in rows])
    return inputs, labels, weights


def held_out_by_group(
    corpus: list[Utterance],
    context: StageContext,
    *,
    extra: list[Utterance] | None = None,
    wrap: Callable[[VisemeModel], VisemeClassifier] | None = None,
    acoustic: AcousticScorer | None = None,
    **fit_options: Any,
) -> tuple[Score, dict[str, Score]]:
    """Leave one group out: each group's utterances are streamed through a stage whose model
    was trained (:func:`.model.fit`, every group weighted alike: :func:`training_set`) on the
    other groups only, plus ``extra`` (training utterances that are never scored; those of
    the held-out group's name are left out too); ``wrap`` turns the trained model into the
    classifier the stage runs (e.g. its ONNX export in onnxruntime); ``acoustic`` the
    acoustic scorer of the features (default: the shipped one). The total and the score of
    every group."""
    extra = extra or []
    acoustic = acoustic if acoustic is not None else shipped_scorer()
    hops = {u.name: hop_inputs(u, acoustic) for u in [*corpus, *extra]}
    lookahead = int(fit_options.pop("lookahead", LOOKAHEAD))
    total = Score(0, 0, 0)
    per_group: dict[str, Score] = {}
    for group in sorted({group_of(u) for u in corpus}):
        train = [u for u in [*corpus, *extra] if group_of(u) != group]
        inputs, labels, weights = training_set(train, lookahead, hops=hops)
        model = fit(inputs, labels, lookahead=lookahead, sample_weight=weights, **fit_options)
        provider = VoiceToAnimation(
            model=wrap(model) if wrap is not None else model,
            acoustic=acoustic,
            record_decisions=True,
        )
        scored = Score(0, 0, 0)
        for utterance in corpus:
            if group_of(utterance) == group:
                result = stream_utterance(provider, context, utterance)
                scored = scored + score(result.decisions, utterance)
        per_group[group] = scored
        total = total + scored
    return total, per_group
