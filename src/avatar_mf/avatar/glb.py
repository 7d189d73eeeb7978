"""glTF 2.0 binary (GLB) I/O for :class:`~avatar_mf.avatar.model.AvatarModel` (sans-IO).

Implements the parts of the glTF 2.0 specification (Khronos, 2.0.1) the product's base avatar
uses: the GLB container (section 4.4: 12-byte header, a JSON chunk, one BIN chunk, 4-byte
alignment), accessors and buffer views (3.6: component types, byteStride rules, bufferView
``target`` for vertex and index data only, sparse accessors, POSITION ``min``/``max``), one
indexed triangle primitive (3.7.2), morph targets (3.7.2.2: POSITION and NORMAL deltas, default
``mesh.weights`` all zero, names in ``mesh.extras.targetNames`` as common exporters do) and
skins (3.7.3: ``inverseBindMatrices``, ``JOINTS_0``/``WEIGHTS_0``) and one base colour
texture (3.8-3.9, 5.17-5.29: ``TEXCOORD_0``, an image embedded in a buffer view with its
``mimeType``, a sampler, the material's ``baseColorTexture``; PNG or JPEG only, its header
checked by :mod:`~avatar_mf.avatar.texture`).

Layout written by :func:`build_glb` (and required by :func:`read_glb`)::

    scene 0 -> node 0 "<model name>" (mesh 0, skin 0, no transform)
                 -> node 1 "root" -> node 2 "neck" -> ...   (joint nodes, TRS only)
    mesh 0: one primitive, mode TRIANGLES, indices uint16 (uint32 past 65535 vertices),
            POSITION, NORMAL, [COLOR_0], [TEXCOORD_0], JOINTS_0 (uint8, uint16 past 256
            joints), WEIGHTS_0, targets [{POSITION, NORMAL}] x M (sparse accessors when that
            is smaller)
    material 0 "skin": [baseColorTexture -> texture 0 (sampler 0, image 0 in a bufferView)]
    skin 0: joints = nodes 1..J in model order, skeleton = the first root joint

pygltflib serialises on the way out. On the way in the GLB framing and the JSON are decoded
and every value checked here, without pygltflib's decoder: it accepts any shape and costs about
0.6 ms per glTF object, so a hostile JSON chunk could cost seconds (the tests check that
pygltflib reads the product's files back). Both functions are pure and CPU bound: run them in
an executor.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pygltflib
from numpy.typing import NDArray

from avatar_mf.avatar.errors import AvatarFormatError, ErrorCode
from avatar_mf.avatar.limits import GlbLimits
from avatar_mf.avatar.model import AvatarModel, Joint
from avatar_mf.avatar.texture import check_texture

__all__ = ["GENERATOR", "build_glb", "check_model", "read_glb"]

#: ``asset.generator`` written into every GLB.
GENERATOR = "avatar_mf"

_GLB_MAGIC = b"glTF"
_GLB_VERSION = 2
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942

# glTF accessor component types and element types.
_BYTE, _UBYTE, _SHORT, _USHORT, _UINT, _FLOAT = 5120, 5121, 5122, 5123, 5125, 5126
_DTYPES: dict[int, np.dtype[Any]] = {
    _BYTE: np.dtype("<i1"),
    _UBYTE: np.dtype("<u1"),
    _SHORT: np.dtype("<i2"),
    _USHORT: np.dtype("<u2"),
    _UINT: np.dtype("<u4"),
    _FLOAT: np.dtype("<f4"),
}
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_TRIANGLES = 4
# Sampler filters and wrap mode (glTF 5.26).
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071

#: Largest |length - 1| accepted for a NORMAL; largest |sum - 1| for a row of skin weights.
_UNIT_TOLERANCE = 1e-2
_WEIGHT_SUM_TOLERANCE = 1e-3


def _fail(code: ErrorCode, message: str) -> AvatarFormatError:
    return AvatarFormatError(code, message)


# --- checks shared by build and read ---------------------------------------------------------


def check_model(model: AvatarModel, limits: GlbLimits | None = None) -> None:
    """Raise :class:`AvatarFormatError` unless ``model`` is a valid avatar within ``limits``.

    Checks sizes, finiteness of every float, triangle and joint index ranges, skin weights
    (non-negative, rows summing to 1), unit normals, the skeleton (names unique and non-empty,
    parents listed first, affine inverse bind matrices) and morph target names (unique,
    non-empty, one per target).
    """
    limits = limits or GlbLimits()
    n, t, j, m = (
        model.vertex_count,
        model.triangle_count,
        len(model.joints),
        len(model.target_names),
    )
    if n < 3 or n > limits.max_vertices:
        raise _fail(ErrorCode.GLB_TOO_LARGE, f"{n} vertices (1..{limits.max_vertices} allowed)")
    if t < 1 or t > limits.max_triangles:
        raise _fail(ErrorCode.GLB_TOO_LARGE, f"{t} triangles (1..{limits.max_triangles} allowed)")
    if j < 1 or j > limits.max_joints:
        raise _fail(ErrorCode.GLB_TOO_LARGE, f"{j} joints (1..{limits.max_joints} allowed)")
    if m > limits.max_morph_targets:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE, f"{m} morph targets (at most {limits.max_morph_targets})"
        )
    floats: list[tuple[str, NDArray[np.float32] | None]] = [
        ("POSITION", model.positions),
        ("NORMAL", model.normals),
        ("COLOR_0", model.colors),
        ("TEXCOORD_0", model.uvs),
        ("WEIGHTS_0", model.skin_weights),
        ("inverseBindMatrices", model.inverse_bind_matrices),
        ("morph target POSITION", model.target_positions),
        ("morph target NORMAL", model.target_normals),
    ]
    for what, array in floats:
        if array is not None and not bool(np.isfinite(array).all()):
            raise _fail(ErrorCode.GLB_NON_FINITE, f"{what} holds NaN or infinity")
    if t and int(model.triangles.max()) >= n:
        raise _fail(
            ErrorCode.GLB_INDEX_RANGE,
            f"triangle index {int(model.triangles.max())} beyond the {n} vertices",
        )
    if int(model.skin_joints.max()) >= j:
        raise _fail(
            ErrorCode.GLB_JOINT_RANGE,
            f"JOINTS_0 index {int(model.skin_joints.max())} beyond the skin's {j} joints",
        )
    if bool((model.skin_weights < 0).any()):
        raise _fail(ErrorCode.GLB_WEIGHTS, "negative skin weight")
    sums = model.skin_weights.astype(np.float64).sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > _WEIGHT_SUM_TOLERANCE:
        raise _fail(
            ErrorCode.GLB_WEIGHTS, f"skin weights of vertex {worst} sum to {sums[worst]:.6f}, not 1"
        )
    lengths = np.linalg.norm(model.normals.astype(np.float64), axis=1)
    if bool((np.abs(lengths - 1.0) > _UNIT_TOLERANCE).any()):
        raise _fail(ErrorCode.GLB_ACCESSOR, "NORMAL holds vectors that are not unit length")
    if model.colors is not None and bool(((model.colors < 0) | (model.colors > 1)).any()):
        raise _fail(ErrorCode.GLB_ACCESSOR, "COLOR_0 outside [0, 1]")
    if model.texture is not None:
        check_texture(model.texture, limits)
    _check_skeleton(model.joints, model.inverse_bind_matrices)
    names = model.target_names
    if any(not isinstance(name, str) or not name for name in names) or len(set(names)) != m:
        raise _fail(ErrorCode.GLB_MORPH_TARGETS, "morph target names must be unique, non-empty")
    if not model.name:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, "the model needs a non-empty name")


def _check_skeleton(joints: Sequence[Joint], ibms: NDArray[np.float32]) -> None:
    names = [joint.name for joint in joints]
    if any(not isinstance(name, str) or not name for name in names) or len(set(names)) != len(
        names
    ):
        raise _fail(ErrorCode.GLB_SKIN, "joint names must be unique and non-empty")
    for index, joint in enumerate(joints):
        if joint.parent is not None and not 0 <= joint.parent < index:
            raise _fail(
                ErrorCode.GLB_SKIN,
                f"joint {joint.name!r} has parent {joint.parent}: parents must come first",
            )
        values = (*joint.translation, *joint.rotation, *joint.scale)
        if not all(math.isfinite(v) for v in values):
            raise _fail(ErrorCode.GLB_NON_FINITE, f"joint {joint.name!r} transform is not finite")
        if abs(math.fsum(v * v for v in joint.rotation) - 1.0) > _UNIT_TOLERANCE:
            raise _fail(
                ErrorCode.GLB_SKIN, f"joint {joint.name!r} rotation is not a unit quaternion"
            )
    if not np.allclose(ibms[:, 3, :], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise _fail(ErrorCode.GLB_SKIN, "inverse bind matrices must be affine (last row 0 0 0 1)")


# --- writing ---------------------------------------------------------------------------------


class _Writer:
    """Accumulates the BIN chunk, buffer views and accessors of one GLB."""

    def __init__(self, gltf: Any) -> None:
        self.gltf = gltf
        self.blob = bytearray()

    def view(self, data: bytes, *, target: int | None = None, stride: int | None = None) -> int:
        """Append ``data`` (4-byte aligned) as a new buffer view; return its index."""
        offset = len(self.blob)
        self.blob += data
        self.blob += b"\0" * (-len(data) % 4)
        self.gltf.bufferViews.append(
            pygltflib.BufferView(
                buffer=0, byteOffset=offset, byteLength=len(data), byteStride=stride, target=target
            )
        )
        return len(self.gltf.bufferViews) - 1

    def accessor(
        self,
        array: NDArray[Any],
        component_type: int,
        type_: str,
        *,
        target: int | None,
        vertex: bool,
        min_max: bool = False,
    ) -> int:
        """Append ``array`` (rows are elements) as one tightly packed accessor."""
        data = np.ascontiguousarray(array, dtype=_DTYPES[component_type])
        rows = data.reshape(len(data), -1)
        view = self.view(
            data.tobytes(),
            target=target,
            # byteStride is only allowed on vertex attribute views (glTF 3.6.2.4).
            stride=rows.shape[1] * data.dtype.itemsize if vertex else None,
        )
        acc = pygltflib.Accessor(
            bufferView=view, byteOffset=0, componentType=component_type, count=len(rows), type=type_
        )
        if min_max:
            acc.min = [float(v) for v in rows.min(axis=0)]
            acc.max = [float(v) for v in rows.max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def delta_accessor(self, deltas: NDArray[np.float32], *, min_max: bool, sparse: bool) -> int:
        """A VEC3 float morph target accessor, sparse when that takes fewer bytes."""
        n = len(deltas)
        rows = np.flatnonzero(np.any(deltas != 0, axis=1))
        index_type = _UBYTE if n <= 256 else _USHORT if n <= 65536 else _UINT
        sparse_bytes = len(rows) * (12 + _DTYPES[index_type].itemsize)
        if not sparse or sparse_bytes >= n * 12:
            return self.accessor(
                deltas, _FLOAT, "VEC3", target=_ARRAY_BUFFER, vertex=True, min_max=min_max
            )
        # No bufferView: all zeros, then the sparse rows; byteOffset needs a bufferView.
        acc = pygltflib.Accessor(componentType=_FLOAT, count=n, type="VEC3", byteOffset=None)
        if min_max:
            acc.min = [float(v) for v in deltas.min(axis=0)]
            acc.max = [float(v) for v in deltas.max(axis=0)]
        if len(rows):
            # Sparse index and value views carry neither target nor byteStride (glTF 3.6.2.3).
            index_view = self.view(rows.astype(_DTYPES[index_type]).tobytes())
            value_view = self.view(np.ascontiguousarray(deltas[rows], dtype="<f4").tobytes())
            acc.sparse = pygltflib.Sparse(
                count=len(rows),
                indices=pygltflib.AccessorSparseIndices(
                    bufferView=index_view, byteOffset=0, componentType=index_type
                ),
                values=pygltflib.AccessorSparseValues(bufferView=value_view, byteOffset=0),
            )
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def _joint_node(joint: Joint) -> Any:
    node = pygltflib.Node(name=joint.name)
    if joint.translation != (0.0, 0.0, 0.0):
        node.translation = [float(v) for v in joint.translation]
    if joint.rotation != (0.0, 0.0, 0.0, 1.0):
        node.rotation = [float(v) for v in joint.rotation]
    if joint.scale != (1.0, 1.0, 1.0):
        node.scale = [float(v) for v in joint.scale]
    return node


def build_glb(model: AvatarModel, *, sparse_targets: bool = True) -> bytes:
    """Serialise ``model`` as a self-contained GLB (glTF 2.0 binary).

    ``sparse_targets`` writes each morph target accessor as a sparse accessor when that is
    smaller (blendshapes move few vertices: about 5x smaller files for the default head).
    Raises :class:`AvatarFormatError` when the model fails :func:`check_model` (default
    limits), so the product never writes a file it would refuse to read.
    """
    check_model(model)
    n = model.vertex_count
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator=GENERATOR, version="2.0"))
    w = _Writer(gltf)

    attributes = pygltflib.Attributes(
        POSITION=w.accessor(
            model.positions, _FLOAT, "VEC3", target=_ARRAY_BUFFER, vertex=True, min_max=True
        ),
        NORMAL=w.accessor(model.normals, _FLOAT, "VEC3", target=_ARRAY_BUFFER, vertex=True),
    )
    if model.colors is not None:
        attributes.COLOR_0 = w.accessor(
            model.colors, _FLOAT, "VEC3", target=_ARRAY_BUFFER, vertex=True
        )
    if model.uvs is not None:
        attributes.TEXCOORD_0 = w.accessor(
            model.uvs, _FLOAT, "VEC2", target=_ARRAY_BUFFER, vertex=True
        )
    joint_type = _UBYTE if len(model.joints) <= 256 else _USHORT
    attributes.JOINTS_0 = w.accessor(
        model.skin_joints, joint_type, "VEC4", target=_ARRAY_BUFFER, vertex=True
    )
    attributes.WEIGHTS_0 = w.accessor(
        model.skin_weights, _FLOAT, "VEC4", target=_ARRAY_BUFFER, vertex=True
    )
    # 65535 is the primitive restart value of uint16 indices: it must not appear (glTF 3.7.2.1).
    index_type = _USHORT if n <= 65535 else _UINT
    indices = w.accessor(
        model.triangles.reshape(-1),
        index_type,
        "SCALAR",
        target=_ELEMENT_ARRAY_BUFFER,
        vertex=False,
    )
    targets = []
    for k in range(len(model.target_names)):
        target = {
            "POSITION": w.delta_accessor(
                model.target_positions[k], min_max=True, sparse=sparse_targets
            )
        }
        if model.target_normals is not None:
            target["NORMAL"] = w.delta_accessor(
                model.target_normals[k], min_max=False, sparse=sparse_targets
            )
        targets.append(pygltflib.Attributes(**target))
    # Inverse bind matrices are column-major MAT4; the model holds them as column-vector
    # matrices, so each one is written transposed.
    ibm = w.accessor(
        np.transpose(model.inverse_bind_matrices, (0, 2, 1)).reshape(-1, 16),
        _FLOAT,
        "MAT4",
        target=None,
        vertex=False,
    )

    pbr = pygltflib.PbrMetallicRoughness(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.65
    )
    if model.texture is not None:
        info = check_texture(model.texture)
        image = pygltflib.Image(bufferView=w.view(model.texture), mimeType=info.mime_type)
        gltf.images.append(image)
        gltf.samplers.append(
            pygltflib.Sampler(
                magFilter=_LINEAR,
                minFilter=_LINEAR_MIPMAP_LINEAR,
                wrapS=_CLAMP_TO_EDGE,
                wrapT=_CLAMP_TO_EDGE,
            )
        )
        gltf.textures.append(pygltflib.Texture(sampler=0, source=0))
        pbr.baseColorTexture = pygltflib.TextureInfo(index=0)
    gltf.materials.append(
        pygltflib.Material(
            name="skin",
            # Double sided: the inside of the head shows through the open mouth in profile.
            doubleSided=True,
            pbrMetallicRoughness=pbr,
        )
    )
    primitive = pygltflib.Primitive(
        attributes=attributes, indices=indices, mode=_TRIANGLES, material=0, targets=targets
    )
    mesh = pygltflib.Mesh(name=model.name, primitives=[primitive])
    if model.target_names:
        mesh.weights = [0.0] * len(model.target_names)
        mesh.extras = {"targetNames": list(model.target_names)}
    gltf.meshes.append(mesh)

    joint_nodes = [_joint_node(joint) for joint in model.joints]
    roots = []
    for index, joint in enumerate(model.joints):
        if joint.parent is None:
            roots.append(index + 1)
        else:
            joint_nodes[joint.parent].children.append(index + 1)
    gltf.nodes = [pygltflib.Node(name=model.name, mesh=0, skin=0, children=roots), *joint_nodes]
    gltf.skins.append(
        pygltflib.Skin(
            name=f"{model.name}-skeleton",
            inverseBindMatrices=ibm,
            skeleton=roots[0],
            joints=list(range(1, len(model.joints) + 1)),
        )
    )
    gltf.scenes.append(pygltflib.Scene(name="scene", nodes=[0]))
    gltf.scene = 0
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(w.blob)))
    gltf.set_binary_blob(bytes(w.blob))
    return b"".join(gltf.save_to_bytes())


# --- reading ---------------------------------------------------------------------------------


def _split_glb(data: bytes, limits: GlbLimits) -> tuple[bytes, memoryview]:
    """The JSON chunk and the BIN chunk of a GLB, after checking the framing (glTF 4.4)."""
    if len(data) > limits.max_glb_bytes:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE, f"GLB of {len(data)} bytes (at most {limits.max_glb_bytes})"
        )
    if len(data) < 20:
        raise _fail(ErrorCode.GLB_HEADER, f"{len(data)} bytes is too short for a GLB")
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != _GLB_MAGIC:
        raise _fail(ErrorCode.GLB_HEADER, "not a GLB (magic is not 'glTF')")
    if version != _GLB_VERSION:
        raise _fail(ErrorCode.GLB_HEADER, f"GLB container version {version}, expected 2")
    if length != len(data):
        raise _fail(ErrorCode.GLB_HEADER, f"GLB header says {length} bytes, got {len(data)}")
    view = memoryview(data)
    chunks: list[tuple[int, memoryview]] = []
    offset = 12
    while offset < len(data):
        if offset + 8 > len(data):
            raise _fail(ErrorCode.GLB_HEADER, f"truncated chunk header at byte {offset}")
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        start = offset + 8
        if chunk_length % 4 or start + chunk_length > len(data):
            raise _fail(
                ErrorCode.GLB_HEADER,
                f"chunk at byte {offset}: length {chunk_length} unaligned or past the end",
            )
        chunks.append((chunk_type, view[start : start + chunk_length]))
        offset = start + chunk_length
    if not chunks or chunks[0][0] != _CHUNK_JSON:
        raise _fail(ErrorCode.GLB_HEADER, "the first chunk must be JSON")
    bins = [chunk for kind, chunk in chunks[1:] if kind == _CHUNK_BIN]
    if chunks[1:2] and chunks[1][0] != _CHUNK_BIN or len(bins) > 1:
        raise _fail(ErrorCode.GLB_HEADER, "the BIN chunk must be the second and only one")
    if any(kind == _CHUNK_JSON for kind, _ in chunks[1:]):
        raise _fail(ErrorCode.GLB_HEADER, "more than one JSON chunk")
    if not bins:
        raise _fail(ErrorCode.GLB_HEADER, "no BIN chunk: the product's GLB is self-contained")
    if len(chunks[0][1]) > limits.max_json_bytes:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE,
            f"JSON chunk of {len(chunks[0][1])} bytes (at most {limits.max_json_bytes})",
        )
    return bytes(chunks[0][1]), bins[0]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_json(raw: bytes, limits: GlbLimits) -> dict[str, Any]:
    """The glTF JSON document, after checking it is strict JSON of sane size.

    Reading does not go through pygltflib's decoder: it accepts any shape, costs about 0.6 ms
    per glTF object (a hostile 4 MB JSON chunk could cost seconds) and every value is checked
    here anyway. pygltflib reading our files back is covered by the tests.
    """
    try:
        # Trailing spaces are the chunk's padding (glTF 4.4.3.2).
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(ErrorCode.GLB_JSON, f"JSON chunk is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _fail(ErrorCode.GLB_JSON, "the glTF JSON must be an object")
    for key, value in document.items():
        if isinstance(value, list) and len(value) > limits.max_objects:
            raise _fail(
                ErrorCode.GLB_TOO_LARGE, f"{len(value)} {key} (at most {limits.max_objects})"
            )
    return document


def _get(obj: object, key: str, default: Any = None) -> Any:
    """``obj[key]`` for a JSON object, ``default`` when absent or ``obj`` is not an object."""
    if isinstance(obj, dict):
        value = obj.get(key, default)
        return default if value is None else value
    return default


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(
    obj: object,
    name: str,
    what: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    code: ErrorCode = ErrorCode.GLB_JSON,
) -> int | None:
    """``obj.<name>`` as an int >= ``minimum``; ``default`` when absent."""
    value = _get(obj, name, None)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(code, f"{what}: {name} must be an integer >= {minimum}, not {value!r}")
    return value


def _fields(obj: object) -> dict[str, Any]:
    """A JSON object's members (``GLB_JSON`` when ``obj`` is not an object)."""
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if v is not None}
    raise _fail(ErrorCode.GLB_JSON, f"expected an object, got {type(obj).__name__}")


