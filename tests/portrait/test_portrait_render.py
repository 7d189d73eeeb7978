"""The portrait drawn by the product's renderer: at rest it is the photo (SSIM), jawOpen
changes the mouth and nothing far from the face; in the network-animation stage a photo as
base avatar is rendered still in silence and moves with units; a photo without a face is
refused with the face tracker's code."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.face import FaceError, FaceTrackingError
from avatar_mf.pipeline.frames import AnimationUnitFrame, BaseAvatarFrame
from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.inline import InlineRenderer
from avatar_mf.render.scene import RenderSettings
from avatar_mf.stages.animation.network import NetworkAnimation
from avatar_mf.stages.animation.portrait import PortraitAvatar, is_picture, load_portrait
from avatar_mf.stages.animation.video import VideoFrameOut
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.pipeline import stage_context
from tests.portrait.conftest import png
from tests.render.ssim import ssim

SIZE = 512


def resized(rgb: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


def draw(gl: GlRenderer, avatar: PortraitAvatar, size: int = SIZE, **weights: float
         ) -> NDArray[np.uint8]:
    key = f"portrait-{id(avatar)}"
    if not gl.has_mesh(key):
        gl.add_mesh(key, avatar.mesh)
    pose = avatar.rig.neutral()
    for name, value in weights.items():
        pose.weights[ARKIT_INDEX[name]] = value
    positions, normals = avatar.rig.pose(pose)
    return gl.render(key, positions, normals, RenderSettings(size, size, samples=4)).copy()


def mouth_box(avatar: PortraitAvatar, size: int) -> tuple[slice, slice]:
    lips = avatar.model.rest[[61, 291, 0, 17, 152], :2] * size / avatar.model.size
    x0, y0 = lips.min(axis=0) - 4
    x1, y1 = lips.max(axis=0) + 4
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def test_the_neutral_render_is_the_photo(gl: GlRenderer, portrait: PortraitAvatar) -> None:
    picture = draw(gl, portrait)
    assert picture.shape == (SIZE, SIZE, 4)
    score = ssim(picture[..., :3], resized(portrait.model.picture, SIZE))
    assert score >= 0.95, score


def test_jaw_open_changes_the_mouth_and_not_the_background(
    gl: GlRenderer, portrait: PortraitAvatar
) -> None:
    rest = draw(gl, portrait).astype(int)
    opened = draw(gl, portrait, jawOpen=1.0).astype(int)
    rows, cols = mouth_box(portrait, SIZE)
    change = np.abs(opened - rest)[rows, cols, :3].mean()
    assert change > 20.0, change  # grey levels, averaged over the mouth and chin box
    # The mouth's inside is dark: the darkest part of the box got darker.
    assert np.percentile(opened[rows, cols, :3].sum(-1), 5) < np.percentile(
        rest[rows, cols, :3].sum(-1), 5
    )
    assert np.array_equal(opened[:40, :40], rest[:40, :40])  # far from the face: untouched
    blink = draw(gl, portrait, eyeBlinkLeft=1.0, eyeBlinkRight=1.0).astype(int)
    assert np.abs(blink - rest)[rows, cols].max() == 0  # a blink leaves the mouth alone


def test_a_photo_without_a_face_is_refused_with_its_code(tracker: object) -> None:
    grey = np.full((256, 256, 3), 128, dtype=np.uint8)
    with pytest.raises(FaceTrackingError) as caught:
        load_portrait(png(grey))
    assert caught.value.code is FaceError.NO_FACE
    assert caught.value.code == "no-face" and not caught.value.retryable
    with pytest.raises(FaceTrackingError) as bad:
        load_portrait(b"\x89PNG\r\n\x1a\nnot really")
    assert bad.value.code is FaceError.UNSUPPORTED_IMAGE


def test_pictures_are_told_from_containers(astronaut_png: bytes) -> None:
    assert is_picture(astronaut_png)
    assert is_picture(b"\xff\xd8\xff\xe0" + bytes(10))
    assert not is_picture(b"glTF" + bytes(10))
    assert not is_picture(b"PK\x03\x04" + bytes(10))  # an ARF container (ZIP)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def frames_for(stage: object, clock: FakeClock, seconds: float) -> list[VideoFrameOut]:
    source = stage.source  # type: ignore[attr-defined]
    out: list[VideoFrameOut] = []
    end = clock.now() + seconds - 1e-9
    while clock.now() < end:
        clock.advance(0.04)
        await settle()
        frame = source.latest()
        if frame is not None and (not out or frame.index != out[-1].index):
            out.append(frame)
    return out


async def test_the_network_stage_animates_a_photo(
    gl: GlRenderer, portrait: PortraitAvatar, astronaut_png: bytes, tracker: object
) -> None:
    clock = FakeClock(50.0)
    provider = NetworkAnimation(width=128, height=128, renderer=InlineRenderer(gl))
    stage = provider.open(stage_context(clock=clock))
    await stage.setup()
    avatar = BaseAvatarFrame("p1", "photo", "image/png", astronaut_png)
    assert [f async for f in stage.process(avatar)] == [avatar]
    await settle()
    # The stage's executor runs the fit in a thread; let it finish.
    for _ in range(200):
        if stage.avatar is not None:
            break
        await asyncio.sleep(0.01)
    assert isinstance(stage.avatar, PortraitAvatar)
    silent = await frames_for(stage, clock, 0.4)
    assert len(silent) >= 9
    assert all(np.array_equal(f.rgba, silent[0].rgba) for f in silent)  # still in silence
    config = AnimationUnitFrame("p1", encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
                                is_config=True)
    unit = AnimationUnitFrame("p1", encode_unit(
        BlendshapeUnit(0, 0, (ARKIT_INDEX["jawOpen"],), (1.0,))))
    for frame in (config, unit):
        assert [f async for f in stage.process(frame)] == [frame]
    talking = await frames_for(stage, clock, 0.2)
    rows, cols = mouth_box(stage.avatar, 128)
    change = np.abs(talking[-1].rgba.astype(int) - silent[0].rgba)[rows, cols].mean()
    assert change > 10.0, change
    await stage.teardown()


async def test_a_photo_without_a_face_degrades_only_its_session(
    gl: GlRenderer, tracker: object
) -> None:
    from avatar_mf.pipeline.frames import StageError
    from avatar_mf.testing.pipeline import run_stage

    grey = png(np.full((256, 256, 3), 128, dtype=np.uint8))
    provider = NetworkAnimation(width=64, height=64, renderer=InlineRenderer(gl))
    run = await run_stage(provider, [BaseAvatarFrame("p1", "photo", "image/png", grey)],
                          kind="animation", max_seconds=5.0)
    errors = [f for f in run.frames if isinstance(f, StageError)]
    assert [(e.kind, e.code, e.retryable) for e in errors] == [("animation", "no-face", False)]
