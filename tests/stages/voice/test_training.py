"""How the viseme model is trained: every speaker group weighs alike, extra training data of
a held-out group never reaches its model, and the class weighting is the trainer's choice."""

from __future__ import annotations

import numpy as np

from avatar_mf.stages.voice.corpus import Utterance
from avatar_mf.stages.voice.evaluation import (
    group_of,
    group_weights,
    held_out_by_group,
    training_set,
)
from avatar_mf.stages.voice.model import LOOKAHEAD, fit
from avatar_mf.testing.pipeline import stage_context


def test_every_group_weighs_alike_whatever_its_length(speech: list[Utterance]) -> None:
    inputs, labels, weights = training_set(speech, LOOKAHEAD)
    assert inputs.shape[0] == labels.size == weights.size
    assert np.isclose(weights.mean(), 1.0)
    rows = np.concatenate([[group_of(u)] * round(u.duration * 100) for u in speech])
    sizes = {g: int((rows == g).sum()) for g in set(rows.tolist())}
    assert max(sizes.values()) > 5 * min(sizes.values())  # the groups differ in length
    start = 0
    per_group: dict[str, float] = {}
    for utterance in speech:
        count = training_set([utterance], LOOKAHEAD)[1].size
        group = group_of(utterance)
        per_group[group] = per_group.get(group, 0.0) + float(weights[start : start + count].sum())
        start += count
    totals = list(per_group.values())
    assert np.allclose(totals, totals[0])


def test_group_weights_of_one_group_are_uniform() -> None:
    weights = group_weights(["a", "a", "b"], [3, 1, 2])
    assert np.allclose(weights[:4], weights[0]) and np.allclose(weights[4:], weights[4])
    assert np.isclose(weights[:4].sum(), weights[4:].sum())


def test_extra_training_data_of_the_held_out_group_is_left_out(
    speech: list[Utterance],
) -> None:
    """Extra data that repeats the scored utterances changes nothing: a held-out group's own
    copies are left out of its model, and the other groups' copies only split their weight."""
    small = [u for u in speech if group_of(u).startswith("pocketsphinx_")]
    context = stage_context()
    plain, plain_groups = held_out_by_group(small, context, steps=60)
    padded, padded_groups = held_out_by_group(small, context, extra=list(small), steps=60)
    assert plain.frames == padded.frames
    for group, scored in plain_groups.items():
        assert abs(scored.right5 - padded_groups[group].right5) <= 2, group


def test_plain_frame_accuracy_training_answers_the_common_classes_more(
    speech: list[Utterance],
) -> None:
    inputs, labels, _ = training_set(speech[:6], LOOKAHEAD)
    common = int(np.bincount(labels).argmax())
    shares = []
    for power in (0.0, 0.5):
        model = fit(inputs, labels, lookahead=LOOKAHEAD, steps=80, class_power=power)
        shares.append(float(np.mean(model.probabilities(inputs).argmax(axis=1) == common)))
    assert shares[0] > shares[1]
