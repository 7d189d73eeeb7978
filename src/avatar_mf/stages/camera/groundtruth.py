"""Pictures of the product's own head at known blendshape weights and head poses.

The camera stage's quality is measured on these (issue 13: per-frame correlation of the
recovered weights with the truth, head angle error): :class:`GroundTruthRenderer` poses the
default head (``avatar_mf.avatar.generate``) with the weights by ARKit name and its head
joint turned by yaw and pitch (the local matrix a JOINT unit would carry,
``stages/animation_data/idle.head_matrices``: the convention of ``avatar_mf.face.result``),
and renders an RGB picture with the product's renderer and its fixed portrait camera
(moderngl on EGL; :class:`~avatar_mf.render.errors.RenderUnavailable` without it).
:func:`random_sequence` draws a seeded sequence of such shots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.render.scene import Framing, RenderSettings
from avatar_mf.stages.animation.avatar_rig import AnimatedAvatar, from_model
from avatar_mf.stages.animation.posing import Pose
from avatar_mf.stages.animation_data.idle import HEAD_JOINT_INDEX, head_matrices

#: The blendshapes the issue measures.
MEASURED = (
    "jawOpen",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "browInnerUp",
    "mouthPucker",
)


@dataclass(frozen=True, slots=True)
class Shot:
    """One ground-truth picture's truth: weights by name, head yaw and pitch in degrees."""

    weights: Mapping[str, float] = field(default_factory=dict)
    yaw: float = 0.0
    pitch: float = 0.0


class GroundTruthRenderer:
    """Renders the default head (``seed``) at known poses; not thread-safe (one GL context)."""

    def __init__(self, *, width: int = 640, height: int = 480, seed: int = 0) -> None:
        from avatar_mf.render.gl import GlRenderer

        self.avatar: AnimatedAvatar = from_model(generate_default_head(seed=seed))
        self._gl = GlRenderer()
        self._gl.add_mesh("head", self.avatar.mesh)
        self.width = width
        self.height = height

    def pose(self, shot: Shot) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The head's vertex positions and normals for ``shot`` (its weights, yaw and pitch)."""
        neutral = self.avatar.rig.neutral()
        weights = neutral.weights.copy()
        for name, value in shot.weights.items():
            weights[ARKIT_INDEX[name]] = value
        locals_ = neutral.locals.copy()
        rest = locals_[HEAD_JOINT_INDEX, :3, 3]
        angles = np.radians([[shot.yaw, shot.pitch, 0.0]])
        turned = head_matrices(angles, (float(rest[0]), float(rest[1]), float(rest[2])))
        locals_[HEAD_JOINT_INDEX] = turned.reshape(4, 4)
        return self.avatar.rig.pose(Pose(weights, locals_))

    def render(self, shot: Shot) -> NDArray[np.uint8]:
        """The (H, W, 3) RGB picture of ``shot``."""
        positions, normals = self.pose(shot)
        settings = RenderSettings(
            width=self.width, height=self.height, samples=4, framing=Framing()
        )
        rgba = self._gl.render("head", positions, normals, settings)
        return np.ascontiguousarray(rgba[:, :, :3])


def random_sequence(count: int, *, seed: int = 0, yaw: float = 25.0, pitch: float = 12.0
                    ) -> list[Shot]:
    """``count`` shots: each measured weight drawn independently (a third of them 0, the rest
    uniform 0..1), yaw uniform in +-``yaw`` and pitch in +-``pitch`` degrees."""
    rng = np.random.default_rng(seed)
    shots = []
    for _ in range(count):
        values = rng.uniform(0.0, 1.0, len(MEASURED))
        values[rng.uniform(0.0, 1.0, len(MEASURED)) < 1 / 3] = 0.0
        weights = {name: float(v) for name, v in zip(MEASURED, values, strict=True)}
        shots.append(
            Shot(weights, float(rng.uniform(-yaw, yaw)), float(rng.uniform(-pitch, pitch)))
        )
    return shots
