"""Camera animation benchmark (issue 13, video source): accuracy on renders of the product's
head at known weights and head poses, and CPU per 640x480 frame.

Usage::

    .venv/bin/python bench/video_animation.py [--frames 60] [--seed 1] [--json FILE]

Part 1, accuracy: ``--frames`` shots of the default head (``stages/camera/groundtruth.py``:
each of jawOpen, eyeBlinkLeft/Right, mouthSmileLeft/Right, browInnerUp, mouthPucker drawn
independently, a third of them 0; head yaw within +-25 and pitch within +-12 degrees, turned
by the head joint) rendered at 640x480 with the product's renderer and tracked one by one
(IMAGE mode: each picture stands alone). Per blendshape, the Pearson correlation of the
recovered weight with the truth (goal >= 0.8); head yaw and pitch absolute error, mean and
worst (goal <= 5 degrees).

Part 2, CPU: the same pictures as a 30 fps video (VIDEO mode: the tracker follows the face),
``time.process_time`` per ``track`` call (this process, all threads, so TFLite's own threads
count), median and 95th percentile (goal <= 15 ms per 640x480 frame), and the frames one core
can track per second (1 / median).

Prints figures only (no assertions). Run it alone (``pgrep -f bench/`` empty).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
from avatar_mf.stages.camera.groundtruth import MEASURED, GroundTruthRenderer, random_sequence
from avatar_mf.stages.camera.quality import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    renderer = GroundTruthRenderer(width=640, height=480)
    shots = random_sequence(args.frames, seed=args.seed)
    pictures = [renderer.render(shot) for shot in shots]

    still = MediapipeFaceTracker()
    faces = [still.track(picture) for picture in pictures]
    still.close()
    result = score(shots, faces)

    video = MediapipeFaceTracker(max_faces=1)
    video.track(pictures[0], timestamp=0.0)  # warm-up: model load, first detection
    cpu = []
    for index, picture in enumerate(pictures * 3):
        start = time.process_time()
        video.track(picture, timestamp=(index + 1) / 30.0)
        cpu.append((time.process_time() - start) * 1000.0)
    video.close()
    cpu.sort()
    median = statistics.median(cpu)
    p95 = cpu[int(len(cpu) * 0.95) - 1]

    print(f"accuracy over {result.frames} rendered frames (goal: correlation >= 0.8)")
    for name in MEASURED:
        print(f"  {name:16s} r = {result.correlation[name]:+.3f}")
    print(f"  head yaw   error mean {result.yaw_error:.2f} deg, worst {result.yaw_worst:.2f}")
    print(f"  head pitch error mean {result.pitch_error:.2f} deg, worst {result.pitch_worst:.2f}")
    print(f"CPU per 640x480 frame (VIDEO mode, {len(cpu)} frames): median {median:.1f} ms, "
          f"p95 {p95:.1f} ms; {1000.0 / median:.0f} frames/s per core")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "correlation": dict(result.correlation),
                    "yaw_error": result.yaw_error,
                    "yaw_worst": result.yaw_worst,
                    "pitch_error": result.pitch_error,
                    "pitch_worst": result.pitch_worst,
                    "cpu_ms_median": median,
                    "cpu_ms_p95": p95,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    main()