def _number_list(value: object, length: int, what: str) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != length
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(ErrorCode.GLB_JSON, f"{what} must be {length} numbers")
    out = [float(v) for v in value]
    if not all(math.isfinite(v) for v in out):
        raise _fail(ErrorCode.GLB_NON_FINITE, f"{what} holds a non-finite number")
    return out


class _Reader:
    """Typed, checked access to one decoded glTF document and its BIN chunk."""

    def __init__(self, gltf: dict[str, Any], blob: memoryview, limits: GlbLimits) -> None:
        self.gltf = gltf
        self.blob = blob
        self.limits = limits
        self.buffer_length = self._buffer_length()

    def items(self, kind: str) -> list[Any]:
        value = _get(self.gltf, kind, None)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _fail(ErrorCode.GLB_JSON, f"{kind} must be an array")
        return value

    def ref(self, value: object, kind: str, what: str) -> Any:
        """``self.gltf.<kind>[value]`` after checking ``value`` is an index into it."""
        items = self.items(kind)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(items):
            raise _fail(ErrorCode.GLB_JSON, f"{what}: {value!r} is not an index into {kind}")
        if not isinstance(items[value], dict):
            raise _fail(ErrorCode.GLB_JSON, f"{kind}[{value}] is not a JSON object")
        return items[value]

    def _buffer_length(self) -> int:
        buffers = self.items("buffers")
        if len(buffers) != 1:
            raise _fail(ErrorCode.GLB_UNSUPPORTED, f"{len(buffers)} buffers, expected 1 (GLB)")
        buffer = buffers[0]
        if _get(buffer, "uri", None) is not None:
            raise _fail(ErrorCode.GLB_UNSUPPORTED, "external or data: URI buffers are refused")
        length = _int_field(buffer, "byteLength", "buffer 0", minimum=1)
        if length is None or length > len(self.blob) or len(self.blob) - length > 3:
            raise _fail(
                ErrorCode.GLB_ACCESSOR,
                f"buffer byteLength {length!r} does not match the {len(self.blob)} byte BIN chunk",
            )
        return length

    def view_bytes(self, index: object, what: str) -> tuple[int, int, int | None]:
        """(offset into the BIN chunk, byteLength, byteStride) of a checked buffer view."""
        view = self.ref(index, "bufferViews", what)
        if _int_field(view, "buffer", what) != 0:
            raise _fail(ErrorCode.GLB_JSON, f"{what}: bufferView.buffer must be 0")
        offset = _int_field(view, "byteOffset", what, default=0)
        length = _int_field(view, "byteLength", what, minimum=1)
        stride = _int_field(view, "byteStride", what, minimum=4)
        if offset is None or length is None:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: bufferView without byteLength")
        if offset + length > self.buffer_length:
            raise _fail(
                ErrorCode.GLB_ACCESSOR,
                f"{what}: bufferView [{offset}, {offset + length}) is past the "
                f"{self.buffer_length} byte buffer",
            )
        if stride is not None and (stride > 252 or stride % 4):
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: byteStride {stride} not in 4..252/4")
        return offset, length, stride

    def accessor(
        self,
        index: object,
        what: str,
        *,
        components: Sequence[int],
        type_: str,
        count: int | None,
        max_count: int,
    ) -> NDArray[Any]:
        """The (count, n) array of an accessor, sparse substitution applied, fully checked."""
        acc = self.ref(index, "accessors", what)
        component_type, acc_type = _get(acc, "componentType", None), _get(acc, "type", None)
        if (
            not isinstance(component_type, int)
            or component_type not in components
            or (acc_type != type_)
        ):
            raise _fail(
                ErrorCode.GLB_UNSUPPORTED,
                f"{what}: accessor is {acc_type}/{component_type}, expected {type_}/"
                + "|".join(str(c) for c in components),
            )
        if _get(acc, "normalized", False):
            raise _fail(ErrorCode.GLB_UNSUPPORTED, f"{what}: normalized accessors are refused")
        n = _int_field(acc, "count", what, minimum=1, code=ErrorCode.GLB_ACCESSOR)
        if n is None:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: accessor without count")
        if count is not None and n != count:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: {n} elements where {count} are needed")
        if n > max_count:
            raise _fail(ErrorCode.GLB_TOO_LARGE, f"{what}: {n} elements (at most {max_count})")
        dtype = _DTYPES[component_type]
        ncomp = _COMPONENTS[type_]
        elem = dtype.itemsize * ncomp
        data: NDArray[Any]
        if _get(acc, "bufferView", None) is None:
            data = np.zeros((n, ncomp), dtype=dtype)
        else:
            start, length, stride = self.view_bytes(_get(acc, "bufferView"), what)
            byte_offset = _int_field(acc, "byteOffset", what, default=0) or 0
            if (start + byte_offset) % dtype.itemsize:
                raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: misaligned accessor byteOffset")
            step = stride or elem
            if step < elem:
                raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: byteStride {step} < element {elem}")
            needed = byte_offset + step * (n - 1) + elem
            if needed > length:
                raise _fail(
                    ErrorCode.GLB_ACCESSOR,
                    f"{what}: {n} elements need {needed} bytes, the bufferView has {length}",
                )
            data = np.ndarray(
                (n, ncomp), dtype, self.blob, start + byte_offset, (step, dtype.itemsize)
            ).copy()
        sparse = _get(acc, "sparse", None)
        if sparse is not None:
            self._apply_sparse(sparse, data, what)
        if dtype.kind == "f" and not bool(np.isfinite(data).all()):
            raise _fail(ErrorCode.GLB_NON_FINITE, f"{what}: NaN or infinity in float data")
        self._check_bounds(acc, data, what)
        return data

    def _apply_sparse(self, sparse: Any, data: NDArray[Any], what: str) -> None:
        n = len(data)
        count = _int_field(sparse, "count", what, minimum=1, code=ErrorCode.GLB_ACCESSOR)
        indices, values = _get(sparse, "indices", None), _get(sparse, "values", None)
        if count is None or count > n or indices is None or values is None:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: bad sparse count {count!r}")
        fields_i, fields_v = _fields(indices), _fields(values)
        index_type = fields_i.get("componentType")
        if index_type not in (_UBYTE, _USHORT, _UINT):
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: sparse index type {index_type!r}")
        rows = self._tight(fields_i, _DTYPES[int(index_type)], count, what + " sparse indices")
        rows = rows.astype(np.int64)
        if bool((np.diff(rows) <= 0).any()) or int(rows[-1]) >= n:
            raise _fail(
                ErrorCode.GLB_ACCESSOR,
                f"{what}: sparse indices must increase strictly and stay below {n}",
            )
        ncomp = data.shape[1]
        flat = self._tight(fields_v, data.dtype, count * ncomp, what + " sparse values")
        data[rows] = flat.reshape(count, ncomp)

    def _tight(
        self, ref: dict[str, Any], dtype: np.dtype[Any], count: int, what: str
    ) -> NDArray[Any]:
        start, length, stride = self.view_bytes(ref.get("bufferView"), what)
        offset = ref.get("byteOffset", 0) or 0
        if stride is not None:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: sparse bufferViews take no byteStride")
        if not _is_int(offset) or int(offset) < 0 or (start + int(offset)) % dtype.itemsize:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: misaligned byteOffset")
        if int(offset) + count * dtype.itemsize > length:
            raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: {count} values overrun the bufferView")
        return np.frombuffer(self.blob, dtype, count, start + int(offset)).copy()

    @staticmethod
    def _check_bounds(acc: Any, data: NDArray[Any], what: str) -> None:
        """Data must lie within the accessor's declared min/max, when declared."""
        ncomp = data.shape[1]
        for name, outside in (("min", np.less), ("max", np.greater)):
            bound = _get(acc, name, None)
            if bound is None or bound == []:
                continue
            limit = np.asarray(_number_list(bound, ncomp, f"{what} {name}"), dtype=np.float64)
            if data.dtype.kind == "f":
                limit = limit.astype(np.float32).astype(np.float64)
            if bool(outside(data.astype(np.float64), limit).any()):
                raise _fail(ErrorCode.GLB_ACCESSOR, f"{what}: data outside the declared {name}")


