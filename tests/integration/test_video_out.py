"""The MF sends the network-rendered avatar as RTP video (TR 26.813 D.4 alternative 1): an
avatar-assisted test UE in a room with a text-speaking peer receives H.264 at 25 fps, decodes
it, sees the mouth move when the peer's text is spoken and stay still in silence, with the
speech audio in sync by the RTCP SRs (ITU-R BT.1359: audio at most 45 ms ahead, 125 ms
behind); a PLI yields a key frame; a receiver that stops reading does not slow another; a
UE that is not avatar-assisted is sent no video."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from avatar_mf.avatar import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.protocol.names import CONTENT_TYPE_ARF_ZIP
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.av_sync import motion_onset, region_changes, sound_onset
from avatar_mf.ue.call import DATACHANNEL_FEATURE_TAG
from avatar_mf.ue.cli import add_parser
from avatar_mf.ue.rtp_audio import UeAudio
from avatar_mf.ue.rtp_video import UeVideo

from .conftest import assert_idle

SIZE = 128
pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.mf_settings(
        {
            "SIP__T1": "0.005",
            "SIP__T4": "0.05",
            "MEDIA__SETUP_TIMEOUT": "5",
            "PIPELINE__ANIMATION__NAME": "network",
            "RENDER__SIZE": str(SIZE),
            "RENDER__WORKERS": "1",
        }
    ),
]

HOST = "127.0.0.1"
STEP = 10.0
SENTENCE = "Hello, I am an avatar. Good morning, how are you today"
ASSISTED = DATACHANNEL_FEATURE_TAG + ';+sip.3gpp-avatar-support="avatar-assisted"'
#: Where the default head's mouth and jaw are in the rendered picture (left, top, right,
#: bottom): where jawOpen 0.5 changes the picture of `avatar render --size 128`.
MOUTH = (0.3, 0.6, 0.7, 0.95)


def dial(mf: MfProcess, user: str, audio: UeAudio | None, video: UeVideo | None,
         tags: str = DATACHANNEL_FEATURE_TAG) -> UeCall:
    return UeCall.dial(f"sip:vroom@{HOST}", HOST, mf.sip_port, ice=False,
                       from_uri=f"sip:{user}@{HOST}", rtp_audio=audio, rtp_video=video,
                       contact_feature_tags=tags)


def video_stats(mf: MfProcess) -> dict[str, int]:
    return {k: int(v) for k, v in json.loads(mf.http_get("/stats")[1])["video"].items()}


async def wait_for(predicate: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_avatar_assisted_ue_receives_the_speaking_avatar(mf: MfProcess) -> None:
    pytest.importorskip("avatar_mf.stages.animation_data.espeak")
    before = video_stats(mf)
    speaker_audio = UeAudio(HOST, codecs=("PCMU",))
    listener_audio = UeAudio(HOST, codecs=("PCMU",))
    seen = UeVideo(HOST, codecs=("H264",), count=0)
    stalled = UeVideo(HOST, codecs=("VP8",), count=0)
    plain = UeVideo(HOST, codecs=("VP8",), count=0)  # not avatar-assisted: it animates itself
    head = write_arf(generate_default_head(resolution="low"), avatar_id="h", name="head")
    async with (
        dial(mf, "talker", speaker_audio, None) as call1,
        dial(mf, "viewer", listener_audio, seen, ASSISTED) as call2,
        dial(mf, "stalled", None, stalled, ASSISTED) as call3,
        dial(mf, "plain", None, plain) as call4,
    ):
        for call in (call1, call2, call3, call4):
            await call.wait_channels_open(STEP)
        assert seen.codec == "H264" and stalled.codec == "VP8"
        async with (
            AvatarClient(call1, id_prefix="t") as talker,
            AvatarClient(call2, id_prefix="v") as viewer,
        ):
            await talker.hello(timeout=STEP)
            caps = await viewer.hello(timeout=STEP)
            assert caps.rendering == "network"  # avatar-assisted: the MF renders for it
            upload = await talker.upload(head, avatar_id="talker-head",
                                         content_type=CONTENT_TYPE_ARF_ZIP, timeout=30)
            assert upload.state == "complete", upload.as_dict()
            await wait_for(lambda: len(seen.units) >= 10 and len(stalled.units) >= 5, STEP,
                           "video from the MF")
            assert seen.pli_out >= 1  # it asked for a key frame as the stream started
            stalled.stop_reading()  # this receiver falls behind from now on
            quiet_from = time.monotonic()
            await asyncio.sleep(2.0)  # silence: the avatar at rest
            quiet_units = len(seen.units)
            talker.say(SENTENCE, "en-US")
            await asyncio.sleep(5.0)
            # A PLI from the viewer yields a key frame.
            keys = seen.keyframes_in
            await asyncio.sleep(0.6)
            assert seen.send_pli()
            await wait_for(lambda: seen.keyframes_in > keys, 2.0, "a key frame after the PLI")
            # Both SRs, to map audio and video to the MF's wall clock.
            await wait_for(lambda: seen.sender_reports and listener_audio.sender_reports, 15.0,
                           "RTCP SRs for audio and video")
            rate = seen.frame_rate(since=quiet_from)
            assert plain.codec == "VP8" and plain.packets_in == 0  # RTCP only
            delta = {k: v - before.get(k, 0) for k, v in video_stats(mf).items()}
            assert talker.failures == [] and viewer.failures == []

    pictures = seen.received_pictures()
    vp8 = stalled.received_pictures()  # what the stalled receiver got before it stopped: VP8
    assert len(vp8) >= 5 and (vp8[0][1].width, vp8[0][1].height) == (SIZE, SIZE)
    print(f"viewer: {len(seen.units)} units, {len(pictures)} decoded, {rate:.2f} fps, "
          f"{seen.keyframes_in} key frames, PLI out {seen.pli_out}; MF video {delta}")
    assert 22.5 <= rate <= 27.5  # 25 fps +-10 %, while the other receiver stopped reading
    assert len(pictures) >= len(seen.units) - 2
    assert (pictures[0][1].width, pictures[0][1].height) == (SIZE, SIZE)
    assert delta["frames_out"] >= len(seen.units) and delta["keyframes_out"] >= 2

    # Still in silence, moving while the text is spoken.
    quiet_ts = seen.units[quiet_units - 1].timestamp
    quiet = [p for p in pictures if ((p[0] - quiet_ts) & 0xFFFFFFFF) > 0x80000000
             or p[0] == quiet_ts][-40:]
    spoken = pictures[len(quiet):]
    still = region_changes(quiet, MOUTH)
    moving = region_changes([quiet[-1], *spoken], MOUTH)
    print(f"mouth change: silence max {max(still):.2f}, speech max {max(moving):.2f}")
    assert max(still) < 0.5
    assert max(moving) > 5.0

    # A/V skew from the SRs: the speech onset against the mouth's first movement.
    onset = sound_onset(listener_audio.timed_frames())
    assert onset is not None, "no speech reached the viewer"
    audio_wall = listener_audio.sender_reports[-1].wall(onset[0]) + onset[1]
    video_ts = motion_onset([quiet[-1], *spoken], MOUTH)
    assert video_ts is not None
    video_wall = seen.sender_reports[-1].wall(video_ts)
    skew = audio_wall - video_wall
    print(f"A/V skew (speech onset - mouth onset, by RTCP SR): {skew * 1000:+.1f} ms")
    assert -0.045 <= skew <= 0.125
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["video_streams"] == 0 and stats["held"]["rtp_sockets"] == 0


async def test_ue_call_render_saves_the_video_with_its_audio(mf: MfProcess, tmp_path: Path) -> None:
    """``avatar-mf ue call ... --render DIR`` (the README's first avatar call)."""
    pytest.importorskip("avatar_mf.stages.animation_data.espeak")
    head = write_arf(generate_default_head(resolution="low"), avatar_id="h", name="head")
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        ["call", f"sip:vcli@{HOST}:{mf.sip_port}", "--no-ice", "--hello", "--duration", "9",
         "--from", f"sip:watcher@{HOST}", "--render", str(tmp_path), "--audio-codecs", "PCMU"]
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    talker_call = UeCall.dial(f"sip:vcli@{HOST}", HOST, mf.sip_port, ice=False,
                              from_uri=f"sip:teller@{HOST}")
    async with talker_call:
        await talker_call.wait_channels_open(STEP)
        async with AvatarClient(talker_call, id_prefix="t") as talker:
            await talker.hello(timeout=STEP)
            watching = asyncio.create_task(
                asyncio.to_thread(args.run, args, SimpleNamespace(stdout=out, stderr=err))
            )
            await asyncio.sleep(1.0)
            upload = await talker.upload(head, avatar_id="teller-head",
                                         content_type=CONTENT_TYPE_ARF_ZIP, timeout=30)
            assert upload.state == "complete"
            await asyncio.sleep(1.5)
            talker.say(SENTENCE, "en-US")
            code = await watching
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert code == 0, err.getvalue()
    video = summary["video"]
    print("ue call --render:", video)
    assert video["codec"] == "H264" and video["frames_decoded"] >= 50
    assert 22.5 <= video["frame_rate"] <= 27.5
    assert -45 <= video["av_skew_ms"] <= 125
    with av.open(video["file"]) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        frames = list(container.decode(video=0))
    assert len(frames) == video["frames_written"] and frames[0].width == SIZE
