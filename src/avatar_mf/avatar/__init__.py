"""The product's base avatar format: GLB model, ARF container, the default procedural head.

Pure functions on bytes and numpy arrays (sans-IO): callers run them in an executor.

* :mod:`~avatar_mf.avatar.model` -- :class:`AvatarModel` (skinned mesh with named blendshapes);
* :mod:`~avatar_mf.avatar.glb` -- :func:`build_glb` / :func:`read_glb` (glTF 2.0 binary);
* :mod:`~avatar_mf.avatar.container` -- :func:`write_arf` / :func:`read_arf` (ARF ZIP container);
* :mod:`~avatar_mf.avatar.generate` -- :func:`generate_default_head` (not imported here: the
  node loads this package at start-up and does not need the mesh generator; import it from
  the submodule);
* :mod:`~avatar_mf.avatar.errors` -- :class:`AvatarFormatError`, the only error readers raise.

Layout, limits and error codes: docs/avatar-format.md.
"""

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.avatar.container import ArfAvatar, ArfDocument, read_arf, write_arf
from avatar_mf.avatar.errors import AvatarFormatError, ErrorCode
from avatar_mf.avatar.glb import build_glb, check_model, read_glb
from avatar_mf.avatar.limits import ArfLimits, GlbLimits
from avatar_mf.avatar.model import (
    DEFAULT_JOINT_NAMES,
    AvatarModel,
    Joint,
)

__all__ = [
    "ARKIT_BLENDSHAPES",
    "DEFAULT_JOINT_NAMES",
    "ArfAvatar",
    "ArfDocument",
    "ArfLimits",
    "AvatarFormatError",
    "AvatarModel",
    "ErrorCode",
    "GlbLimits",
    "Joint",
    "build_glb",
    "check_model",
    "read_arf",
    "read_glb",
    "write_arf",
]
