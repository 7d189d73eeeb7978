"""Base avatar conversion: VRM 1.0 and other glTF avatars to and from the common format.

TR 26.813 section 4: the MF converts proprietary base models to and from the common format
(docs/avatar-format.md, *The common format*). Three conversions, pure and CPU bound (run them
in an executor):

* :func:`to_common_arf` -- a GLB (a VRM 1.0 file -- glTF 2.0 with the ``VRMC_vrm`` extension
  -- or any glTF avatar the product's reader takes) to a conforming ARF container. The morph
  targets are re-baked into the 52 ARKit shapes: a target whose name is an ARKit name (in any
  spelling, :func:`~avatar_mf.avatar.mapping.derive_set`) is taken as it is; the other ARKit
  shapes are built as linear combinations of the remaining targets and, for VRM, of the
  expression presets (each a weighted sum of targets), by the inverse of their ARKit poses; a
  shape nothing maps to stays inert (the checker warns). A linear map declared by the caller
  (``mapping``: ``{target name: {arkitName: weight}}``) replaces the synonyms. Joints are
  renamed from the VRM humanoid bones (``neck``, ``head``, ``jaw``, ``leftEye``,
  ``rightEye``) to the common names; a missing jaw or eye joint is added under the head.
* :func:`to_vrm` -- a common-format model to a VRM 1.0 GLB: the product's GLB plus
  ``VRMC_vrm`` (meta, humanoid bones, the 18 expression presets bound to the ARKit targets by
  their poses).
* :func:`convert_avatar` -- the dispatcher the MF uses: container bytes and media type in,
  the target media type's bytes out.

VRM 1.0 is read in the product's glTF profile (one mesh, one primitive, one skin); files
outside it are refused with the reader's error code. What the conversions lose is in
docs/avatar-format.md (*Conversions*).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.avatar.check import COMMON_CONTENT_TYPE
from avatar_mf.avatar.container import GLB_MEDIA_TYPE, read_arf, write_arf
from avatar_mf.avatar.errors import AvatarFormatError, ErrorCode
from avatar_mf.avatar.glb import build_glb, read_glb
from avatar_mf.avatar.mapping import RIDGE, VRM_PRESETS, VRM_SET, derive_set, linear_set
from avatar_mf.avatar.model import AvatarModel, Joint, rest_matrices

__all__ = [
    "VRM_EXTENSION",
    "VRM_MEDIA_TYPE",
    "Converted",
    "convert_avatar",
    "read_vrm",
    "to_common_arf",
    "to_common_model",
    "to_vrm",
]

VRM_EXTENSION: Final = "VRMC_vrm"
#: The media type the product uses for VRM files (not registered; VRM files are glTF binaries).
VRM_MEDIA_TYPE: Final = "model/vrm"
#: VRM humanoid bone -> the common skeleton's joint name.
_BONE_NAMES: Final[Mapping[str, str]] = {
    "neck": "neck",
    "head": "head",
    "jaw": "jaw",
    "leftEye": "eyeLeft",
    "rightEye": "eyeRight",
}
_JSON_CHUNK: Final = 0x4E4F534A
_BIN_CHUNK: Final = 0x004E4942

F32 = NDArray[np.float32]


def _fail(code: ErrorCode, message: str) -> AvatarFormatError:
    return AvatarFormatError(code, message)


def split_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON document and BIN chunk of a GLB (framing only; read_glb checks the rest)."""
    if len(data) < 20 or data[:4] != b"glTF":
        raise _fail(ErrorCode.GLB_HEADER, "not a GLB (magic is not 'glTF')")
    json_length, kind = struct.unpack_from("<II", data, 12)
    if kind != _JSON_CHUNK or 20 + json_length > len(data):
        raise _fail(ErrorCode.GLB_HEADER, "the first chunk must be JSON")
    try:
        doc = json.loads(data[20 : 20 + json_length])
    except ValueError as exc:
        raise _fail(ErrorCode.GLB_JSON, f"JSON chunk: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(ErrorCode.GLB_JSON, "the JSON chunk is not an object")
    rest = 20 + json_length
    blob = b""
    if rest + 8 <= len(data):
        bin_length, kind = struct.unpack_from("<II", data, rest)
        if kind == _BIN_CHUNK:
            blob = data[rest + 8 : rest + 8 + bin_length]
    return doc, blob


def pack_glb(doc: Mapping[str, Any], blob: bytes) -> bytes:
    """A GLB from a JSON document and a BIN chunk (both padded to 4 bytes, glTF 4.4)."""
    raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raw += b" " * (-len(raw) % 4)
    blob = blob + b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(raw) + (8 + len(blob) if blob else 0)
    out = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<II", len(raw), _JSON_CHUNK) + raw
    if blob:
        out += struct.pack("<II", len(blob), _BIN_CHUNK) + blob
    return out


@dataclass(frozen=True, slots=True)
class VrmAvatar:
    """A VRM 1.0 file as the converter sees it."""

    model: AvatarModel
    #: Humanoid bone name -> joint name in ``model``.
    bones: Mapping[str, str]
    #: Expression preset -> ((morph target index, weight), ...).
    expressions: Mapping[str, tuple[tuple[int, float], ...]]
    name: str


def read_vrm(data: bytes) -> VrmAvatar:
    """A VRM 1.0 GLB (or a plain GLB: no bones, no expressions) in the product's profile."""
    doc, _ = split_glb(data)
    model = read_glb(data)
    ext = (doc.get("extensions") or {}).get(VRM_EXTENSION)
    if not isinstance(ext, dict):
        return VrmAvatar(model, {}, {}, model.name)
    nodes = doc.get("nodes") or []
    skin = (doc.get("skins") or [{}])[0]
    joint_nodes = skin.get("joints") or []
    joint_of_node = {node: model.joints[k].name for k, node in enumerate(joint_nodes)}
    bones: dict[str, str] = {}
    human = ((ext.get("humanoid") or {}).get("humanBones")) or {}
    if isinstance(human, dict):
        for bone, spec in human.items():
            node = spec.get("node") if isinstance(spec, dict) else None
            if isinstance(node, int) and node in joint_of_node:
                bones[bone] = joint_of_node[node]
    mesh_nodes = {k for k, n in enumerate(nodes) if isinstance(n, dict) and n.get("mesh") == 0}
    expressions: dict[str, tuple[tuple[int, float], ...]] = {}
    preset = ((ext.get("expressions") or {}).get("preset")) or {}
    if isinstance(preset, dict):
        for name, spec in preset.items():
            if name not in VRM_PRESETS or not isinstance(spec, dict):
                continue
            binds = []
            for bind in spec.get("morphTargetBinds") or []:
                if not isinstance(bind, dict) or bind.get("node") not in mesh_nodes:
                    continue
                index, weight = bind.get("index"), bind.get("weight", 1.0)
                if (
                    isinstance(index, int)
                    and 0 <= index < len(model.target_names)
                    and isinstance(weight, int | float)
                ):
                    binds.append((index, float(weight)))
            if binds:
                expressions[name] = tuple(binds)
    meta = ext.get("meta") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    return VrmAvatar(
        model, bones, expressions, name if isinstance(name, str) and name else model.name
    )


# --- to the common format ---------------------------------------------------------------------


def _bake(
    model: AvatarModel,
    mapping: Mapping[str, Mapping[str, float]] | None,
    expressions: Mapping[str, tuple[tuple[int, float], ...]],
) -> tuple[F32, F32 | None, tuple[str, ...]]:
    """ARKit-52 target deltas (positions, normals) from the model's targets; and the ARKit
    shapes nothing maps to."""
    names = model.target_names
    n_vertices = model.vertex_count
    sources = (
        linear_set("declared", mapping, names) if mapping is not None else derive_set("x", names)
    )
    # Source entries: the model's targets, then the VRM presets (weighted sums of targets).
    poses = [sources.to_arkit[:, j] for j in range(len(names))]
    combos: list[F32] = [np.eye(len(names), dtype=np.float32)[j] for j in range(len(names))]
    for preset, binds in expressions.items():
        combo = np.zeros(len(names), np.float32)
        for index, weight in binds:
            combo[index] += weight
        poses.append(VRM_SET.to_arkit[:, VRM_SET.index[preset]])
        combos.append(combo)
    pose = np.array(poses, np.float32).T  # (52, entries)
    mix = np.array(combos, np.float32)  # (entries, targets)
    n_arkit = len(ARKIT_BLENDSHAPES)
    # Direct: an entry whose pose is exactly one ARKit shape at weight 1.
    direct: dict[int, int] = {}
    for j in range(pose.shape[1]):
        nz = np.flatnonzero(pose[:, j])
        if len(nz) == 1 and pose[nz[0], j] == 1.0 and int(nz[0]) not in direct:
            direct[int(nz[0])] = j
    coeff = np.zeros((n_arkit, len(names)), np.float64)  # ARKit shape -> target weights
    for k, j in direct.items():
        coeff[k] = mix[j]
    rest_rows = [k for k in range(n_arkit) if k not in direct]
    used = {j for j in direct.values()}
    rest_cols = [j for j in range(pose.shape[1]) if j not in used and pose[rest_rows, j].any()]
    if rest_rows and rest_cols:
        p = pose[np.ix_(rest_rows, rest_cols)].astype(np.float64)
        inverse = np.linalg.solve(p.T @ p + RIDGE * np.eye(len(rest_cols)), p.T)  # (cols, rows)
        # Only shapes the remaining entries actually express get a combination.
        reach = np.abs(p).sum(axis=1) > 0
        for r, k in enumerate(rest_rows):
            if reach[r]:
                coeff[k] = inverse[:, r] @ mix[rest_cols]
    flat = model.target_positions.reshape(len(names), -1).astype(np.float64)
    positions = (coeff @ flat).reshape(n_arkit, n_vertices, 3).astype(np.float32)
    normals = None
    if model.target_normals is not None:
        nflat = model.target_normals.reshape(len(names), -1).astype(np.float64)
        normals = (coeff @ nflat).reshape(n_arkit, n_vertices, 3).astype(np.float32)
    inert = tuple(ARKIT_BLENDSHAPES[k] for k in range(n_arkit) if not coeff[k].any())
    return positions, normals, inert


def _rename_joints(model: AvatarModel, bones: Mapping[str, str]) -> tuple[Joint, ...]:
    rename = {bones[b]: common for b, common in _BONE_NAMES.items() if b in bones}
    taken = set(rename.values())
    joints = []
    for joint in model.joints:
        name = rename.get(joint.name, joint.name)
        if joint.name not in rename and name in taken:
            name = f"{name}_source"  # a non-humanoid node already called e.g. "head"
        joints.append(replace(joint, name=name))
    return tuple(joints)


def _add_missing_joints(model: AvatarModel) -> AvatarModel:
    """Add ``jaw``/``eyeLeft``/``eyeRight`` under the head when the source has none (they
    move no vertex; JOINT units for them do nothing). Needs ``neck`` and ``head``."""
    names = [j.name for j in model.joints]
    for needed in ("neck", "head"):
        if needed not in names:
            raise _fail(
                ErrorCode.GLB_SKIN,
                f"no {needed} joint (VRM humanoid bone or joint name): the common format needs "
                "a neck/head skeleton",
            )
    missing = [n for n in ("jaw", "eyeLeft", "eyeRight") if n not in names]
    if not missing:
        return model
    head = names.index("head")
    joints = list(model.joints) + [Joint(n, head) for n in missing]
    rest = rest_matrices(tuple(joints))
    ibm = np.concatenate(
        [model.inverse_bind_matrices, np.linalg.inv(rest[len(model.joints) :]).astype(np.float32)]
    )
    return replace(model, joints=tuple(joints), inverse_bind_matrices=ibm)


def to_common_model(
    data: bytes, *, mapping: Mapping[str, Mapping[str, float]] | None = None
) -> tuple[AvatarModel, tuple[str, ...], str]:
    """The common-format model of a GLB/VRM; the ARKit shapes left inert; its name."""
    vrm = read_vrm(data)
    model = vrm.model
    positions, normals, inert = _bake(model, mapping, vrm.expressions)
    joints = _rename_joints(model, vrm.bones)
    common = replace(
        model,
        joints=joints,
        target_names=ARKIT_BLENDSHAPES,
        target_positions=positions,
        target_normals=normals,
    )
    return _add_missing_joints(common), inert, vrm.name


def to_common_arf(
    data: bytes,
    *,
    avatar_id: str,
    name: str | None = None,
    mapping: Mapping[str, Mapping[str, float]] | None = None,
) -> bytes:
    """A conforming ARF container from a VRM 1.0 or glTF GLB (see the module doc)."""
    model, _, source_name = to_common_model(data, mapping=mapping)
    return write_arf(model, avatar_id=avatar_id, name=name or source_name or "avatar")


# --- from the common format to VRM 1.0 ---------------------------------------------------------


def to_vrm(model: AvatarModel, *, name: str | None = None) -> bytes:
    """A VRM 1.0 GLB of a common-format model (ARKit-52 targets, head skeleton)."""
    if model.target_names != ARKIT_BLENDSHAPES:
        raise _fail(ErrorCode.GLB_MORPH_TARGETS, "to_vrm takes a common-format (ARKit-52) model")
    doc, blob = split_glb(build_glb(model))
    skin_nodes = doc["skins"][0]["joints"]
    joint_node = {model.joints[k].name: node for k, node in enumerate(skin_nodes)}
    human: dict[str, dict[str, int]] = {}
    root = next(j.name for j in model.joints if j.parent is None)
    human["hips"] = {"node": joint_node[root]}
    for bone, common in _BONE_NAMES.items():
        if common in joint_node and joint_node[common] != human["hips"]["node"]:
            human[bone] = {"node": joint_node[common]}
    mesh_node = next(k for k, n in enumerate(doc["nodes"]) if n.get("mesh") == 0)
    presets: dict[str, Any] = {}
    for preset in VRM_PRESETS:
        binds = [
            {"node": mesh_node, "index": ARKIT_BLENDSHAPES.index(shape), "weight": round(w, 4)}
            for shape, w in VRM_SET.pose(preset).items()
        ]
        presets[preset] = {
            "morphTargetBinds": binds,
            "isBinary": False,
            "overrideBlink": "none",
            "overrideLookAt": "none",
            "overrideMouth": "none",
        }
    doc.setdefault("extensionsUsed", []).append(VRM_EXTENSION)
    doc.setdefault("extensions", {})[VRM_EXTENSION] = {
        "specVersion": "1.0",
        "meta": {
            "name": name or model.name,
            "version": "1",
            "authors": ["avatar_mf"],
            "licenseUrl": "https://vrm.dev/licenses/1.0/",
            "avatarPermission": "onlyAuthor",
            "commercialUsage": "personalNonProfit",
            "allowRedistribution": False,
            "modification": "prohibited",
        },
        "humanoid": {"humanBones": human},
        "expressions": {"preset": presets},
    }
    return pack_glb(doc, blob)


# --- the dispatcher ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Converted:
    data: bytes
    content_type: str
    #: ARKit shapes the source had nothing for (inert in the result).
    inert: tuple[str, ...] = ()


def _is_vrm(data: bytes) -> bool:
    doc, _ = split_glb(data)
    return VRM_EXTENSION in (doc.get("extensions") or {})


def source_kind(data: bytes, content_type: str) -> str:
    """``arf``, ``vrm`` or ``glb``: what a stored container is, by its bytes."""
    if data[:4] == b"glTF":
        return "vrm" if _is_vrm(data) else "glb"
    if content_type == VRM_MEDIA_TYPE:
        return "vrm"
    return "arf"


def convert_avatar(
    data: bytes, content_type: str, target: str, *, avatar_id: str, name: str = "avatar"
) -> Converted:
    """``data`` (of ``content_type``) as ``target``: the common ARF, VRM 1.0 or a plain GLB.

    Raises :class:`AvatarFormatError` when the source cannot be read or converted and
    ``ValueError`` for a target the product does not write.
    """
    kind = source_kind(data, content_type)
    inert: tuple[str, ...] = ()
    if target == COMMON_CONTENT_TYPE:
        if kind == "arf":
            model = read_arf(data).model
            if model.target_names == ARKIT_BLENDSHAPES:
                return Converted(data, COMMON_CONTENT_TYPE)
            glb = build_glb(model)
        else:
            glb = data
        common, inert, _ = to_common_model(glb)
        return Converted(write_arf(common, avatar_id=avatar_id, name=name), target, inert)
    if target in (VRM_MEDIA_TYPE, GLB_MEDIA_TYPE):
        if kind == "arf":
            model = read_arf(data).model
            if model.target_names != ARKIT_BLENDSHAPES:
                model, inert, _ = to_common_model(build_glb(model))
        elif target == GLB_MEDIA_TYPE:
            return Converted(data, target)  # a GLB (VRM or not) is a GLB
        else:
            model, inert, _ = to_common_model(data)
        out = to_vrm(model, name=name) if target == VRM_MEDIA_TYPE else build_glb(model)
        return Converted(out, target, inert)
    raise ValueError(f"the product does not write {target!r} base avatars")


def accepted_target(
    content_type: str, data: bytes, accepted: Sequence[str], writable: Sequence[str]
) -> str | None:
    """The format to send a receiver that ``accepted`` these (empty: any): None when the
    stored one will do, else the first accepted one the product writes."""
    if not accepted:
        return None
    kind = source_kind(data, content_type)
    have = {"arf": COMMON_CONTENT_TYPE, "vrm": VRM_MEDIA_TYPE, "glb": GLB_MEDIA_TYPE}[kind]
    if (
        content_type in accepted
        or have in accepted
        or (kind == "vrm" and GLB_MEDIA_TYPE in accepted)
    ):
        return None
    for wanted in accepted:
        if wanted in writable:
            return wanted
    return None
