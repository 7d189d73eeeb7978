"""An operator's ONNX model behind the same interface: a tiny model built here that meets the
contract (its outputs are simple functions of the input, so the test knows what to expect)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.face.model import FaceModelUnavailable
from avatar_mf.face.quality import QualityLimits
from avatar_mf.face.result import FaceError, FaceTrackingError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from avatar_mf.face.onnx_tracker import OnnxFaceTracker  # noqa: E402

SIZE = 32


def _model(with_transform: bool = True) -> bytes:
    """score = mean brightness; landmarks = a fixed grid; blendshapes = 0.25 each;
    transform = a yaw of 30 degrees."""
    grid = np.zeros((1, 478, 3), dtype=np.float32)
    grid[0, :, 0] = np.linspace(0.25, 0.75, 478)
    grid[0, :, 1] = np.linspace(0.5, 1.0, 478)
    yaw = np.radians(30.0)
    transform = np.eye(4, dtype=np.float32)
    transform[0, 0] = transform[2, 2] = np.cos(yaw)
    transform[0, 2], transform[2, 0] = np.sin(yaw), -np.sin(yaw)
    const = [
        helper.make_tensor("grid", TensorProto.FLOAT, grid.shape, grid.ravel()),
        helper.make_tensor("quarter", TensorProto.FLOAT, (1, 52), [0.25] * 52),
        helper.make_tensor("axes", TensorProto.INT64, (3,), [1, 2, 3]),
    ]
    nodes = [
        helper.make_node("Identity", ["grid"], ["landmarks"]),
        helper.make_node("Identity", ["quarter"], ["blendshapes"]),
        helper.make_node("ReduceMean", ["image", "axes"], ["score"], keepdims=0),
    ]
    outputs = [
        helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, (1, 478, 3)),
        helper.make_tensor_value_info("blendshapes", TensorProto.FLOAT, (1, 52)),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, (1,)),
    ]
    if with_transform:
        const.append(helper.make_tensor("pose", TensorProto.FLOAT, (1, 4, 4), transform.ravel()))
        nodes.append(helper.make_node("Identity", ["pose"], ["transform"]))
        outputs.append(helper.make_tensor_value_info("transform", TensorProto.FLOAT, (1, 4, 4)))
    graph = helper.make_graph(
        nodes,
        "face",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, (1, SIZE, SIZE, 3))],
        outputs,
        initializer=const,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return bytes(model.SerializeToString())


def test_an_onnx_model_meeting_the_contract() -> None:
    data = _model()
    tracker = OnnxFaceTracker(
        data, model_sha256=hashlib.sha256(data).hexdigest(),
        limits=QualityLimits(min_luma=0),
        min_confidence=0.3,
    )
    # 200 wide, 100 high: padded to 200x200 below (score 0.39), y fractions double, x stay.
    face = tracker.track(np.full((100, 200, 3), 200, dtype=np.uint8))
    assert face.landmarks[0, 0] == pytest.approx(0.25)
    assert face.landmarks[0, 1] == pytest.approx(1.0)
    assert face.landmarks[-1, 1] == pytest.approx(2.0)  # the model put it in the padding
    assert face.blendshapes == {name: 0.25 for name in ARKIT_BLENDSHAPES}
    assert face.head.yaw == pytest.approx(np.radians(30.0), abs=1e-6)
    with pytest.raises(FaceTrackingError) as caught:
        tracker.track(np.full((100, 100, 3), 40, dtype=np.uint8))  # mean 40/255 < 0.3
    assert caught.value.code is FaceError.NO_FACE
    tracker.close()


def test_without_a_transform_the_head_is_at_rest() -> None:
    tracker = OnnxFaceTracker(_model(with_transform=False))
    face = tracker.track(np.full((256, 256, 3), 255, dtype=np.uint8))
    assert (face.head.yaw, face.head.pitch, face.head.roll) == (0.0, 0.0, 0.0)
    with pytest.raises(FaceTrackingError) as caught:  # the size check applies as for MediaPipe
        tracker.track(np.full((64, 64, 3), 255, dtype=np.uint8))  # 32 pixels across
    assert caught.value.code is FaceError.FACE_TOO_SMALL


def test_a_model_with_another_hash_is_refused() -> None:
    with pytest.raises(FaceModelUnavailable, match="pinned"):
        OnnxFaceTracker(_model(), model_sha256="00" * 32)
