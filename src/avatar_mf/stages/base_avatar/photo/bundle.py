"""Several photos, one face: each photo's perspective camera and one set of 3D landmarks that
all of them see (bundle adjustment).

Hartley and Zisserman, *Multiple View Geometry* (2nd ed.), 18.1 and A6.3 (sparse
Levenberg-Marquardt, resection-intersection); Triggs et al., *Bundle Adjustment -- A Modern
Synthesis* (2000). The unknowns are the face's landmarks ``X`` (478 x 3, the template's frame)
and each photo's pinhole camera (rotation and position, 6 numbers; its focal length is known,
:mod:`.camera`). What is minimised:

* each photo's 2D landmarks against ``X`` projected through its camera, in units of the
  photo's inter-ocular distance, each landmark weighted by how squarely the photo sees it
  (the cosine between the template's normal there and the view axis); the face's outline
  (:data:`FACE_OVAL`) slides round the head as it turns, so in every photo but the most
  frontal it counts :data:`CONTOUR_WEIGHT` of that;
* plus :data:`PRIOR_WEIGHT` times ``X``'s distance (in inter-ocular distances) from a prior:
  the most frontal photo's landmarks aligned and depth-corrected as one photo's are
  (:func:`.alignment.fit_photos`). With one photo it gives the depth (a photo does not
  measure it); with several, the side photos do, and the prior only fixes the gauge (where
  the face is, how large).

Alternated: each camera by Gauss-Newton against ``X``, then each landmark by Gauss-Newton
against all cameras (3 x 3 systems, one per landmark), :data:`ITERATIONS` times.

**The tracker turns its landmarks with the face**: on renders of the template (where the
true 3D landmarks are the anchors) at yaw 30 its 2D landmarks lie 6 % of the inter-ocular
distance off the anchors seen through the best camera, at 15 degrees 2.4 %, straight on 0.03 %
(docs/avatars.md). Left in, several photos disagree by that much and their triangulated depth
is worse than one photo's guess. So with several photos each photo's landmarks are first
corrected by that error (:class:`.alignment.ViewBias` with 2D entries: measured by
``tools/photo_template_anchors.py`` on the template at yaw -45..45, pitch -15..15, looked up
at the photo's camera's angles against the template, :func:`view_camera`). One photo alone is
not corrected: its landmarks are what the fitted head reprojects onto.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceResult
from avatar_mf.stages.base_avatar.photo.alignment import (
    PhotoFit,
    ViewBias,
    fit_photos,
    interocular,
    landmark_shape,
    photo_pose,
    shape_landmarks,
)
from avatar_mf.stages.base_avatar.photo.camera import PinholePose, focal_pixels

F64 = NDArray[np.float64]

#: MediaPipe face mesh indices of the face's outline (FACEMESH_FACE_OVAL).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
#: The outline's weight in the photos other than the most frontal one.
CONTOUR_WEIGHT = 0.1
#: The prior's weight against one landmark's reprojection (both in inter-ocular distances).
PRIOR_WEIGHT = 0.01
ITERATIONS = 10
#: Gauss-Newton steps for each camera per iteration, and for a camera against the template.
POSE_STEPS = 2
VIEW_STEPS = 6


def _skew(v: F64) -> F64:
    """(..., 3, 3) the cross-product matrices of (..., 3) vectors."""
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def _rotation(w: F64) -> F64:
    """Rodrigues: the rotation by ``|w|`` radians about ``w``."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        out: F64 = np.eye(3) + _skew(w)
        return out
    k = _skew(w / angle)
    out = np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k
    return out


def _projection_jacobian(pose: PinholePose, points: F64) -> tuple[F64, F64, F64]:
    """The points' projections (K, 2), camera-frame coordinates (K, 3) and the projection's
    derivative by the camera-frame coordinates (K, 2, 3)."""
    q = pose.camera_frame(points)
    depth = -q[:, 2]
    projected = pose.principal + pose.focal * q[:, :2] / depth[:, None]
    jacobian = np.zeros((len(points), 2, 3))
    jacobian[:, 0, 0] = jacobian[:, 1, 1] = pose.focal / depth
    jacobian[:, :, 2] = pose.focal * q[:, :2] / (depth**2)[:, None]
    return projected, q, jacobian


def initial_camera(face: FaceResult, anchors: F64, anchor_normals: F64, focal: float
                   ) -> PinholePose:
    """The camera that sees ``anchors`` as the weak-perspective pose
    (:func:`.alignment.photo_pose`) does near the face: same rotation, the face's distance
    ``focal`` times its scale."""
    shape = landmark_shape(face)
    pose = photo_pose(shape, anchors, anchor_normals)
    principal = np.array([face.width / 2.0, -face.height / 2.0])
    depth = float(shape[shape_landmarks(), 2].mean())
    offset = np.array([*(-principal * pose.scale), -pose.scale * (focal + depth)])
    centre = pose.translation - pose.rotation @ offset
    return PinholePose(pose.rotation, centre, focal, principal, pose.scale)