def _joint_from_node(node: Any, parent: int | None, what: str) -> Joint:
    if _get(node, "matrix", None) is not None:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, f"{what}: joint nodes must use TRS, not matrix")
    name = _get(node, "name", None)
    if not isinstance(name, str) or not name:
        raise _fail(ErrorCode.GLB_SKIN, f"{what}: joint nodes need a non-empty name")
    t = _get(node, "translation", None)
    r = _get(node, "rotation", None)
    s = _get(node, "scale", None)
    translation = (0.0, 0.0, 0.0) if t is None else _number_list(t, 3, f"{what} translation")
    rotation = (0.0, 0.0, 0.0, 1.0) if r is None else _number_list(r, 4, f"{what} rotation")
    scale = (1.0, 1.0, 1.0) if s is None else _number_list(s, 3, f"{what} scale")
    return Joint(
        name=name,
        parent=parent,
        translation=(translation[0], translation[1], translation[2]),
        rotation=(rotation[0], rotation[1], rotation[2], rotation[3]),
        scale=(scale[0], scale[1], scale[2]),
    )


def _has_transform(node: Any) -> bool:
    return any(
        _get(node, key, None) not in (None, [], default)
        for key, default in (
            ("matrix", [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0]),
            ("translation", [0, 0, 0]),
            ("rotation", [0, 0, 0, 1]),
            ("scale", [1, 1, 1]),
        )
    )


