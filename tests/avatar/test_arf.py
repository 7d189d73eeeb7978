"""ARF containers: round trip, and every validation error class on crafted bad containers."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.avatar import ArfLimits, AvatarFormatError, ErrorCode, read_arf, write_arf
from avatar_mf.avatar.container import ARF_MANIFEST, FACE_PROFILE, GLB_ENTRY, GLB_MEDIA_TYPE
from tests.avatar.samples import (
    accessor_span,
    edit_glb,
    edit_manifest,
    low_arf,
    low_head,
    make_zip,
    replace_glb,
    tiny_model,
    zip_entries,
)

TINY_ARF = write_arf(tiny_model(), avatar_id="urn:uuid:tiny", name="tiny")


def test_round_trip() -> None:
    avatar = read_arf(low_arf())
    assert avatar.model.same_as(low_head())
    assert avatar.avatar_id == "urn:uuid:0000-low"
    doc = avatar.document
    assert doc.preamble.signature == "ARF" and doc.preamble.supportedAnimations == [FACE_PROFILE]
    assert doc.data[0].type == GLB_MEDIA_TYPE and doc.data[0].byteLength == len(avatar.glb)
    assert doc.components.blendshapeSets[0].names == list(low_head().target_names)
    assert [n.name for n in doc.components.nodes] == [j.name for j in low_head().joints]
    assert write_arf(low_head(), avatar_id="urn:uuid:0000-low", name="low head") == low_arf()
    assert set(zip_entries(low_arf())) == {ARF_MANIFEST, GLB_ENTRY}


def test_ids_not_positions() -> None:
    """References resolve by declared id, whatever the array order."""

    def renumber(doc: dict[str, Any]) -> None:
        doc["data"][0]["id"] = 7
        mesh = doc["components"]["meshes"][0]
        mesh["id"], mesh["data"] = 3, 7
        doc["components"]["skins"][0]["mesh"] = 3
        doc["components"]["blendshapeSets"][0]["mesh"] = 3
        doc["structure"]["assets"][0]["lods"][0]["mesh"] = 3
        nodes = doc["components"]["nodes"]
        for node in nodes:
            node["id"] += 10
            if node["parent"] is not None:
                node["parent"] += 10
        nodes.reverse()
        skeleton = doc["components"]["skeletons"][0]
        skeleton["root"] += 10
        skeleton["joints"] = [j + 10 for j in skeleton["joints"]]

    avatar = read_arf(edit_manifest(TINY_ARF, renumber))
    assert avatar.model.same_as(tiny_model())


def manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    return lambda data: edit_manifest(data, change)


def entries(change: Callable[[dict[str, bytes]], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        items = zip_entries(data)
        change(items)
        return make_zip(items)

    return apply


def flip_compressed_byte(data: bytes) -> bytes:
    """Damage the GLB entry's compressed bytes (CRC or inflate error)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(GLB_ENTRY)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
    out = bytearray(data)
    out[start] ^= 0xFF
    return bytes(out)


def bad_index_glb(data: bytes) -> bytes:
    def edit(doc: dict[str, Any], blob: bytearray) -> None:
        offset, _ = accessor_span(doc, doc["meshes"][0]["primitives"][0]["indices"])
        blob[offset : offset + 2] = (9).to_bytes(2, "little")

    return replace_glb(data, edit_glb(zip_entries(data)[GLB_ENTRY], edit))


