"""Rendering benchmark: CPU per frame (animate + render + H.264 encode) at 512x512, and how
many 25 fps network-rendered sessions this machine sustains.

Usage::

    .venv/bin/python bench/render.py [--size 512] [--frames 200] [--sessions 1,2,3,4,5,6]
                                     [--seconds 10] [--workers N] [--json FILE]
    .venv/bin/python bench/render.py --only-2d [--size 512] [--frames 200]
    .venv/bin/python bench/render.py --skip-part1 --photo-2d [--sessions 4,6,8] [--seconds 10]

Part 1, one process, one core (llvmpipe held to one thread): the default head driven by the
text stage's animation of a sentence (mouth, blinks, head motion), per frame:

* animate: ``Animator.sample`` + ``Rig.pose`` (morph targets, linear blend skinning);
* render: ``GlRenderer.render`` with the read-back of the RGBA picture (no MSAA, the video
  default; then with 4x MSAA for comparison);
* encode: PyAV libx264 ``ultrafast``/``zerolatency``, RGBA -> yuv420p conversion included;
* hand-over: a 512x512 RGBA frame back from a worker by pickling it (what a pipe costs)
  against the pool's shared-memory slot (a copy out of the slot).

CPU time is ``time.process_time`` (this process, all threads), median over ``--frames``.

Part 1 also runs in 2D mode (``--only-2d``: that alone): scikit-image's astronaut fitted as a
2D portrait (``stages/animation/portrait``) and driven by the same units: animate is
``Animator.sample`` + ``PortraitRig.pose`` (the blendshape warp and the head turn), render the
flat mesh with the photo as texture. ``--photo-2d`` runs part 2 with that photo as every
session's base avatar (each stage fits it, as in a call).

Part 2, the real stage and the real sender: for each session count K, K
:class:`NetworkAnimationStage` s on the event loop (``LoopClock``) rendering at 25 fps through
one :class:`RenderPool` (``--workers``, default one per core), each fed a looping unit stream
(a BLENDSHAPE unit with the text stage's weights and a JOINT unit for the head every 40 ms)
and read by the media plane's :class:`~avatar_mf.media.video_sender.VideoSender` (the MF's
pacing, RGBA -> I420, x264 Constrained Baseline ultrafast/zerolatency and RFC 6184
packetization in a 2-thread encoder pool, as the node's ``[media] video_encoders``), its
packets handed to a sink that records when each frame's packets left. For ``--seconds`` it
counts frames expected (25 x seconds x K), rendered, skipped by the stage because their time
had passed, and skipped by the sender (replaced before it could take them, or too late).
Dropped = expected - sent. A count K is sustained when at most 1 % is dropped. Unit-to-RTP
latency: for each frame sent, the time from the arrival of the newest unit it shows to its
packets leaving (p50, p95, max).

Prints figures only (no assertions). Run it alone (``pgrep -f bench/`` empty).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

os.environ.setdefault("LP_NUM_THREADS", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, decode_unit  # noqa: E402
from avatar_mf.avatar import write_arf  # noqa: E402
from avatar_mf.avatar.generate import generate_default_head  # noqa: E402
from avatar_mf.clock import LoopClock  # noqa: E402
from avatar_mf.codecs.video import video_codec  # noqa: E402
from avatar_mf.media.video_sender import EncodeJob, VideoSender  # noqa: E402
from avatar_mf.pipeline.frames import AnimationUnitFrame, BaseAvatarFrame  # noqa: E402
from avatar_mf.pipeline.stage import StageContext  # noqa: E402
from avatar_mf.render.gl import GlRenderer  # noqa: E402
from avatar_mf.render.pool import RenderPool  # noqa: E402
from avatar_mf.render.scene import RenderSettings  # noqa: E402
from avatar_mf.stages.animation.avatar_rig import from_model  # noqa: E402
from avatar_mf.stages.animation.network import NetworkAnimation  # noqa: E402
from avatar_mf.stages.animation_data.text_animation import TextToAnimation  # noqa: E402

TEXT = "Hello, this is your avatar speaking: the network animates and renders me as video."
RATE = 25.0


def cpu_ms(fn: Callable[[], Any], frames: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(frames):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) * 1000)
    return statistics.median(samples), samples


def speech_units() -> list[Any]:
    plan = TextToAnimation().plan_text(TEXT, language="en", rate=RATE, start_tick=0)
    return [decode_unit(u.unit) for u in plan.units]


class Encoder:
    def __init__(self, size: int) -> None:
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.width = size
        self.codec.height = size
        self.codec.pix_fmt = "yuv420p"
        self.codec.time_base = Fraction(1, int(RATE))
        self.codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self.pts = 0

    def encode(self, rgba: np.ndarray) -> int:
        frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuv420p")
        frame.pts = self.pts
        self.pts += 1
        return sum(len(bytes(p)) for p in self.codec.encode(frame))


def part1(size: int, frames: int) -> dict[str, Any]:
    model = generate_default_head()
    avatar = from_model(model)
    animator = avatar.animator()
    units = speech_units()
    times = [t for u in units if (t := animator.feed(u)) is not None]
    span = max(times)
    gl = GlRenderer()
    gl.add_mesh("head", avatar.mesh)
    settings = RenderSettings(width=size, height=size, samples=0)
    msaa = RenderSettings(width=size, height=size, samples=4)
    encoder = Encoder(size)
    state: dict[str, Any] = {"i": 0}

    def animate() -> None:
        t = (state["i"] / RATE) % span
        state["i"] += 1
        state["pose"] = avatar.rig.pose(animator.sample(t))

    def render() -> None:
        animate_only = state["pose"]
        state["rgba"] = gl.render("head", animate_only[0], animate_only[1], settings)

    def render_msaa() -> None:
        gl.render("head", state["pose"][0], state["pose"][1], msaa)

    def encode() -> None:
        encoder.encode(state["rgba"])

    def full() -> None:
        animate()
        render()
        encode()

    animate()
    render()
    for _ in range(10):  # warm up the encoder's lookahead-free pipeline and the GL caches
        full()
    out: dict[str, Any] = {"renderer": gl.renderer_name, "size": size, "frames": frames}
    out["animate_ms"], _ = cpu_ms(animate, frames)
    out["render_ms"], _ = cpu_ms(render, frames)
    out["render_msaa4_ms"], _ = cpu_ms(render_msaa, frames // 2)
    out["encode_ms"], _ = cpu_ms(encode, frames)
    out["total_ms"], samples = cpu_ms(full, frames)
    out["total_p95_ms"] = float(np.percentile(samples, 95))
    rgba = state["rgba"].copy()
    out["pickle_frame_ms"], _ = cpu_ms(lambda: pickle.loads(pickle.dumps(rgba, 5)), frames)
    out["shm_copy_frame_ms"], _ = cpu_ms(lambda: np.array(rgba, copy=True), frames)
    out["frame_bytes"] = rgba.nbytes
    gl.release()
    return out


def part1_2d(size: int, frames: int) -> dict[str, Any]:
    from skimage import data

    from avatar_mf.stages.animation.portrait import PortraitAvatar, fit_portrait
    from avatar_mf.stages.animation.portrait.avatar import default_tracker

    tracker = default_tracker()
    avatar = PortraitAvatar.of(fit_portrait(np.ascontiguousarray(data.astronaut()), tracker))
    tracker.close()
    animator = avatar.animator()
    times = [t for u in speech_units() if (t := animator.feed(u)) is not None]
    span = max(times)
    gl = GlRenderer()
    gl.add_mesh("portrait", avatar.mesh)
    settings = RenderSettings(width=size, height=size, samples=0)
    encoder = Encoder(size)
    state: dict[str, Any] = {"i": 0}

    def animate() -> None:
        t = (state["i"] / RATE) % span
        state["i"] += 1
        state["pose"] = avatar.rig.pose(animator.sample(t))

    def render() -> None:
        state["rgba"] = gl.render("portrait", state["pose"][0], state["pose"][1], settings)

    def encode() -> None:
        encoder.encode(state["rgba"])

    def animate_render() -> None:
        animate()
        render()

    def full() -> None:
        animate_render()
        encode()

    for _ in range(10):
        full()
    out: dict[str, Any] = {"mode": "2d", "size": size, "frames": frames,
                           "vertices": avatar.mesh.vertex_count,
                           "triangles": len(avatar.mesh.triangles),
                           "texture": avatar.model.size}
    out["animate_ms"], _ = cpu_ms(animate, frames)
    out["render_ms"], _ = cpu_ms(render, frames)
    out["animate_render_ms"], samples = cpu_ms(animate_render, frames)
    out["animate_render_p95_ms"] = float(np.percentile(samples, 95))
    out["encode_ms"], _ = cpu_ms(encode, frames)
    out["total_ms"], _ = cpu_ms(full, frames)
    gl.release()
    return out


class Runner:
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))


async def part2_one(count: int, seconds: float, size: int, workers: int | None,
                    container: bytes, units: list[Any]) -> dict[str, Any]:
    threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stage")
    encoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode")
    pool = RenderPool(workers)
    pool.start()
    provider = NetworkAnimation(width=size, height=size, rate=RATE, renderer=pool)
    clock = LoopClock()
    stages = []
    for k in range(count):
        context = StageContext(call_id=f"c{k}", participant=f"p{k}", identity=f"sip:u{k}@x",
                               room=f"r{k}", clock=clock, executor=Runner(threads))
        stage = provider.open(context)
        await stage.setup()
        async for _ in stage.process(BaseAvatarFrame(f"p{k}", "head", "x", container)):
            pass
        stages.append(stage)
    encoded = [0] * count

    async def feed(k: int) -> None:
        from avatar_mf.arf.units import encode_unit

        stream = [u for u in units if not isinstance(u, ConfigUnit)]
        period = stream[-1].timestamp + 40
        config = AnimationUnitFrame(f"p{k}", encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)))
        async for _ in stages[k].process(config):
            pass
        loop_index = 0
        start = time.monotonic() + 0.01 * k
        while True:
            for unit in stream:
                due = start + (loop_index * period + unit.timestamp) / 1000.0
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ts = loop_index * period + unit.timestamp
                if isinstance(unit, BlendshapeUnit):
                    shifted: Any = BlendshapeUnit(ts, unit.set_id, unit.indices, unit.weights)
                else:
                    shifted = JointUnit(ts, unit.joint_set_id, unit.indices, unit.matrices)
                frame = AnimationUnitFrame(f"p{k}", encode_unit(shifted))
                arrivals[k].append(clock.now())
                async for _ in stages[k].process(frame):
                    pass
            loop_index += 1

    arrivals: list[list[float]] = [[] for _ in range(count)]
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def encode_runner(job: Callable[[], Any]) -> Any:
        return await loop.run_in_executor(encoders, job)

    class Sink:
        """Where the sender's packets go: records when each frame left."""

        closed = False
        sends = True

        def __init__(self, k: int) -> None:
            self.k = k

        def send_unit(self, payloads: list[bytes], timestamp: int, content_time: float,
                      now: float, *, keyframe: bool = False) -> None:
            encoded[self.k] += 1
            times = arrivals[self.k]
            shown = [a for a in times[-8:] if a <= content_time]
            if shown:
                latencies.append(clock.now() - shown[-1])

    codec = video_codec("H264", 90000, {"packetization-mode": "1",
                                        "profile-level-id": "42e01f"})
    assert codec is not None
    senders = [
        VideoSender(Sink(k), EncodeJob(codec, {"packetization-mode": "1",
                                               "profile-level-id": "42e01f"},
                                       rate=RATE, bitrate=600_000),
                    stages[k].source.reader, clock=clock, rate=RATE, runner=encode_runner,
                    rtp_base=0)
        for k in range(count)
    ]

    await asyncio.sleep(1.0)  # the ticks start, the pool warms up
    tasks = [asyncio.create_task(feed(k)) for k in range(count)]
    for sender in senders:
        sender.start()
    await asyncio.sleep(1.0)
    rendered0 = [s.rendered for s in stages]
    dropped0 = [s.dropped for s in stages]
    skipped0 = [s.skipped for s in senders]
    encoded0 = list(encoded)
    latencies.clear()
    pids = list(getattr(pool._executor, "_processes", {}) or {})  # the render workers
    cpu0 = os.times()
    workers0 = proc_cpu(pids)
    busy0 = machine_busy()
    wall0 = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall0
    cpu1 = os.times()
    workers1 = proc_cpu(pids)
    busy1 = machine_busy()
    rendered = sum(s.rendered for s in stages) - sum(rendered0)
    stage_dropped = sum(s.dropped for s in stages) - sum(dropped0)
    skipped = sum(s.skipped for s in senders) - sum(skipped0)
    done = sum(encoded) - sum(encoded0)
    expected = RATE * wall * count
    lat = sorted(latencies)
    for task in tasks:
        task.cancel()
    for sender in senders:
        await sender.close()
    for stage in stages:
        await stage.teardown()
    pool.close()
    threads.shutdown()
    encoders.shutdown()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    dropped = max(0.0, expected - done)
    return {
        "sessions": count,
        "seconds": round(wall, 2),
        "expected": round(expected),
        "rendered": rendered,
        "encoded": done,
        "skipped_by_stage": stage_dropped,
        "skipped_by_sender": skipped,
        "unit_to_rtp_ms_p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "unit_to_rtp_ms_p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        "unit_to_rtp_ms_max": round(1000 * lat[-1], 1) if lat else None,
        "dropped_pct": round(100.0 * dropped / expected, 2),
        "main_cpu_s": round(cpu, 2),
        "workers_cpu_s": round(workers1 - workers0, 2),
        "cpu_ms_per_frame": round(1000 * (cpu + workers1 - workers0) / max(done, 1), 2),
        "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1), 1),
    }


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes, from /proc/<pid>/stat."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(stat[11]) + int(stat[12])) / tick
    return total


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat (everyone's load, not only ours)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--sessions", default="1,2,3,4,5,6")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--only-2d", action="store_true", help="part 1 in 2D mode, alone")
    parser.add_argument("--photo-2d", action="store_true",
                        help="part 2 with scikit-image's astronaut as a 2D avatar")
    args = parser.parse_args()
    results: dict[str, Any] = {"cores": len(os.sched_getaffinity(0))}
    if not args.skip_part1 and not args.only_2d:
        one = part1(args.size, args.frames)
        results["per_frame"] = one
        print("per frame, one core, median CPU ms:", json.dumps(one, indent=1))
    if not args.skip_part1:
        two_d = part1_2d(args.size, args.frames)
        results["per_frame_2d"] = two_d
        print("2D portrait per frame, one core, median CPU ms:", json.dumps(two_d, indent=1))
    if args.only_2d:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return 0
    container = write_arf(generate_default_head(), avatar_id="bench", name="bench")
    if args.photo_2d:
        import io

        from PIL import Image
        from skimage import data

        photo = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(data.astronaut())).save(photo, format="PNG")
        container = photo.getvalue()
    units = speech_units()
    results["sessions"] = []
    for count in (int(c) for c in args.sessions.split(",")):
        row = asyncio.run(part2_one(count, args.seconds, args.size, args.workers, container,
                                    units))
        results["sessions"].append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
