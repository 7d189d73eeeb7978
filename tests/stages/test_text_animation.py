"""TextToAnimation end to end: text -> espeak-ng -> visemes -> ARF units, checked on the wire."""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from avatar_mf.arf import (
    ARKIT_BLENDSHAPES,
    ARKIT_INDEX,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    decode_unit,
)
from avatar_mf.pipeline import registry
from avatar_mf.stages.animation_data import AnimationPlan
from avatar_mf.stages.animation_data.espeak import EspeakEngine, Speech
from avatar_mf.stages.animation_data.idle import HEAD_JOINT_INDEX, HEAD_REST_TRANSLATION
from avatar_mf.stages.animation_data.text_animation import TextToAnimation

RATE = 30.0
TIMESCALE = 1000.0
BILABIALS = "Bob met Pam by the map."
TEN_SECONDS = (
    "The quick brown fox jumps over the lazy dog while the cat watches from the warm window. "
    "Later that evening, everybody gathered in the kitchen to share stories about the day, "
    "and nobody noticed how late it had become."
)


class Decoded:
    """A plan decoded with the ARF codec: weights per frame by blendshape name."""

    def __init__(self, plan: AnimationPlan) -> None:
        units = [decode_unit(u.unit) for u in plan.units]
        self.config = units[0]
        self.shapes = [u for u in units if isinstance(u, BlendshapeUnit)]
        self.joints = [u for u in units if isinstance(u, JointUnit)]
        self.times = np.array(
            [t.at for t, u in zip(plan.units, units, strict=True) if isinstance(u, BlendshapeUnit)]
        )
        self.weights = np.zeros((len(self.shapes), len(ARKIT_BLENDSHAPES)))
        for row, unit in enumerate(self.shapes):
            self.weights[row, list(unit.indices)] = unit.weights

    def __getitem__(self, name: str) -> np.ndarray:
        return self.weights[:, ARKIT_INDEX[name]]


def _frames_in(times: np.ndarray, start: float, end: float, slack: float) -> np.ndarray:
    return np.flatnonzero((times >= start - slack) & (times <= end + slack))


def _merged(
    timeline: tuple[tuple[float, float, str], ...], visemes: set[str]
) -> list[tuple[float, float]]:
    """Runs of consecutive segments whose viseme is in ``visemes``."""
    runs: list[tuple[float, float]] = []
    for start, end, viseme in timeline:
        if viseme not in visemes:
            continue
        if runs and abs(runs[-1][1] - start) < 1e-9:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


# --- wire format ---------------------------------------------------------------------------------


def test_units_decode_config_first_timestamps_at_the_rate(animator: TextToAnimation) -> None:
    plan = animator.plan_text(BILABIALS, language="en-US", rate=RATE, start_tick=5000)
    first = plan.units[0]
    assert first.is_config and first.at == 0.0
    config = decode_unit(first.unit)
    assert config == ConfigUnit(5000, "arf-face-v1", TIMESCALE)
    assert not any(u.is_config for u in plan.units[1:])
    decoded = Decoded(plan)
    assert len(decoded.shapes) == len(decoded.joints) > 30
    ticks = np.array([u.timestamp for u in decoded.shapes])
    steps = np.diff(ticks)
    assert steps.min() > 0 and np.abs(steps - TIMESCALE / RATE).max() <= 1
    assert ticks[0] == 5000
    assert [j.timestamp for j in decoded.joints] == ticks.tolist()
    ats = [u.at for u in plan.units]
    assert ats == sorted(ats)
    assert plan.duration == pytest.approx(len(decoded.shapes) / RATE)
    # every unit fits a 1024-byte data channel message
    assert max(len(u.unit) for u in plan.units) <= 1024
    # a fixed set of entries each frame: mouth + blinks, ARKit indices in order
    indices = {u.indices for u in decoded.shapes}
    assert len(indices) == 1
    (only,) = indices
    assert list(only) == sorted(only) and ARKIT_INDEX["jawOpen"] in only
    assert ARKIT_INDEX["eyeBlinkLeft"] in only and len(only) == 20
    # first and last frames at rest
    assert not decoded.weights[0].any() and not decoded.weights[-1].any()


