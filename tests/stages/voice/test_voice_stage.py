"""The streaming voice stage on real recorded speech: accuracy (held out), look-ahead on the
fake clock, timing on the RTP timeline, loudness, prosody, blinks, and bad audio."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, decode_unit
from avatar_mf.pipeline.frames import AnimationUnitFrame, AudioIn, Frame
from avatar_mf.pipeline.runner import NamedStage, SessionPipeline
from avatar_mf.stages.voice.corpus import Utterance, frame_times, hop_inputs, hop_of
from avatar_mf.stages.voice.evaluation import held_out_by_group, packets, stream_utterance
from avatar_mf.stages.voice.labels import COARSE_OF_VISEME, frame_labels
from avatar_mf.stages.voice.model import CONTEXT_BEFORE, LOOKAHEAD, fit, stack_context
from avatar_mf.stages.voice.onnx_export import to_onnx
from avatar_mf.stages.voice.onnx_model import OnnxVisemeModel
from avatar_mf.stages.voice.stage import VoiceStage, VoiceToAnimation
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.pipeline import stage_context

RATE = 30.0


def _units(frames: list[Frame]) -> list[tuple[AnimationUnitFrame, object]]:
    return [(f, decode_unit(f.unit)) for f in frames if isinstance(f, AnimationUnitFrame)]


def _weights(frames: list[Frame], name: str) -> np.ndarray:
    out = []
    for _, unit in _units(frames):
        if isinstance(unit, BlendshapeUnit):
            out.append(unit.weights[unit.indices.index(ARKIT_INDEX[name])])
    return np.array(out)


def _feed(stage: VoiceStage, frames: list[AudioIn]) -> list[Frame]:
    out: list[Frame] = []
    for frame in frames:
        out.extend(stage.process_inline(frame))
    return out


@pytest.fixture(scope="module")
def provider() -> VoiceToAnimation:
    return VoiceToAnimation(record_decisions=True)


# -- accuracy -------------------------------------------------------------------------------


def test_held_out_accuracy_on_recorded_speech(speech: list[Utterance]) -> None:
    """Each group of utterances (one source and speaker) is streamed through a stage whose
    model never heard that speaker (trained on the other groups by the repo's own trainer,
    exported to ONNX and run in onnxruntime like the shipped one), on the tandem features
    (pocketsphinx's acoustic model's phone scores): the floor is well under what it reaches
    (~0.72 5-class, ~0.56 15-class over six groups, every group >= 0.65; the goal of 0.75 is
    the benchmark's) and above what the log-mel front end before it reached (0.61, 0.44)."""
    total, groups = held_out_by_group(
        speech, stage_context(), wrap=lambda m: OnnxVisemeModel(to_onnx(m))
    )
    assert len(groups) == 6 and total.frames > 3000
    assert total.accuracy5 >= 0.67, total
    assert total.accuracy15 >= 0.50, total
    assert all(g.accuracy5 >= 0.58 for g in groups.values()), groups
    # Better than always answering the commonest class of the corpus.
    truth = np.concatenate([frame_labels(u.phones, frame_times(u.duration)) for u in speech])
    commonest = np.bincount(COARSE_OF_VISEME[truth]).max() / truth.size
    assert total.accuracy5 > commonest + 0.1


def test_streamed_decisions_equal_offline_ones(
    corpus: list[Utterance], provider: VoiceToAnimation
) -> None:
    """Packet-by-packet streaming computes what the offline (whole-utterance) path does."""
    utterance = corpus[1]
    result = stream_utterance(provider, stage_context(), utterance)
    hops, _ = hop_inputs(utterance)
    stacked = stack_context(hops, LOOKAHEAD)
    checked = 0
    for t, p in result.decisions:
        k = int(hop_of(np.array([t]))[0])
        if p is None or k < 6:
            continue
        offline = provider.model.probabilities(stacked[k : k + 1])[0]
        assert np.allclose(p, offline, atol=1e-9)
        checked += 1
    assert checked > 50


# -- timing ---------------------------------------------------------------------------------


def test_added_latency_on_the_fake_clock_is_at_most_100_ms(corpus: list[Utterance]) -> None:
    """Packets enter a session pipeline at the moment their last sample exists (every 20 ms
    of fake time); a unit showing time t leaves at most 100 ms after the packet carrying t
    arrived, and units leave at 30 per second of audio."""

    async def run() -> tuple[list[float], list[AnimationUnitFrame]]:
        clock = FakeClock()
        context = stage_context(clock=clock)
        out: list[AnimationUnitFrame] = []
        times: list[float] = []

        def sink(frame: Frame) -> None:
            if isinstance(frame, AnimationUnitFrame):
                out.append(frame)
                times.append(clock.now())

        stage = VoiceToAnimation().open(context)
        pipeline = SessionPipeline([NamedStage("animation_data", "voice", stage)], sink)
        await pipeline.start()
        for frame in packets(corpus[0].pcm):
            clock.advance(0.02)
            pipeline.push(frame)
            for _ in range(10):
                await asyncio.sleep(0)
        await pipeline.aclose()
        return times, out

    times, out = asyncio.run(run())
    added = []
    for at, frame in zip(times, out, strict=True):
        assert frame.media_time is not None
        arrived = (np.floor(frame.media_time / 0.02 + 1e-9) + 1) * 0.02
        added.append(at - arrived)
    assert max(added) <= 0.100 + 1e-9
    assert min(added) >= 0.0
    shown = sorted({f.media_time for f in out if not f.is_config})
    assert len(shown) >= int(corpus[0].duration * RATE) - 4
    assert np.allclose(np.diff(shown), 1 / RATE)


@pytest.mark.parametrize("rtp_start", [1000, (1 << 32) - 16000])
def test_ticks_follow_the_rtp_timeline(corpus: list[Utterance], rtp_start: int) -> None:
    stage = VoiceToAnimation(timescale=1000.0).open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, packets(corpus[1].pcm[: 16000 * 2], rtp_start=rtp_start))
    units = _units(out)
    assert isinstance(units[0][1], ConfigUnit) and units[0][0].is_config
    assert sum(isinstance(u, ConfigUnit) for _, u in units) == 1
    for frame, unit in units:
        if isinstance(unit, BlendshapeUnit | JointUnit):
            assert frame.media_time is not None
            expected = round((rtp_start / 16000 + frame.media_time) * 1000) % (1 << 32)
            assert unit.timestamp == expected
    # Across the RTP wrap the units keep coming, one BLENDSHAPE + one JOINT per frame.
    assert sum(isinstance(u, BlendshapeUnit) for _, u in units) >= 2 * RATE - 4
    assert sum(isinstance(u, JointUnit) for _, u in units) == sum(
        isinstance(u, BlendshapeUnit) for _, u in units
    )


