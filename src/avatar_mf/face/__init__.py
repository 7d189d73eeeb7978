"""Face tracking for network-made animation (TR 26.813 D.3.3, camera source) and photo
avatars (D.1.1): a picture in, one face's landmarks, ARKit blendshapes and head pose out.

* :mod:`.result` -- :class:`FaceResult`, :class:`HeadPose`, the error codes
  (:class:`FaceError`, :class:`FaceTrackingError`);
* :mod:`.tracker` -- the :class:`FaceTracker` interface every model sits behind;
* :mod:`.model` -- the packaged MediaPipe ``face_landmarker.task``, pinned by sha256, no
  download;
* :mod:`.mediapipe_tracker` -- the default tracker (MediaPipe Tasks FaceLandmarker);
* :mod:`.onnx_tracker` -- an operator's ONNX model (its contract in the module);
* :mod:`.quality` -- face size, darkness and blur checks (pure numpy).

Nothing here knows about sessions or ARF units (``stages/camera`` turns results into units).
The heavy packages (mediapipe, onnxruntime) are imported when a tracker is built.
"""

from avatar_mf.face.model import MODEL_SHA256, FaceModelUnavailable, load_model
from avatar_mf.face.quality import PHOTO_LIMITS, QualityLimits
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError, HeadPose
from avatar_mf.face.tracker import FaceTracker

__all__ = [
    "MODEL_SHA256",
    "PHOTO_LIMITS",
    "FaceError",
    "FaceModelUnavailable",
    "FaceResult",
    "FaceTracker",
    "FaceTrackingError",
    "HeadPose",
    "QualityLimits",
    "load_model",
]
