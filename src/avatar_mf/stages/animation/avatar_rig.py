"""A base avatar (ARF container or GLB) made ready to animate and render.

:func:`load_avatar` reads the container (:func:`avatar_mf.avatar.read_arf`, or
:func:`~avatar_mf.avatar.read_glb` for a bare GLB), and gives the :class:`AnimatedAvatar`:
the :class:`~.posing.Rig`, the static :class:`~avatar_mf.render.scene.MeshData` for the
renderer (framed on the rest pose's bounds), and the ids ARF units address:

* BLENDSHAPE ``set_id``: the ids of ``components.blendshapeSets`` of the mesh (the names are
  in target order, so a unit's entry index is the target index); a bare GLB: set 0;
* JOINT ``joint_set_id``: the ids of ``components.skeletons`` (joints in skin order); a bare
  GLB: skeleton 0;
* LANDMARK ``set_id``: ``components.landmarkSets`` entries that bind landmarks to vertices,
  ``{"id": 3, "vertices": [vertex per landmark ...], "radius": 0.01}`` (unsettled: the draft
  leaves landmark sets' members open; the product's own containers declare none).

CPU bound (tens of milliseconds): run it in the stage executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avatar_mf.avatar import read_arf, read_glb
from avatar_mf.avatar.model import AvatarModel
from avatar_mf.avatar.texture import decode_texture
from avatar_mf.render.scene import MeshData
from avatar_mf.stages.animation.posing import LandmarkBinding, Rig
from avatar_mf.stages.animation.timeline import Animator, AnimatorSettings

_GLB_MAGIC = b"glTF"


@dataclass(frozen=True, slots=True, eq=False)
class AnimatedAvatar:
    """What the animation stage needs of one base avatar."""

    model: AvatarModel
    rig: Rig
    mesh: MeshData
    blendshape_sets: tuple[int, ...]
    skeletons: tuple[int, ...]
    landmark_sets: dict[int, int]

    def animator(self, settings: AnimatorSettings | None = None) -> Animator:
        """A fresh animator for this avatar (neutral until units arrive)."""
        return Animator(
            self.rig.neutral(),
            blendshape_sets=self.blendshape_sets,
            skeletons=self.skeletons,
            landmark_sets=self.landmark_sets,
            settings=settings,
        )


def _bindings(entries: list[dict[str, Any]], vertex_count: int) -> tuple[LandmarkBinding, ...]:
    out = []
    for entry in entries:
        vertices = entry.get("vertices")
        set_id = entry.get("id")
        if not isinstance(set_id, int) or not isinstance(vertices, list):
            continue  # a landmark set of another shape: not bound to this mesh's vertices
        if not all(isinstance(v, int) and 0 <= v < vertex_count for v in vertices):
            continue
        radius = entry.get("radius", 0.01)
        radius = float(radius) if isinstance(radius, int | float) and radius > 0 else 0.01
        out.append(LandmarkBinding(set_id, tuple(vertices), radius))
    return tuple(out)


def from_model(
    model: AvatarModel,
    *,
    blendshape_sets: tuple[int, ...] = (0,),
    skeletons: tuple[int, ...] = (0,),
    landmarks: tuple[LandmarkBinding, ...] = (),
) -> AnimatedAvatar:
    """An :class:`AnimatedAvatar` of a model already in memory."""
    rig = Rig(model, landmarks)
    mesh = MeshData.from_arrays(
        model.positions,
        model.triangles,
        model.colors,
        uvs=model.uvs,
        texture=None if model.texture is None else decode_texture(model.texture),
    )
    return AnimatedAvatar(
        model=model,
        rig=rig,
        mesh=mesh,
        blendshape_sets=blendshape_sets,
        skeletons=skeletons,
        landmark_sets={b.set_id: len(b.vertices) for b in landmarks},
    )


def load_avatar(data: bytes) -> AnimatedAvatar:
    """An ARF container (ZIP) or a GLB, ready to animate. Raises
    :class:`~avatar_mf.avatar.AvatarFormatError` for anything else."""
    if data[:4] == _GLB_MAGIC:
        return from_model(read_glb(data))
    avatar = read_arf(data)
    components = avatar.document.components
    mesh_ids = {m.id for m in components.meshes}
    sets = tuple(s.id for s in components.blendshapeSets if s.mesh in mesh_ids) or (0,)
    skeletons = tuple(s.id for s in components.skeletons) or (0,)
    landmarks = _bindings(list(components.landmarkSets), avatar.model.vertex_count)
    return from_model(avatar.model, blendshape_sets=sets, skeletons=skeletons, landmarks=landmarks)