# -- the face -------------------------------------------------------------------------------


def test_jaw_follows_loudness(corpus: list[Utterance]) -> None:
    utterance = corpus[0]
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, packets(utterance.pcm))
    jaw = _weights(out, "jawOpen")
    shown = [f.media_time for f, u in _units(out) if isinstance(u, BlendshapeUnit)]
    pcm = utterance.pcm.astype(np.float64)
    rms = []
    for t in shown:
        assert t is not None
        centre = int(t * 16000)
        window = pcm[max(0, centre - 400) : centre + 400]
        rms.append(np.sqrt(np.mean(window**2)))
    correlation = np.corrcoef(jaw, np.array(rms))[0, 1]
    assert correlation > 0.5
    assert jaw.max() > 0.2


def test_prosody_raises_brows_during_speech_only(corpus: list[Utterance]) -> None:
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    silence = np.zeros(16000, dtype=np.int16)
    pcm = np.concatenate([silence, corpus[0].pcm])
    out = _feed(stage, packets(pcm))
    brows = _weights(out, "browInnerUp")
    assert brows[: int(0.9 * RATE)].max() == 0.0
    assert brows.max() > 0.05
    pitches = [u.matrices[0][6] for _, u in _units(out) if isinstance(u, JointUnit)]
    assert max(abs(p) for p in pitches) > 0.005  # a nod (m[1][2] = -sin(pitch))


def test_blinks_keep_a_natural_rate_in_silence() -> None:
    stage = VoiceToAnimation(seed=3).open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, packets(np.zeros(16000 * 30, dtype=np.int16)))
    blink = _weights(out, "eyeBlinkLeft")
    closures = int(np.sum((blink[1:] > 0.5) & (blink[:-1] <= 0.5)))
    assert 5 <= closures <= 15  # one every 2-6 s over 30 s
    assert _weights(out, "jawOpen").max() == 0.0