def comp(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"][kind][0]
    return result


BAD_ARF: dict[str, tuple[ErrorCode, Callable[[bytes], bytes]]] = {
    "not a zip": (ErrorCode.NOT_ZIP, lambda data: b"hello, this is not a zip file"),
    "truncated zip": (ErrorCode.ZIP_CORRUPT, lambda data: data[: len(data) // 2]),
    "flipped compressed byte": (ErrorCode.ZIP_CORRUPT, flip_compressed_byte),
    "no arf.json": (ErrorCode.ARF_JSON_MISSING, entries(lambda e: e.pop(ARF_MANIFEST))),
    "arf.json in a folder": (
        ErrorCode.ARF_JSON_MISSING,
        entries(lambda e: e.update({"x/arf.json": e.pop(ARF_MANIFEST)})),
    ),
    "bad JSON": (ErrorCode.ARF_JSON_INVALID, entries(lambda e: e.update({ARF_MANIFEST: b"{"}))),
    "NaN in JSON": (
        ErrorCode.ARF_JSON_INVALID,
        entries(lambda e: e.update({ARF_MANIFEST: b'{"a": NaN}'})),
    ),
    "not UTF-8": (ErrorCode.ARF_JSON_INVALID, entries(lambda e: e.update({ARF_MANIFEST: b"\xff"}))),
    "JSON array": (ErrorCode.ARF_SCHEMA, entries(lambda e: e.update({ARF_MANIFEST: b"[]"}))),
    "missing metadata": (ErrorCode.ARF_SCHEMA, manifest(lambda d: d.pop("metadata"))),
    "id is a string": (
        ErrorCode.ARF_SCHEMA,
        manifest(lambda d: d["data"][0].update(id="0")),
    ),
    "negative byteLength": (
        ErrorCode.ARF_SCHEMA,
        manifest(lambda d: d["data"][0].update(byteLength=-1)),
    ),
    "bad signature": (
        ErrorCode.ARF_SIGNATURE,
        manifest(lambda d: d["preamble"].update(signature="FRA")),
    ),
    "bad version": (ErrorCode.ARF_VERSION, manifest(lambda d: d["preamble"].update(version="2.0"))),
    "duplicate node ids": (
        ErrorCode.ARF_DUPLICATE_ID,
        manifest(lambda d: d["components"]["nodes"][1].update(id=0)),
    ),
    "duplicate data ids": (
        ErrorCode.ARF_DUPLICATE_ID,
        manifest(lambda d: d["data"].append(dict(d["data"][0], name="copy"))),
    ),
    "mesh refers to missing data": (
        ErrorCode.ARF_REFERENCE,
        manifest(lambda d: comp(d, "meshes").update(data=5)),
    ),
    "skin refers to missing skeleton": (
        ErrorCode.ARF_REFERENCE,
        manifest(lambda d: comp(d, "skins").update(skeleton=9)),
    ),
    "skeleton joint missing": (
        ErrorCode.ARF_REFERENCE,
        manifest(lambda d: comp(d, "skeletons")["joints"].append(42)),
    ),
    "node parent missing": (
        ErrorCode.ARF_REFERENCE,
        manifest(lambda d: d["components"]["nodes"][1].update(parent=77)),
    ),
    "lod refers to missing blendshape set": (
        ErrorCode.ARF_REFERENCE,
        manifest(lambda d: d["structure"]["assets"][0]["lods"][0].update(blendshapeSet=4)),
    ),
    "byteLength mismatch": (
        ErrorCode.DATA_LENGTH_MISMATCH,
        manifest(lambda d: d["data"][0].update(byteLength=d["data"][0]["byteLength"] + 4)),
    ),
    "data entry missing": (ErrorCode.DATA_MISSING, entries(lambda e: e.pop(GLB_ENTRY))),
    "uri points elsewhere": (
        ErrorCode.DATA_MISSING,
        manifest(lambda d: d["data"][0].update(uri="data/other.glb")),
    ),
    "uri escapes the container": (
        ErrorCode.ZIP_UNSAFE_NAME,
        manifest(lambda d: d["data"][0].update(uri="../avatar.glb")),
    ),
    "external uri": (
        ErrorCode.ARF_UNSUPPORTED,
        manifest(lambda d: d["data"][0].update(uri="https://example.invalid/a.glb")),
    ),
    "data type not GLB": (
        ErrorCode.ARF_UNSUPPORTED,
        manifest(lambda d: d["data"][0].update(type="model/obj")),
    ),
    "vertex count differs": (
        ErrorCode.ARF_MISMATCH,
        manifest(lambda d: comp(d, "meshes").update(vertexCount=5)),
    ),
    "blendshape names differ": (
        ErrorCode.ARF_MISMATCH,
        manifest(lambda d: comp(d, "blendshapeSets").update(names=["b", "a"])),
    ),
    "path traversal entry": (
        ErrorCode.ZIP_UNSAFE_NAME,
        entries(lambda e: e.update({"../../etc/passwd": b"x"})),
    ),
    "absolute entry": (ErrorCode.ZIP_UNSAFE_NAME, entries(lambda e: e.update({"/abs": b"x"}))),
    "backslash entry": (ErrorCode.ZIP_UNSAFE_NAME, entries(lambda e: e.update({"a\\b": b"x"}))),
    "drive letter entry": (ErrorCode.ZIP_UNSAFE_NAME, entries(lambda e: e.update({"C:x": b"x"}))),
    "duplicate entry": (  # zipfile warns when writing it: that is the point
        ErrorCode.ZIP_DUPLICATE_ENTRY,
        lambda data: make_zip([*zip_entries(data).items(), (ARF_MANIFEST, b"{}")]),
    ),
    "bzip2 entry": (
        ErrorCode.ZIP_UNSUPPORTED,
        lambda data: make_zip(zip_entries(data), compression=zipfile.ZIP_BZIP2),
    ),
    "GLB with out-of-range index": (ErrorCode.GLB_INDEX_RANGE, bad_index_glb),
    "GLB that is not a GLB": (
        ErrorCode.GLB_HEADER,
        lambda data: replace_glb(data, b"\0" * 64),
    ),
}


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
@pytest.mark.parametrize("case", sorted(BAD_ARF))
def test_bad_container(case: str) -> None:
    code, damage = BAD_ARF[case]
    with pytest.raises(AvatarFormatError) as info:
        read_arf(damage(TINY_ARF))
    assert info.value.code is code, info.value
    assert str(info.value).startswith(code.value + ": ")


def test_zip_bomb_defences() -> None:
    def code_of(data: bytes, limits: ArfLimits) -> ErrorCode:
        with pytest.raises(AvatarFormatError) as info:
            read_arf(data, limits=limits)
        return info.value.code

    bomb = make_zip({ARF_MANIFEST: b"{}", "data/zeros.bin": b"\0" * (4 * 1024 * 1024)})
    assert code_of(bomb, ArfLimits()) is ErrorCode.ZIP_RATIO
    assert code_of(bomb, ArfLimits(max_entry_bytes=1024 * 1024)) is ErrorCode.ZIP_ENTRY_TOO_LARGE
    assert code_of(bomb, ArfLimits(max_total_bytes=2 * 1024 * 1024)) is ErrorCode.ZIP_TOO_LARGE
    many = make_zip({f"data/{k}.bin": b"x" for k in range(100)})
    assert code_of(many, ArfLimits()) is ErrorCode.ZIP_TOO_MANY_ENTRIES
    assert code_of(TINY_ARF, ArfLimits(max_archive_bytes=100)) is ErrorCode.ZIP_TOO_LARGE
    assert code_of(TINY_ARF, ArfLimits(max_manifest_bytes=100)) is ErrorCode.ZIP_ENTRY_TOO_LARGE
    error = AvatarFormatError(ErrorCode.ZIP_TOO_LARGE, "x")
    assert error.status_hint == 413


def test_declared_size_lies() -> None:
    """An entry whose central directory understates its size is caught while reading."""
    data = bytearray(TINY_ARF)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(ARF_MANIFEST)
    central = bytes(data).find(b"PK\x01\x02")
    # uncompressed size lives at offset 24 of the central directory record.
    data[central + 24 : central + 28] = (info.file_size - 10).to_bytes(4, "little")
    with pytest.raises(AvatarFormatError) as raised:
        read_arf(bytes(data))
    assert raised.value.code is ErrorCode.ZIP_CORRUPT


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_fuzz_container_bytes(data: st.DataObject) -> None:
    container = bytearray(TINY_ARF)
    for _ in range(data.draw(st.integers(0, 6))):
        container[data.draw(st.integers(0, len(container) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(container)))
    try:
        read_arf(bytes(container[:cut]))
    except AvatarFormatError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_manifest(data: st.DataObject) -> None:
    doc = json.loads(zip_entries(TINY_ARF)[ARF_MANIFEST])
    leaves: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            leaves.append((node, key))
            if isinstance(value, dict | list):
                walk(value)

    walk(doc)
    container, key = data.draw(st.sampled_from(leaves))
    container[key] = data.draw(
        st.none()
        | st.integers(-3, 10**12)
        | st.text(max_size=5)
        | st.floats()
        | st.lists(st.integers(-1, 3), max_size=3)
    )
    try:
        read_arf(edit_manifest(TINY_ARF, lambda d: d.update(doc)))
    except AvatarFormatError:
        pass
