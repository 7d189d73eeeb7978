"""The ONNX hook for an operator's 2D model: a tiny model built here with onnx.helper
(picture = portrait x (1 - jawOpen)) is run through the contract, alone and by the
network-animation stage in place of the warp; a model off the contract is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.pipeline.frames import AnimationUnitFrame
from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.inline import InlineRenderer
from avatar_mf.render.scene import RenderSettings
from avatar_mf.stages.animation.network import NetworkAnimation
from avatar_mf.stages.animation.portrait import PortraitAvatar
from avatar_mf.stages.animation.portrait.onnx_model import (
    OnnxPortraitModel,
    OnnxPortraitUnavailable,
)
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.pipeline import stage_context
from tests.portrait.test_portrait_render import frames_for, resized, settle

onnx = pytest.importorskip("onnx")
JAW = ARKIT_INDEX["jawOpen"]


def darkening_model(side: int | str = "S", *, weights_name: str = "weights") -> bytes:
    """picture = portrait * (1 - weights[:, jawOpen]): the jaw darkens the whole picture."""
    from onnx import TensorProto, helper

    portrait = helper.make_tensor_value_info("portrait", TensorProto.FLOAT, [1, side, side, 3])
    weights = helper.make_tensor_value_info(weights_name, TensorProto.FLOAT,
                                            [1, len(ARKIT_BLENDSHAPES)])
    picture = helper.make_tensor_value_info("picture", TensorProto.FLOAT, [1, side, side, 3])
    constants = [
        helper.make_tensor("jaw", TensorProto.INT64, [1], [JAW]),
        helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 1, 1]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    nodes = [
        helper.make_node("Gather", [weights_name, "jaw"], ["w"], axis=1),
        helper.make_node("Reshape", ["w", "shape"], ["w4"]),
        helper.make_node("Sub", ["one", "w4"], ["keep"]),
        helper.make_node("Mul", ["portrait", "keep"], ["picture"]),
    ]
    graph = helper.make_graph(nodes, "darken", [portrait, weights], [picture],
                              initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def test_the_contract_runs_a_model(portrait: PortraitAvatar) -> None:
    model = OnnxPortraitModel(darkening_model())
    assert model.size is None and not model.head  # dynamic side: the portrait's own
    draw = model.drawer(portrait.model)
    settings = RenderSettings(256, 256)
    pose = portrait.rig.neutral()
    still = draw(pose, settings)
    assert still.shape == (256, 256, 4) and (still[..., 3] == 255).all()
    expected = resized(portrait.model.picture, 256).astype(int)
    assert np.abs(still[..., :3].astype(int) - expected).mean() < 3.0  # the photo, resized
    pose.weights[JAW] = 0.5
    dim = draw(pose, settings).astype(int)
    assert np.abs(dim[..., :3] * 2 - still[..., :3]).mean() < 2.0  # half as bright


def test_a_fixed_size_model_gets_the_portrait_at_its_size(portrait: PortraitAvatar) -> None:
    model = OnnxPortraitModel(darkening_model(64))
    assert model.size == 64
    picture = model.drawer(portrait.model)(portrait.rig.neutral(), RenderSettings(128, 128))
    assert picture.shape == (128, 128, 4)  # 64 out, resized to the stage's size


def test_a_model_off_the_contract_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OnnxPortraitUnavailable, match="weights"):
        OnnxPortraitModel(darkening_model(weights_name="blendshapes"))
    with pytest.raises(OnnxPortraitUnavailable, match="cannot read"):
        OnnxPortraitModel(tmp_path / "missing.onnx")
    with pytest.raises(OnnxPortraitUnavailable, match="cannot load") as caught:
        OnnxPortraitModel(b"not a model")
    assert caught.value.code == "onnx-model-unavailable"


async def test_the_stage_draws_with_the_operators_model(
    gl: GlRenderer, astronaut_png: bytes, tmp_path: Path, tracker: object
) -> None:
    path = tmp_path / "darken.onnx"
    path.write_bytes(darkening_model())
    clock = FakeClock(10.0)
    provider = NetworkAnimation(width=64, height=64, renderer=InlineRenderer(gl),
                                onnx_model=str(path))
    stage = provider.open(stage_context(clock=clock))
    await stage.setup()
    await stage.use_avatar(astronaut_png)
    assert isinstance(stage.avatar, PortraitAvatar) and stage.avatar.draw is not None
    await settle()
    before = await frames_for(stage, clock, 0.2)
    assert before[-1].rgba[..., :3].mean() > 60  # the photo
    config = AnimationUnitFrame("p1", encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
                                is_config=True)
    unit = AnimationUnitFrame("p1", encode_unit(BlendshapeUnit(0, 0, (JAW,), (1.0,))))
    for frame in (config, unit):
        assert [f async for f in stage.process(frame)] == [frame]
    for _ in range(50):  # the model runs in the executor's thread
        after = await frames_for(stage, clock, 0.04)
        if after and after[-1].rgba[..., :3].max() == 0:
            break
        await asyncio.sleep(0.01)
    assert after[-1].rgba[..., :3].max() == 0  # jawOpen 1: the model's picture is black
    await stage.teardown()
