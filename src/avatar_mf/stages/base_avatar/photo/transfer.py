"""The template's rig carried through a :class:`~.deformation.Deformation`.

* positions: skin and mouth vertices through the map; each eyeball rigidly (scaled with the
  head), moved by the mean displacement of its lids (the skin within :data:`LID_GAP` of it),
  so it stays a sphere behind them;
* blendshapes: a target is a delta ``d`` on a template vertex ``x``; on the fitted head it is
  ``f(x + d) - f(x)``, the same motion seen through the same map (eyeball deltas, rotations
  of the eye, are only scaled); only the vertices a target moves are mapped;
* normals: area-weighted vertex normals of the fitted mesh (welded vertices, the two lips'
  shared edge, share one), and each target's normal deltas recomputed on the faces it moves;
* joints: every joint's rest position through the map (the eyes' at their eyeball centres),
  the same parents and rotations; inverse bind matrices from the new rest pose; skin weights
  unchanged (the same vertices, the same influences).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.model import AvatarModel, Joint, rest_matrices
from avatar_mf.stages.base_avatar.photo.deformation import Deformation
from avatar_mf.stages.base_avatar.photo.template import (
    EYE_LEFT,
    EYE_RIGHT,
    SKIN,
    TemplateParts,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_EYES = {"eyeLeft": EYE_LEFT, "eyeRight": EYE_RIGHT}


#: Skin vertices closer than this to an eyeball's surface (metres) are its lids.
LID_GAP = 0.002


def map_vertices(positions: F64, part: NDArray[np.int8], deformation: Deformation) -> F64:
    """The template's vertices (any pose of them) through the map: skin and mouth pointwise,
    each eyeball rigidly with its lids."""
    out = deformation(positions)
    skin = part == SKIN
    for eye in (EYE_LEFT, EYE_RIGHT):
        mask = part == eye
        centre = positions[mask].mean(axis=0)
        radius = float(np.linalg.norm(positions[mask] - centre, axis=1).mean())
        lids = skin & (np.linalg.norm(positions - centre, axis=1) < radius + LID_GAP)
        # The eyeball follows its lids (the mean motion of the skin that hugs it).
        shift = (out[lids] - deformation.scaled(positions[lids])).mean(axis=0)
        out[mask] = deformation.scaled(positions[mask]) + shift
    return out


def vertex_normals(positions: F64, triangles: I64, weld: I64) -> F64:
    """Area weighted unit normals; vertices with the same ``weld`` id share one."""
    p = positions[triangles]
    face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    ids = weld[triangles].reshape(-1)
    sums = np.stack(
        [np.bincount(ids, np.repeat(face[:, k], 3), minlength=len(positions)) for k in range(3)],
        axis=1,
    )[weld]
    length = np.linalg.norm(sums, axis=1, keepdims=True)
    out: F64 = np.where(length > 0, sums / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])
    return out


def _joints(model: AvatarModel, deformation: Deformation, eye_centres: dict[str, F64]
            ) -> tuple[Joint, ...]:
    rest = rest_matrices(model.joints)
    moved = deformation(rest[:, :3, 3].copy())
    for name, centre in eye_centres.items():
        moved[model.joint_index(name)] = centre
    joints = []
    for index, joint in enumerate(model.joints):
        # Rest rotations of the product's head are identities: positions give translations.
        parent = np.zeros(3) if joint.parent is None else moved[joint.parent]
        d = np.round(moved[index] - parent, 6)
        joints.append(
            Joint(joint.name, joint.parent, (float(d[0]), float(d[1]), float(d[2])),
                  joint.rotation, joint.scale)
        )
    return tuple(joints)


def deform_model(
    model: AvatarModel, parts: TemplateParts, deformation: Deformation, *, name: str
) -> AvatarModel:
    """The template ``model`` deformed by ``deformation`` (colours unchanged)."""
    template = model.positions.astype(np.float64)
    triangles = model.triangles.astype(np.int64)
    positions = map_vertices(template, parts.part, deformation)
    normals = vertex_normals(positions, triangles, parts.weld)
    eye = (parts.part == EYE_LEFT) | (parts.part == EYE_RIGHT)
    targets = np.zeros(model.target_positions.shape, dtype=np.float32)
    target_normals = np.zeros_like(targets)
    for k in range(len(model.target_names)):
        delta = model.target_positions[k].astype(np.float64)
        moved = np.flatnonzero(np.any(delta != 0.0, axis=1))
        if len(moved) == 0:
            continue
        skin = moved[~eye[moved]]
        out = np.zeros_like(delta)
        if len(skin):
            out[skin] = deformation(template[skin] + delta[skin]) - positions[skin]
        eyes = moved[eye[moved]]
        out[eyes] = delta[eyes] * deformation.scale
        out[np.abs(out) < 1e-7] = 0.0
        targets[k] = out
        # Normals change only on the faces the target moves.
        touched = np.zeros(len(template), dtype=bool)
        touched[moved] = True
        faces = triangles[np.any(touched[triangles], axis=1)]
        region = np.zeros(len(template), dtype=bool)
        region[faces.reshape(-1)] = True
        region |= region[parts.weld]
        region[parts.weld[region]] = True
        bent = vertex_normals(positions + out, triangles, parts.weld)
        change = np.where(region[:, None], bent - normals, 0.0)
        change[np.abs(change) < 1e-4] = 0.0
        target_normals[k] = change
    eye_centres = {
        joint: positions[parts.part == part].mean(axis=0) for joint, part in _EYES.items()
    }
    joints = _joints(model, deformation, eye_centres)
    ibms = np.linalg.inv(rest_matrices(joints))
    ibms[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    return AvatarModel(
        name=name,
        positions=positions.astype(np.float32),
        normals=normals.astype(np.float32),
        triangles=model.triangles,
        joints=joints,
        inverse_bind_matrices=ibms.astype(np.float32),
        skin_joints=model.skin_joints,
        skin_weights=model.skin_weights,
        target_names=model.target_names,
        target_positions=targets,
        target_normals=target_normals,
        colors=model.colors,
    )