def _node_parents(r: _Reader) -> list[int | None]:
    """Parent of every node; the node graph must be a forest (glTF 3.5.3)."""
    nodes = r.items("nodes")
    parents: list[int | None] = [None] * len(nodes)
    for index, node in enumerate(nodes):
        children = _get(node, "children", None) or []
        if not isinstance(children, list):
            raise _fail(ErrorCode.GLB_JSON, f"node {index}: children must be an array")
        for child in children:
            r.ref(child, "nodes", f"node {index} child")
            if parents[child] is not None or child == index:
                raise _fail(ErrorCode.GLB_JSON, f"node {child} has more than one parent")
            parents[child] = index
    for start in range(len(nodes)):
        seen, node_index = 0, parents[start]
        while node_index is not None:
            seen += 1
            if seen > len(nodes):
                raise _fail(ErrorCode.GLB_JSON, f"node {start} is part of a cycle")
            node_index = parents[node_index]
    return parents


def _read_skeleton(r: _Reader, skin: Any, parents: list[int | None]) -> list[Joint]:
    joint_nodes = _get(skin, "joints", None)
    if not isinstance(joint_nodes, list) or not joint_nodes:
        raise _fail(ErrorCode.GLB_SKIN, "the skin has no joints")
    if len(joint_nodes) > r.limits.max_joints:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE, f"{len(joint_nodes)} joints (at most {r.limits.max_joints})"
        )
    for k, node_index in enumerate(joint_nodes):
        r.ref(node_index, "nodes", f"skin joint {k}")
    if len(set(joint_nodes)) != len(joint_nodes):
        raise _fail(ErrorCode.GLB_SKIN, "a node is listed twice in skin.joints")
    position = {node: k for k, node in enumerate(joint_nodes)}
    nodes = r.items("nodes")
    joints: list[Joint] = []
    for k, node_index in enumerate(joint_nodes):
        parent_node = parents[node_index]
        parent: int | None = None
        if parent_node is not None and parent_node in position:
            parent = position[parent_node]
            if parent >= k:
                raise _fail(ErrorCode.GLB_SKIN, f"skin joint {k} is listed before its parent")
        else:
            ancestor = parent_node
            while ancestor is not None:
                if _has_transform(nodes[ancestor]):
                    raise _fail(
                        ErrorCode.GLB_UNSUPPORTED,
                        f"skin joint {k}: ancestor node {ancestor} has a transform",
                    )
                ancestor = parents[ancestor]
        joints.append(_joint_from_node(nodes[node_index], parent, f"skin joint {k}"))
    return joints


