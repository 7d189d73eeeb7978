"""Posing a base avatar: morph targets, landmark pulls and linear blend skinning (pure numpy).

What a pose does to the mesh of an :class:`~avatar_mf.avatar.model.AvatarModel` (glTF 2.0
conventions, section 3.7.3 "Skins" and 3.7.2.2 "Morph Targets"), in this order:

1. **Morph targets**: ``p' = p + sum_m w_m dp_m`` and ``n' = normalize(n + sum_m w_m dn_m)``
   for the blendshape weights ``w`` (ARF BLENDSHAPE units; the avatar's blendshape set lists
   the target names in target order, so entry index ``i`` is target ``i``).
2. **Landmark pulls** (when the avatar declares landmark bindings): each bound landmark with a
   target position pulls its vertex there exactly and its neighbours by a Gaussian falloff of
   their rest distance (:class:`LandmarkBinding`). ARF LANDMARK coordinates are model space.
3. **Linear blend skinning**: joint ``j``'s global transform ``G_j = G_parent(j) @ L_j`` from
   the local matrices ``L`` (the rest pose, or ARF JOINT units' local matrices: row-major,
   translation in the last column, i.e. the column-vector convention of glTF), its skin matrix
   ``S_j = G_j @ IBM_j``, and each vertex ``v' = sum_k w_vk S_{j_vk} v`` over its four
   influences. Normals take the blended 3x3 part and are normalised (exact for rotations and
   uniform scale, which is what a face rig uses).

Everything is a pure function of arrays; a :class:`Rig` precomputes what does not change per
frame. Cost for the default head (7,946 vertices, 52 targets, 6 joints): ~1-2 ms per pose on
one core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.model import AvatarModel

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: Weights smaller than this (in magnitude) are skipped when morphing.
_ACTIVE = 1e-6


@dataclass(frozen=True, slots=True)
class LandmarkBinding:
    """Landmark set ``set_id``: landmark ``i`` is vertex ``vertices[i]``; a pull reaches
    vertices around it with weight ``exp(-d^2 / (2 radius^2))`` of their rest distance ``d``
    (cut at 3 radii)."""

    set_id: int
    vertices: tuple[int, ...]
    radius: float = 0.01


@dataclass(frozen=True, slots=True, eq=False)
class Pose:
    """What animation sets on an avatar at one instant.

    ``weights`` (M,) blendshape weights in target order; ``locals`` (J, 4, 4) each joint's
    local transform (column vectors); ``landmarks`` maps a landmark set id to a (K, 3) array of
    target positions in model space, NaN where a landmark has no target (a 2D landmark leaves
    its z NaN: only x and y are pulled).
    """

    weights: F64
    locals: F64
    landmarks: dict[int, F64] = field(default_factory=dict)
    #: How far the landmark pulls go, 0..1 (they fade while the pose relaxes to neutral).
    landmark_strength: float = 1.0


class Rig:
    """The parts of a model a pose moves, precomputed once per avatar."""

    def __init__(
        self, model: AvatarModel, landmarks: tuple[LandmarkBinding, ...] = ()
    ) -> None:
        self.model = model
        self.positions = model.positions.astype(np.float64)
        self.normals = model.normals.astype(np.float64)
        self.targets = model.target_positions.astype(np.float64)
        self.target_normals = (
            None if model.target_normals is None else model.target_normals.astype(np.float64)
        )
        self.parents = tuple(j.parent for j in model.joints)
        self.rest_locals = np.stack([j.local_matrix() for j in model.joints])
        self.inverse_bind = model.inverse_bind_matrices.astype(np.float64)
        self.skin_joints = model.skin_joints.astype(np.intp)
        self.skin_weights = model.skin_weights.astype(np.float64)
        self._landmarks: dict[int, tuple[NDArray[np.intp], F64]] = {}
        for binding in landmarks:
            self._landmarks[binding.set_id] = self._falloff(binding)

    @property
    def target_count(self) -> int:
        return int(self.targets.shape[0])

    @property
    def joint_count(self) -> int:
        return len(self.parents)

    def landmark_count(self, set_id: int) -> int | None:
        """Landmarks in a bound set (None: the avatar binds no such set)."""
        bound = self._landmarks.get(set_id)
        return None if bound is None else len(bound[0])

    def neutral(self) -> Pose:
        """All weights 0, every joint at rest, no landmark pulled."""
        return Pose(np.zeros(self.target_count), self.rest_locals.copy())

    def _falloff(self, binding: LandmarkBinding) -> tuple[NDArray[np.intp], F64]:
        vertices = np.asarray(binding.vertices, dtype=np.intp)
        if vertices.size and (vertices.min() < 0 or vertices.max() >= len(self.positions)):
            raise ValueError(f"landmark set {binding.set_id}: vertex index out of range")
        if not binding.radius > 0:
            raise ValueError(f"landmark set {binding.set_id}: radius must be > 0")
        d2 = ((self.positions[:, None, :] - self.positions[vertices][None, :, :]) ** 2).sum(-1)
        weights = np.exp(-d2 / (2.0 * binding.radius**2))
        weights[d2 > (3.0 * binding.radius) ** 2] = 0.0
        return vertices, weights  # (K,), (N, K)

    def global_matrices(self, locals_: F64) -> F64:
        """(J, 4, 4) global transforms from local ones (joints are listed parents first)."""
        out = np.empty_like(locals_)
        for index, parent in enumerate(self.parents):
            out[index] = locals_[index] if parent is None else out[parent] @ locals_[index]
        return out

    def morph(self, weights: F64) -> tuple[F64, F64]:
        """Positions and (unnormalised) normals after the morph targets."""
        active = np.flatnonzero(np.abs(weights) > _ACTIVE)
        positions = self.positions
        normals = self.normals
        if active.size:
            w = weights[active]
            positions = positions + np.tensordot(w, self.targets[active], axes=1)
            if self.target_normals is not None:
                normals = normals + np.tensordot(w, self.target_normals[active], axes=1)
        return positions, normals

    def pull_landmarks(
        self, positions: F64, landmarks: dict[int, F64], strength: float = 1.0
    ) -> F64:
        """Positions with each bound landmark's vertex pulled to its target (see module)."""
        out = positions
        for set_id, targets in landmarks.items():
            bound = self._landmarks.get(set_id)
            if bound is None:
                continue
            vertices, falloff = bound
            count = min(len(vertices), len(targets))
            delta = targets[:count] - positions[vertices[:count]]
            delta = np.where(np.isnan(delta), 0.0, delta) * strength
            if not delta.any():
                continue
            out = out + falloff[:, :count] @ delta
        return out

    def skin(self, positions: F64, normals: F64, locals_: F64) -> tuple[F64, F64]:
        """Linear blend skinning of morphed positions and normals by the joints' locals."""
        skins = self.global_matrices(locals_) @ self.inverse_bind  # (J, 4, 4)
        blended = np.einsum("nk,nkij->nij", self.skin_weights, skins[self.skin_joints][:, :, :3])
        linear = blended[:, :, :3]
        moved = np.einsum("nij,nj->ni", linear, positions) + blended[:, :, 3]
        turned = np.einsum("nij,nj->ni", linear, normals)
        return moved, turned

    def pose(self, pose: Pose) -> tuple[F32, F32]:
        """(N, 3) float32 posed positions and unit normals."""
        positions, normals = self.morph(pose.weights)
        if pose.landmarks and pose.landmark_strength > 0.0:
            positions = self.pull_landmarks(positions, pose.landmarks, pose.landmark_strength)
        positions, normals = self.skin(positions, normals, pose.locals)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = normals / np.where(length > 0, length, 1.0)
        return positions.astype(np.float32), normals.astype(np.float32)

