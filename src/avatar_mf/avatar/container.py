"""ARF containers (MPEG Avatar Representation Format, ISO/IEC 23090-39 draft): write and read.

The container is a ZIP archive (standards.md section 4) holding ``arf.json`` and binary data
entries. The product's base avatar container holds exactly one data entry, the GLB of
:mod:`avatar_mf.avatar.glb` (``type: model/gltf-binary``), and ``arf.json`` describes it:

* ``preamble`` -- ``signature: "ARF"``, ``version`` (:data:`ARF_VERSION`), the
  ``supportedAnimations`` profiles (:data:`FACE_PROFILE`);
* ``metadata`` -- ``name``, ``id`` (the avatar id), ``generator``;
* ``structure`` -- assets, each with levels of detail naming a mesh, a skin and a blendshape set;
* ``components`` -- ``nodes`` (the skeleton's joints with their rest TRS), ``skeletons``,
  ``meshes``, ``skins``, ``blendshapeSets`` (the target names, in the GLB's target order),
  ``landmarkSets``, ``textureSets``;
* ``data`` -- ``id``, ``name``, ``uri`` (the entry's name in the ZIP), ``type``, ``byteLength``.

Every reference is a declared numeric ``id``, never an array position. What the draft leaves
open and the product decided is marked (unsettled) here and in docs/avatar-format.md.

:func:`read_arf` treats its input as hostile: ZIP bomb defences (entry count, declared and
actual sizes, compression ratio, all from :class:`~avatar_mf.avatar.limits.ArfLimits`, checked
before anything is decompressed; entries are read through a bounded reader, never extracted),
unsafe entry names, strict JSON, a pydantic schema, reference checks, byte lengths, then the
full GLB checks of :func:`~avatar_mf.avatar.glb.read_glb` and a cross-check of ``arf.json``
against the GLB. It raises only :class:`~avatar_mf.avatar.errors.AvatarFormatError`.
Both functions are pure and CPU bound: run them in an executor.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from avatar_mf.avatar.errors import AvatarFormatError, ErrorCode
from avatar_mf.avatar.glb import GENERATOR, build_glb, read_glb
from avatar_mf.avatar.limits import ArfLimits
from avatar_mf.avatar.model import AvatarModel

__all__ = [
    "ARF_MANIFEST",
    "ARF_SIGNATURE",
    "ARF_VERSION",
    "FACE_PROFILE",
    "GLB_MEDIA_TYPE",
    "ArfAvatar",
    "ArfDocument",
    "read_arf",
    "write_arf",
]

#: Name of the manifest entry at the root of the ZIP.
ARF_MANIFEST = "arf.json"
#: ``preamble.signature``.
ARF_SIGNATURE = "ARF"
#: ``preamble.version`` written (unsettled: the draft has no final version string). Readers
#: accept any ``1.x``.
ARF_VERSION = "1.0"
_SUPPORTED_MAJOR = "1"
#: The face animation profile (``supportedAnimations``; the CONFIG unit's profile name).
FACE_PROFILE = "arf-face-v1"
#: Media type of the GLB data entry (RFC 8091 registration ``model/gltf-binary``).
GLB_MEDIA_TYPE = "model/gltf-binary"
#: Name of the GLB entry written by :func:`write_arf`.
GLB_ENTRY = "data/avatar.glb"

_MAX_ITEMS = 1024  # most items in any one arf.json list
_READ_CHUNK = 64 * 1024
# Deterministic archives: fixed timestamps and permissions.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o644 << 16


# --- arf.json schema -------------------------------------------------------------------------

Id = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]
Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Vec4 = Annotated[list[float], Field(min_length=4, max_length=4)]


class _Model(BaseModel):
    # Unknown members are kept, not refused: the draft adds fields between revisions.
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


class Preamble(_Model):
    signature: StrictStr
    version: StrictStr
    supportedAnimations: Annotated[list[Name], Field(min_length=1, max_length=16)]


class Metadata(_Model):
    name: Name
    id: Name
    generator: StrictStr | None = None


class LevelOfDetail(_Model):
    level: Annotated[StrictInt, Field(ge=0, le=16)] = 0
    mesh: Id
    skin: Id | None = None
    blendshapeSet: Id | None = None


class Asset(_Model):
    id: Id
    name: Name
    lods: Annotated[list[LevelOfDetail], Field(min_length=1, max_length=16)]


class Structure(_Model):
    assets: Annotated[list[Asset], Field(min_length=1, max_length=_MAX_ITEMS)]


class NodeComponent(_Model):
    """A skeleton joint; ``parent`` is a node id. Rest pose relative to the parent."""

    id: Id
    name: Name
    parent: Id | None = None
    translation: Vec3 = [0.0, 0.0, 0.0]
    rotation: Vec4 = [0.0, 0.0, 0.0, 1.0]
    scale: Vec3 = [1.0, 1.0, 1.0]


class SkeletonComponent(_Model):
    """``joints`` are node ids in skin order (JOINTS_0 indexes this list)."""

    id: Id
    name: Name
    root: Id
    joints: Annotated[list[Id], Field(min_length=1, max_length=_MAX_ITEMS)]


class MeshComponent(_Model):
    """A mesh stored in a data entry; ``gltfMesh`` is the mesh index inside the GLB."""

    id: Id
    name: Name
    data: Id
    gltfMesh: Annotated[StrictInt, Field(ge=0)] = 0
    vertexCount: Annotated[StrictInt, Field(ge=1)]
    triangleCount: Annotated[StrictInt, Field(ge=1)]


class SkinComponent(_Model):
    id: Id
    mesh: Id
    skeleton: Id


class BlendshapeSetComponent(_Model):
    """Names of a mesh's morph targets, in target order (BLENDSHAPE units index this list)."""

    id: Id
    name: Name
    mesh: Id
    profile: StrictStr | None = None
    names: Annotated[list[Name], Field(max_length=_MAX_ITEMS)]


