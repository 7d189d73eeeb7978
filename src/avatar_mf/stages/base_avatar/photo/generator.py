"""The ``photo`` base-avatar generator: the caller's face on the product's head (TR 26.813
D.1.1-D.1.2, network-centric generation from images).

For one or more photos (JPEG/PNG; front, left, right -- one is enough):

1. **landmarks**: each photo decoded (:mod:`.images`) and tracked by the packaged MediaPipe
   face landmarker with the photo limits (:data:`avatar_mf.face.PHOTO_LIMITS`): 478 landmarks
   or a coded refusal (:mod:`.errors`);
2. **fit**: every photo's camera and one set of 3D landmarks that all the photos see
   (:mod:`.bundle`, perspective, the focal length from the EXIF; from the most frontal photo's
   landmarks aligned to the template's anchors, :mod:`.alignment`), the photo's expression
   read and put on the template (:mod:`.expression`);
3. **shape**: the template head (showing that expression) deformed so its anchors land on the
   fitted landmarks, the same map giving the neutral face (per-axis
   scale + RBF, :mod:`.deformation`), the rig carried along (:mod:`.transfer`: eyeballs,
   mouth interior, joints, inverse bind matrices, the 52 blendshapes and their normals);
4. **colour**: the photos unwrapped onto the fitted vertices, the unseen side mirrored, the
   rest of the head in the photo's skin colour (:mod:`.colouring`), and the face as a texture
   unwrapped from the photos, faded into those colours at its edge (:mod:`.texture`);
5. **container**: the ARF container (``write_arf``: the GLB checks run on the way).

CPU-bound (about a second for one photo): the session's generation stage calls it from the
stage executor, and it runs in a worker process of its own (:mod:`.worker`). The last
:data:`CACHE_SIZE` results are kept by the photos' SHA-256, so a second request for the same
photos (and name) is answered without any work.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar import write_arf
from avatar_mf.avatar.model import AvatarModel
from avatar_mf.face.pictures import Picture, to_rgb
from avatar_mf.face.quality import PHOTO_LIMITS, QualityLimits
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError
from avatar_mf.face.tracker import FaceTracker
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.base_avatar import AvatarRequest, GeneratedAvatar, Progress
from avatar_mf.stages.base_avatar.generation import GenerationStage
from avatar_mf.stages.base_avatar.photo.alignment import (
    PhotoFit,
    fit_photos,
    interocular,
    pixels,
    shape_landmarks,
)
from avatar_mf.stages.base_avatar.photo.anchors import Anchors, anchor_points, load_anchors
from avatar_mf.stages.base_avatar.photo.bundle import fit_bundle
from avatar_mf.stages.base_avatar.photo.colouring import colour_head, face_nearness
from avatar_mf.stages.base_avatar.photo.deformation import fit_deformation
from avatar_mf.stages.base_avatar.photo.depth import BAD_DEPTH, decode_depth, landmark_depths
from avatar_mf.stages.base_avatar.photo.errors import PhotoAvatarError
from avatar_mf.stages.base_avatar.photo.expression import photo_expression
from avatar_mf.stages.base_avatar.photo.images import MAX_PHOTOS, decode_photo, photo_focal
from avatar_mf.stages.base_avatar.photo.template import SKIN
from avatar_mf.stages.base_avatar.photo.texture import TEXTURE_SIZE, TexturedHead, texture_head
from avatar_mf.stages.base_avatar.photo.transfer import (
    deform_model,
    map_vertices,
    vertex_normals,
)
from avatar_mf.stages.base_avatar.photo.video import Candidate, choose, sharpness, turn
from avatar_mf.stages.base_avatar.photo.worker import GenerationProcess

CONTENT_TYPE = "application/vnd.arf+zip"
#: A landmark counts in a photo's reprojection error when the fitted surface faces the
#: photo's camera at least this much (cosine).
MIN_FACING = 0.2
CACHE_SIZE = 16
#: Most video pictures in one request (the session keeps six at most).
MAX_VIDEO_PICTURES = 8

F64 = NDArray[np.float64]


def _no_progress(percent: int, step: str) -> None:
    del percent, step


def photos_key(
    images: Sequence[bytes], name: str, depths: Sequence[bytes | None] = ()
) -> str:
    """SHA-256 over the photos (length-prefixed, in order), the avatar's name and, when any
    photo has one, the depth images (each length-prefixed, or a marker for none)."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(len(image).to_bytes(8, "big"))
        digest.update(image)
    digest.update(name.encode("utf-8"))
    if any(depth is not None for depth in depths):
        digest.update(b"\0depths")
        for depth in depths:
            digest.update(b"\0none" if depth is None else len(depth).to_bytes(8, "big") + depth)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class PhotoAvatar:
    """A generated head with what the fit left: per photo, the landmark reprojection error
    (mean and worst over the shape landmarks, of the head showing the photo's expression) as
    a fraction of the inter-ocular distance."""

    model: AvatarModel
    fit: PhotoFit
    reprojection: tuple[tuple[float, float], ...]
    #: The photo's expression (ARKit weights) taken out of the neutral face.
    expression: dict[str, float] = field(default_factory=dict)
    #: (N, 3) the fitted head showing that expression (what the photo was fitted with).
    shown: F64 | None = field(default=None, repr=False)
    #: The face texture and its mesh data (None: vertex colours only). The model's first N
    #: vertices are the template's; boundary copies follow (``texture.source``).
    texture: TexturedHead | None = field(default=None, repr=False)