def test_dense_units_set_ids_and_sparser_joints(engine: EspeakEngine) -> None:
    source = TextToAnimation(
        engine=engine, dense=True, blendshape_set_id=7, joint_set_id=3, joint_every=4
    )
    plan = source.plan_text("Hi there.", language="en", rate=60, start_tick=0)
    decoded = Decoded(plan)
    shape_ticks = [u.timestamp for u in decoded.shapes]
    joint_ticks = [u.timestamp for u in decoded.joints]
    assert joint_ticks == shape_ticks[::4] + ([shape_ticks[-1]] * (len(shape_ticks) % 4 != 1))
    assert {u.set_id for u in decoded.shapes} == {7}
    assert {u.joint_set_id for u in decoded.joints} == {3}
    assert all(len(u.indices) == 52 for u in decoded.shapes)
    assert max(len(u.unit) for u in plan.units) <= 1024
    assert np.diff([u.timestamp for u in decoded.shapes]).min() >= 16


def test_head_joint_units(animator: TextToAnimation) -> None:
    decoded = Decoded(animator.plan_text(TEN_SECONDS, language="en-us", rate=RATE, start_tick=0))
    matrices = np.array([u.matrices[0] for u in decoded.joints]).reshape(-1, 4, 4)
    assert {u.indices for u in decoded.joints} == {(HEAD_JOINT_INDEX,)}
    np.testing.assert_allclose(
        matrices[:, :3, 3], np.tile(HEAD_REST_TRANSLATION, (len(matrices), 1)), atol=1e-7
    )
    rotations = matrices[:, :3, :3]
    identity = np.broadcast_to(np.eye(3), rotations.shape)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), identity, atol=1e-6)
    np.testing.assert_allclose(rotations[0], np.eye(3), atol=1e-7)
    np.testing.assert_allclose(rotations[-1], np.eye(3), atol=1e-7)
    # a few degrees of motion, not more
    angle = np.degrees(np.arccos(np.clip((np.trace(rotations, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert 0.5 < angle.max() < 6.0


def test_timestamps_wrap_modulo_2_32(animator: TextToAnimation) -> None:
    start = 2**32 - 100
    plan = animator.plan_text("Wrap around.", language="en", rate=RATE, start_tick=start)
    ticks = [u.timestamp for u in Decoded(plan).shapes]
    assert decode_unit(plan.units[0].unit) == ConfigUnit(start, "arf-face-v1", TIMESCALE)
    assert ticks[0] == start and ticks[-1] < 2000
    assert all((b - a) % 2**32 in (33, 34) for a, b in zip(ticks, ticks[1:], strict=False))


# --- the animation follows the speech ------------------------------------------------------------


def test_lips_close_on_bilabials_and_jaw_opens_on_vowels(animator: TextToAnimation) -> None:
    plan = animator.plan_text(BILABIALS, language="en-US", rate=RATE, start_tick=0)
    d = Decoded(plan)
    press = (d["mouthPressLeft"] + d["mouthPressRight"]) / 2
    close, jaw = d["mouthClose"], d["jawOpen"]
    closures = _merged(plan.timeline, {"PP"})
    opens = [r for r in _merged(plan.timeline, {"aa"}) if r[1] - r[0] >= 0.06]
    assert len(closures) >= 5 and len(opens) >= 3  # B-o-b m-e-t P-a-m b-y the m-a-p

    slack = 1.0 / RATE
    for start, end in closures:
        frames = _frames_in(d.times, start, end, slack)
        peak = frames[np.argmax(press[frames])]
        assert press[peak] > 0.35, (start, end)
        assert close[peak] >= 0.9 * jaw[peak]  # lips sealed
        assert jaw[peak] < 0.25
    assert np.all(close <= jaw + 1e-6)
    for start, end in opens:
        frames = _frames_in(d.times, start, end, slack)
        assert jaw[frames].max() > 0.4, (start, end)
        assert press[frames].min() < 0.1  # lips apart somewhere in the vowel
    # the mouth opening rises and falls with the phonemes: correlate it with the timeline
    openness = {"aa": 1.0, "oh": 0.7, "E": 0.6, "ih": 0.35, "ou": 0.3, "PP": 0.0, "sil": 0.0}
    expected = np.zeros(len(d.times))
    bilabial = np.zeros(len(d.times))
    for start, end, viseme in plan.timeline:
        frames = (d.times >= start) & (d.times < end)
        expected[frames] = openness.get(viseme, 0.2)
        bilabial[frames] = viseme == "PP"
    assert np.corrcoef(expected, jaw)[0, 1] > 0.6
    assert np.corrcoef(bilabial, press)[0, 1] > 0.5


def test_blinks_in_a_ten_second_utterance(animator: TextToAnimation) -> None:
    plan = animator.plan_text(TEN_SECONDS, language="en-us", rate=RATE, start_tick=0)
    assert plan.duration > 9.0
    d = Decoded(plan)
    left, right = d["eyeBlinkLeft"], d["eyeBlinkRight"]
    np.testing.assert_array_equal(left, right)
    closed = np.flatnonzero(left > 0.9)
    assert len(closed) >= 1
    blinks = np.split(closed, np.flatnonzero(np.diff(closed) > 1) + 1)
    starts = [d.times[b[0]] for b in blinks]
    assert np.diff(starts).min(initial=10.0) >= 1.9
    assert np.count_nonzero(left > 0.05) < 0.15 * len(left)  # eyes mostly open


# --- determinism, limits, errors ---------------------------------------------------------------


def test_deterministic_for_a_text_and_seed(engine: EspeakEngine) -> None:
    a = TextToAnimation(engine=engine, seed=11)
    b = TextToAnimation(engine=engine, seed=11)
    c = TextToAnimation(engine=engine, seed=12)
    plans = [s.plan_text(TEN_SECONDS, language="en-us", rate=RATE, start_tick=0) for s in (a, b, c)]
    assert plans[0] == plans[1]
    assert plans[0] != plans[2]
    # the seed changes blinks and head motion, not the mouth
    mouth = [ARKIT_INDEX[n] for n in ("jawOpen", "mouthPressLeft", "mouthFunnel")]
    np.testing.assert_array_equal(
        Decoded(plans[0]).weights[:, mouth], Decoded(plans[2]).weights[:, mouth]
    )


def test_plan_speech_is_pure() -> None:
    # No espeak-ng: a hand-made timeline ("ma", 60 ms m, 200 ms a, 100 ms pause).
    speech = Speech(((0, "m"), (60, "a"), (260, "_:")), (), 1000, 360, "test")
    source = TextToAnimation(engine=None, seed=4)
    first = source.plan_speech(speech, key="ma", rate=RATE, start_tick=10)
    again = TextToAnimation(seed=4).plan_speech(speech, key="ma", rate=RATE, start_tick=10)
    assert first.plan == again.plan
    assert np.array_equal(first.weights, again.weights)
    assert first.plan.timeline[0][2] == "sil" and first.plan.timeline[1][2] == "PP"
    assert first.plan.timeline[1][0] == pytest.approx(source.lead_in)


def test_empty_text_gives_config_only(animator: TextToAnimation) -> None:
    for text in ("", "   ", "\n\x00\t"):
        plan = animator.plan_text(text, language="en", rate=RATE, start_tick=77)
        assert len(plan.units) == 1 and plan.units[0].is_config
        assert decode_unit(plan.units[0].unit) == ConfigUnit(77, "arf-face-v1", TIMESCALE)
        assert plan.duration == 0.0 and plan.timeline == ()


def test_bad_input(animator: TextToAnimation) -> None:
    with pytest.raises(ValueError, match="at most 2000"):
        animator.plan_text("word " * 500, language="en", rate=RATE, start_tick=0)
    for rate in (0.0, -1.0, math.nan, 241.0):
        with pytest.raises(ValueError, match="rate"):
            animator.plan_text("hi", language="en", rate=rate, start_tick=0)
    with pytest.raises(ValueError, match="language"):
        animator.plan_text("hi", language="zz-ZZ", rate=RATE, start_tick=0)
    with pytest.raises(ValueError):
        TextToAnimation(timescale=0.0)
    with pytest.raises(ValueError):
        TextToAnimation(profile="x" * 300)


def test_registry_finds_text_source(engine: EspeakEngine) -> None:
    source = registry.create("animation_data", "text", {"seed": 2})
    assert isinstance(source, TextToAnimation) and source.seed == 2
    plan = source.plan_text("Found by name.", language="en", rate=RATE, start_tick=0)
    assert plan.units[0].is_config and len(plan.units) > 10


async def test_plans_in_an_executor_from_many_sessions(animator: TextToAnimation) -> None:
    texts = [f"Session {i} says hello." for i in range(16)]
    loop = asyncio.get_running_loop()

    def plan_one(text: str) -> AnimationPlan:
        return animator.plan_text(text, language="en-us", rate=RATE, start_tick=0)

    with ThreadPoolExecutor(max_workers=4) as pool:
        plans = await asyncio.gather(*(loop.run_in_executor(pool, plan_one, t) for t in texts))
    for text, plan in zip(texts, plans, strict=True):
        assert plan == animator.plan_text(text, language="en-us", rate=RATE, start_tick=0)


def test_far_faster_than_real_time(animator: TextToAnimation) -> None:
    text = TEN_SECONDS + " " + TEN_SECONDS.replace("kitchen", "garden")
    started = time.perf_counter()
    plan = animator.plan_text(text, language="en-us", rate=RATE, start_tick=0)
    elapsed = time.perf_counter() - started
    # measured about 0.002 x real time; 0.05 leaves room for slow CI machines
    assert elapsed / plan.duration < 0.05
