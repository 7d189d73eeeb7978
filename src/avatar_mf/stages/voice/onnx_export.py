"""Write a trained :class:`~.model.VisemeModel` as an ONNX graph (training time only).

The graph (opset 17, IR version 8, float32): ``inputs`` (n, D) -> Sub(mean) -> Div(scale) ->
MatMul(W1) -> Add(b1) -> Tanh -> MatMul(W2) -> Add(b2) -> Softmax(axis=-1) ->
``probabilities`` (n, 15): the same function as :meth:`VisemeModel.probabilities`. The
model's metadata carries ``lookahead``, ``context_before`` and ``hop_features``, which the
run-time side (:mod:`.onnx_model`) reads back. Serialization is deterministic (no producer
version, no timestamps), so the same weights give the same bytes and the same sha256.

Needs the ``onnx`` package (the ``dev`` extra): only ``tools/train_voice_visemes.py`` and the
tests import this module; the stage itself needs onnxruntime alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from avatar_mf.stages.voice.model import CONTEXT_BEFORE, HOP_FEATURES, VisemeModel

#: The ONNX operator set the graph uses (onnxruntime 1.32 runs 7..23).
OPSET = 17
#: The ONNX IR version written.
IR_VERSION = 8


def to_onnx(model: VisemeModel) -> bytes:
    """The model as serialized ONNX bytes."""
    width = int(model.mean.size)
    classes = int(model.b2.size)

    def const(name: str, array: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)

    nodes = [
        helper.make_node("Sub", ["inputs", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["standard"]),
        helper.make_node("MatMul", ["standard", "w1"], ["h_lin"]),
        helper.make_node("Add", ["h_lin", "b1"], ["h_pre"]),
        helper.make_node("Tanh", ["h_pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["o_lin"]),
        helper.make_node("Add", ["o_lin", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "viseme_mlp",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])],
        initializer=[
            const("mean", model.mean),
            const("scale", model.scale),
            const("w1", model.w1),
            const("b1", model.b1),
            const("w2", model.w2),
            const("b2", model.b2),
        ],
    )
    return model_bytes(
        graph,
        "avatar_mf tools/train_voice_visemes.py",
        {
            "lookahead": str(model.lookahead),
            "context_before": str(CONTEXT_BEFORE),
            "hop_features": str(HOP_FEATURES),
        },
    )


def model_bytes(graph: onnx.GraphProto, producer: str, props: dict[str, str]) -> bytes:
    """``graph`` as a checked ONNX model file (:data:`OPSET`, :data:`IR_VERSION`, the
    producer and metadata ``props``), serialized deterministically: the same graph gives the
    same bytes, so a shipped model's sha256 pin can be checked by rebuilding it."""
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=producer,
        ir_version=IR_VERSION,
    )
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    data: bytes = proto.SerializeToString(deterministic=True)
    return data