def _template() -> tuple[AvatarModel, Anchors]:
    from avatar_mf.avatar.generate import generate_default_head

    return generate_default_head(), load_anchors()


def _default_tracker(limits: QualityLimits) -> FaceTracker:
    from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker

    return MediapipeFaceTracker(max_faces=2, limits=limits)


class PhotoGenerator:
    """:class:`~avatar_mf.stages.base_avatar.BaseAvatarGenerator` from photos.

    ``processes`` 1 (the default, the MF's): :meth:`generate` runs in a worker process
    (:mod:`.worker`); 0: in the calling thread (the worker itself, tools, tests of the
    steps). :meth:`build` always runs in the calling thread. Thread-safe (a lock around the
    tracker and the cache). The cache lives in the parent. ``neutralise``: take the photo's
    expression out of the neutral face (:mod:`.expression`). ``texture_size``: the face
    texture's side in texels (0: vertex colours only, as before the texture). ``view_bias``:
    correct every photo's landmarks by the tracker's error on the template at its view angle
    and fuse the photos per landmark (:func:`.alignment.fit_views`): a closer shape, but the
    landmarks no longer reproject exactly (docs/avatars.md). ``use_depth``: a frontal photo's
    depth image replaces the tracker's depth guess (:func:`.alignment.measured_shape`); off
    by default, as on renders of heads the template is not it made one photo's fit worse
    (docs/avatars.md): depth images are then checked (``bad-depth``) and not used.
    ``bundle`` (the default): every photo seen through a perspective camera (its EXIF focal
    length) and one face fitted to all of them by bundle adjustment (:mod:`.bundle`); off,
    or with ``view_bias`` or ``use_depth``, the weak-perspective fusion
    (:func:`.alignment.fit_photos`)."""

    def __init__(
        self,
        *,
        tracker: Callable[[QualityLimits], FaceTracker] = _default_tracker,
        limits: QualityLimits = PHOTO_LIMITS,
        cache_size: int = CACHE_SIZE,
        processes: int = 1,
        neutralise: bool = True,
        texture_size: int = TEXTURE_SIZE,
        view_bias: bool = False,
        use_depth: bool = False,
        bundle: bool = True,
    ) -> None:
        if processes not in (0, 1):
            raise ValueError(f"processes must be 0 (in this process) or 1, not {processes}")
        self._tracker_factory = tracker
        self._limits = limits
        self._neutralise = neutralise
        self._texture_size = texture_size
        self._view_bias = view_bias
        self._use_depth = use_depth
        self._bundle = bundle
        in_worker = functools.partial(
            PhotoGenerator,
            tracker=tracker,
            limits=limits,
            cache_size=0,
            processes=0,
            neutralise=neutralise,
            texture_size=texture_size,
            view_bias=view_bias,
            use_depth=use_depth,
            bundle=bundle,
        )
        self._process = GenerationProcess(in_worker) if processes else None
        self._tracker: FaceTracker | None = None
        self._template: tuple[AvatarModel, Anchors] | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, GeneratedAvatar] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0

    # --- BaseAvatarGenerator ---------------------------------------------------------------

    def generate(
        self, request: AvatarRequest, progress: Progress = _no_progress
    ) -> GeneratedAvatar:
        if not request.images and not request.video:
            raise PhotoAvatarError(FaceError.UNSUPPORTED_IMAGE, "no photo to build an avatar from")
        if request.depths and len(request.depths) != len(request.images):
            raise PhotoAvatarError(BAD_DEPTH, "one depth entry per photo is needed")
        key = photos_key(
            request.images or [p.data for p in request.video], request.name, request.depths
        )
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                progress(100, "cached")
                return cached
        if self._process is not None:
            result = self._process.generate(request, progress)
        else:
            focals: list[float | None] | None = None
            if request.video:
                pictures = self.video_pictures(request.video)
                depths = None
            else:
                pictures = [decode_photo(data) for data in request.images]
                focals = [photo_focal(data) for data in request.images]
                depths = decode_depths(pictures, request.depths)
            avatar = self.build(pictures, progress, depths, focals)
            progress(90, "container")
            container = write_arf(avatar.model, avatar_id=key[:32], name=request.name)
            result = GeneratedAvatar(
                container=container, content_type=CONTENT_TYPE, name=request.name
            )
            progress(100, "done")
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def close(self) -> None:
        """Stop the worker process and close the tracker (the node's shutdown; the worker
        also stops at interpreter exit)."""
        if self._process is not None:
            self._process.close()
        with self._lock:
            tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()

    def generate_reporting(self, request: AvatarRequest, progress: Progress) -> GeneratedAvatar:
        """:meth:`generate` with progress reports (``ReportingGenerator``)."""
        return self.generate(request, progress)

    def open(self, context: StageContext) -> GenerationStage:
        """This session's generation stage (``avatar:generate`` in a call)."""
        return GenerationStage(self, context)

    # --- the steps ---------------------------------------------------------------------------

    def track(self, pictures: Sequence[NDArray[np.uint8]]) -> list[FaceResult]:
        if len(pictures) > MAX_PHOTOS:
            raise PhotoAvatarError(
                FaceError.UNSUPPORTED_IMAGE, f"at most {MAX_PHOTOS} photos, not {len(pictures)}"
            )
        faces = []
        with self._lock:
            if self._tracker is None:
                self._tracker = self._tracker_factory(self._limits)
            for index, picture in enumerate(pictures):
                try:
                    faces.append(self._tracker.track(picture))
                except FaceTrackingError as exc:
                    raise PhotoAvatarError.from_tracking(exc, index) from exc
        return faces

    def video_pictures(self, video: Sequence[Picture]) -> list[NDArray[np.uint8]]:
        """The RGB pictures to build from, chosen among the call's video pictures
        (:mod:`.video`); the last refusal's code when none shows one usable face."""
        if len(video) > MAX_VIDEO_PICTURES:
            raise PhotoAvatarError(
                FaceError.UNSUPPORTED_IMAGE,
                f"at most {MAX_VIDEO_PICTURES} video pictures, not {len(video)}",
            )
        rgbs: list[NDArray[np.uint8]] = []
        candidates: list[Candidate] = []
        refusal: PhotoAvatarError | None = None
        with self._lock:
            if self._tracker is None:
                self._tracker = self._tracker_factory(self._limits)
            for index, picture in enumerate(video):
                try:
                    rgb = to_rgb(picture)
                    face = self._tracker.track(rgb)
                except FaceTrackingError as exc:
                    refusal = PhotoAvatarError.from_tracking(exc, index)
                    rgbs.append(np.zeros((0, 0, 3), dtype=np.uint8))
                    continue
                rgbs.append(rgb)
                candidates.append(Candidate(index, turn(face), sharpness(rgb, face)))
        chosen = choose(candidates)
        if not chosen:
            assert refusal is not None
            raise refusal
        return [rgbs[i] for i in chosen]

    def template(self) -> tuple[AvatarModel, Anchors]:
        with self._lock:
            if self._template is None:
                self._template = _template()
            return self._template

    def build(
        self,
        pictures: Sequence[NDArray[np.uint8]],
        progress: Progress = _no_progress,
        depths: Sequence[NDArray[np.uint16] | None] | None = None,
        focals: Sequence[float | None] | None = None,
    ) -> PhotoAvatar:
        """The fitted, coloured head for RGB ``pictures`` (no container, no cache);
        ``depths``: per picture, its depth image in millimetres (:mod:`.depth`) or None;
        ``focals``: per picture, its 35 mm equivalent focal length (:func:`.images.photo_focal`)
        or None (:data:`.camera.DEFAULT_FOCAL_35MM`)."""
        progress(5, "landmarks")
        faces = self.track(pictures)
        model, anchors = self.template()
        positions = model.positions.astype(np.float64)
        triangles = model.triangles.astype(np.int64)
        normals = vertex_normals(positions, triangles, anchors.parts.weld)
        source = anchor_points(positions, triangles, anchors)
        anchor_normals = anchor_points(normals, triangles, anchors)
        anchor_normals /= np.linalg.norm(anchor_normals, axis=1, keepdims=True)
        # The template showing the photo's expression is what is fitted (see .expression).
        expression = photo_expression(faces, anchors.baseline) if self._neutralise else {}
        expressed = _expressed(model, positions, expression)
        shown = anchor_points(expressed, triangles, anchors)
        progress(30, "fit")
        measured = [
            None if depth is None else landmark_depths(depth, pixels(face))
            for face, depth in zip(faces, depths or [None] * len(faces), strict=True)
        ]
        tracked = anchors.tracked + (shown - source)
        if self._bundle and not self._view_bias and not self._use_depth:
            fit = fit_bundle(
                faces, shown, anchor_normals, tracked, focals or (), anchors.image_views
            )
        else:
            fit = fit_photos(
                faces,
                shown,
                anchor_normals,
                tracked,
                anchors.views if self._view_bias else None,
                measured if self._use_depth else (),
            )
        keep = shape_landmarks()
        deformation = fit_deformation(shown[keep], fit.target[keep])
        progress(45, "shape")
        fitted = deform_model(model, anchors.parts, deformation, name="photo-avatar")
        progress(75, "texture")
        # Colours and the reprojection check on the fitted head showing the photo's expression
        # (the map of the template showing it: what the photo was fitted with).
        seen = map_vertices(expressed, anchors.parts.part, deformation)
        seen_normals = vertex_normals(seen, triangles, anchors.parts.weld)
        seen_anchors = anchor_points(seen, triangles, anchors)
        colours = colour_head(
            seen,
            seen_normals,
            model.colors.astype(np.float64) if model.colors is not None else
            np.full((model.vertex_count, 3), 0.5),
            seen_anchors,
            anchors.parts,
            fit,
            pictures,
        )
        textured = None
        if self._texture_size:
            textured = texture_head(
                positions,
                face_nearness(positions, source) * (anchors.parts.part == SKIN),
                triangles,
                seen,
                seen_normals,
                colours,
                anchors.parts,
                fit,
                pictures,
                size=self._texture_size,
            )
            coloured = _with_texture(fitted, textured)
        else:
            coloured = _with_colours(fitted, colours.colours)
        anchor_facing = anchor_points(seen_normals, triangles, anchors)
        return PhotoAvatar(
            coloured,
            fit,
            reprojection(seen_anchors, anchor_facing, fit),
            expression,
            seen,
            textured,
        )


