"""End to end in a call: UE1 sends video over RTP (H.264: renders of the product's own head
with jawOpen going up and down at known weights), the MF's ``camera`` stage tracks it in its
face worker process, UE2 receives BLENDSHAPE units whose jawOpen follows UE1's. And the same
from JPEG pictures sent in ``animation image`` messages on the metadata channel.

The MF runs as a real process with ``[pipeline.animation_data] name = "camera"``.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit, ConfigUnit
from avatar_mf.codecs.video import Picture
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.rtp_video import UeVideo

pytestmark = [pytest.mark.timeout(120)]

HOST = "127.0.0.1"
SETTINGS = {
    "SIP__T1": "0.005",
    "SIP__T4": "0.05",
    "MEDIA__SETUP_TIMEOUT": "5",
    "PIPELINE__ANIMATION_DATA__NAME": "camera",
}
FPS = 25
#: One cycle of UE1's face: jawOpen 0 -> 1 -> 0 over 2 s (50 pictures), sent in a loop.
CYCLE = 50
SECONDS = 12



@pytest.fixture
def camera_mf(tmp_path: Path) -> Iterator[MfProcess]:
    with MfProcess.start(tmp_path / "mf", settings=SETTINGS) as mf:
        yield mf


def _mf_call(mf: MfProcess, user: str, video: UeVideo | None) -> UeCall:
    return UeCall.dial(
        f"sip:cameraroom@{HOST}",
        HOST,
        mf.sip_port,
        ice=False,
        from_uri=f"sip:{user}@{HOST}",
        rtp_video=video,
    )


def _jaw(unit: BlendshapeUnit) -> float:
    return float(unit.weights[unit.indices.index(ARKIT_INDEX["jawOpen"])])


async def test_ue2_receives_units_whose_jaw_follows_ue1_camera(
    camera_mf: MfProcess, ground_truth: object
) -> None:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    assert isinstance(ground_truth, GroundTruthRenderer)
    truth = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / CYCLE) for i in range(CYCLE)])
    pictures = [Picture.from_rgb(ground_truth.render(Shot({"jawOpen": j}))) for j in truth]
    first = pictures[0]
    camera = UeVideo(
        HOST, width=first.width, height=first.height, fps=FPS, count=FPS * SECONDS,
        pictures=pictures,
    )
    async with (
        _mf_call(camera_mf, "ue1", camera) as call1,
        _mf_call(camera_mf, "ue2", None) as call2,
    ):
        await call1.wait_channels_open(5.0)
        await call2.wait_channels_open(5.0)
        async with (
            AvatarClient(call1, id_prefix="ue1") as ue1,
            AvatarClient(call2, id_prefix="ue2") as ue2,
        ):
            caps = await ue1.hello(animation_inputs=("video",))
            assert caps.animation_data == "network" and caps.animation_inputs == ("video",)
            await ue2.hello(animation_inputs=())
            await ue2.wait_until(
                lambda: sum(isinstance(u.unit, BlendshapeUnit) for u in ue2.units) >= FPS * 6,
                30.0,
                "6 s of units",
            )
            assert ue1.failures == [] and ue2.failures == []
            units = list(ue2.units)
    assert camera.codec == "H264"
    assert any(isinstance(u.unit, ConfigUnit) for u in units)
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    ticks = np.array([s.timestamp for s in shapes], dtype=np.int64)
    jaw = np.array([_jaw(s) for s in shapes])
    steps = np.diff(ticks) % (1 << 32)
    # In order, one unit per picture once the face workers are up (while they start, about a
    # second, the newest picture waits and the others are dropped).
    assert np.all(steps > 0) and np.median(steps) == 1000 // FPS
    # Which picture of the cycle each unit shows: its media time (RTP time since the first
    # picture the session got) in pictures, plus an unknown start found by correlation.
    index = np.round((ticks - ticks[0]) * FPS / 1000).astype(int)
    best = max(
        float(np.corrcoef(jaw, truth[(index + start) % CYCLE])[0, 1]) for start in range(CYCLE)
    )
    print(f"camera call: jawOpen r {best:.3f} over {jaw.size} units")
    assert best >= 0.8, best


async def test_images_on_the_metadata_channel_drive_the_avatar(
    camera_mf: MfProcess, astronaut_jpeg_small: bytes
) -> None:
    from PIL import Image

    grey = io.BytesIO()
    Image.new("RGB", (160, 120), (128, 128, 128)).save(grey, format="PNG")
    async with _mf_call(camera_mf, "ue1", None) as call1, _mf_call(camera_mf, "ue2", None) as call2:
        await call1.wait_channels_open(5.0)
        await call2.wait_channels_open(5.0)
        async with (
            AvatarClient(call1, id_prefix="ue1") as ue1,
            AvatarClient(call2, id_prefix="ue2") as ue2,
        ):
            caps = await ue1.hello(animation_inputs=("images",))
            assert caps.animation_data == "network" and caps.animation_inputs == ("images",)
            await ue2.hello(animation_inputs=())
            for i in range(5):
                ue1.send_image(astronaut_jpeg_small, media_time=i * 0.5)
                await asyncio.sleep(0.5)  # one picture at a time (newest wins)
            await ue2.wait_until(
                lambda: sum(isinstance(u.unit, BlendshapeUnit) for u in ue2.units) >= 3,
                20.0,
                "units from the pictures",
            )
            bad = ue1.send_image(grey.getvalue(), "image/png", media_time=3.0)
            await ue1.wait_until(lambda: len(ue1.mf_errors) >= 1, 10.0, "an error")
            units = list(ue2.units)
            errors = list(ue1.mf_errors)
    assert [(e.code, e.in_reply_to) for e in errors] == [("no-face", bad.id)]
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    assert 3 <= len(shapes) <= 5
    assert [s.timestamp for s in shapes] == sorted(s.timestamp for s in shapes)


async def test_a_video_call_that_did_not_ask_gets_no_network_face(
    camera_mf: MfProcess, ground_truth: object
) -> None:
    """UE1 sends video but animates itself (its hello asks no animation inputs): the camera
    stage must not add a second, network-made face."""
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    assert isinstance(ground_truth, GroundTruthRenderer)
    picture = Picture.from_rgb(ground_truth.render(Shot({"jawOpen": 0.5})))
    camera = UeVideo(
        HOST, width=picture.width, height=picture.height, fps=FPS, count=FPS * 4,
        pictures=[picture],
    )
    async with (
        _mf_call(camera_mf, "ue1", camera) as call1,
        _mf_call(camera_mf, "ue2", None) as call2,
    ):
        await call1.wait_channels_open(5.0)
        await call2.wait_channels_open(5.0)
        async with (
            AvatarClient(call1, id_prefix="ue1") as ue1,
            AvatarClient(call2, id_prefix="ue2") as ue2,
        ):
            caps = await ue1.hello(animation_inputs=())
            assert caps.animation_data == "ue" and caps.animation_inputs == ()
            await ue2.hello(animation_inputs=())
            await asyncio.wait_for(camera.done(), 10.0)
            await asyncio.sleep(0.5)
            units = list(ue2.units)
    assert camera.pictures_out == FPS * 4
    assert units == []