def refine_camera(pose: PinholePose, points: F64, observed: F64, weights: F64, steps: int
                  ) -> PinholePose:
    """Gauss-Newton steps on the camera's rotation and position so ``points`` (K, 3) project
    onto ``observed`` (K, 2), each weighted by ``weights`` (K,)."""
    rotation, centre = pose.rotation, pose.centre
    root = np.sqrt(weights)[:, None, None]
    for _ in range(steps):
        current = PinholePose(rotation, centre, pose.focal, pose.principal, pose.scale)
        projected, q, d_q = _projection_jacobian(current, points)
        residual = projected - observed
        # d q / d(rotation increment w) = [q]x (rotation R (I + [w]x)); d q / d(shift) = -I.
        jacobian = np.concatenate([d_q @ _skew(q), -d_q], axis=2)
        step = np.linalg.lstsq(
            (jacobian * root).reshape(-1, 6), -(residual * root[:, :, 0]).reshape(-1),
            rcond=None,
        )[0]
        centre = centre + rotation @ step[3:]
        rotation = rotation @ _rotation(step[:3])
    current = PinholePose(rotation, centre, pose.focal, pose.principal, pose.scale)
    distance = float(-current.camera_frame(points)[:, 2].mean())
    return PinholePose(rotation, centre, pose.focal, pose.principal, distance / pose.focal)


def view_camera(face: FaceResult, anchors: F64, anchor_normals: F64, focal: float
                ) -> PinholePose:
    """The photo's camera against the template's ``anchors`` (not the fitted face): the
    angles :class:`.alignment.ViewBias` is looked up at (the tool measures it so)."""
    pose = initial_camera(face, anchors, anchor_normals, focal)
    keep = shape_landmarks()
    seen = np.clip(anchor_normals[keep] @ pose.rotation[:, 2], 0.0, 1.0) ** 2 + 1e-3
    observed = landmark_shape(face)[:, :2]
    return refine_camera(pose, anchors[keep], observed[keep], seen, VIEW_STEPS)


def image_bias(face: FaceResult, pose: PinholePose, anchors: F64) -> F64:
    """(478, 2) the photo's landmarks minus the ``anchors`` seen through ``pose``, in units of
    its inter-ocular distance (what the tool stores per view)."""
    observed = landmark_shape(face)[:, :2]
    projected, _, _ = _projection_jacobian(pose, anchors)
    out: F64 = (observed - projected) / interocular(observed)
    return out


def fit_bundle(
    faces: Sequence[FaceResult],
    anchors: F64,
    anchor_normals: F64,
    tracked: F64,
    focals: Sequence[float | None] = (),
    views: ViewBias | None = None,
) -> PhotoFit:
    """One face from all ``faces`` by bundle adjustment (module docstring). ``anchors``,
    ``anchor_normals``, ``tracked``: as :func:`.alignment.fit_photos`; ``focals``: per photo
    its 35 mm equivalent focal length or None (:mod:`.camera`); ``views``: the tracker's 2D
    error per view (None: not corrected)."""
    keep = shape_landmarks()
    cameras = []
    observed = []
    for k, face in enumerate(faces):
        focal = focal_pixels(focals[k] if k < len(focals) else None, face.width, face.height)
        camera = view_camera(face, anchors, anchor_normals, focal)
        shape = landmark_shape(face)[:, :2]
        if views is not None and len(faces) > 1:
            bias = views.at(camera.rotation[:, 2])
            shape = shape - bias * interocular(shape)
        cameras.append(camera)
        observed.append(shape)
    primary = int(np.argmax([camera.rotation[2, 2] for camera in cameras]))
    prior = fit_photos([faces[primary]], anchors, anchor_normals, tracked).target
    weights = []
    for k, camera in enumerate(cameras):
        w = np.zeros(len(anchors))
        w[keep] = np.clip(anchor_normals[keep] @ camera.rotation[:, 2], 0.0, 1.0)
        if k != primary:
            w[list(FACE_OVAL)] *= CONTOUR_WEIGHT
        weights.append(w)
    points, cameras = bundle_adjust(observed, cameras, weights, prior)
    return PhotoFit(points, tuple(cameras), tuple(faces))


def bundle_adjust(
    observed: Sequence[F64],
    cameras: Sequence[PinholePose],
    weights: Sequence[F64],
    prior: F64,
    iterations: int = ITERATIONS,
) -> tuple[F64, list[PinholePose]]:
    """The points (K, 3) and cameras minimising the weighted reprojection error of
    ``observed`` (per photo (K, 2), pixels, y up) plus :data:`PRIOR_WEIGHT` times the squared
    distance to ``prior`` (K, 3), all in inter-ocular distances."""
    points = prior.copy()
    cameras = list(cameras)
    scales = [interocular(shape) for shape in observed]
    prior_scale = interocular(prior)
    for _ in range(iterations):
        for k, camera in enumerate(cameras):
            used = weights[k] > 0
            cameras[k] = refine_camera(
                camera, points[used], observed[k][used], weights[k][used], POSE_STEPS
            )
        hessian = np.zeros((len(points), 3, 3)) + PRIOR_WEIGHT / prior_scale**2 * np.eye(3)
        gradient = PRIOR_WEIGHT / prior_scale**2 * (points - prior)
        for camera, shape, w, scale in zip(cameras, observed, weights, scales, strict=True):
            projected, _, d_q = _projection_jacobian(camera, points)
            residual = (projected - shape) / scale
            jacobian = d_q @ camera.rotation.T / scale  # by the point: d q / d X = R^T
            hessian += w[:, None, None] * np.einsum("kai,kaj->kij", jacobian, jacobian)
            gradient += w[:, None] * np.einsum("kai,ka->ki", jacobian, residual)
        points = points - np.linalg.solve(hessian, gradient[..., None])[..., 0]
    return points, cameras
