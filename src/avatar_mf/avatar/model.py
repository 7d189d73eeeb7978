"""The product's base avatar model: one skinned triangle mesh with named blendshapes.

:class:`AvatarModel` is what :func:`~avatar_mf.avatar.glb.build_glb` writes and
:func:`~avatar_mf.avatar.glb.read_glb` reads back; arrays are numpy, immutable (read-only flags)
and in glTF's conventions: right-handed, Y up, +Z forward (the face looks along +Z), metres, a
subject's *left* on +X. The skeleton is a tree of :class:`Joint` listed parents first.

Blendshape (morph target) names default to the 52 ARKit names in
:data:`ARKIT_BLENDSHAPES` (standards.md section 6, MediaPipe order) and the skeleton to
:data:`DEFAULT_JOINT_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The 52 ARKit blendshape names live with the animation unit codec (one list for both).

#: The joints of the product's head skeleton, in skin order (parents first).
DEFAULT_JOINT_NAMES: tuple[str, ...] = ("root", "neck", "head", "jaw", "eyeLeft", "eyeRight")

Float32Array = NDArray[np.float32]
UInt32Array = NDArray[np.uint32]
UInt16Array = NDArray[np.uint16]

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Joint:
    """One joint of the skeleton with its rest (bind) pose relative to its parent.

    ``parent`` is the index of the parent joint in :attr:`AvatarModel.joints` (always smaller
    than this joint's own index) or ``None`` for the skeleton root. ``rotation`` is a unit
    quaternion ``(x, y, z, w)`` as in glTF.
    """

    name: str
    parent: int | None
    translation: Vec3 = (0.0, 0.0, 0.0)
    rotation: Quat = (0.0, 0.0, 0.0, 1.0)
    scale: Vec3 = (1.0, 1.0, 1.0)

    def local_matrix(self) -> NDArray[np.float64]:
        """The 4x4 local rest transform ``T * R * S`` (column vectors, translation in the last
        column)."""
        x, y, z, w = self.rotation
        rot = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        out = np.eye(4)
        out[:3, :3] = rot * np.asarray(self.scale)[None, :]
        out[:3, 3] = self.translation
        return out


def rest_matrices(joints: tuple[Joint, ...]) -> NDArray[np.float64]:
    """(J, 4, 4) global rest transform of every joint (joints listed parents first)."""
    out = np.empty((len(joints), 4, 4))
    for index, joint in enumerate(joints):
        local = joint.local_matrix()
        out[index] = local if joint.parent is None else out[joint.parent] @ local
    return out


def _frozen(value: Any, dtype: type[np.generic], shape: tuple[int | None, ...], what: str) -> Any:
    """A read-only C-contiguous copy of ``value`` as ``dtype`` with the given shape (``None``
    matches any length)."""
    array = np.array(value, dtype=dtype, order="C", copy=True)
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        raise ValueError(f"{what}: shape {array.shape} does not match {shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class AvatarModel:
    """A skinned, blendshape-rigged triangle mesh (the product's base avatar).

    Shapes (``N`` vertices, ``T`` triangles, ``J`` joints, ``M`` morph targets):

    * ``positions`` float32 (N, 3) and ``normals`` float32 (N, 3), unit length;
    * ``triangles`` uint32 (T, 3), counter-clockwise seen from outside;
    * ``joints`` J :class:`Joint`; ``inverse_bind_matrices`` float32 (J, 4, 4), column vectors
      (``ibm @ [x, y, z, 1]``), the inverse of each joint's global rest transform;
    * ``skin_joints`` uint16 (N, 4) indices into ``joints``; ``skin_weights`` float32 (N, 4),
      each row summing to 1 (unused influences: joint 0, weight 0);
    * ``target_names`` M names; ``target_positions`` float32 (M, N, 3) position deltas;
      ``target_normals`` float32 (M, N, 3) normal deltas or ``None``;
    * ``colors`` float32 (N, 3) linear RGB vertex colours in [0, 1], or ``None``;
    * ``uvs`` float32 (N, 2) texture coordinates (glTF ``TEXCOORD_0``: origin at the image's
      top left, v down) and ``texture`` the encoded base colour image (PNG or JPEG bytes,
      sRGB, multiplied with the vertex colours as glTF's ``baseColorTexture``), both or
      neither.

    Arrays are copied and made read-only at construction; a shape mismatch raises
    ``ValueError``. Value checks (ranges, finiteness, weight sums) live in
    :func:`avatar_mf.avatar.glb.check_model`. Compare models with :meth:`same_as`.
    """

    positions: Float32Array
    normals: Float32Array
    triangles: UInt32Array
    joints: tuple[Joint, ...]
    inverse_bind_matrices: Float32Array
    skin_joints: UInt16Array
    skin_weights: Float32Array
    target_names: tuple[str, ...]
    target_positions: Float32Array
    target_normals: Float32Array | None = None
    colors: Float32Array | None = None
    name: str = "avatar"
    uvs: Float32Array | None = None
    texture: bytes | None = None

    def __post_init__(self) -> None:
        n = len(self.positions)
        j = len(self.joints)
        m = len(self.target_names)
        fields: list[tuple[str, type[np.generic], tuple[int | None, ...]]] = [
            ("positions", np.float32, (n, 3)),
            ("normals", np.float32, (n, 3)),
            ("triangles", np.uint32, (None, 3)),
            ("inverse_bind_matrices", np.float32, (j, 4, 4)),
            ("skin_joints", np.uint16, (n, 4)),
            ("skin_weights", np.float32, (n, 4)),
            ("target_positions", np.float32, (m, n, 3)),
        ]
        if self.target_normals is not None:
            fields.append(("target_normals", np.float32, (m, n, 3)))
        if self.colors is not None:
            fields.append(("colors", np.float32, (n, 3)))
        if (self.uvs is None) != (self.texture is None):
            raise ValueError("uvs and texture come together")
        if self.uvs is not None:
            fields.append(("uvs", np.float32, (n, 2)))
            object.__setattr__(self, "texture", bytes(self.texture or b""))
        for name, dtype, shape in fields:
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype, shape, name))
        object.__setattr__(self, "joints", tuple(self.joints))
        object.__setattr__(self, "target_names", tuple(self.target_names))

    @property
    def vertex_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def triangle_count(self) -> int:
        return int(self.triangles.shape[0])

    def target_index(self, name: str) -> int:
        """Index of the morph target called ``name`` (``ValueError`` when absent)."""
        return self.target_names.index(name)

    def joint_index(self, name: str) -> int:
        """Index of the joint called ``name`` (``ValueError`` when absent)."""
        for index, joint in enumerate(self.joints):
            if joint.name == name:
                return index
        raise ValueError(f"no joint named {name!r}")

    def global_rest_matrices(self) -> NDArray[np.float64]:
        """(J, 4, 4) global rest transform of every joint."""
        return rest_matrices(self.joints)

    def same_as(self, other: AvatarModel) -> bool:
        """True when both models hold exactly the same data (arrays compared bit for bit)."""

        def same(a: NDArray[Any] | None, b: NDArray[Any] | None) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))

        return (
            self.name == other.name
            and self.joints == other.joints
            and self.target_names == other.target_names
            and same(self.positions, other.positions)
            and same(self.normals, other.normals)
            and same(self.triangles, other.triangles)
            and same(self.inverse_bind_matrices, other.inverse_bind_matrices)
            and same(self.skin_joints, other.skin_joints)
            and same(self.skin_weights, other.skin_weights)
            and same(self.target_positions, other.target_positions)
            and same(self.target_normals, other.target_normals)
            and same(self.colors, other.colors)
            and same(self.uvs, other.uvs)
            and self.texture == other.texture
        )
