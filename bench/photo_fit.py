"""Photo avatar shape quality (issue 14): how close the fitted head comes to the true one, from
one photo, several, and with depth images.

Usage::

    .venv/bin/python bench/photo_fit.py [--seeds 0,2,3,4] [--side 30] [--size 1024]
        [--view-bias] [--depth] [--texture] [--no-bundle] [--exif-focal MM]
        [--picture docs/img/avatar-several-photos.png]

For each seed, the product's head ``generate_default_head(seed)`` (seed 0 is the template
the photo generator fits and was calibrated on; other seeds vary its proportions) is rendered
with the product's renderer and built from:

* ``front``: one photo at yaw 0; ``front+side``: yaw 0 and ``--side``; ``three``: ``--side``,
  0 and ``-side``;
* with ``--depth`` also ``yaw20`` (yaw 20) and ``yaw-15p8`` (yaw -15, pitch 8), each built
  without depth, with the render's exact z-buffer depth (millimetres, 16-bit) and with a
  sensor's (2 mm noise, 10 % of the pixels unknown in 4x4 blocks), the generator's
  ``use_depth`` on.

The **shape error** is the mean distance between the fitted head's landmark anchors and the
true head's, after a least-squares similarity, over the shape landmarks, as a percentage of
the true inter-ocular distance, also per axis (x right, y up, z towards the camera: mean
absolute difference). ``reproj`` is each photo's landmark reprojection mean (the generator's
``reprojection``). ``--view-bias``: the generator's ``view_bias`` option (the tracker's error
per view angle). ``--no-bundle``: the weak-perspective fusion (the generator's ``bundle``
off; before issue 14's several-photo fit). Each render goes to the generator as a PNG with
EXIF ``FocalLengthIn35mmFilm`` (``--exif-focal``, 79 mm: the renderer's 22 degrees of vertical
field of view on a square picture; 0: no EXIF, the generator's default is used).

``--texture``: instead, the face's likeness from the side: the true head and the avatar built
from the front photo, then from the three, each rendered at yaw 35 (camera orbit, the same
renderer and light), the avatar's render warped onto the truth's by the 2D similarity of
their tracked landmarks, compared inside the truth's face outline (the landmarks' hull
pulled in 10 %): SSIM of the grey levels and RGB correlation (the measure of
``tests/stages/base_avatar/photo/likeness.py``, at three-quarter view).

``--picture PNG``: instead, for the first seed, a picture of where the fitted landmarks lie
against the true ones (their differences drawn five times longer), from the side (depth
across) and from the front: the weak-perspective fusion of the three photos, then the bundle
adjustment of the front photo alone and of the three.

Prints figures only; a few seconds per seed and configuration (run it under the bench lock:
``flock /tmp/avatar-bench.lock ...``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests' depth maps

from avatar_mf.avatar.generate import generate_default_head  # noqa: E402
from avatar_mf.stages.base_avatar.photo.alignment import (  # noqa: E402
    interocular,
    shape_landmarks,
    similarity,
)
from avatar_mf.stages.base_avatar.photo.anchors import anchor_points  # noqa: E402
from avatar_mf.stages.base_avatar.photo.generator import PhotoAvatar, PhotoGenerator  # noqa: E402
from avatar_mf.stages.base_avatar.photo.images import encode_png, photo_focal  # noqa: E402

#: The renders' focal length, 35 mm equivalent: 22 degrees vertical on a square picture.
RENDER_FOCAL_35MM = 79.0


def shape_error(avatar: PhotoAvatar, truth: np.ndarray, generator: PhotoGenerator
                ) -> tuple[float, np.ndarray]:
    template, anchors = generator.template()
    triangles = template.triangles.astype(np.int64)
    n = template.vertex_count
    fitted = anchor_points(avatar.model.positions[:n].astype(np.float64), triangles, anchors)
    keep = shape_landmarks()
    difference = similarity(fitted[keep], truth[keep]).apply(fitted[keep]) - truth[keep]
    scale = interocular(truth)
    return (float(np.linalg.norm(difference, axis=1).mean() / scale),
            np.abs(difference).mean(axis=0) / scale)


def _render(model: object, yaw: float, size: int = 768) -> np.ndarray:
    from avatar_mf.render.gl import GlRenderer
    from avatar_mf.render.scene import Framing, RenderSettings
    from avatar_mf.stages.animation.avatar_rig import from_model
    from avatar_mf.stages.animation.posing import Pose

    avatar = from_model(model)  # type: ignore[arg-type]
    gl = GlRenderer()
    try:
        gl.add_mesh("m", avatar.mesh)
        neutral = avatar.rig.neutral()
        positions, normals = avatar.rig.pose(Pose(neutral.weights, neutral.locals))
        settings = RenderSettings(width=size, height=size, samples=4, framing=Framing(yaw=yaw))
        return np.ascontiguousarray(gl.render("m", positions, normals, settings)[:, :, :3])
    finally:
        gl.release()


def side_likeness(generator: PhotoGenerator, truth: np.ndarray, avatar_render: np.ndarray
                  ) -> tuple[float, float]:
    """SSIM and RGB correlation of ``avatar_render`` warped onto ``truth`` (see --texture)."""
    from tests.stages.base_avatar.photo.likeness import face_likeness

    from avatar_mf.stages.base_avatar.photo.alignment import pixels

    (truth_face,), (render_face,) = generator.track([truth]), generator.track([avatar_render])
    found = face_likeness(truth, pixels(truth_face), avatar_render, pixels(render_face))
    return found.ssim, found.correlation


def texture(seeds: list[int], side: float, size: int) -> None:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    generator = PhotoGenerator(processes=0)
    totals: dict[str, list[tuple[float, float]]] = {}
    for seed in seeds:
        truth = _render(generate_default_head(seed=seed), 35.0)
        renderer = GroundTruthRenderer(width=size, height=size, seed=seed)
        cells = []
        for name, yaws in (("front", [0.0]), ("three", [side, 0.0, -side])):
            avatar = generator.build([renderer.render(Shot(yaw=yaw)) for yaw in yaws])
            ssim, correlation = side_likeness(generator, truth, _render(avatar.model, 35.0))
            totals.setdefault(name, []).append((ssim, correlation))
            cells.append(f"{name} SSIM {ssim:.3f} correlation {correlation:.3f}")
        print(f"seed {seed} at yaw 35: " + " | ".join(cells), flush=True)
    for name, rows in totals.items():
        ssim, correlation = np.mean(rows, axis=0)
        print(f"mean {name}: SSIM {ssim:.3f} correlation {correlation:.3f}")
    generator.close()


def fitted_anchors(avatar: PhotoAvatar, truth: np.ndarray, generator: PhotoGenerator
                   ) -> np.ndarray:
    """The avatar's landmark anchors moved onto ``truth`` by the similarity over the shape
    landmarks (as :func:`shape_error` compares them)."""
    template, anchors = generator.template()
    n = template.vertex_count
    fitted = anchor_points(avatar.model.positions[:n].astype(np.float64),
                           template.triangles.astype(np.int64), anchors)
    keep = shape_landmarks()
    out: np.ndarray = similarity(fitted[keep], truth[keep]).apply(fitted)
    return out


def picture(path: str, seed: int, side: float, size: int, focal: float) -> None:
    from PIL import Image, ImageDraw

    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    renderer = GroundTruthRenderer(width=size, height=size, seed=seed)
    shots = {yaw: renderer.render(Shot(yaw=yaw)) for yaw in (side, 0.0, -side)}
    focals = [photo_focal(encode_png(shots[0.0], focal or None))]
    fused = PhotoGenerator(processes=0, texture_size=0, bundle=False)
    bundled = PhotoGenerator(processes=0, texture_size=0)
    template, anchors = bundled.template()
    truth = anchor_points(generate_default_head(seed=seed).positions.astype(np.float64),
                          template.triangles.astype(np.int64), anchors)
    three = [shots[side], shots[0.0], shots[-side]]
    panels = [
        ("weak-perspective fusion, three photos", fused.build(three), fused),
        ("bundle adjustment, front photo", bundled.build([shots[0.0]], focals=focals), bundled),
        ("bundle adjustment, three photos", bundled.build(three, focals=focals * 3), bundled),
    ]
    keep = shape_landmarks()
    width, height, margin = 420, 440, 30
    canvas = Image.new("RGB", (width * len(panels), 2 * height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for column, (title, avatar, generator) in enumerate(panels):
        fitted = fitted_anchors(avatar, truth, generator)
        error, axes = shape_error(avatar, truth, generator)
        for row, (horizontal, label) in enumerate(((2, "from the side"), (0, "from the front"))):
            left, top = column * width, row * height
            points = truth[keep][:, [horizontal, 1]]
            low, high = points.min(axis=0), points.max(axis=0)
            ratio = min((width - 2 * margin) / (high[0] - low[0]),
                        (height - 3 * margin) / (high[1] - low[1]))

            def at(p: np.ndarray, left: int = left, top: int = top, low: np.ndarray = low,
                   high: np.ndarray = high, ratio: float = ratio) -> tuple[float, float]:
                return (left + margin + (p[0] - low[0]) * ratio,
                        top + 2 * margin + (high[1] - p[1]) * ratio)

            for k in keep:
                true = truth[k, [horizontal, 1]]
                moved = true + 5.0 * (fitted[k, [horizontal, 1]] - true)
                draw.line([at(true), at(moved)], fill=(220, 40, 40), width=2)
                x, y = at(true)
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(90, 90, 90))
            axis = "z" if horizontal == 2 else "x"
            value = axes[2] if horizontal == 2 else axes[0]
            draw.text((left + 8, top + 6), f"{title}, {label}", fill=(0, 0, 0))
            draw.text((left + 8, top + 20), f"shape error {100 * error:.2f} %, {axis} "
                      f"{100 * value:.2f} %, y {100 * axes[1]:.2f} % (inter-ocular)",
                      fill=(0, 0, 0))
        draw.line([(column * width, 0), (column * width, 2 * height)], fill=(200, 200, 200))
    canvas.save(path)
    print(f"{path}: seed {seed}, side {side:g} degrees")
    fused.close()
    bundled.close()


def main() -> None:
    from tests.stages.base_avatar.photo.depthmaps import depth_map, sensor

    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,2,3,4")
    parser.add_argument("--side", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--view-bias", action="store_true")
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--texture", action="store_true")
    parser.add_argument("--no-bundle", action="store_true")
    parser.add_argument("--exif-focal", type=float, default=RENDER_FOCAL_35MM)
    parser.add_argument("--picture", default="")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.picture:
        picture(args.picture, seeds[0], args.side, args.size, args.exif_focal)
        return
    if args.texture:
        texture(seeds, args.side, args.size)
        return
    generator = PhotoGenerator(processes=0, texture_size=0, view_bias=args.view_bias,
                               use_depth=args.depth, bundle=not args.no_bundle)
    template, anchors = generator.template()
    triangles = template.triangles.astype(np.int64)
    side = args.side
    configurations = {
        "front": [Shot()],
        "front+side": [Shot(), Shot(yaw=side)],
        "three": [Shot(yaw=side), Shot(), Shot(yaw=-side)],
    }
    if args.depth:
        configurations["yaw20"] = [Shot(yaw=20.0)]
        configurations["yaw-15p8"] = [Shot(yaw=-15.0, pitch=8.0)]
    totals: dict[str, list[np.ndarray]] = {}
    print(f"view_bias {args.view_bias}, bundle {not args.no_bundle}, EXIF focal "
          f"{args.exif_focal:g} mm, side {side:g} degrees, {args.size} px; shape error % "
          "of the inter-ocular distance: mean (x/y/z)")
    for seed in seeds:
        renderer = GroundTruthRenderer(width=args.size, height=args.size, seed=seed)
        truth_model = generate_default_head(seed=seed)
        truth = anchor_points(truth_model.positions.astype(np.float64), triangles, anchors)
        for name, shots in configurations.items():
            pictures = [renderer.render(shot) for shot in shots]
            # The focal length as a camera's photo carries it, read back as the generator does.
            focals = [photo_focal(encode_png(p, args.exif_focal or None)) for p in pictures]
            variants: list[tuple[str, list[np.ndarray] | None]] = [("", None)]
            if args.depth:
                exact = [depth_map(renderer, shot) for shot in shots]
                noisy = [sensor(d, noise=2.0, holes=0.1, seed=k) for k, d in enumerate(exact)]
                variants = [("no depth", None), ("exact depth", exact), ("sensor depth", noisy)]
            cells = []
            for label, depths in variants:
                avatar = generator.build(pictures, depths=depths, focals=focals)
                error, axes = shape_error(avatar, truth, generator)
                totals.setdefault(f"{name} {label}".strip(), []).append(
                    np.array([error, *axes]))
                reproj = " ".join(f"{100 * mean:.2f}" for mean, _ in avatar.reprojection)
                cells.append(f"{label + ' ' if label else ''}{100 * error:.2f} "
                             f"({100 * axes[0]:.2f}/{100 * axes[1]:.2f}/{100 * axes[2]:.2f}) "
                             f"reproj {reproj}")
            print(f"seed {seed} {name:10s} " + " | ".join(cells), flush=True)
    for name, rows in totals.items():
        mean = np.mean(rows, axis=0) * 100
        print(f"mean {name:24s} {mean[0]:.2f} ({mean[1]:.2f}/{mean[2]:.2f}/{mean[3]:.2f})")
    generator.close()


if __name__ == "__main__":
    main()