def decode_depths(
    pictures: Sequence[NDArray[np.uint8]], depths: Sequence[bytes | None]
) -> list[NDArray[np.uint16] | None] | None:
    """Each photo's depth image decoded and checked against it (:mod:`.depth`); None when no
    photo has one."""
    if not any(depth is not None for depth in depths):
        return None
    return [
        None if data is None else decode_depth(data, (p.shape[1], p.shape[0]), photo=k)
        for k, (p, data) in enumerate(zip(pictures, depths, strict=True))
    ]


def reprojection(
    points: F64, normals: F64, fit: PhotoFit
) -> tuple[tuple[float, float], ...]:
    """Per photo: mean and worst distance between the fitted anchors projected into the photo
    and the tracked landmarks, over the shape landmarks the photo sees (the fitted surface
    facing it: a turned face's far side is the tracker's guess), as a fraction of the
    inter-ocular distance (of the fitted head, in the photo's scale, so a turned face's
    foreshortening does not inflate it)."""
    keep = shape_landmarks()
    out = []
    for pose, face in zip(fit.poses, fit.faces, strict=True):
        seen = keep[normals[keep] @ pose.rotation[:, 2] > MIN_FACING]
        local = pose.inverse(points)
        projected = np.stack([local[:, 0], -local[:, 1]], axis=1)
        tracked = pixels(face)
        scale = interocular(points) / pose.scale
        error = np.linalg.norm(projected[seen] - tracked[seen], axis=1) / scale
        out.append((float(error.mean()), float(error.max())))
    return tuple(out)


