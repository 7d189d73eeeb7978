"""Camera animation benchmark (issue 13, video source): accuracy on renders of the product's
head at known weights and head poses, and CPU per 640x480 frame as the camera stage spends it.

Usage::

    flock /tmp/avatar-bench.lock env PYTHONPATH=$PWD/src .venv/bin/python \\
        bench/video_animation.py [--frames 60] [--seed 1] [--json FILE] [--picture PNG]

Part 1, accuracy: ``--frames`` shots of the default head (``stages/camera/groundtruth.py``:
each of jawOpen, eyeBlinkLeft/Right, mouthSmileLeft/Right, browInnerUp, mouthPucker drawn
independently, a third of them 0; head yaw within +-25 and pitch within +-12 degrees, turned
by the head joint) rendered at 640x480 with the product's renderer and tracked one by one in
still-picture mode (what the stage's worker processes do). Seed 1 is held out: the
retargeting (``stages/camera/retarget.py``) was fitted on seed 11. Per blendshape, the Pearson
correlation of the recovered weight with the truth (goal >= 0.8), MediaPipe's raw scores and
retargeted; head yaw and pitch absolute error, mean and worst (goal <= 5 degrees).

Part 2, CPU: the pictures as the media plane gives them (I420) sent through the stage's face
worker pool (:class:`~avatar_mf.face.pool.FacePool`, one worker process): the worker's
``time.process_time`` per picture (I420 -> RGB and tracking, TFLite's threads included),
median and 95th percentile (goal <= 15 ms per 640x480 frame), the retargeting's cost in the
stage, and streams one core can take at 30 and 25 pictures per second. For comparison the
tracker's VIDEO mode (following the face, per-stream state) in this process.

``--picture``: a PNG of a few shots: the truth, the head re-rendered from MediaPipe's raw
weights and from the retargeted ones (docs/img/camera_retarget.png).

Prints figures only (no assertions).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import timeit

import numpy as np

from avatar_mf.codecs.video import Picture as I420
from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
from avatar_mf.face.pictures import Picture
from avatar_mf.face.pool import FacePool
from avatar_mf.face.result import FaceResult
from avatar_mf.stages.camera.groundtruth import (
    MEASURED,
    GroundTruthRenderer,
    Shot,
    random_sequence,
)
from avatar_mf.stages.camera.quality import Score, score
from avatar_mf.stages.camera.retarget import product_head


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[max(0, int(len(values) * 0.95) - 1)]


def _print_score(raw: Score, mapped: Score) -> None:
    print(f"accuracy over {raw.frames} rendered frames, held out (goal: r >= 0.8, 5 deg)")
    print(f"  {'':16s}    raw  retargeted")
    for name in MEASURED:
        print(f"  {name:16s} {raw.correlation[name]:+.3f}  {mapped.correlation[name]:+.3f}")
    print(f"  head yaw   error mean/worst {raw.yaw_error:.2f}/{raw.yaw_worst:.2f} deg  "
          f"{mapped.yaw_error:.2f}/{mapped.yaw_worst:.2f}")
    print(f"  head pitch error mean/worst {raw.pitch_error:.2f}/{raw.pitch_worst:.2f} deg  "
          f"{mapped.pitch_error:.2f}/{mapped.pitch_worst:.2f}")


def _picture(renderer: GroundTruthRenderer, shots: list[Shot], raw: list[FaceResult],
             mapped: list[FaceResult], path: str) -> None:
    from PIL import Image

    rows = []
    for shot, a, b in list(zip(shots, raw, mapped, strict=True))[:4]:
        def again(face: FaceResult) -> np.ndarray:
            weights = {n: float(face.blendshapes.get(n, 0.0)) for n in MEASURED}
            return renderer.render(
                Shot(weights, math.degrees(face.head.yaw), math.degrees(face.head.pitch))
            )

        row = np.concatenate([renderer.render(shot), again(a), again(b)], axis=1)
        rows.append(row[60:420])  # the head, without the empty top and bottom
    Image.fromarray(np.concatenate(rows, axis=0)).resize((960, 4 * 180)).save(path)
    print(f"wrote {path} (columns: truth, from MediaPipe's weights, retargeted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument("--picture", default=None)
    args = parser.parse_args()

    renderer = GroundTruthRenderer(width=640, height=480)
    shots = random_sequence(args.frames, seed=args.seed)
    pictures = [renderer.render(shot) for shot in shots]

    still = MediapipeFaceTracker(max_faces=1)
    faces = [still.track(picture) for picture in pictures]
    still.close()
    retargeting = product_head()
    mapped_faces = [retargeting.apply(f) for f in faces]
    raw, mapped = score(shots, faces), score(shots, mapped_faces)
    _print_score(raw, mapped)
    retarget_us = (
        timeit.timeit(lambda: retargeting.apply(faces[0]), number=2000) / 2000 * 1e6
    )

    yuv = [I420.from_rgb(p) for p in pictures]
    jobs = [Picture("i420", p.data, p.width, p.height) for p in yuv]
    with FacePool(workers=1) as pool:
        pool.track_sync(jobs[0])  # warm-up
        start = time.perf_counter()
        cpu = [pool.track_sync(job).cpu * 1000.0 for job in jobs * 3]
        wall = (time.perf_counter() - start) / len(cpu) * 1000.0
    median, p95 = _percentiles(cpu)

    video = MediapipeFaceTracker(max_faces=1)
    video.track(pictures[0], timestamp=0.0)
    video_cpu = []
    for index, picture in enumerate(pictures * 3):
        t0 = time.process_time()
        video.track(picture, timestamp=(index + 1) / 30.0)
        video_cpu.append((time.process_time() - t0) * 1000.0)
    video.close()
    video_median, video_p95 = _percentiles(video_cpu)

    per_stream = median + retarget_us / 1000.0
    print(f"CPU per 640x480 picture in the face worker (I420 -> RGB + tracking, {len(cpu)} "
          f"pictures): median {median:.1f} ms, p95 {p95:.1f} ms; wall {wall:.1f} ms a picture")
    print(f"  retargeting in the stage: {retarget_us:.0f} us a face")
    print(f"  a 30 fps camera: {per_stream * 30 / 10:.1f} % of a core; "
          f"{1000.0 / (per_stream * 30):.1f} streams per core at 30 fps, "
          f"{1000.0 / (per_stream * 25):.1f} at 25 fps")
    print(f"  (VIDEO mode in-process, for comparison: median {video_median:.1f} ms, "
          f"p95 {video_p95:.1f} ms)")
    if args.picture:
        _picture(renderer, shots, faces, mapped_faces, args.picture)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "raw": {"correlation": dict(raw.correlation), "yaw": raw.yaw_error,
                            "pitch": raw.pitch_error, "pitch_worst": raw.pitch_worst},
                    "retargeted": {"correlation": dict(mapped.correlation),
                                   "yaw": mapped.yaw_error, "yaw_worst": mapped.yaw_worst,
                                   "pitch": mapped.pitch_error,
                                   "pitch_worst": mapped.pitch_worst},
                    "cpu_ms_median": median,
                    "cpu_ms_p95": p95,
                    "retarget_us": retarget_us,
                    "video_mode_cpu_ms_median": video_median,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    main()
