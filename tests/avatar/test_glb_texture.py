"""A base colour texture in the GLB (glTF 2.0 3.8-3.9): round trip, layout, bad images."""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from typing import Any

import numpy as np
import pygltflib  # type: ignore[import-untyped]  # ships no type information
import pytest
from PIL import Image

from avatar_mf.avatar import AvatarFormatError, ErrorCode, GlbLimits, build_glb, read_glb
from avatar_mf.avatar.texture import check_texture, decode_texture
from tests.avatar.samples import edit_glb, split_glb, tiny_model


def _image(fmt: str, size: tuple[int, int] = (8, 4)) -> tuple[bytes, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue(), pixels


PNG, PNG_PIXELS = _image("PNG")
JPEG, _ = _image("JPEG", (16, 16))
UVS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32)


def textured(texture: bytes = PNG) -> Any:
    return replace(tiny_model(), uvs=UVS, texture=texture)


def test_round_trip_with_a_texture() -> None:
    for image in (PNG, JPEG):
        model = textured(image)
        back = read_glb(build_glb(model))
        assert back.same_as(model)
        assert back.texture == image
        assert back.uvs is not None and np.array_equal(back.uvs, UVS)
    # The decoded image is the one written (PNG is lossless).
    assert np.array_equal(decode_texture(PNG), PNG_PIXELS)


def test_texture_layout() -> None:
    doc, blob = split_glb(build_glb(textured()))
    primitive = doc["meshes"][0]["primitives"][0]
    uv = doc["accessors"][primitive["attributes"]["TEXCOORD_0"]]
    assert (uv["type"], uv["componentType"], uv["count"]) == ("VEC2", 5126, 4)
    info = doc["materials"][primitive["material"]]["pbrMetallicRoughness"]["baseColorTexture"]
    texture = doc["textures"][info["index"]]
    image = doc["images"][texture["source"]]
    assert image["mimeType"] == "image/png" and "uri" not in image
    view = doc["bufferViews"][image["bufferView"]]
    assert "byteStride" not in view and "target" not in view
    start = view.get("byteOffset", 0)
    assert bytes(blob[start : start + view["byteLength"]]) == PNG
    assert doc["samplers"][texture["sampler"]]["wrapS"] == 33071
    # pygltflib reads it too.
    gltf = pygltflib.GLTF2.load_from_bytes(build_glb(textured()))
    assert gltf.images[0].mimeType == "image/png"


def test_models_without_a_texture_are_unchanged() -> None:
    doc, _ = split_glb(build_glb(tiny_model()))
    assert not doc.get("images") and not doc.get("textures") and not doc.get("samplers")
    assert "TEXCOORD_0" not in doc["meshes"][0]["primitives"][0]["attributes"]
    material = doc["materials"][0]["pbrMetallicRoughness"]
    assert "baseColorTexture" not in material
    with pytest.raises(ValueError):
        replace(tiny_model(), uvs=UVS)  # uvs without a texture


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def _jpeg_header(width: int, height: int) -> bytes:
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00" * 3
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9"


def test_check_texture_reads_headers() -> None:
    assert check_texture(PNG) == check_texture(PNG)
    assert (check_texture(PNG).width, check_texture(PNG).height) == (8, 4)
    info = check_texture(JPEG)
    assert (info.mime_type, info.width, info.height) == ("image/jpeg", 16, 16)
    assert check_texture(_jpeg_header(300, 200)).width == 300


BAD_IMAGES = {
    "gif": b"GIF89a" + b"\0" * 40,
    "empty": b"",
    "png without IHDR": b"\x89PNG\r\n\x1a\n" + b"\0" * 30,
    "png too wide": _png_header(100_000, 16),
    "png zero high": _png_header(16, 0),
    "jpeg too high": _jpeg_header(16, 60_000),
    "jpeg without a frame": b"\xff\xd8\xff\xd9",
    "png that does not decode": _png_header(8, 4) + b"garbage",
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_refused(case: str) -> None:
    data = BAD_IMAGES[case]
    with pytest.raises(AvatarFormatError) as info:
        decode_texture(data)
    assert info.value.code is ErrorCode.GLB_TEXTURE, info.value
    if case != "png that does not decode":  # its header is fine: only decoding finds it
        with pytest.raises(AvatarFormatError) as info:
            build_glb(textured(data))
        assert info.value.code is ErrorCode.GLB_TEXTURE


def _swap_image(data: bytes) -> Any:
    def edit(doc: dict[str, Any], blob: bytearray) -> None:
        view = doc["bufferViews"][doc["images"][0]["bufferView"]]
        start = view.get("byteOffset", 0)
        blob[start : start + view["byteLength"]] = data.ljust(view["byteLength"], b"\0")

    return edit


def _primitive(doc: dict[str, Any]) -> Any:
    return doc["meshes"][0]["primitives"][0]


BAD_GLB = {
    "a gif": _swap_image(b"GIF89a"),
    "a huge png": _swap_image(_png_header(20_000, 20_000)),
    "mime type lies": lambda d, b: d["images"][0].update(mimeType="image/jpeg"),
    "external image": lambda d, b: d["images"][0].update(uri="face.png"),
    "second texcoord set": lambda d, b: d["materials"][0]["pbrMetallicRoughness"][
        "baseColorTexture"
    ].update(texCoord=1),
    "no TEXCOORD_0": lambda d, b: _primitive(d)["attributes"].pop("TEXCOORD_0"),
}


@pytest.mark.parametrize("case", sorted(BAD_GLB))
def test_bad_textures_in_a_glb(case: str) -> None:
    with pytest.raises(AvatarFormatError) as info:
        read_glb(edit_glb(build_glb(textured()), BAD_GLB[case]))
    assert info.value.code is ErrorCode.GLB_TEXTURE, info.value
    assert info.value.status_hint == 400


def test_texture_limits() -> None:
    data = build_glb(textured())
    for limits in (GlbLimits(max_texture_bytes=16), GlbLimits(max_texture_side=4)):
        with pytest.raises(AvatarFormatError) as info:
            read_glb(data, limits=limits)
        assert info.value.code is ErrorCode.GLB_TEXTURE
