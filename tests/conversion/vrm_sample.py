"""A small VRM 1.0 avatar built with pygltflib (not with the product's writer): a skinned
octahedron "head" with VRoid-style morph target names and VRMC_vrm humanoid bones and
expression presets."""

from __future__ import annotations

import numpy as np
import pygltflib as g

#: Morph targets: name -> (vertex, delta). VRoid-style names (not ARKit).
TARGETS: dict[str, tuple[int, tuple[float, float, float]]] = {
    "Fcl_MTH_A": (5, (0.0, -0.03, 0.0)),  # mouth open: the bottom vertex goes down
    "Fcl_EYE_Close_L": (0, (0.0, -0.01, 0.0)),
    "Fcl_EYE_Close_R": (1, (0.0, -0.01, 0.0)),
    "Fcl_ALL_Joy": (2, (0.01, 0.01, 0.0)),
    "EyeBlink_L": (0, (0.0, -0.012, 0.0)),  # an ARKit name in another spelling
    "Hair_Wave": (4, (0.0, 0.0, 0.02)),  # maps to nothing
}
JOINTS = ("J_Bip_C_Hips", "J_Bip_C_Neck", "J_Bip_C_Head", "J_Adj_L_FaceEye", "J_Adj_R_FaceEye")


def _view(
    blob: bytearray, data: bytes, target: int | None = None, stride: int | None = None
) -> g.BufferView:
    while len(blob) % 4:
        blob.append(0)
    view = g.BufferView(
        buffer=0, byteOffset=len(blob), byteLength=len(data), target=target, byteStride=stride
    )
    blob.extend(data)
    return view


def build_vrm() -> bytes:
    pos = np.array(
        [
            [0.05, 0.2, 0.05],
            [-0.05, 0.2, 0.05],
            [0.1, 0.15, 0],
            [-0.1, 0.15, 0],
            [0, 0.25, 0],
            [0, 0.1, 0.02],
        ],
        np.float32,
    )
    centre = pos.mean(axis=0)
    normals = pos - centre
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    tris = np.array(
        [[0, 4, 1], [0, 1, 5], [0, 2, 4], [1, 4, 3], [0, 5, 2], [1, 3, 5], [2, 5, 3], [2, 3, 4]],
        np.uint16,
    )
    joints = np.array([[2, 0, 0, 0]] * 6, np.uint8)
    weights = np.array([[1, 0, 0, 0]] * 6, np.float32)
    # Rest pose: hips at the origin, neck +0.1, head +0.05, eyes ahead of the head.
    translations = [(0, 0, 0), (0, 0.1, 0), (0, 0.05, 0), (0.03, 0.05, 0.05), (-0.03, 0.05, 0.05)]
    parents = [None, 0, 1, 2, 2]
    glob = []
    for k, t in enumerate(translations):
        base = np.zeros(3) if parents[k] is None else glob[parents[k]]
        glob.append(base + np.array(t))
    ibms = np.zeros((5, 4, 4), np.float32)
    for k, t in enumerate(glob):
        m = np.eye(4, dtype=np.float32)
        m[:3, 3] = -t
        ibms[k] = m.T  # glTF stores matrices column-major
    blob = bytearray()
    views, accessors = [], []

    def add(
        data: np.ndarray,
        comp: int,
        kind: str,
        target: int | None = None,
        minmax: bool = False,
        stride: int | None = None,
    ) -> int:
        views.append(_view(blob, data.tobytes(), target, stride))
        acc = g.Accessor(bufferView=len(views) - 1, componentType=comp, count=len(data), type=kind)
        if minmax:
            acc.min = data.min(axis=0).tolist()
            acc.max = data.max(axis=0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    a_pos = add(pos, g.FLOAT, "VEC3", g.ARRAY_BUFFER, True, 12)
    a_nrm = add(normals.astype(np.float32), g.FLOAT, "VEC3", g.ARRAY_BUFFER, stride=12)
    a_jnt = add(joints, g.UNSIGNED_BYTE, "VEC4", g.ARRAY_BUFFER, stride=4)
    a_wgt = add(weights, g.FLOAT, "VEC4", g.ARRAY_BUFFER, stride=16)
    a_idx = add(tris.reshape(-1), g.UNSIGNED_SHORT, "SCALAR", g.ELEMENT_ARRAY_BUFFER)
    targets = []
    for vertex, delta in TARGETS.values():
        d = np.zeros((6, 3), np.float32)
        d[vertex] = delta
        targets.append({"POSITION": add(d, g.FLOAT, "VEC3", g.ARRAY_BUFFER, True, 12)})
    a_ibm = add(ibms.reshape(5, 16), g.FLOAT, "MAT4")
    names = list(TARGETS)
    nodes = [g.Node(name="Face", mesh=0, skin=0)]
    for k, name in enumerate(JOINTS):
        nodes.append(g.Node(name=name, translation=list(translations[k])))
    nodes[1].children = [2]
    nodes[2].children = [3]
    nodes[3].children = [4, 5]
    humanoid = {"hips": 1, "neck": 2, "head": 3, "leftEye": 4, "rightEye": 5}
    presets = {
        "aa": [("Fcl_MTH_A", 1.0)],
        "blinkLeft": [("Fcl_EYE_Close_L", 1.0)],
        "blinkRight": [("Fcl_EYE_Close_R", 1.0)],
        "happy": [("Fcl_ALL_Joy", 1.0)],
    }
    vrm = {
        "specVersion": "1.0",
        "meta": {
            "name": "vroid-like",
            "version": "1",
            "authors": ["tests"],
            "licenseUrl": "https://vrm.dev/licenses/1.0/",
        },
        "humanoid": {"humanBones": {b: {"node": n} for b, n in humanoid.items()}},
        "expressions": {
            "preset": {
                p: {
                    "morphTargetBinds": [
                        {"node": 0, "index": names.index(t), "weight": w} for t, w in binds
                    ]
                }
                for p, binds in presets.items()
            }
        },
    }
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="tests/vrm_sample"),
        scene=0,
        scenes=[g.Scene(nodes=[0, 1])],
        nodes=nodes,
        meshes=[
            g.Mesh(
                name="Face",
                primitives=[
                    g.Primitive(
                        attributes=g.Attributes(
                            POSITION=a_pos, NORMAL=a_nrm, JOINTS_0=a_jnt, WEIGHTS_0=a_wgt
                        ),
                        indices=a_idx,
                        targets=targets,
                    )
                ],
                weights=[0.0] * len(names),
                extras={"targetNames": names},
            )
        ],
        skins=[g.Skin(joints=[1, 2, 3, 4, 5], skeleton=1, inverseBindMatrices=a_ibm)],
        accessors=accessors,
        bufferViews=views,
        buffers=[g.Buffer(byteLength=len(blob))],
        extensionsUsed=["VRMC_vrm"],
        extensions={"VRMC_vrm": vrm},
    )
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())
