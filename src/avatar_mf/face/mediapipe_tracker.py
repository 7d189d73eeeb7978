"""The default face tracker: MediaPipe Tasks ``FaceLandmarker`` with the packaged model.

One picture in, 478 landmarks, 51 ARKit blendshapes (MediaPipe's ``_neutral`` category is
dropped; ``tongueOut`` is not produced) and the face transform out. Pictures with a
``timestamp`` go through a VIDEO-mode landmarker, which follows the face from the previous
picture and runs the face detector only when it lost it (~9 ms per 640x480 picture on one
core); pictures without one go through an IMAGE-mode landmarker (detector every time) that
looks for up to ``max_faces`` faces so a still with two faces is answered ``several-faces``.
Both are created on first use. The model bytes come from :func:`avatar_mf.face.model.load_model`
(pinned sha256; no download).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.model import MODEL_SHA256, FaceModelUnavailable, load_model
from avatar_mf.face.quality import QualityLimits, check_face
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError, HeadPose
from avatar_mf.face.tracker import check_picture


class MediapipeFaceTracker:
    """:class:`~avatar_mf.face.tracker.FaceTracker` on MediaPipe (mediapipe 1.2.2, a
    dependency of the package).

    ``max_faces``: faces a still is searched for (2: enough to tell one from several);
    ``limits``: :class:`~avatar_mf.face.quality.QualityLimits` (size only by default; the photo
    avatar passes :data:`~avatar_mf.face.quality.PHOTO_LIMITS`); ``min_confidence``: the
    detector's and the tracker's score thresholds; ``model``: the bundle's bytes (already
    loaded and checked), instead of ``model_path``.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        model_sha256: str | None = MODEL_SHA256,
        max_faces: int = 2,
        limits: QualityLimits | None = None,
        min_confidence: float = 0.5,
        model: bytes | None = None,
    ) -> None:
        if not 1 <= max_faces <= 8:
            raise ValueError(f"max_faces must be 1..8, not {max_faces}")
        if not 0.0 < min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in (0, 1), not {min_confidence}")
        self._model = model if model is not None else load_model(model_path, sha256=model_sha256)
        self.max_faces = max_faces
        self.limits = limits if limits is not None else QualityLimits()
        self.min_confidence = min_confidence
        self._still: Any = None
        self._video: Any = None
        self._last_ms = -1

    # --- FaceTracker ---------------------------------------------------------------------

    def track(self, rgb: NDArray[np.uint8], *, timestamp: float | None = None) -> FaceResult:
        picture = check_picture(rgb)
        mp = _mediapipe()
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=picture)
        if timestamp is None:
            if self._still is None:
                self._still = self._create("IMAGE", self.max_faces)
            found = self._still.detect(image)
        else:
            if self._video is None:
                self._video = self._create("VIDEO", 1)
            # MediaPipe wants strictly increasing integer milliseconds.
            ms = max(int(round(timestamp * 1000.0)), self._last_ms + 1)
            self._last_ms = ms
            found = self._video.detect_for_video(image, ms)
        faces = len(found.face_landmarks)
        if faces == 0:
            raise FaceTrackingError(FaceError.NO_FACE, "no face found in the picture")
        if faces > 1:
            raise FaceTrackingError(
                FaceError.SEVERAL_FACES, f"{faces} faces in the picture; one is needed", faces=faces
            )
        result = _result(found, picture.shape[1], picture.shape[0])
        check_face(picture, result, self.limits)
        return result

    def close(self) -> None:
        for landmarker in (self._still, self._video):
            if landmarker is not None:
                landmarker.close()
        self._still = self._video = None

    # --- internals -----------------------------------------------------------------------

    def _create(self, mode: str, faces: int) -> Any:
        _mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._model),
            running_mode=getattr(vision.RunningMode, mode),
            num_faces=faces,
            min_face_detection_confidence=self.min_confidence,
            min_face_presence_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        return vision.FaceLandmarker.create_from_options(options)


def _mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise FaceModelUnavailable(
            "face tracking needs mediapipe 1.2.2, a dependency of avatar-mf: reinstall the package"
        ) from exc
    return mediapipe


def _result(found: Any, width: int, height: int) -> FaceResult:
    points = found.face_landmarks[0]
    landmarks = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
    blendshapes = {
        c.category_name: min(1.0, max(0.0, float(c.score)))
        for c in (found.face_blendshapes[0] if found.face_blendshapes else ())
        if not c.category_name.startswith("_")
    }
    if found.facial_transformation_matrixes:
        matrix = np.asarray(found.facial_transformation_matrixes[0], dtype=np.float64)
        head = HeadPose.from_rotation(_orthonormal(matrix[:3, :3]), matrix)
    else:  # pragma: no cover - the packaged model always gives it
        head = HeadPose(0.0, 0.0, 0.0)
    if not all(math.isfinite(v) for v in (head.yaw, head.pitch, head.roll)):
        head = HeadPose(0.0, 0.0, 0.0)
    return FaceResult(landmarks, blendshapes, head, width, height)


def _orthonormal(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rotation nearest ``m`` (the transform may carry a scale)."""
    u, _, vt = np.linalg.svd(m)
    r: NDArray[np.float64] = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] = -u[:, -1]
        r = u @ vt
    return r
