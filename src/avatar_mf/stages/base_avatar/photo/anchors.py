"""Where MediaPipe's 478 face landmarks lie on the template head, and the template's maps.

An anchor is a point on the template's surface: a triangle and barycentric coordinates, so it
follows the mesh however it is deformed (:func:`anchor_points`). They were found once by
rendering the template from the front with the product's renderer, tracking the picture with
the packaged face landmarker and casting each landmark's pixel back onto the mesh
(:func:`locate_anchors`, run by ``tools/photo_template_anchors.py``), and are stored in
``anchors.npz`` beside this module together with the template's part, weld and mirror maps
(:mod:`.template`). The same tool renders the template at view angles (yaw -45..45 by 15
degrees, pitch -15, 0, 15) and stores the tracker's error at each
(:class:`~.alignment.ViewBias`, :func:`measure_views`). Nothing is rendered or tracked at
generation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.model import AvatarModel
from avatar_mf.stages.base_avatar.photo.alignment import ViewBias
from avatar_mf.stages.base_avatar.photo.template import TemplateParts, analyse

ANCHORS_PATH = Path(__file__).with_name("anchors.npz")

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Anchors:
    """``triangles`` (478,) index into the template's triangles, ``barycentric`` (478, 3);
    ``tracked`` (478, 3): the landmarks the tracker gave for the template's own frontal
    render, aligned onto the anchors (metres, the template's frame) -- what the tracker
    "sees" of the template, including its depth bias (:func:`..alignment.fit_photos`)."""

    triangles: I64
    barycentric: F64
    parts: TemplateParts
    tracked: F64
    #: The tracker's blendshape scores for the template's own neutral face, by ARKit name
    #: (its bias on this head: a photo's expression is measured against it).
    baseline: dict[str, float]
    #: The tracker's error at view angles (None: not measured).
    views: ViewBias | None = None
    #: The same in the picture (2D, in inter-ocular distances) through a perspective camera
    #: (:func:`.bundle.image_bias`; None: not measured).
    image_views: ViewBias | None = None

#: The view angles :func:`measure_views` renders the template at (degrees).
VIEW_YAWS = (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)
VIEW_PITCHES = (-15.0, 0.0, 15.0)


def anchor_points(positions: F64, mesh_triangles: I64, anchors: Anchors) -> F64:
    """(478, 3) surface points of the anchors on a mesh with the template's topology."""
    corners = positions[mesh_triangles[anchors.triangles]]  # (478, 3, 3)
    out: F64 = np.einsum("kc,kcd->kd", anchors.barycentric, corners)
    return out


def load_anchors(path: Path = ANCHORS_PATH) -> Anchors:
    with np.load(path) as data:
        views = None
        if "view_bias" in data:
            views = ViewBias(
                yaws=data["view_yaws"].astype(np.float64),
                pitches=data["view_pitches"].astype(np.float64),
                fitted=data["view_fitted"].astype(np.float64),
                bias=data["view_bias"].astype(np.float64),
            )
        image_views = None
        if "image_bias" in data:
            image_views = ViewBias(
                yaws=data["view_yaws"].astype(np.float64),
                pitches=data["view_pitches"].astype(np.float64),
                fitted=data["image_fitted"].astype(np.float64),
                bias=data["image_bias"].astype(np.float64),
            )
        return Anchors(
            triangles=data["triangles"].astype(np.int64),
            barycentric=data["barycentric"].astype(np.float64),
            parts=TemplateParts(
                part=data["part"].astype(np.int8),
                weld=data["weld"].astype(np.int64),
                mirror=data["mirror"].astype(np.int64),
            ),
            tracked=data["tracked"].astype(np.float64),
            baseline={
                str(name): float(value)
                for name, value in zip(data["baseline_names"], data["baseline"], strict=True)
            },
            views=views,
            image_views=image_views,
        )


def save_anchors(path: Path, anchors: Anchors) -> None:
    arrays: dict[str, NDArray[np.generic]] = {}
    if anchors.views is not None:
        arrays = {
            "view_yaws": anchors.views.yaws.astype(np.float32),
            "view_pitches": anchors.views.pitches.astype(np.float32),
            "view_fitted": anchors.views.fitted.astype(np.float32),
            "view_bias": anchors.views.bias.astype(np.float32),
        }
    if anchors.image_views is not None:
        arrays.update(
            image_fitted=anchors.image_views.fitted.astype(np.float32),
            image_bias=anchors.image_views.bias.astype(np.float32),
        )
    arrays.update(
        triangles=anchors.triangles.astype(np.int32),
        barycentric=anchors.barycentric.astype(np.float32),
        part=anchors.parts.part,
        weld=anchors.parts.weld.astype(np.int32),
        mirror=anchors.parts.mirror.astype(np.int32),
        tracked=anchors.tracked.astype(np.float32),
        baseline_names=np.array(sorted(anchors.baseline)),
        baseline=np.array([anchors.baseline[k] for k in sorted(anchors.baseline)], np.float32),
    )
    np.savez_compressed(path, allow_pickle=False, **arrays)


def cast_onto_mesh(
    pixels: F64, positions: F64, triangles: I64, view: F64, projection: F64, size: int,
    snap: float = 6.0,
) -> tuple[I64, F64]:
    """For each pixel (K, 2) (x right, y down, in pixels of a ``size`` square picture), the
    nearest triangle under it and the barycentric coordinates of the point seen there; a pixel
    no triangle covers snaps to the nearest triangle within ``snap`` pixels."""
    homogeneous = np.hstack([positions, np.ones((len(positions), 1))])
    eye = homogeneous @ view.T
    clip = eye @ projection.T
    ndc = clip[:, :2] / clip[:, 3:4]
    screen = (ndc + 1.0) / 2.0 * size  # projection flips y: rows top first
    depth = eye[:, 2]  # larger: nearer the camera
    a, b, c = (screen[triangles[:, k]] for k in range(3))
    found = np.full(len(pixels), -1, dtype=np.int64)
    bary = np.zeros((len(pixels), 3))
    v0, v1 = b - a, c - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    # Only triangles facing the camera: through a gap (between a lid and its eyeball) a ray
    # would meet the inside of the skull.
    corners = positions[triangles]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    camera = -view[:3, :3].T @ view[:3, 3]
    facing = np.einsum("td,td->t", normal, camera - corners.mean(axis=1)) > 0
    usable = (np.abs(det) > 1e-12) & facing
    for k, pixel in enumerate(pixels):
        v2 = pixel - a
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
            v = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
        inside = usable & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
        if not inside.any():
            # A pixel in a gap (between a lid and its eyeball, in the mouth slit): the
            # triangles within ``snap`` pixels, the point clamped onto each.
            near = usable & (np.linalg.norm((a + b + c) / 3 - pixel, axis=1) < snap)
            if not near.any():
                continue
            inside = near
        candidates = np.flatnonzero(inside)
        w = np.stack([1 - u[candidates] - v[candidates], u[candidates], v[candidates]], 1)
        w = np.clip(w, 0.0, 1.0)
        w /= w.sum(axis=1, keepdims=True)
        z = (w * depth[triangles[candidates]]).sum(axis=1)
        best = int(np.argmax(z))
        found[k] = candidates[best]
        bary[k] = w[best]
    return found, bary


def locate_anchors(size: int = 1024) -> tuple[Anchors, AvatarModel]:
    """Render the template from the front, track it, cast the landmarks onto it (needs EGL
    and the face model; a few seconds)."""
    from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
    from avatar_mf.render.camera import portrait
    from avatar_mf.render.scene import Framing
    from avatar_mf.stages.base_avatar.photo.alignment import (
        landmark_shape,
        shape_landmarks,
        similarity,
    )
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    renderer = GroundTruthRenderer(width=size, height=size)
    picture = renderer.render(Shot())
    tracker = MediapipeFaceTracker(max_faces=1)
    try:
        face = tracker.track(picture)
    finally:
        tracker.close()
    from avatar_mf.avatar.generate import generate_default_head

    model = generate_default_head()
    positions = model.positions.astype(np.float64)
    triangles = model.triangles.astype(np.int64)
    bounds = np.stack([positions.min(axis=0), positions.max(axis=0)])
    view, projection = portrait(bounds, Framing(), 1.0)
    pixels = face.landmarks[:, :2].astype(np.float64) * size
    found, bary = cast_onto_mesh(pixels, positions, triangles, view, projection, size)
    if (found < 0).any():
        raise RuntimeError(f"{int((found < 0).sum())} landmarks fall off the template")
    points = anchor_points(positions, triangles, Anchors(found, bary, analyse(model), bary, {}))
    shape = landmark_shape(face)
    keep = shape_landmarks()
    tracked = similarity(shape[keep], points[keep]).apply(shape)
    baseline = {name: float(value) for name, value in face.blendshapes.items()}
    return Anchors(found, bary, analyse(model), tracked, baseline), model


def measure_views(
    anchors: Anchors,
    size: int = 1024,
    yaws: tuple[float, ...] = VIEW_YAWS,
    pitches: tuple[float, ...] = VIEW_PITCHES,
) -> tuple[ViewBias, ViewBias]:
    """Render the template at ``yaws`` x ``pitches`` (degrees), track each render,
    pose its landmarks as a photo's are (:func:`~.alignment.photo_pose`) and keep the anchors
    minus them: the tracker's error at that view, calibrated on the template only (needs EGL
    and the face model; about 20 seconds). Second: the same in the picture through the
    render's perspective camera (:func:`.bundle.view_camera`, :func:`.bundle.image_bias`)."""
    from avatar_mf.avatar.generate import generate_default_head
    from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
    from avatar_mf.render.scene import Framing
    from avatar_mf.stages.base_avatar.photo.alignment import (
        landmark_shape,
        photo_pose,
        view_angles,
    )
    from avatar_mf.stages.base_avatar.photo.bundle import image_bias, view_camera
    from avatar_mf.stages.base_avatar.photo.transfer import vertex_normals
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    model = generate_default_head()
    positions = model.positions.astype(np.float64)
    triangles = model.triangles.astype(np.int64)
    points = anchor_points(positions, triangles, anchors)
    normals = anchor_points(
        vertex_normals(positions, triangles, anchors.parts.weld), triangles, anchors
    )
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    renderer = GroundTruthRenderer(width=size, height=size)
    tracker = MediapipeFaceTracker(max_faces=1)
    fitted = np.zeros((len(pitches), len(yaws), 2))
    bias = np.zeros((len(pitches), len(yaws), len(points), 3))
    image_fitted = np.zeros_like(fitted)
    image = np.zeros((len(pitches), len(yaws), len(points), 2))
    focal = size / 2 / np.tan(np.radians(Framing().fov) / 2)  # square renders
    try:
        for i, pitch in enumerate(pitches):
            for j, yaw in enumerate(yaws):
                face = tracker.track(renderer.render(Shot(yaw=yaw, pitch=pitch)))
                shape = landmark_shape(face)
                pose = photo_pose(shape, points, normals)
                fitted[i, j] = view_angles(pose.rotation[:, 2])
                bias[i, j] = points - pose.apply(shape)
                camera = view_camera(face, points, normals, float(focal))
                image_fitted[i, j] = view_angles(camera.rotation[:, 2])
                image[i, j] = image_bias(face, camera, points)
    finally:
        tracker.close()
    angles = np.array(yaws), np.array(pitches)
    return ViewBias(*angles, fitted, bias), ViewBias(*angles, image_fitted, image)