class Components(_Model):
    nodes: Annotated[list[NodeComponent], Field(max_length=_MAX_ITEMS)] = []
    skeletons: Annotated[list[SkeletonComponent], Field(max_length=_MAX_ITEMS)] = []
    skins: Annotated[list[SkinComponent], Field(max_length=_MAX_ITEMS)] = []
    meshes: Annotated[list[MeshComponent], Field(min_length=1, max_length=_MAX_ITEMS)]
    blendshapeSets: Annotated[list[BlendshapeSetComponent], Field(max_length=_MAX_ITEMS)] = []
    landmarkSets: Annotated[list[dict[str, Any]], Field(max_length=_MAX_ITEMS)] = []
    textureSets: Annotated[list[dict[str, Any]], Field(max_length=_MAX_ITEMS)] = []


class DataEntry(_Model):
    id: Id
    name: Name
    uri: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    type: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    byteLength: Annotated[StrictInt, Field(ge=0)]


class ArfDocument(_Model):
    """The parsed ``arf.json``."""

    preamble: Preamble
    metadata: Metadata
    structure: Structure
    components: Components
    data: Annotated[list[DataEntry], Field(min_length=1, max_length=_MAX_ITEMS)]


@dataclass(frozen=True, slots=True, eq=False)
class ArfAvatar:
    """A checked ARF container: its ``arf.json``, the GLB bytes and the decoded model."""

    document: ArfDocument
    glb: bytes
    model: AvatarModel

    @property
    def avatar_id(self) -> str:
        return self.document.metadata.id


# --- writing ---------------------------------------------------------------------------------


