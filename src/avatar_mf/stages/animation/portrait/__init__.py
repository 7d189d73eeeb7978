"""2D avatars (TR 26.813 section 3.4): one photo of a person, animated by a mesh warp that the
blendshapes and the head joint drive, drawn by the product's renderer
(:mod:`avatar_mf.render`, flat meshes), or by an operator's ONNX model.

* :mod:`.landmarks` -- named parts of MediaPipe's 478-point face mesh, its canonical triangles;
* :mod:`.shapes` -- the 52 ARKit blendshapes as 2D displacement fields of the landmarks (the
  product head's definitions in inter-ocular units);
* :mod:`.model` -- :func:`~.model.fit_portrait`: photo -> :class:`~.model.PortraitModel`
  (crop, landmarks, the mesh over the whole picture, the fields);
* :mod:`.rig` -- :class:`~.rig.PortraitRig`: a pose -> the warped mesh (the 3D rig's interface);
* :mod:`.avatar` -- :class:`~.avatar.PortraitAvatar` and :func:`~.avatar.load_portrait`, what
  the network-animation stage loads for a base avatar that is a picture;
* :mod:`.onnx_model` -- an operator's ONNX 2D model and its contract.

The face is found with :mod:`avatar_mf.face` (its error codes: ``no-face``, ...).
"""

from avatar_mf.stages.animation.portrait.avatar import PortraitAvatar, is_picture, load_portrait
from avatar_mf.stages.animation.portrait.model import PortraitModel, build_model, fit_portrait
from avatar_mf.stages.animation.portrait.rig import PortraitRig

__all__ = [
    "PortraitAvatar",
    "PortraitModel",
    "PortraitRig",
    "build_model",
    "fit_portrait",
    "is_picture",
    "load_portrait",
]