def _target_names(mesh: Any, count: int) -> tuple[str, ...]:
    extras = _get(mesh, "extras", None) or {}
    names = extras.get("targetNames", []) if isinstance(extras, dict) else None
    if not isinstance(names, list) or not all(isinstance(v, str) and v for v in names):
        raise _fail(ErrorCode.GLB_MORPH_TARGETS, "mesh.extras.targetNames must list strings")
    if len(names) != count:
        raise _fail(
            ErrorCode.GLB_MORPH_TARGETS,
            f"{count} morph targets but {len(names)} names in mesh.extras.targetNames",
        )
    if len(set(names)) != len(names):
        raise _fail(ErrorCode.GLB_MORPH_TARGETS, "duplicate names in mesh.extras.targetNames")
    weights = _get(mesh, "weights", None)
    if weights not in (None, []):
        _number_list(weights, count, "mesh.weights")
    return tuple(names)


def _read_texture(r: _Reader, primitive: Any) -> bytes | None:
    """The encoded image of the primitive's material's ``baseColorTexture``, or None."""
    material_index = _get(primitive, "material", None)
    if material_index is None:
        return None
    material = r.ref(material_index, "materials", "primitive.material")
    info = _get(_get(material, "pbrMetallicRoughness", None), "baseColorTexture", None)
    if info is None:
        return None
    if _get(info, "texCoord", 0) != 0:
        raise _fail(ErrorCode.GLB_TEXTURE, "baseColorTexture must use TEXCOORD_0")
    texture = r.ref(_get(info, "index", None), "textures", "baseColorTexture.index")
    if _get(texture, "sampler", None) is not None:
        r.ref(_get(texture, "sampler"), "samplers", "texture.sampler")
    image = r.ref(_get(texture, "source", None), "images", "texture.source")
    if _get(image, "uri", None) is not None or _get(image, "bufferView", None) is None:
        raise _fail(ErrorCode.GLB_TEXTURE, "the image must be embedded in a bufferView")
    offset, length, stride = r.view_bytes(_get(image, "bufferView"), "image")
    if stride is not None:
        raise _fail(ErrorCode.GLB_TEXTURE, "an image's bufferView has no byteStride")
    if length > r.limits.max_texture_bytes:
        raise _fail(
            ErrorCode.GLB_TEXTURE, f"{length} bytes of image (at most {r.limits.max_texture_bytes})"
        )
    data = bytes(r.blob[offset : offset + length])
    found = check_texture(data, r.limits)
    if _get(image, "mimeType", None) != found.mime_type:
        raise _fail(
            ErrorCode.GLB_TEXTURE,
            f"image mimeType {_get(image, 'mimeType', None)!r} but the bytes are {found.mime_type}",
        )
    return data