def _document(model: AvatarModel, glb_length: int, *, avatar_id: str, name: str) -> dict[str, Any]:
    joints = model.joints
    return {
        "preamble": {
            "signature": ARF_SIGNATURE,
            "version": ARF_VERSION,
            "supportedAnimations": [FACE_PROFILE],
        },
        "metadata": {"name": name, "id": avatar_id, "generator": GENERATOR},
        "structure": {
            "assets": [
                {
                    "id": 0,
                    "name": name,
                    "lods": [{"level": 0, "mesh": 0, "skin": 0, "blendshapeSet": 0}],
                }
            ]
        },
        "components": {
            "nodes": [
                {
                    "id": k,
                    "name": joint.name,
                    "parent": joint.parent,
                    "translation": list(joint.translation),
                    "rotation": list(joint.rotation),
                    "scale": list(joint.scale),
                }
                for k, joint in enumerate(joints)
            ],
            "skeletons": [
                {
                    "id": 0,
                    "name": f"{model.name}-skeleton",
                    "root": next(k for k, j in enumerate(joints) if j.parent is None),
                    "joints": list(range(len(joints))),
                }
            ],
            "meshes": [
                {
                    "id": 0,
                    "name": model.name,
                    "data": 0,
                    "gltfMesh": 0,
                    "vertexCount": model.vertex_count,
                    "triangleCount": model.triangle_count,
                }
            ],
            "skins": [{"id": 0, "mesh": 0, "skeleton": 0}],
            "blendshapeSets": [
                {
                    "id": 0,
                    "name": "arkit",
                    "mesh": 0,
                    "profile": FACE_PROFILE,
                    "names": list(model.target_names),
                }
            ],
            "landmarkSets": [],
            "textureSets": [],
        },
        "data": [
            {
                "id": 0,
                "name": "avatar",
                "uri": GLB_ENTRY,
                "type": GLB_MEDIA_TYPE,
                "byteLength": glb_length,
            }
        ],
    }


def write_arf(model: AvatarModel, *, avatar_id: str, name: str) -> bytes:
    """The ARF container (ZIP bytes) of ``model``: ``arf.json`` plus ``data/avatar.glb``.

    The archive is deterministic (fixed timestamps): the same model, id and name always give
    the same bytes. Raises :class:`AvatarFormatError` for a model that fails the GLB checks
    and ``ValueError`` for an empty ``avatar_id`` or ``name``.
    """
    if not avatar_id or not name:
        raise ValueError("avatar_id and name must be non-empty")
    glb = build_glb(model)
    document = _document(model, len(glb), avatar_id=avatar_id, name=name)
    ArfDocument.model_validate(document)  # the writer never produces what the reader refuses
    manifest = json.dumps(document, indent=1, allow_nan=False).encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for entry, payload in ((ARF_MANIFEST, manifest), (GLB_ENTRY, glb)):
            info = zipfile.ZipInfo(entry, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _ZIP_FILE_MODE
            archive.writestr(info, payload, compresslevel=6)
    return out.getvalue()


# --- reading ---------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")
# Exceptions zipfile and zlib raise on damaged archives (zipfile.BadZipFile is a subclass of
# Exception only; struct.error and UnicodeDecodeError come from header parsing).
_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    KeyError,
    IndexError,
)


def _fail(code: ErrorCode, message: str) -> AvatarFormatError:
    return AvatarFormatError(code, message)