# -- bad audio ------------------------------------------------------------------------------


def test_a_gap_is_bridged_and_the_face_relaxes(corpus: list[Utterance]) -> None:
    frames = packets(corpus[0].pcm)
    lost = frames[100:115]  # 300 ms lost in the middle of speech
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, frames[:100] + frames[115:])
    assert stage.filled_samples == 15 * 320
    units = [(f, u) for f, u in _units(out) if isinstance(u, BlendshapeUnit)]
    times = np.array([f.media_time for f, _ in units])
    assert np.allclose(np.diff(times), 1 / RATE)  # no hole, no jump
    jaw = _weights(out, "jawOpen")
    gap_end = lost[-1].rtp_timestamp - 1000 + 320
    last_in_gap = int(np.searchsorted(times, gap_end / 16000 - 0.07)) - 1
    assert jaw[last_in_gap] < 0.05
    assert jaw[: int(2.0 * RATE)].max() > 0.2


def test_a_long_gap_restarts_and_late_packets_are_dropped(corpus: list[Utterance]) -> None:
    frames = packets(corpus[0].pcm)
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, frames[:50] + frames[200:] + [frames[10], frames[220]])
    assert stage.restarts == 1
    assert stage.dropped == 2
    times = [f.media_time for f, u in _units(out) if isinstance(u, BlendshapeUnit)]
    assert times == sorted(times)
    assert times[-1] > 5.0


def test_clipping_gives_a_calmer_not_wilder_face(corpus: list[Utterance]) -> None:
    pcm = corpus[0].pcm
    loud = np.clip(pcm.astype(np.int32) * 30, -32768, 32767).astype(np.int16)
    clean_stage = VoiceToAnimation().open(stage_context())
    clipped_stage = VoiceToAnimation().open(stage_context())
    assert isinstance(clean_stage, VoiceStage) and isinstance(clipped_stage, VoiceStage)
    clean = _feed(clean_stage, packets(pcm))
    clipped = _feed(clipped_stage, packets(loud))
    for name in ("jawOpen", "mouthFunnel", "mouthPucker", "browInnerUp"):
        assert _weights(clipped, name).max() <= _weights(clean, name).max() + 1e-9, name
    assert _weights(clipped, "jawOpen").max() > 0.0  # still talking


def test_a_model_not_made_for_the_acoustic_scores_is_refused() -> None:
    """The classifier decides on a context of the acoustic model's 42 scores per hop: a
    model of another input width (e.g. one of the log-mel front end, 13 per hop) is refused
    when the provider is made, not at the first packet."""
    rng = np.random.default_rng(0)
    width = 13 * (CONTEXT_BEFORE + 1 + LOOKAHEAD)
    inputs, labels = rng.standard_normal((30, width)), rng.integers(0, 15, 30)
    other = fit(inputs, labels, lookahead=LOOKAHEAD, steps=2)
    with pytest.raises(ValueError, match="42 scores"):
        VoiceToAnimation(model=other)


def test_garbage_never_raises() -> None:
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    rng = np.random.default_rng(1)
    frames = [
        AudioIn("p1", b"", rtp_timestamp=0),
        AudioIn("p1", b"\x01", rtp_timestamp=0),
        AudioIn("p1", bytes(641), rtp_timestamp=0),
        AudioIn("p1", bytes(640), rtp_timestamp=5, clock_rate=0),
    ]
    frames += [
        AudioIn(
            "p1", rng.integers(-32768, 32767, 320).astype("<i2").tobytes(), rtp_timestamp=int(ts)
        )
        for ts in rng.integers(0, 1 << 32, 50)
    ]
    out = _feed(stage, frames)
    for _, unit in _units(out):
        if isinstance(unit, BlendshapeUnit):
            assert all(0.0 <= w <= 1.0 for w in unit.weights)