def read_glb(data: bytes, *, limits: GlbLimits | None = None) -> AvatarModel:
    """Parse and check a GLB of the product's layout (see the module docstring).

    Raises only :class:`AvatarFormatError`. ``build_glb`` followed by ``read_glb`` gives back
    an equal model (:meth:`AvatarModel.same_as`). The material's ``baseColorTexture`` is read
    with ``TEXCOORD_0`` (the image's header checked: ``glb-texture``); ``TEXCOORD_0`` without
    a texture, other texture coordinates and ``TANGENT`` are ignored; a second influence set
    (``JOINTS_1``), external buffers or images, required extensions, several meshes or
    primitives are refused.
    """
    limits = limits or GlbLimits()
    raw_json, blob = _split_glb(bytes(data), limits)
    gltf = _decode_json(raw_json, limits)
    version = _get(_get(gltf, "asset", None), "version", None)
    if not isinstance(version, str) or not version.startswith("2."):
        raise _fail(ErrorCode.GLB_UNSUPPORTED, f"asset.version {version!r}, expected 2.x")
    required = _get(gltf, "extensionsRequired")
    if required:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, f"required extensions {required!r}")
    r = _Reader(gltf, blob, limits)

    meshes, skins = r.items("meshes"), r.items("skins")
    if len(meshes) != 1 or len(skins) != 1:
        raise _fail(
            ErrorCode.GLB_UNSUPPORTED, f"{len(meshes)} meshes, {len(skins)} skins: expected 1 each"
        )
    mesh, skin = meshes[0], skins[0]
    primitives = _get(mesh, "primitives", None)
    if not isinstance(primitives, list) or len(primitives) != 1:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, "the mesh must have exactly one primitive")
    primitive = primitives[0]
    mode = _get(primitive, "mode", _TRIANGLES)
    if mode not in (None, _TRIANGLES):
        raise _fail(ErrorCode.GLB_UNSUPPORTED, f"primitive mode {mode!r}, expected TRIANGLES")
    mesh_nodes = [
        k for k, node in enumerate(r.items("nodes")) if _get(node, "mesh", None) is not None
    ]
    if len(mesh_nodes) != 1:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, f"{len(mesh_nodes)} mesh nodes, expected 1")
    mesh_node = r.items("nodes")[mesh_nodes[0]]
    if _get(mesh_node, "mesh", None) != 0 or _get(mesh_node, "skin", None) != 0:
        raise _fail(ErrorCode.GLB_SKIN, "the mesh node must reference mesh 0 and skin 0")
    name = _get(mesh, "name", None) or _get(mesh_node, "name", None)
    if not isinstance(name, str) or not name:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, "the mesh needs a name")
    parents = _node_parents(r)
    joints = _read_skeleton(r, skin, parents)

    attributes = _fields(_get(primitive, "attributes", None))
    for key in attributes:
        if not isinstance(key, str) or key.startswith(("JOINTS_", "WEIGHTS_")) and key[-2:] != "_0":
            raise _fail(ErrorCode.GLB_UNSUPPORTED, f"attribute {key!r}: one influence set only")
    for key in ("POSITION", "NORMAL", "JOINTS_0", "WEIGHTS_0"):
        if attributes.get(key) is None:
            raise _fail(ErrorCode.GLB_UNSUPPORTED, f"the primitive has no {key} attribute")
    positions = r.accessor(
        attributes["POSITION"],
        "POSITION",
        components=[_FLOAT],
        type_="VEC3",
        count=None,
        max_count=limits.max_vertices,
    )
    position_acc = r.ref(attributes["POSITION"], "accessors", "POSITION")
    if not _get(position_acc, "min", None) or not _get(position_acc, "max", None):
        raise _fail(ErrorCode.GLB_ACCESSOR, "POSITION accessor without min/max (glTF 3.7.2.1)")
    n = len(positions)

    def vertex_attr(key: str, components: Sequence[int], type_: str) -> NDArray[Any]:
        return r.accessor(
            attributes[key], key, components=components, type_=type_, count=n, max_count=n
        )

    normals = vertex_attr("NORMAL", [_FLOAT], "VEC3")
    colors = vertex_attr("COLOR_0", [_FLOAT], "VEC3") if "COLOR_0" in attributes else None
    texture = _read_texture(r, primitive)
    uvs = None
    if texture is not None:
        if "TEXCOORD_0" not in attributes:
            raise _fail(ErrorCode.GLB_TEXTURE, "a baseColorTexture without TEXCOORD_0")
        uvs = vertex_attr("TEXCOORD_0", [_FLOAT], "VEC2")
    skin_joints = vertex_attr("JOINTS_0", [_UBYTE, _USHORT], "VEC4")
    skin_weights = vertex_attr("WEIGHTS_0", [_FLOAT], "VEC4")
    if _get(primitive, "indices", None) is None:
        raise _fail(ErrorCode.GLB_UNSUPPORTED, "the primitive has no indices")
    indices = r.accessor(
        _get(primitive, "indices"),
        "indices",
        components=[_UBYTE, _USHORT, _UINT],
        type_="SCALAR",
        count=None,
        max_count=3 * limits.max_triangles,
    ).reshape(-1)
    if len(indices) % 3:
        raise _fail(ErrorCode.GLB_ACCESSOR, f"{len(indices)} indices is not a multiple of 3")
    if len(indices) and int(indices.max()) >= n:
        raise _fail(
            ErrorCode.GLB_INDEX_RANGE, f"index {int(indices.max())} beyond the {n} vertices"
        )

    targets = _get(primitive, "targets", None) or []
    if not isinstance(targets, list):
        raise _fail(ErrorCode.GLB_MORPH_TARGETS, "primitive.targets must be an array")
    m = len(targets)
    if m > limits.max_morph_targets:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE, f"{m} morph targets (at most {limits.max_morph_targets})"
        )
    names = _target_names(mesh, m)
    target_fields = [_fields(target) for target in targets]
    has_normals = bool(target_fields) and "NORMAL" in target_fields[0]
    for k, fields in enumerate(target_fields):
        if "POSITION" not in fields or ("NORMAL" in fields) != has_normals:
            raise _fail(
                ErrorCode.GLB_MORPH_TARGETS,
                f"morph target {k}: every target needs POSITION, and NORMAL in all or none",
            )
    if m * n * 3 * (2 if has_normals else 1) > limits.max_morph_values:
        raise _fail(
            ErrorCode.GLB_TOO_LARGE,
            f"{m} morph targets x {n} vertices exceed {limits.max_morph_values} values",
        )
    target_positions = np.zeros((m, n, 3), dtype=np.float32)
    target_normals = np.zeros((m, n, 3), dtype=np.float32) if has_normals else None
    for k, fields in enumerate(target_fields):
        target_positions[k] = r.accessor(
            fields["POSITION"],
            f"target {k} POSITION",
            components=[_FLOAT],
            type_="VEC3",
            count=n,
            max_count=n,
        )
        if target_normals is not None:
            target_normals[k] = r.accessor(
                fields["NORMAL"],
                f"target {k} NORMAL",
                components=[_FLOAT],
                type_="VEC3",
                count=n,
                max_count=n,
            )

    ibm_index = _get(skin, "inverseBindMatrices", None)
    if ibm_index is None:
        ibms = np.broadcast_to(np.eye(4, dtype=np.float32), (len(joints), 4, 4))
    else:
        ibms = (
            r.accessor(
                ibm_index,
                "inverseBindMatrices",
                components=[_FLOAT],
                type_="MAT4",
                count=len(joints),
                max_count=len(joints),
            )
            .reshape(-1, 4, 4)
            .transpose(0, 2, 1)
        )
    try:
        model = AvatarModel(
            name=name,
            positions=positions,
            normals=normals,
            triangles=indices.reshape(-1, 3).astype(np.uint32),
            joints=tuple(joints),
            inverse_bind_matrices=ibms,
            skin_joints=skin_joints.astype(np.uint16),
            skin_weights=skin_weights,
            target_names=names,
            target_positions=target_positions,
            target_normals=target_normals,
            colors=colors,
            uvs=uvs,
            texture=texture,
        )
    except ValueError as exc:  # shapes were checked above; this is a last line of defence
        raise _fail(ErrorCode.GLB_ACCESSOR, str(exc)) from None
    check_model(model, limits)
    return model
