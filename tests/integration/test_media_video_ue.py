"""The test UE sends IMS-style video (H.264 or VP8, RTP/AVPF, no ICE) beside its data channels;
the MF answers the video m-line and decodes every picture (``/stats`` video counters), then the
call ends and nothing is held."""

from __future__ import annotations

import asyncio
import json

import pytest

from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import UeCall
from avatar_mf.ue.rtp_video import UeVideo

from .conftest import assert_idle

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.mf_settings({"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "5"}),
]

HOST = "127.0.0.1"
PICTURES = 30


def video_stats(mf: MfProcess) -> dict[str, int]:
    return {k: int(v) for k, v in json.loads(mf.http_get("/stats")[1])["video"].items()}


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_ue_video_is_decoded_by_the_mf(mf: MfProcess, codec: str) -> None:
    before = video_stats(mf)
    video = UeVideo(HOST, codecs=(codec,), width=320, height=240, count=PICTURES)
    room = f"video{codec.lower()}"
    async with UeCall.dial(f"sip:{room}@{HOST}", HOST, mf.sip_port, ice=False, rtp_video=video):
        assert video.codec == codec
        await asyncio.wait_for(video.done(), 10)
        for _ in range(50):  # the last pictures are decoded in the worker pool
            delta = {k: v - before.get(k, 0) for k, v in video_stats(mf).items()}
            if delta.get("decoded", 0) >= PICTURES:
                break
            await asyncio.sleep(0.05)
    print(f"UE {codec}: {video.packets_out} packets, {video.pictures_out} pictures; MF: {delta}")
    assert delta["packets_in"] == video.packets_out
    assert delta["units"] == PICTURES and delta["decoded"] == PICTURES
    assert delta["decode_errors"] == 0 and delta["skipped"] == 0
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["video_streams"] == 0 and stats["held"]["rtp_sockets"] == 0
