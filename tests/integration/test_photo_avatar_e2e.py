"""Issue 14 end to end: UE1 uploads a photo and asks a real MF (``[pipeline.base_avatar]``
``photo``) to build its avatar; UE2 in the same room receives the generated avatar. And the
same from UE1's own RTP video (``source: video``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.avatar.validate import validate_container
from avatar_mf.protocol import AvatarSelected, ErrorMessage
from avatar_mf.protocol.metadata import AvatarGenerate, AvatarGenerateProgress
from avatar_mf.stages.base_avatar.photo.images import encode_png
from avatar_mf.testing.process import MfProcess
from tests.integration.conftest import _log_problems
from tests.integration.test_avatar_e2e import avatar_ue, released_everything

pytestmark = [pytest.mark.timeout(120)]

SETTINGS = {
    "SIP__T1": "0.005",
    "SIP__T4": "0.05",
    "MEDIA__SETUP_TIMEOUT": "2",
    "PIPELINE__BASE_AVATAR__NAME": "photo",
}
WAIT = 60.0  # generation: about a second of CPU, more on a loaded machine



@pytest.fixture
def photo_mf(tmp_path: Path) -> Iterator[MfProcess]:
    with MfProcess.start(tmp_path / "mf", settings=SETTINGS) as mf:
        yield mf


async def test_ue1_photo_becomes_the_avatar_ue2_receives(photo_mf: MfProcess) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    room = f"room-{uuid.uuid4().hex[:10]}"
    photo = encode_png(np.ascontiguousarray(skimage_data.astronaut()))
    async with (
        avatar_ue(photo_mf, room, "alice") as (_, alice),
        avatar_ue(photo_mf, room, "bob") as (_, bob),
    ):
        # A picture without a face: refused with its code; the call goes on.
        grey = encode_png(np.full((240, 320, 3), 128, dtype=np.uint8))
        sent = await alice.upload(grey, avatar_id="grey", content_type="image/png",
                                  timeout=WAIT)
        assert sent.state == "complete"
        alice.send(AvatarGenerate(id="alice-g0", photos=(sent.transfer_id,)))
        error = await alice.wait_message(
            ErrorMessage, where=lambda m: m.in_reply_to == "alice-g0", timeout=WAIT
        )
        assert error.code == "no-face"

        sent = await alice.upload(photo, avatar_id="face", content_type="image/png",
                                  timeout=WAIT)
        assert sent.state == "complete"
        alice.send(AvatarGenerate(id="alice-g1", name="alice", photos=(sent.transfer_id,)))
        selected = await alice.wait_message(
            AvatarSelected, where=lambda m: m.in_reply_to == "alice-g1", timeout=WAIT
        )
        progress = [
            r.message for r in alice.messages
            if isinstance(r.message, AvatarGenerateProgress) and r.message.in_reply_to == "alice-g1"
        ]
        percents = [m.percent for m in progress]
        assert len(percents) >= 4 and percents == sorted(percents) and percents[-1] == 100
        received = await bob.wait_transfer(avatar_id=selected.avatar_id, timeout=WAIT)
        assert received.state == "complete" and received.payload is not None
        avatar = validate_container(received.payload, received.offer.content_type)
        assert avatar is not None
    await released_everything(photo_mf)
    problems = _log_problems(photo_mf.log_text())
    assert not problems, "the MF logged errors:\n" + "\n".join(problems[:20])


async def test_ue1_video_becomes_the_avatar_ue2_receives(photo_mf: MfProcess) -> None:
    """``source: video``: UE1 sends the astronaut as H.264 over RTP and asks for an avatar
    from its video; UE2 (no video) gets ``no-video`` for the same ask, then UE1's avatar."""
    from avatar_mf.codecs.video import Picture
    from avatar_mf.ue.rtp_video import UeVideo

    skimage_data = pytest.importorskip("skimage.data")
    room = f"room-{uuid.uuid4().hex[:10]}"
    picture = Picture.from_rgb(np.ascontiguousarray(skimage_data.astronaut()))
    fps = 25
    camera = UeVideo("127.0.0.1", width=picture.width, height=picture.height, fps=fps,
                     count=fps * 30, pictures=[picture])
    async with (
        avatar_ue(photo_mf, room, "alice", rtp_video=camera) as (_, alice),
        avatar_ue(photo_mf, room, "bob") as (_, bob),
    ):
        bob.send(AvatarGenerate(id="bob-v0", source="video"))
        error = await bob.wait_message(
            ErrorMessage, where=lambda m: m.in_reply_to == "bob-v0", timeout=WAIT
        )
        assert error.code == "no-video"
        for _ in range(int(WAIT / 0.05)):  # a second of video sent first
            if camera.pictures_out >= fps:
                break
            await asyncio.sleep(0.05)
        alice.send(AvatarGenerate(id="alice-v1", name="alice", source="video"))
        selected = await alice.wait_message(
            AvatarSelected, where=lambda m: m.in_reply_to == "alice-v1", timeout=WAIT
        )
        received = await bob.wait_transfer(avatar_id=selected.avatar_id, timeout=WAIT)
        assert received.state == "complete" and received.payload is not None
        avatar = validate_container(received.payload, received.offer.content_type)
        assert avatar is not None
    assert camera.codec == "H264"
    await released_everything(photo_mf)
    problems = _log_problems(photo_mf.log_text())
    assert not problems, "the MF logged errors:\n" + "\n".join(problems[:20])
