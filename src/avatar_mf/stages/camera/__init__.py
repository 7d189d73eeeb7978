"""The camera animation-data stage (TR 26.813 D.3.3, network-centric, video or image source).

* :mod:`.stage` -- :class:`CameraAnimation` (entry point ``camera``) and its per-session stage;
* :mod:`.motion` -- rate limit, smoothing, relax to neutral when the face is lost (sans-IO);
* :mod:`.groundtruth` -- pictures of the product's head at known weights and head poses;
* :mod:`.quality` -- scoring tracked faces against that truth (issue 13's measures).
"""

from avatar_mf.pipeline.frames import ImageInput
from avatar_mf.stages.camera.stage import CameraAnimation, CameraStage

__all__ = ["CameraAnimation", "CameraStage", "ImageInput"]
