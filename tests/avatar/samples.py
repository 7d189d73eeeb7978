"""Shared avatar test inputs and GLB/ZIP surgery helpers (no pytest fixtures)."""

from __future__ import annotations

import functools
import io
import json
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from avatar_mf.avatar import AvatarModel, Joint, build_glb, write_arf
from avatar_mf.avatar.container import ARF_MANIFEST, GLB_ENTRY
from avatar_mf.avatar.generate import generate_default_head


@functools.cache
def default_head() -> AvatarModel:
    return generate_default_head()


@functools.cache
def low_head() -> AvatarModel:
    return generate_default_head(resolution="low")


@functools.cache
def default_glb() -> bytes:
    return build_glb(default_head())


@functools.cache
def low_arf() -> bytes:
    return write_arf(low_head(), avatar_id="urn:uuid:0000-low", name="low head")


def tiny_model() -> AvatarModel:
    """A skinned tetrahedron with two morph targets: fast to build, read and corrupt."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    normals = pos - pos.mean(axis=0)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    targets = np.zeros((2, 4, 3), np.float32)
    targets[0, 1] = (0.1, 0.0, 0.0)
    targets[1, 3] = (0.0, 0.0, 0.2)
    ibm = np.eye(4)[None].repeat(2, axis=0)
    ibm[1, 1, 3] = -1.0
    return AvatarModel(
        name="tiny",
        positions=pos,
        normals=normals,
        triangles=np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
        joints=(Joint("root", None), Joint("head", 0, (0.0, 1.0, 0.0))),
        inverse_bind_matrices=ibm,
        skin_joints=np.array([[0, 1, 0, 0]] * 4),
        skin_weights=np.array([[0.25, 0.75, 0, 0]] * 4),
        target_names=("a", "b"),
        target_positions=targets,
        target_normals=targets * 0,
        colors=np.full((4, 3), 0.5),
    )


# --- GLB surgery -----------------------------------------------------------------------------


def split_glb(data: bytes) -> tuple[dict[str, Any], bytearray]:
    """(JSON document, BIN chunk) of a well-formed GLB."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20 : 20 + json_len])
    bin_len = struct.unpack_from("<I", data, 20 + json_len)[0]
    start = 28 + json_len
    return doc, bytearray(data[start : start + bin_len])


def join_glb(doc: dict[str, Any], blob: bytes | bytearray) -> bytes:
    """A GLB with the given JSON document and BIN chunk (both padded to 4 bytes)."""
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    blob = bytes(blob) + b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(raw) + 8 + len(blob)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<II", len(raw), 0x4E4F534A)
        + raw
        + struct.pack("<II", len(blob), 0x004E4942)
        + blob
    )


def edit_glb(data: bytes, edit: Callable[[dict[str, Any], bytearray], None]) -> bytes:
    doc, blob = split_glb(data)
    edit(doc, blob)
    return join_glb(doc, blob)


def accessor_span(doc: dict[str, Any], index: int) -> tuple[int, int]:
    """(byte offset in BIN, byte length) of a dense accessor's buffer view."""
    view = doc["bufferViews"][doc["accessors"][index]["bufferView"]]
    return view.get("byteOffset", 0) + doc["accessors"][index].get("byteOffset", 0), view[
        "byteLength"
    ]


# --- ZIP surgery -----------------------------------------------------------------------------


def zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def make_zip(
    entries: list[tuple[str, bytes]] | dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    out = io.BytesIO()
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, payload in items:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, payload)
    return out.getvalue()


def edit_manifest(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    entries = zip_entries(data)
    doc = json.loads(entries[ARF_MANIFEST])
    edit(doc)
    entries[ARF_MANIFEST] = json.dumps(doc).encode()
    return make_zip(entries)


def replace_glb(data: bytes, glb: bytes, *, fix_length: bool = True) -> bytes:
    """The container with its GLB replaced (and arf.json's byteLength updated)."""
    entries = zip_entries(data)
    entries[GLB_ENTRY] = glb
    if fix_length:
        doc = json.loads(entries[ARF_MANIFEST])
        doc["data"][0]["byteLength"] = len(glb)
        entries[ARF_MANIFEST] = json.dumps(doc).encode()
    return make_zip(entries)