def _check_name(name: str) -> None:
    """Entry names must be relative paths without ``..``, backslashes or drive letters."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or _DRIVE.match(name)
        or any(part in ("..", ".") for part in parts)
        or any(not part for part in parts[:-1])
        or any(ord(ch) < 0x20 for ch in name)
    ):
        raise _fail(ErrorCode.ZIP_UNSAFE_NAME, f"unsafe entry name {name!r}")


def _open_zip(data: bytes, limits: ArfLimits) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    if len(data) > limits.max_archive_bytes:
        raise _fail(
            ErrorCode.ZIP_TOO_LARGE,
            f"container of {len(data)} bytes (at most {limits.max_archive_bytes})",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except _ZIP_ERRORS as exc:
        code = ErrorCode.ZIP_CORRUPT if data[:2] == b"PK" else ErrorCode.NOT_ZIP
        raise _fail(code, f"cannot read the ZIP directory: {exc}") from None
    if len(infos) > limits.max_entries:
        raise _fail(
            ErrorCode.ZIP_TOO_MANY_ENTRIES, f"{len(infos)} entries (at most {limits.max_entries})"
        )
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        # zipfile cuts names at NUL; the name as stored is in orig_filename.
        _check_name(info.orig_filename)
        if info.filename in entries:
            raise _fail(ErrorCode.ZIP_DUPLICATE_ENTRY, f"entry {info.filename!r} appears twice")
        entries[info.filename] = info
        if info.flag_bits & 0x1:
            raise _fail(ErrorCode.ZIP_UNSUPPORTED, f"entry {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _fail(
                ErrorCode.ZIP_UNSUPPORTED,
                f"entry {info.filename!r}: compression method {info.compress_type}",
            )
        if info.file_size > limits.max_entry_bytes:
            raise _fail(
                ErrorCode.ZIP_ENTRY_TOO_LARGE,
                f"entry {info.filename!r} expands to {info.file_size} bytes "
                f"(at most {limits.max_entry_bytes})",
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise _fail(
                ErrorCode.ZIP_TOO_LARGE,
                f"entries expand to more than {limits.max_total_bytes} bytes",
            )
        if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise _fail(
                ErrorCode.ZIP_RATIO,
                f"entry {info.filename!r}: compression ratio "
                f"{info.file_size / max(info.compress_size, 1):.0f} over {limits.max_ratio:.0f}",
            )
    return archive, entries


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, read in chunks and never more than its declared size (or
    ``limit``); CRC and length are checked."""
    declared = info.file_size
    if declared > limit:
        raise _fail(
            ErrorCode.ZIP_ENTRY_TOO_LARGE, f"entry {info.filename!r}: {declared} > {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(min(_READ_CHUNK, declared + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                if size > declared:
                    raise _fail(
                        ErrorCode.ZIP_CORRUPT,
                        f"entry {info.filename!r} holds more than its declared {declared} bytes",
                    )
                chunks.append(chunk)
    except _ZIP_ERRORS as exc:
        raise _fail(ErrorCode.ZIP_CORRUPT, f"entry {info.filename!r}: {exc}") from None
    if size != declared:
        raise _fail(
            ErrorCode.ZIP_CORRUPT, f"entry {info.filename!r}: {size} bytes, declared {declared}"
        )
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_document(raw: bytes) -> ArfDocument:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(
            ErrorCode.ARF_JSON_INVALID, f"{ARF_MANIFEST} is not UTF-8 JSON: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise _fail(ErrorCode.ARF_SCHEMA, f"{ARF_MANIFEST} must hold a JSON object")
    preamble = value.get("preamble")
    if isinstance(preamble, dict):
        # Checked before the schema so these two get their own codes.
        if preamble.get("signature") != ARF_SIGNATURE:
            raise _fail(
                ErrorCode.ARF_SIGNATURE,
                f"preamble.signature is {preamble.get('signature')!r}, not {ARF_SIGNATURE!r}",
            )
        version = preamble.get("version")
        if not isinstance(version, str) or version.split(".")[0] != _SUPPORTED_MAJOR:
            raise _fail(
                ErrorCode.ARF_VERSION,
                f"preamble.version {version!r} unsupported (expected {_SUPPORTED_MAJOR}.x)",
            )
    try:
        return ArfDocument.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _fail(
            ErrorCode.ARF_SCHEMA,
            f"{ARF_MANIFEST}: {where}: {first['msg']} ({exc.error_count()} problem(s))",
        ) from None


def _ids(kind: str, items: Iterable[Any]) -> set[int]:
    seen: set[int] = set()
    for item in items:
        if item.id in seen:
            raise _fail(ErrorCode.ARF_DUPLICATE_ID, f"{kind}: id {item.id} declared twice")
        seen.add(item.id)
    return seen


def _check_references(doc: ArfDocument) -> None:
    comp = doc.components
    nodes = _ids("components.nodes", comp.nodes)
    skeletons = _ids("components.skeletons", comp.skeletons)
    meshes = _ids("components.meshes", comp.meshes)
    skins = _ids("components.skins", comp.skins)
    sets = _ids("components.blendshapeSets", comp.blendshapeSets)
    data = _ids("data", doc.data)
    _ids("structure.assets", doc.structure.assets)

    def need(ref: int | None, ids: set[int], what: str) -> None:
        if ref is not None and ref not in ids:
            raise _fail(
                ErrorCode.ARF_REFERENCE, f"{what} refers to id {ref}, which is not declared"
            )

    for node in comp.nodes:
        need(node.parent, nodes, f"node {node.id} parent")
    for skeleton in comp.skeletons:
        need(skeleton.root, nodes, f"skeleton {skeleton.id} root")
        for joint in skeleton.joints:
            need(joint, nodes, f"skeleton {skeleton.id} joint")
    for mesh in comp.meshes:
        need(mesh.data, data, f"mesh {mesh.id} data")
    for skin in comp.skins:
        need(skin.mesh, meshes, f"skin {skin.id} mesh")
        need(skin.skeleton, skeletons, f"skin {skin.id} skeleton")
    for blendshapes in comp.blendshapeSets:
        need(blendshapes.mesh, meshes, f"blendshapeSet {blendshapes.id} mesh")
    for asset in doc.structure.assets:
        for lod in asset.lods:
            need(lod.mesh, meshes, f"asset {asset.id} lod {lod.level} mesh")
            need(lod.skin, skins, f"asset {asset.id} lod {lod.level} skin")
            need(lod.blendshapeSet, sets, f"asset {asset.id} lod {lod.level} blendshapeSet")


def _check_against_model(doc: ArfDocument, mesh_id: int, model: AvatarModel) -> None:
    """arf.json must describe the GLB it points at."""
    comp = doc.components
    mesh = next(m for m in comp.meshes if m.id == mesh_id)
    if (mesh.vertexCount, mesh.triangleCount) != (model.vertex_count, model.triangle_count):
        raise _fail(
            ErrorCode.ARF_MISMATCH,
            f"mesh {mesh.id}: arf.json says {mesh.vertexCount} vertices/{mesh.triangleCount} "
            f"triangles, the GLB has {model.vertex_count}/{model.triangle_count}",
        )
    for blendshapes in comp.blendshapeSets:
        if blendshapes.mesh == mesh_id and tuple(blendshapes.names) != model.target_names:
            raise _fail(
                ErrorCode.ARF_MISMATCH,
                f"blendshapeSet {blendshapes.id} names differ from the GLB's morph targets",
            )
    nodes = {node.id: node for node in comp.nodes}
    for skin in comp.skins:
        if skin.mesh != mesh_id:
            continue
        skeleton = next(s for s in comp.skeletons if s.id == skin.skeleton)
        names = tuple(nodes[joint].name for joint in skeleton.joints)
        if names != tuple(joint.name for joint in model.joints):
            raise _fail(
                ErrorCode.ARF_MISMATCH,
                f"skeleton {skeleton.id} joints {names} differ from the GLB skin's joints",
            )


def read_arf(data: bytes, *, limits: ArfLimits | None = None) -> ArfAvatar:
    """Parse and check an ARF container holding one GLB base avatar (see the module
    docstring for the checks). Raises only :class:`AvatarFormatError`."""
    limits = limits or ArfLimits()
    archive, entries = _open_zip(bytes(data), limits)
    with archive:
        manifest = entries.get(ARF_MANIFEST)
        if manifest is None:
            raise _fail(ErrorCode.ARF_JSON_MISSING, f"no {ARF_MANIFEST} at the container's root")
        doc = _parse_document(_read_entry(archive, manifest, limits.max_manifest_bytes))
        _check_references(doc)
        lod = doc.structure.assets[0].lods[0]
        mesh = next(m for m in doc.components.meshes if m.id == lod.mesh)
        entry = next(d for d in doc.data if d.id == mesh.data)
        if entry.type != GLB_MEDIA_TYPE:
            raise _fail(
                ErrorCode.ARF_UNSUPPORTED,
                f"data {entry.id} is {entry.type!r}; the product reads {GLB_MEDIA_TYPE} meshes",
            )
        if ":" in entry.uri.split("/")[0]:
            raise _fail(ErrorCode.ARF_UNSUPPORTED, f"data {entry.id}: external uri {entry.uri!r}")
        _check_name(entry.uri)
        info = entries.get(entry.uri)
        if info is None:
            raise _fail(ErrorCode.DATA_MISSING, f"data {entry.id}: no entry {entry.uri!r}")
        if info.file_size != entry.byteLength:
            raise _fail(
                ErrorCode.DATA_LENGTH_MISMATCH,
                f"data {entry.id}: byteLength {entry.byteLength}, entry holds {info.file_size}",
            )
        glb = _read_entry(archive, info, limits.glb.max_glb_bytes)
    model = read_glb(glb, limits=limits.glb)
    _check_against_model(doc, mesh.id, model)
    return ArfAvatar(document=doc, glb=glb, model=model)
