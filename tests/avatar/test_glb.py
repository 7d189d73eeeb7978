"""GLB build/read: exact round trip, the layout, and every class of bad input."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pygltflib  # type: ignore[import-untyped]  # ships no type information
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.avatar import AvatarFormatError, ErrorCode, GlbLimits, build_glb, read_glb
from tests.avatar.samples import (
    accessor_span,
    default_glb,
    default_head,
    edit_glb,
    join_glb,
    split_glb,
    tiny_model,
)

TINY = build_glb(tiny_model())


def test_round_trip_is_exact() -> None:
    model = default_head()
    assert read_glb(default_glb()).same_as(model)
    dense = build_glb(model, sparse_targets=False)
    assert len(dense) > 4 * len(default_glb())  # sparse targets: much smaller files
    assert read_glb(dense).same_as(model)
    assert read_glb(TINY).same_as(tiny_model())
    assert build_glb(model) == default_glb()  # deterministic bytes


def test_layout() -> None:
    doc, blob = split_glb(default_glb())
    assert doc["asset"]["version"] == "2.0"
    assert doc["scenes"][doc["scene"]]["nodes"] == [0]
    root = doc["nodes"][0]
    assert (root["mesh"], root["skin"]) == (0, 0)
    assert [doc["nodes"][k]["name"] for k in doc["skins"][0]["joints"]] == [
        "root", "neck", "head", "jaw", "eyeLeft", "eyeRight",
    ]  # fmt: skip
    primitive = doc["meshes"][0]["primitives"][0]
    assert len(doc["meshes"][0]["extras"]["targetNames"]) == len(primitive["targets"]) == 52
    assert doc["meshes"][0]["weights"] == [0.0] * 52
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    assert len(position["min"]) == len(position["max"]) == 3
    for target in primitive["targets"]:
        assert "min" in doc["accessors"][target["POSITION"]]
    joints = doc["accessors"][primitive["attributes"]["JOINTS_0"]]
    assert joints["componentType"] == 5121  # 6 joints fit unsigned bytes
    assert doc["accessors"][primitive["indices"]]["componentType"] == 5123  # uint16
    for attribute in primitive["attributes"].values():
        view = doc["bufferViews"][doc["accessors"][attribute]["bufferView"]]
        assert view["target"] == 34962 and view["byteStride"] % 4 == 0
    index_view = doc["bufferViews"][doc["accessors"][primitive["indices"]]["bufferView"]]
    assert index_view["target"] == 34963 and "byteStride" not in index_view
    ibm_view = doc["bufferViews"][
        doc["accessors"][doc["skins"][0]["inverseBindMatrices"]]["bufferView"]
    ]
    assert "target" not in ibm_view and "byteStride" not in ibm_view
    assert all(view.get("byteOffset", 0) % 4 == 0 for view in doc["bufferViews"])
    assert len(blob) == doc["buffers"][0]["byteLength"]


def test_pygltflib_reads_the_file_back() -> None:
    gltf = pygltflib.GLTF2.load_from_bytes(default_glb())
    primitive = gltf.meshes[0].primitives[0]
    assert len(primitive.targets) == 52
    assert gltf.meshes[0].extras["targetNames"][24] == "jawOpen"
    assert len(gltf.skins[0].joints) == 6
    assert gltf.accessors[primitive.attributes.POSITION].count == default_head().vertex_count


# --- bad input -------------------------------------------------------------------------------

Edit = Callable[[dict[str, Any], bytearray], None]


def primitive_of(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["meshes"][0]["primitives"][0]
    return result


def set_float(index: int, value: float) -> Edit:
    """Overwrite the first float of a dense accessor."""

    def edit(doc: dict[str, Any], blob: bytearray) -> None:
        offset, _ = accessor_span(doc, index)
        struct.pack_into("<f", blob, offset, value)

    return edit


def attr(name: str) -> Callable[[dict[str, Any]], int]:
    return lambda doc: primitive_of(doc)["attributes"][name]


def poke(where: Callable[[dict[str, Any]], int], fmt: str, value: float | int) -> Edit:
    def edit(doc: dict[str, Any], blob: bytearray) -> None:
        offset, _ = accessor_span(doc, where(doc))
        struct.pack_into(fmt, blob, offset, value)

    return edit


def json_edit(change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda doc, blob: change(doc)


BAD_GLB: dict[str, tuple[ErrorCode, Edit]] = {
    "index out of range": (
        ErrorCode.GLB_INDEX_RANGE,
        poke(lambda d: primitive_of(d)["indices"], "<H", 9),
    ),
    "joint beyond the skin": (ErrorCode.GLB_JOINT_RANGE, poke(attr("JOINTS_0"), "<B", 2)),
    "NaN position": (ErrorCode.GLB_NON_FINITE, poke(attr("POSITION"), "<f", math.nan)),
    "inf normal": (ErrorCode.GLB_NON_FINITE, poke(attr("NORMAL"), "<f", math.inf)),
    "NaN weight": (ErrorCode.GLB_NON_FINITE, poke(attr("WEIGHTS_0"), "<f", math.nan)),
    "NaN inverse bind matrix": (
        ErrorCode.GLB_NON_FINITE,
        poke(lambda d: d["skins"][0]["inverseBindMatrices"], "<f", math.nan),
    ),
    "NaN in a sparse morph target": (
        ErrorCode.GLB_NON_FINITE,
        lambda doc, blob: struct.pack_into(
            "<f",
            blob,
            doc["bufferViews"][
                doc["accessors"][primitive_of(doc)["targets"][0]["POSITION"]]["sparse"]["values"][
                    "bufferView"
                ]
            ]["byteOffset"],
            math.nan,
        ),
    ),
    "weights sum to 1.25": (ErrorCode.GLB_WEIGHTS, poke(attr("WEIGHTS_0"), "<f", 0.5)),
    "negative weight": (ErrorCode.GLB_WEIGHTS, poke(attr("WEIGHTS_0"), "<f", -0.25)),
    "count beyond the bufferView": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["accessors"][attr("POSITION")(d)].update(count=5)),
    ),
    "attribute counts differ": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["accessors"][attr("NORMAL")(d)].update(count=3)),
    ),
    "bufferView beyond the buffer": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["bufferViews"][0].update(byteLength=10**6)),
    ),
    "buffer byteLength wrong": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["buffers"][0].update(byteLength=8)),
    ),
    "byteStride too small": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["bufferViews"][0].update(byteStride=4)),
    ),
    "index count not a multiple of 3": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["accessors"][primitive_of(d)["indices"]].update(count=11)),
    ),
    "POSITION without min/max": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["accessors"][attr("POSITION")(d)].pop("min")),
    ),
    "position outside max": (
        ErrorCode.GLB_ACCESSOR,
        json_edit(lambda d: d["accessors"][attr("POSITION")(d)].update(max=[0.5, 0.5, 0.5])),
    ),
    "fewer target names": (
        ErrorCode.GLB_MORPH_TARGETS,
        json_edit(lambda d: d["meshes"][0]["extras"]["targetNames"].pop()),
    ),
    "duplicate target names": (
        ErrorCode.GLB_MORPH_TARGETS,
        json_edit(lambda d: d["meshes"][0]["extras"].update(targetNames=["a", "a"])),
    ),
    "target without POSITION": (
        ErrorCode.GLB_MORPH_TARGETS,
        json_edit(lambda d: primitive_of(d)["targets"][1].pop("POSITION")),
    ),
    "sparse indices out of range": (
        ErrorCode.GLB_ACCESSOR,
        lambda doc, blob: struct.pack_into(
            "<B",
            blob,
            doc["bufferViews"][
                doc["accessors"][primitive_of(doc)["targets"][0]["POSITION"]]["sparse"]["indices"][
                    "bufferView"
                ]
            ]["byteOffset"],
            200,
        ),
    ),
    "joint listed before its parent": (
        ErrorCode.GLB_SKIN,
        json_edit(lambda d: d["skins"][0].update(joints=[2, 1])),
    ),
    "node with two parents": (
        ErrorCode.GLB_JSON,
        json_edit(lambda d: d["nodes"][1].update(children=[2, 2])),
    ),
    "node cycle": (ErrorCode.GLB_JSON, json_edit(lambda d: d["nodes"][2].update(children=[0]))),
    "dangling accessor index": (
        ErrorCode.GLB_JSON,
        json_edit(lambda d: primitive_of(d)["attributes"].update(NORMAL=999)),
    ),
    "wrong type": (
        ErrorCode.GLB_JSON,
        json_edit(lambda d: d["accessors"][0].update(bufferView="zero")),
    ),
    "rotation not a unit quaternion": (
        ErrorCode.GLB_SKIN,
        json_edit(lambda d: d["nodes"][2].update(rotation=[0, 0, 0, 2])),
    ),
    "two meshes": (
        ErrorCode.GLB_UNSUPPORTED,
        json_edit(lambda d: d["meshes"].append(d["meshes"][0])),
    ),
    "points instead of triangles": (
        ErrorCode.GLB_UNSUPPORTED,
        json_edit(lambda d: primitive_of(d).update(mode=0)),
    ),
    "required extension": (
        ErrorCode.GLB_UNSUPPORTED,
        json_edit(lambda d: d.update(extensionsRequired=["KHR_draco_mesh_compression"])),
    ),
    "external buffer": (
        ErrorCode.GLB_UNSUPPORTED,
        json_edit(lambda d: d["buffers"][0].update(uri="http://example.invalid/x.bin")),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GLB))
def test_bad_glb(case: str) -> None:
    code, edit = BAD_GLB[case]
    with pytest.raises(AvatarFormatError) as info:
        read_glb(edit_glb(TINY, edit))
    assert info.value.code is code, info.value
    assert info.value.status_hint == 400


def test_bad_framing() -> None:
    doc, blob = split_glb(TINY)
    good = join_glb(doc, blob)
    assert read_glb(good).same_as(tiny_model())
    cases = {
        "short": good[:10],
        "magic": b"glTx" + good[4:],
        "version": good[:4] + struct.pack("<I", 1) + good[8:],
        "length": good[:8] + struct.pack("<I", len(good) + 4) + good[12:],
        "truncated": good[:-8],
        "no BIN": join_glb(doc, b"")[: 20 + len(json.dumps(doc)) + 4],
        "chunk past the end": good[:12] + struct.pack("<I", 10**6) + good[16:],
    }
    for name, data in cases.items():
        with pytest.raises(AvatarFormatError) as info:
            read_glb(data)
        assert info.value.code is ErrorCode.GLB_HEADER, name
    raw = b"{not json"
    raw += b" " * (-len(raw) % 4)
    bad_json = (
        struct.pack("<4sII", b"glTF", 2, 20 + len(raw))
        + struct.pack("<II", len(raw), 0x4E4F534A)
        + raw
    )
    bad_json += struct.pack("<II", 4, 0x004E4942) + b"\0" * 4
    bad_json = bad_json[:8] + struct.pack("<I", len(bad_json)) + bad_json[12:]
    with pytest.raises(AvatarFormatError) as info:
        read_glb(bad_json)
    assert info.value.code is ErrorCode.GLB_JSON


def test_size_limits() -> None:
    for limits in (
        GlbLimits(max_vertices=3),
        GlbLimits(max_triangles=3),
        GlbLimits(max_morph_targets=1),
        GlbLimits(max_joints=1),
        GlbLimits(max_glb_bytes=100),
        GlbLimits(max_json_bytes=100),
        GlbLimits(max_morph_values=10),
    ):
        with pytest.raises(AvatarFormatError) as info:
            read_glb(TINY, limits=limits)
        assert info.value.code is ErrorCode.GLB_TOO_LARGE, limits
        assert info.value.status_hint == 413


def test_build_refuses_invalid_models() -> None:
    from dataclasses import replace

    model = tiny_model()
    positions = model.positions.copy()
    positions[0, 0] = np.nan
    with pytest.raises(AvatarFormatError) as info:
        build_glb(replace(model, positions=positions))
    assert info.value.code is ErrorCode.GLB_NON_FINITE
    with pytest.raises(AvatarFormatError) as info:
        build_glb(replace(model, triangles=model.triangles + 1))
    assert info.value.code is ErrorCode.GLB_INDEX_RANGE


# --- fuzzing ---------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


TINY_DOC, TINY_BIN = split_glb(TINY)
TINY_PATHS = [path for path in _paths(TINY_DOC) if path]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TINY_PATHS), JSON_VALUES)
def test_fuzz_json_values(path: tuple[Any, ...], value: Any) -> None:
    doc = json.loads(json.dumps(TINY_DOC))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        read_glb(join_glb(doc, TINY_BIN))
    except AvatarFormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_bytes(data: st.DataObject) -> None:
    glb = bytearray(TINY)
    for _ in range(data.draw(st.integers(1, 8))):
        glb[data.draw(st.integers(0, len(glb) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(glb)))
    try:
        read_glb(bytes(glb[:cut]))
    except AvatarFormatError:
        pass
