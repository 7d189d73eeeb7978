"""From tracked photos to one face shape in the template's frame.

A :class:`~avatar_mf.face.result.FaceResult` gives 478 landmarks in image fractions with a
depth in the scale of x; :func:`landmark_shape` turns them into a 3D point set in pixels in
the model's conventions (Y up, the face looking along +Z at the camera): a weak-perspective
reconstruction, right up to a similarity. :func:`similarity` (Umeyama 1991, least-squares
rotation, uniform scale and translation) aligns each photo's shape to the template's anchors
(:mod:`.anchors`). With several photos, the most frontal one gives the face across its
picture and the others its depth (:func:`fit_photos`): what a picture measures is kept, what
the tracker only guesses (depth) is taken from the photos that see it from the side.
:class:`PhotoFit` keeps each photo's alignment for reprojection and colouring. The generator's
default is :mod:`.bundle` (perspective cameras, one face fitted to every photo's landmarks),
which starts from :func:`fit_photos` of the most frontal photo; this module's fusion of
several photos is what ``bundle = false`` gives.

With :class:`ViewBias` (the tracker's error on the template measured at view angles yaw
-45..45 and pitch -15..15 degrees, ``tools/photo_template_anchors.py``), each photo's whole
landmark shape is corrected by the error interpolated at its view, found from its fitted
weak-perspective pose, and the photos are fused per landmark by least squares: across its
line of sight each photo counts by how squarely it sees the landmark, along it (the tracker's
guess) by :data:`DEPTH_WEIGHT` of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import LANDMARK_COUNT, FaceResult
from avatar_mf.stages.base_avatar.photo.camera import PinholePose

F64 = NDArray[np.float64]

#: MediaPipe face mesh indices of the inner lip contour (they meet when the mouth is shut, so
#: they do not shape the neutral face) and the ten iris points (the gaze, not the shape).
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312,
              311, 310, 415)
IRISES = tuple(range(468, 478))
#: The weight of the most frontal photo's own depth guess against the other photos' view of
#: it (each weighted up to 1 by how squarely it sees a landmark and how far across it looks).
PRIMARY_DEPTH_WEIGHT = 0.25
#: The same for a depth the photo's depth image measured.
MEASURED_DEPTH_WEIGHT = 4.0
#: Eye corners (outer, inner) of the face's right and left eye: the inter-ocular distance is
#: the distance between the two eyes' corner midpoints.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
#: With :class:`ViewBias`: how much a photo's depth counts against what it measures across its
#: line of sight.
DEPTH_WEIGHT = 0.05
#: A measured depth (depth image) more than this many robust deviations off the tracker's
#: depth mapped onto it is not used; fewer than MIN_MEASURED landmarks measured: none is.
DEPTH_OUTLIER = 3.0
MIN_MEASURED = 50
MIN_DEPTH_CORRELATION = 0.8
#: Depth images are used in photos that see the face within this many degrees of straight on.
FRONTAL_DEPTH = 10.0


def shape_landmarks() -> NDArray[np.int64]:
    """Indices of the landmarks that shape the face (all but inner lips and irises)."""
    keep = np.ones(LANDMARK_COUNT, dtype=bool)
    keep[list(INNER_LIPS + IRISES)] = False
    return np.flatnonzero(keep)


@dataclass(frozen=True, slots=True)
class Similarity:
    """``x -> scale * rotation @ x + translation`` (column vectors)."""

    scale: float
    rotation: F64
    translation: F64

    def apply(self, points: F64) -> F64:
        out: F64 = self.scale * points @ self.rotation.T + self.translation
        return out

    def inverse(self, points: F64) -> F64:
        out: F64 = (points - self.translation) @ self.rotation / self.scale
        return out


def similarity(source: F64, target: F64, weights: F64 | None = None) -> Similarity:
    """The least-squares similarity taking ``source`` (K, 3) onto ``target`` (Umeyama)."""
    w = np.ones(len(source)) if weights is None else weights
    w = w / w.sum()
    mu_s, mu_t = w @ source, w @ target
    s, t = source - mu_s, target - mu_t
    covariance = (t * w[:, None]).T @ s
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    variance = float((w * (s * s).sum(axis=1)).sum())
    scale = float(np.trace(np.diag(d) @ sign)) / variance
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)


def landmark_shape(face: FaceResult) -> F64:
    """(478, 3) the landmarks in pixels, x right, y up, z towards the camera."""
    lm = face.landmarks.astype(np.float64)
    return np.stack(
        [lm[:, 0] * face.width, -lm[:, 1] * face.height, -lm[:, 2] * face.width], axis=1
    )


def measured_shape(face: FaceResult, millimetres: F64) -> tuple[F64, NDArray[np.bool_]]:
    """:func:`landmark_shape` with the depth of each landmark a depth image measured
    (``millimetres`` (478,), NaN unknown) instead of the tracker's guess, and which ones.

    Scale-free: the measured depths are mapped into the tracker's depth units by the affine
    map that fits the tracker's depths best over the shape landmarks with a measure (least
    squares, then again without those more than :data:`DEPTH_OUTLIER` robust deviations off:
    a landmark the face hides reads the depth of what hides it). With fewer than
    :data:`MIN_MEASURED` measured, or measures that do not follow the tracker's depths (a
    correlation under :data:`MIN_DEPTH_CORRELATION`: a flat, shifted or foreign depth image),
    the shape is the tracker's."""
    shape = landmark_shape(face)
    known = np.zeros(len(shape), dtype=bool)
    known[shape_landmarks()] = True
    known &= np.isfinite(millimetres)
    for _ in range(2):
        if known.sum() < MIN_MEASURED:
            return shape, np.zeros(len(shape), dtype=bool)
        design = np.stack([-millimetres[known], np.ones(int(known.sum()))], axis=1)
        (slope, offset), *_ = np.linalg.lstsq(design, shape[known, 2], rcond=None)
        residual = np.full(len(shape), np.inf)
        residual[known] = np.abs(design @ np.array([slope, offset]) - shape[known, 2])
        spread = 1.4826 * float(np.median(residual[known])) + 1e-9
        known &= residual <= DEPTH_OUTLIER * spread
    if known.sum() < MIN_MEASURED:
        return shape, np.zeros(len(shape), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(-millimetres[known], shape[known, 2])[0, 1]
    if not correlation >= MIN_DEPTH_CORRELATION:  # NaN for a flat depth image
        return shape, np.zeros(len(shape), dtype=bool)
    shape[known, 2] = -slope * millimetres[known] + offset
    return shape, known


def pixels(face: FaceResult) -> F64:
    """(478, 2) the landmarks in pixels, x right, y down."""
    out: F64 = face.landmarks[:, :2].astype(np.float64) * np.array([face.width, face.height])
    return out


def interocular(points: F64) -> float:
    """Distance between the eyes' corner midpoints of (478, 2|3) landmarks."""
    right = points[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left = points[list(LEFT_EYE_CORNERS)].mean(axis=0)
    return float(np.linalg.norm(left - right))


def view_angles(axis: F64) -> tuple[float, float]:
    """Yaw and pitch (degrees) of a unit view axis (towards the camera, template frame)."""
    yaw = float(np.degrees(np.arctan2(axis[0], axis[2])))
    pitch = float(np.degrees(np.arcsin(np.clip(axis[1], -1.0, 1.0))))
    return yaw, pitch


@dataclass(frozen=True, slots=True, eq=False)
class ViewBias:
    """The tracker's error on the template head, per view angle.

    ``yaws`` (Y,) and ``pitches`` (P,): the head's true turn in the renders (degrees,
    ascending); ``fitted`` (P, Y, 2): the yaw and pitch (:func:`view_angles`) of the
    weak-perspective pose :func:`photo_pose` finds for each render; ``bias`` (P, Y, 478, 3):
    the anchors minus the render's landmarks so posed (metres, template frame). The same
    class holds the error in the picture (:func:`.bundle.image_bias`): ``fitted`` the
    perspective camera's angles, ``bias`` (P, Y, 478, 2) the landmarks minus the anchors'
    projections, in inter-ocular distances."""

    yaws: F64
    pitches: F64
    fitted: F64
    bias: F64

    def _bilinear(self, grid: F64, yaw: float, pitch: float) -> F64:
        yaws, pitches = self.yaws, self.pitches
        yaw = float(np.clip(yaw, yaws[0], yaws[-1]))
        pitch = float(np.clip(pitch, pitches[0], pitches[-1]))
        j = min(int(np.searchsorted(yaws, yaw, side="right")) - 1, len(yaws) - 2)
        i = min(int(np.searchsorted(pitches, pitch, side="right")) - 1, len(pitches) - 2)
        ty = (yaw - yaws[j]) / (yaws[j + 1] - yaws[j])
        tp = (pitch - pitches[i]) / (pitches[i + 1] - pitches[i])
        low = (1 - ty) * grid[i, j] + ty * grid[i, j + 1]
        high = (1 - ty) * grid[i + 1, j] + ty * grid[i + 1, j + 1]
        out: F64 = (1 - tp) * low + tp * high
        return out

    def true_angles(self, fitted_yaw: float, fitted_pitch: float) -> tuple[float, float]:
        """The render angles whose fitted pose is (``fitted_yaw``, ``fitted_pitch``): the
        bilinear map of :attr:`fitted` inverted by Newton steps (clamped to the grid)."""
        observed = np.array([fitted_yaw, fitted_pitch])
        low = np.array([self.yaws[0], self.pitches[0]])
        high = np.array([self.yaws[-1], self.pitches[-1]])
        slope = np.polyfit(self.yaws, self.fitted[len(self.pitches) // 2, :, 0], 1)[0]
        x = np.clip(np.array([fitted_yaw / slope, fitted_pitch]), low, high)
        for _ in range(8):
            f = self._bilinear(self.fitted, float(x[0]), float(x[1]))
            # Differences towards the grid's inside (the map is flat beyond its edges).
            step = np.where(x + 0.5 <= high, 0.5, -0.5)
            jacobian = np.stack([
                self._bilinear(self.fitted, float(x[0] + step[0]), float(x[1])) - f,
                self._bilinear(self.fitted, float(x[0]), float(x[1] + step[1])) - f,
            ], axis=1) / step[None, :]
            x = np.clip(x + np.linalg.lstsq(jacobian, observed - f, rcond=None)[0], low, high)
        return float(x[0]), float(x[1])

    def at(self, axis: F64) -> F64:
        """(478, 3) the tracker's bias on the template seen along ``axis`` (a photo's view)."""
        return self._bilinear(self.bias, *self.true_angles(*view_angles(axis)))


def photo_pose(shape: F64, anchors: F64, anchor_normals: F64) -> Similarity:
    """The similarity from a photo's landmark shape to the anchors: over the shape landmarks,
    then again weighted by how squarely the photo sees each (a turned face's far side is the
    tracker's guess)."""
    keep = shape_landmarks()
    pose = similarity(shape[keep], anchors[keep])
    seen = np.clip(anchor_normals[keep] @ pose.rotation[:, 2], 0.0, 1.0) ** 2 + 1e-3
    return similarity(shape[keep], anchors[keep], seen)


@dataclass(frozen=True, slots=True, eq=False)
class PhotoFit:
    """The face shape of one or more photos in the template's frame.

    ``target`` (478, 3): the landmarks' fitted positions (metres, the template's frame);
    ``poses``: per photo, the similarity from its landmark shape to the template's frame, or
    its perspective camera (:mod:`.bundle`); both map the template's frame to the picture
    (``inverse``) and give the view axis (``rotation[:, 2]``) and metres per pixel (``scale``);
    ``faces``: the tracked photos.
    """

    target: F64
    poses: tuple[Similarity | PinholePose, ...]
    faces: tuple[FaceResult, ...]


def fit_photos(
    faces: Sequence[FaceResult],
    anchors: F64,
    anchor_normals: F64,
    tracked: F64,
    views: ViewBias | None = None,
    depths: Sequence[F64 | None] = (),
) -> PhotoFit:
    """Align every photo's landmarks to the template's ``anchors`` (478, 3) and fuse them.

    Each photo's landmarks are first moved along that photo's line of sight by the tracker's
    depth bias on the template (``anchors - tracked``, its component along the view axis):
    the depth the tracker guesses is corrected, what it measured in the picture (x, y) is
    kept. The photo that sees the face most squarely gives the shape across its picture;
    along its line of sight, where it only has the tracker's guess, the other photos' view of
    each landmark is averaged in, weighted by how squarely each sees it and by how far across
    its line of sight it looks (a profile photo measures the front photo's depth).

    ``depths``: per photo, the millimetres its depth image reads under each landmark (NaN
    unknown) or None: in a photo that sees the face within :data:`FRONTAL_DEPTH` degrees of
    straight on, the measured landmarks take the measure (:func:`measured_shape`) and no
    depth bias; other photos' depths are not used (on renders they made the fit worse). With
    ``views``, see :func:`fit_views` instead (depth images are not used there)."""
    if views is not None:
        return fit_views(faces, anchors, anchor_normals, views)
    shapes = _shapes(faces, depths, anchors, anchor_normals)
    poses = []
    aligned = []
    axes = []
    for shape, known in shapes:
        pose = photo_pose(shape, anchors, anchor_normals)
        poses.append(pose)
        axis = pose.rotation[:, 2]  # towards the photo's camera, in the template's frame
        depth_bias = np.where(known, 0.0, (anchors - tracked) @ axis)
        aligned.append(pose.apply(shape) + depth_bias[:, None] * axis[None, :])
        axes.append(axis)
    primary = int(np.argmax([axis[2] for axis in axes]))  # the most frontal photo
    target = aligned[primary].copy()
    axis = axes[primary]
    depth = np.zeros(len(anchors))
    weight = np.where(shapes[primary][1], MEASURED_DEPTH_WEIGHT, PRIMARY_DEPTH_WEIGHT)
    for index, (shape, other) in enumerate(zip(aligned, axes, strict=True)):
        if index == primary:
            continue
        unknown = ~shapes[index][1]
        across = float(np.linalg.norm(np.cross(axis, other)))  # sin of the angle between
        seen = np.clip(anchor_normals @ other, 0.0, 1.0) ** 2
        w = seen * across
        # The tracker's bias turns with the face: a side photo takes all of it (only its
        # depth along the front photo's line of sight is used).
        along = np.where(unknown, (anchors - tracked) @ other, 0.0)
        corrected = shape - along[:, None] * other + (anchors - tracked)
        depth += w * ((corrected - aligned[primary]) @ axis)
        weight += w
    target += (depth / weight)[:, None] * axis[None, :]
    return PhotoFit(target, tuple(poses), tuple(faces))


def _shapes(
    faces: Sequence[FaceResult], depths: Sequence[F64 | None], anchors: F64,
    anchor_normals: F64,
) -> list[tuple[F64, NDArray[np.bool_]]]:
    """Per photo its landmark shape and which landmarks' depths were measured (only in a
    photo within :data:`FRONTAL_DEPTH` degrees of straight on)."""
    out = []
    for k, face in enumerate(faces):
        shape = landmark_shape(face)
        millimetres = depths[k] if k < len(depths) else None
        if millimetres is not None:
            axis = photo_pose(shape, anchors, anchor_normals).rotation[:, 2]
            if np.degrees(np.arccos(np.clip(axis[2], -1.0, 1.0))) <= FRONTAL_DEPTH:
                out.append(measured_shape(face, millimetres))
                continue
        out.append((shape, np.zeros(LANDMARK_COUNT, dtype=bool)))
    return out


def fit_views(
    faces: Sequence[FaceResult], anchors: F64, anchor_normals: F64, views: ViewBias
) -> PhotoFit:
    """Each photo's posed landmarks plus the tracker's bias at its view (:class:`ViewBias`),
    fused per landmark by weighted least squares: photo ``i`` with view axis ``a`` and
    squareness ``s`` (the anchor normal's cosine to ``a``, squared) adds the information
    ``s (I - a a^T + DEPTH_WEIGHT a a^T)``."""
    poses = []
    information = np.zeros((len(anchors), 3, 3))
    weighted = np.zeros((len(anchors), 3))
    for face in faces:
        shape = landmark_shape(face)
        pose = photo_pose(shape, anchors, anchor_normals)
        poses.append(pose)
        axis = pose.rotation[:, 2]
        corrected = pose.apply(shape) + views.at(axis)
        squareness = np.clip(anchor_normals @ axis, 0.0, 1.0) ** 2 + 1e-3
        along = np.outer(axis, axis)
        per_view = np.eye(3) - along + DEPTH_WEIGHT * along
        w = squareness[:, None, None] * per_view[None]
        information += w
        weighted += np.einsum("kij,kj->ki", w, corrected)
    target = np.linalg.solve(information, weighted[..., None])[..., 0].astype(np.float64)
    return PhotoFit(target, tuple(poses), tuple(faces))
