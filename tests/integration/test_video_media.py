"""Issue 12 leftovers for video: the RTP inactivity timeout ends a call whose only RTP is
video (end reason in its record, with the video figures), and ``[media] video = false``
answers video m-lines with port 0."""

from __future__ import annotations

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


def cdr_of(mf: MfProcess, call_id: str) -> dict[str, object]:
    for line in mf.log_text().splitlines():
        if '"avatar_mf.cdr"' in line and call_id in line:
            record: dict[str, object] = json.loads(line)["cdr"]
            return record
    raise AssertionError(f"no CDR for {call_id}")


@pytest.mark.mf_settings({"MEDIA__RTP_TIMEOUT": "1.0"})
async def test_a_video_only_call_whose_ue_stops_sending_is_hung_up(mf: MfProcess) -> None:
    video = UeVideo(HOST, codecs=("VP8",), width=160, height=120, count=10)  # 0.4 s, then quiet
    async with UeCall.dial(f"sip:vquiet@{HOST}", HOST, mf.sip_port, ice=False,
                           rtp_video=video) as call:
        reason = await call.wait_ended(timeout=6.0)
        assert call.ended_by == "mf"
        call_id = call.call_id
    print("ended:", reason)
    assert "media timeout" in reason
    assert_idle(mf)
    record = cdr_of(mf, call_id)
    assert record["end_reason"] == "media_timeout"
    streams = record["video"]
    assert isinstance(streams, list) and len(streams) == 1
    assert streams[0]["codec"] == "VP8/90000" and streams[0]["units"] == 10
    assert streams[0]["frames_out"] == 0  # no network animation here: nothing was sent


@pytest.mark.mf_settings({"MEDIA__VIDEO": "false"})
async def test_video_switched_off_answers_port_0(mf: MfProcess) -> None:
    video = UeVideo(HOST, codecs=("H264",), count=5)
    async with UeCall.dial(f"sip:voff@{HOST}", HOST, mf.sip_port, ice=False,
                           rtp_video=video) as call:
        await call.wait_channels_open(5.0)
        assert call.answer is not None
        lines = [m for m in call.answer.media if m.media == "video"]
        assert len(lines) == 1 and lines[0].port == 0
        assert video.codec is None  # nothing to send to
    stats = assert_idle(mf)
    assert stats["held"]["video_streams"] == 0