def _expressed(model: AvatarModel, positions: F64, weights: dict[str, float]) -> F64:
    out = positions.copy()
    for name, weight in weights.items():
        out += weight * model.target_positions[model.target_index(name)]
    return out


def _with_colours(model: AvatarModel, colours: F64) -> AvatarModel:
    return AvatarModel(
        name=model.name,
        positions=model.positions,
        normals=model.normals,
        triangles=model.triangles,
        joints=model.joints,
        inverse_bind_matrices=model.inverse_bind_matrices,
        skin_joints=model.skin_joints,
        skin_weights=model.skin_weights,
        target_names=model.target_names,
        target_positions=model.target_positions,
        target_normals=model.target_normals,
        colors=colours.astype(np.float32),
    )


def _with_texture(model: AvatarModel, head: TexturedHead) -> AvatarModel:
    """``model`` with its vertices copied as ``head.source`` says, the face texture and its
    UVs."""
    index = head.source
    return AvatarModel(
        name=model.name,
        positions=model.positions[index],
        normals=model.normals[index],
        triangles=head.triangles.astype(np.uint32),
        joints=model.joints,
        inverse_bind_matrices=model.inverse_bind_matrices,
        skin_joints=model.skin_joints[index],
        skin_weights=model.skin_weights[index],
        target_names=model.target_names,
        target_positions=model.target_positions[:, index],
        target_normals=None if model.target_normals is None else model.target_normals[:, index],
        colors=head.colours.astype(np.float32),
        uvs=head.uvs.astype(np.float32),
        texture=head.texture,
    )
