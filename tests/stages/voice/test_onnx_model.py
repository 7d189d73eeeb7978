"""The viseme model in onnxruntime: the ONNX export computes what the numpy model computes,
the shipped file is the pinned one, and nothing else is loaded in its place."""

from __future__ import annotations

import hashlib
import threading
from importlib import resources

import numpy as np
import pytest

from avatar_mf.stages.voice.corpus import Utterance, hop_inputs
from avatar_mf.stages.voice.model import LOOKAHEAD, fit, stack_context
from avatar_mf.stages.voice.onnx_export import to_onnx
from avatar_mf.stages.voice.onnx_model import (
    MODEL_SHA256,
    ONNX_RESOURCE,
    ModelMismatch,
    OnnxVisemeModel,
    shipped_model,
)


def test_the_onnx_graph_computes_the_numpy_model(corpus: list[Utterance]) -> None:
    hops, labels = hop_inputs(corpus[1])
    inputs = stack_context(hops, LOOKAHEAD)
    model = fit(inputs, labels, lookahead=LOOKAHEAD, steps=50)
    data = to_onnx(model)
    assert to_onnx(model) == data  # deterministic bytes: a stable pin
    runtime = OnnxVisemeModel(data)
    assert runtime.lookahead == model.lookahead and runtime.input_size == inputs.shape[1]
    other = stack_context(hop_inputs(corpus[2])[0], LOOKAHEAD)  # audio it was not fitted on
    expected = model.probabilities(other)
    got = runtime.probabilities(other)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < 1e-4  # float32 in onnxruntime
    assert np.mean(got.argmax(axis=1) == expected.argmax(axis=1)) > 0.99


def test_the_shipped_model_is_the_pinned_file() -> None:
    data = resources.files("avatar_mf.stages.voice").joinpath(ONNX_RESOURCE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    model = shipped_model()
    assert model.sha256 == MODEL_SHA256 and model.lookahead == LOOKAHEAD
    probabilities = model.probabilities(np.zeros((3, model.input_size)))
    assert probabilities.shape == (3, 15)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_model_that_does_not_match_its_pin_is_refused() -> None:
    data = resources.files("avatar_mf.stages.voice").joinpath(ONNX_RESOURCE).read_bytes()
    changed = bytearray(data)
    changed[-8] ^= 0x01
    with pytest.raises(ModelMismatch):
        OnnxVisemeModel(bytes(changed), sha256=MODEL_SHA256)


def test_one_single_threaded_session_per_thread() -> None:
    model = shipped_model()
    sessions: list[object] = []

    def work() -> None:
        model.probabilities(np.zeros((1, model.input_size)))
        sessions.append(model._session())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    work()
    assert len({id(s) for s in sessions}) == 3
    options = model._session().get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
