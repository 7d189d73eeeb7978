"""Photo avatar benchmark (issue 14): CPU per generation from a 1024x1024 photo, and a cache hit.

Usage::

    .venv/bin/python bench/photo_avatar.py [--runs 5] [--size 1024] [--texture-size 512]
        [--no-worker] [--video 6] [--view-bias] [--depth] [--no-bundle] [--json FILE]

The photo is scikit-image's ``astronaut`` scaled to ``--size`` pixels a side (Lanczos) and
encoded as PNG, as a UE would send it. One :class:`PhotoGenerator` in this process:

* **cold**: the first generation, which also builds the template head, loads the anchors and
  creates the MediaPipe landmarker (once per process);
* **warm**: ``--runs`` more generations of the same photo under other names (the cache is
  keyed by photos and name, so each one is built anew): ``time.process_time`` of the process
  (all threads: TFLite's too), median and worst, with the CPU of each step (decode +
  landmarks, fit, shape and rig, colours, container) from the progress reports;
* **cache hit**: the same photo and name again: wall time (``perf_counter``) of ``generate``;
* **worker process** (the MF's mode, ``processes=1``): wall time of the first generation
  (spawning the worker, importing, building the template and landmarker there) and of the
  next ones (the request and the container cross the pipe), median of ``--runs``.

* **from video** (``--video N``, 0: skipped): ``generate`` with ``N`` I420 pictures of the
  same photo (``avatar generate`` with ``source: video``; the session keeps at most six):
  CPU of choosing the picture (``video_pictures``: I420 -> RGB and tracking each) and of the
  whole generation, median of ``--runs``.

``--view-bias``: the generator's ``view_bias`` option (the tracker's error per view angle);
``--no-bundle``: its ``bundle`` option off (the weak-perspective fit, before the bundle
adjustment);
``--depth``: each photo sent with a depth image (16-bit PNG of the photo's size: a tilted
plane with 2 mm of noise, 10 % holes), which the generator decodes and checks, and with
``use_depth`` on reads under the landmarks.

``--texture-size`` is the face texture's side in texels (0: vertex colours only, as before
the texture); ``--no-worker`` skips the worker process measure.

Goal: <= 2 s of CPU per 1024x1024 photo. Prints figures only (no assertions). Run it alone,
under the bench lock (``flock /tmp/avatar-bench.lock ...``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
from PIL import Image

from avatar_mf.stages.base_avatar import AvatarRequest
from avatar_mf.stages.base_avatar.photo.generator import PhotoGenerator
from avatar_mf.stages.base_avatar.photo.texture import TEXTURE_SIZE


def photo_png(size: int) -> bytes:
    import skimage.data
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(skimage.data.astronaut()))
    out = io.BytesIO()
    image.resize((size, size), Image.Resampling.LANCZOS).save(out, format="PNG")
    return out.getvalue()


def depth_png(size: int) -> bytes:
    """A 16-bit greyscale PNG of ``size`` square: a plane 600-700 mm away, 2 mm of noise,
    one pixel in ten unknown (0)."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:size, :size]
    depth = 600.0 + 100.0 * xs / size + rng.normal(0.0, 2.0, (size, size))
    depth[rng.uniform(size=(size, size)) < 0.1] = 0.0
    out = io.BytesIO()
    Image.fromarray(np.round(depth).astype(np.uint16)).save(out, format="PNG")
    return out.getvalue()


def timed(generator: PhotoGenerator, request: AvatarRequest) -> tuple[float, dict[str, float]]:
    """CPU seconds of one generation and of each step (from one report to the next)."""
    marks: list[tuple[str, float]] = []

    def progress(percent: int, stage: str) -> None:
        del percent
        marks.append((stage, time.process_time()))

    start = time.process_time()
    generator.generate(request, progress)
    end = time.process_time()
    steps: dict[str, float] = {}
    previous = start
    names = [stage for stage, _ in marks]
    for (_, at), name in zip(marks, ["decode", *names[:-1]], strict=True):
        steps[name] = at - previous
        previous = at
    return end - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--texture-size", type=int, default=TEXTURE_SIZE)
    parser.add_argument("--no-worker", action="store_true")
    parser.add_argument("--video", type=int, default=6)
    parser.add_argument("--view-bias", action="store_true")
    parser.add_argument("--no-bundle", action="store_true")
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    photo = photo_png(args.size)
    depths: tuple[bytes | None, ...] = (depth_png(args.size),) if args.depth else ()
    # In this process: its CPU is what we measure.
    generator = PhotoGenerator(processes=0, texture_size=args.texture_size,
                               view_bias=args.view_bias, use_depth=args.depth,
                               bundle=not args.no_bundle)

    def request(name: str) -> AvatarRequest:
        return AvatarRequest("bench", "sip:bench@example.com", name=name, images=(photo,),
                             depths=depths)

    cold, _ = timed(generator, request("cold"))
    warm = []
    steps: dict[str, list[float]] = {}
    for run in range(args.runs):
        seconds, parts = timed(generator, request(f"warm-{run}"))
        warm.append(seconds)
        for name, value in parts.items():
            steps.setdefault(name, []).append(value)
    hits = []
    for _ in range(20):
        start = time.perf_counter()
        generator.generate(request("cold"))
        hits.append(time.perf_counter() - start)
    choose_cpu, video_cpu = [float("nan")], [float("nan")]
    if args.video:
        from avatar_mf.codecs.video import Picture as I420
        from avatar_mf.face.pictures import Picture

        rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
        decoded = I420.from_rgb(np.ascontiguousarray(rgb))
        video = tuple(
            Picture("i420", decoded.data, decoded.width, decoded.height)
            for _ in range(args.video)
        )
        choose_cpu, video_cpu = [], []
        for run in range(args.runs):
            start = time.process_time()
            generator.video_pictures(video)
            choose_cpu.append(time.process_time() - start)
            start = time.process_time()
            generator.generate(AvatarRequest("bench", "sip:bench@example.com",
                                             name=f"video-{run}", video=video))
            video_cpu.append(time.process_time() - start)
    generator.close()
    worker_first, worker_walls = float("nan"), [float("nan")]
    if not args.no_worker:
        worker = PhotoGenerator(texture_size=args.texture_size)
        try:
            start = time.perf_counter()
            worker.generate(request("worker-first"))
            worker_first = time.perf_counter() - start
            worker_walls = []
            for run in range(args.runs):
                start = time.perf_counter()
                worker.generate(request(f"worker-{run}"))
                worker_walls.append(time.perf_counter() - start)
        finally:
            worker.close()
    result = {
        "photo": f"astronaut {args.size}x{args.size} PNG, {len(photo)} bytes",
        "texture_size": args.texture_size,
        "view_bias": args.view_bias,
        "bundle": not args.no_bundle,
        "depth": f"{len(depths[0])} bytes" if depths else "none",
        "cold_cpu_s": round(cold, 3),
        "warm_cpu_s_median": round(statistics.median(warm), 3),
        "warm_cpu_s_worst": round(max(warm), 3),
        "steps_cpu_s_median": {k: round(statistics.median(v), 3) for k, v in steps.items()},
        "cache_hit_us_median": round(statistics.median(hits) * 1e6, 1),
        "cache_hits": generator.cache_hits,
        "video_pictures": args.video,
        "video_choose_cpu_s_median": round(statistics.median(choose_cpu), 3),
        "video_generate_cpu_s_median": round(statistics.median(video_cpu), 3),
        "worker_first_wall_s": round(worker_first, 3),
        "worker_wall_s_median": round(statistics.median(worker_walls), 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
