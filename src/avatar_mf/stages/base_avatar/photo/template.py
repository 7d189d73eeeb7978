"""The head a photo avatar is made from: the product's procedural head and what the photo
generator needs to know about it.

The template is :func:`avatar_mf.avatar.generate.generate_default_head` (seed 0, default
resolution): skin surface, two eyeballs, mouth cavity and tongue in one mesh, skinned to
``root/neck/head/jaw/eyeLeft/eyeRight`` with the 52 ARKit blendshapes. Besides the model, the
generator needs, per vertex:

* ``part``: :data:`SKIN`, :data:`EYE_LEFT`, :data:`EYE_RIGHT` or :data:`MOUTH` (cavity and
  tongue) -- eyeballs move rigidly, the mouth interior keeps its colours;
* ``weld``: the lowest index of a vertex at the same position (the lower lip's vertices are
  copies of the upper lip's; welded vertices share one normal);
* ``mirror``: the vertex nearest the mirror image (x -> -x) of each vertex (the template is
  left-right symmetric), to fill the side of the face a photo does not see.

All three follow from the model alone (:func:`analyse`); :mod:`.anchors` stores them with the
landmark anchors so a generation does not recompute them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.model import AvatarModel

SKIN, EYE_LEFT, EYE_RIGHT, MOUTH = 0, 1, 2, 3

I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class TemplateParts:
    part: NDArray[np.int8]
    weld: I64
    mirror: I64


def _components(triangles: I64, n: int) -> I64:
    """Connected component label of every vertex: the smallest vertex index it connects to
    (label propagation along the triangle edges until nothing changes)."""
    label = np.arange(n)
    edges = np.vstack([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    while True:
        before = label.copy()
        np.minimum.at(label, edges[:, 0], label[edges[:, 1]])
        np.minimum.at(label, edges[:, 1], label[edges[:, 0]])
        label = label[label]
        if np.array_equal(label, before):
            return label


def analyse(model: AvatarModel) -> TemplateParts:
    """Parts, weld and mirror maps of ``model`` (the default head)."""
    positions = model.positions.astype(np.float64)
    n = len(positions)
    triangles = model.triangles.astype(np.int64)
    label = _components(triangles, n)
    eye_left, eye_right = model.joint_index("eyeLeft"), model.joint_index("eyeRight")
    part = np.full(n, MOUTH, dtype=np.int8)
    part[label == label[0]] = SKIN  # the skin surface starts at the crown, vertex 0
    bound = model.skin_weights[:, 0] == 1.0
    part[bound & (model.skin_joints[:, 0] == eye_left)] = EYE_LEFT
    part[bound & (model.skin_joints[:, 0] == eye_right)] = EYE_RIGHT
    rounded = np.round(positions * 1e6).astype(np.int64)
    _, first, inverse = np.unique(rounded, axis=0, return_index=True, return_inverse=True)
    weld = first[inverse.reshape(-1)].astype(np.int64)
    mirrored = positions * np.array([-1.0, 1.0, 1.0])
    mirror = np.empty(n, dtype=np.int64)
    for start in range(0, n, 512):
        d = ((mirrored[start : start + 512, None, :] - positions[None, :, :]) ** 2).sum(axis=2)
        mirror[start : start + 512] = np.argmin(d, axis=1)
    return TemplateParts(part=part, weld=weld, mirror=mirror)