def test_a_new_rtp_clock_rate_carries_the_timeline_on(corpus: list[Utterance]) -> None:
    """After a codec change (16 kHz clock -> 8 kHz clock, e.g. G.722's), the frames go on
    without a jump and the ticks keep counting on the audio's timeline."""
    first = packets(corpus[0].pcm[:16000])
    second = [
        AudioIn("p1", f.pcm, rtp_timestamp=777 + k * 160, clock_rate=8000)
        for k, f in enumerate(packets(corpus[0].pcm[16000:32000]))
    ]
    stage = VoiceToAnimation().open(stage_context())
    assert isinstance(stage, VoiceStage)
    out = _feed(stage, first + second)
    units = [(f, u) for f, u in _units(out) if isinstance(u, BlendshapeUnit)]
    times = np.array([f.media_time for f, _ in units])
    assert np.allclose(np.diff(times), 1 / RATE)
    assert times[-1] > 1.8
    ticks = np.array([u.timestamp for _, u in units], dtype=np.int64)
    assert np.all(np.abs(np.diff(ticks) - 1000 / RATE) <= 1)
    assert stage.restarts == 0 and stage.dropped == 0


# -- no audio at all ------------------------------------------------------------------------


def test_when_packets_stop_the_face_relaxes_at_30_per_second(corpus: list[Utterance]) -> None:
    """Packets stop in the middle of speech (mouth open): ~100 ms later the stage's timer
    takes over on the session clock, units keep coming at 30/s with the jaw relaxing to
    neutral; when packets come back the audio takes over, no tick shown twice."""
    pcm = corpus[0].pcm
    jaw_at = ARKIT_INDEX["jawOpen"]

    async def run() -> tuple[float, list[tuple[float, BlendshapeUnit]]]:
        clock = FakeClock()
        got: list[tuple[float, BlendshapeUnit]] = []

        def sink(frame: Frame) -> None:
            if isinstance(frame, AnimationUnitFrame) and not frame.is_config:
                unit = decode_unit(frame.unit)
                if isinstance(unit, BlendshapeUnit):
                    got.append((clock.now(), unit))

        stage = VoiceToAnimation(timescale=1000.0).open(stage_context(clock=clock))
        pipeline = SessionPipeline([NamedStage("animation_data", "voice", stage)], sink)
        await pipeline.start()
        frames = packets(pcm)
        # Stop where the speaker is loud: the mouth is open when the audio vanishes.
        loud = [k for k, f in enumerate(frames[50:200], 50) if np.abs(level(f)).max() > 8000]
        stop = loud[0] + 3

        async def feed(batch: list[AudioIn]) -> None:
            for frame in batch:
                clock.advance(0.02)
                pipeline.push(frame)
                for _ in range(5):
                    await asyncio.sleep(0)

        await feed(frames[:stop])
        stopped = clock.now()
        for _ in range(90):  # 1.5 s without a packet, in 1/60 s steps
            clock.advance(1 / 60)
            for _ in range(5):
                await asyncio.sleep(0)
        # The stream comes back 1.5 s later on its RTP clock (a long gap: a restart).
        resumed = packets(pcm, rtp_start=1000 + (stop + 75) * 320)[stop + 75 : stop + 125]
        await feed(resumed)
        await pipeline.aclose()
        return stopped, got

    def level(frame: AudioIn) -> np.ndarray:
        return np.frombuffer(frame.pcm, dtype="<i2")

    stopped, got = asyncio.run(run())
    jaw = {t: u.weights[u.indices.index(jaw_at)] for t, u in got}
    before = [j for t, j in jaw.items() if t <= stopped]
    assert max(before[-10:]) > 0.15  # the mouth was open when the audio stopped
    silent = [(t, u) for t, u in got if stopped < t <= stopped + 1.5]
    # Nothing from the timer during the first 100 ms (the last packets' look-ahead frames
    # may still come out); then 30 per second.
    assert not [t for t, _ in silent if t < stopped + 0.1 - 1e-6]
    late = [t for t, _ in silent if t > stopped + 0.15]
    assert len(late) == pytest.approx(30 * (1.5 - 0.15), abs=2)
    assert np.all(np.diff(late) < 0.05)  # no hole
    relaxed = [jaw[t] for t in late if t > stopped + 0.45]
    assert max(relaxed) < 0.02  # neutral within ~0.3 s of the timer starting
    ticks = [u.timestamp for _, u in got]
    assert all(0 < b - a for a, b in zip(ticks, ticks[1:], strict=False))  # never twice
    after = [t for t, _ in got if t > stopped + 1.5]
    assert len(after) >= 25  # the audio took over again
