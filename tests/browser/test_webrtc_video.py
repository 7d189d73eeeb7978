"""Chromium's own WebRTC video against a real MF: its fake camera (VP8 or H.264 over DTLS-SRTP)
BUNDLEd with its microphone and its data channel, and the MF's network-rendered avatar back
(docs/media.md, "WebRTC-style video").

A page makes a browser UE's offer (fake camera and microphone, negotiated data channels for
bootstrap and avatar metadata, every candidate gathered; the video codec chosen with
``setCodecPreferences``) and sends it to an MF rendering avatars (``[pipeline.animation] name
= "network"``) in a plain SIP INVITE whose Contact says ``avatar-assisted``. An IMS test UE in
the same room uploads an avatar: Chromium receives it rendered (getStats: frames decoded, at
25 fps +-10 %, at the render size) while the MF decodes Chromium's camera (the call's end
record).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avatar_mf.avatar import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.protocol.names import CONTENT_TYPE_ARF_ZIP
from avatar_mf.sdp.model import parse_sdp
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.call import DATACHANNEL_FEATURE_TAG

from . import webrtc_fixtures as fx
from .pages import wait_for
from .webrtc_fixtures import HOST, ROOM

pytestmark = pytest.mark.timeout(150)

SIZE = 128
ASSISTED = DATACHANNEL_FEATURE_TAG + ';+sip.3gpp-avatar-support="avatar-assisted"'

OFFER_JS = (
    """async (codec) => {
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 320, height: 240, frameRate: 25}});
  const pc = new RTCPeerConnection();
  window.pc = pc;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const wanted = RTCRtpReceiver.getCapabilities('video').codecs.filter(
    (c) => c.mimeType.toLowerCase() === 'video/' + codec.toLowerCase()
      && (codec !== 'H264' || (c.sdpFmtpLine || '').includes('packetization-mode=1')));
  if (!wanted.length) return null;
  const video = pc.getTransceivers().find((t) => t.receiver.track.kind === 'video');
  video.setCodecPreferences(wanted);
  window.dc = pc.createDataChannel('bootstrap', {negotiated: true, id: 0, protocol: 'http'});
  // The avatar metadata channel: the MF gives the call an avatar session (and video).
  window.meta = pc.createDataChannel(
    'avatar-meta', {negotiated: true, id: 1000, protocol: '3gpp-ar-metadata'});
  pc.addEventListener('track', (event) => {
    if (event.track.kind !== 'video') return;
    const sink = document.createElement('video');
    sink.muted = true;
    sink.srcObject = new MediaStream([event.track]);
    document.body.appendChild(sink);
    sink.play();
  });"""
    + fx.GATHERED_OFFER_JS
)

STATS_JS = fx.stats_js(
    """    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.decoded = s.framesDecoded; out.width = s.frameWidth; out.height = s.frameHeight;
      out.keyframes = s.keyFramesDecoded; out.pli_sent = s.pliCount;
      out.received = s.framesReceived; out.dropped = s.framesDropped; out.lost = s.packetsLost;
      out.codec = report.get(s.codecId) ? report.get(s.codecId).mimeType : null;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.sent = s.framesSent; out.pli_received = s.pliCount;
    }""",
    "\n  out.at = performance.now() / 1000;",
)


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    yield from fx.run_mf(
        tmp_path_factory,
        "webrtc-video-mf",
        {
            "PIPELINE__ANIMATION__NAME": "network",
            "RENDER__SIZE": str(SIZE),
            "RENDER__WORKERS": "1",
        },
    )


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_chromium_camera_to_the_mf_and_the_rendered_avatar_back(
    mf: MfProcess, browser_context: Any, codec: str
) -> None:
    pytest.importorskip("avatar_mf.stages.animation_data.espeak")
    head = write_arf(generate_default_head(resolution="low"), avatar_id="h", name="head")
    async with fx.mf_page(browser_context, mf) as page:
        sdp = await page.evaluate(OFFER_JS, codec)
        if sdp is None:
            pytest.skip(f"this Chromium has no {codec} with packetization-mode 1")
        offer = (
            fx.with_dcmap(sdp)
            + 'a=dcmap:1000 label="avatar-meta";subprotocol="3gpp-ar-metadata"\r\n'
        )
        assert re.search(r"m=video \d+ UDP/TLS/RTP/SAVPF", offer), offer
        assert "a=group:BUNDLE 0 1 2" in offer

        async with fx.sip_call(mf, offer, ASSISTED) as (uac, ok):
            answer = parse_sdp(ok.body)
            assert answer.has_attribute("ice-lite")  # Chromium runs ICE against the lite MF
            video = next(m for m in answer.media if m.media == "video")
            assert video.port != 0 and video.formats, ok.body.decode()
            assert any(
                (a.value or "").split()[1].upper().startswith(codec)
                for a in video.attributes("rtpmap")
            )
            await fx.set_answer(page, ok.body.decode())

            async with UeCall.dial(
                f"sip:{ROOM}@{HOST}", HOST, mf.sip_port, ice=False, from_uri=f"sip:talker@{HOST}"
            ) as talker_call:
                await talker_call.wait_channels_open(10.0)
                async with AvatarClient(talker_call, id_prefix="t") as talker:
                    await talker.hello(timeout=10.0)
                    upload = await talker.upload(
                        head, avatar_id="talker-head", content_type=CONTENT_TYPE_ARF_ZIP, timeout=30
                    )
                    assert upload.state == "complete", upload.as_dict()
                    stats: dict[str, Any] = {}

                    async def flowing() -> bool:
                        stats.update(await page.evaluate(STATS_JS))
                        return stats.get("decoded", 0) > 50 and stats.get("sent", 0) > 50

                    try:
                        await wait_for(flowing, 30.0, "video both ways")
                    except AssertionError as exc:
                        raise AssertionError(
                            f"{exc}; Chromium: {stats}; MF: {mf.stats()}"
                        ) from None
                    first = dict(stats)
                    sent_before = (await asyncio.to_thread(mf.stats))["video"]["frames_out"]
                    started = time.monotonic()
                    await asyncio.sleep(4.0)
                    last = await page.evaluate(STATS_JS)
                    sent = (await asyncio.to_thread(mf.stats))["video"]["frames_out"] - sent_before
                    print(f"MF sent {sent / (time.monotonic() - started):.2f} fps")
                    print("chromium video:", codec, last, f"({time.monotonic() - started:.1f} s)")
            rate = (last["decoded"] - first["decoded"]) / (last["at"] - first["at"])
            print(f"Chromium decoded the MF's {codec} at {rate:.2f} fps")
            assert last["state"] == "connected" and last["dc"] == "open"
            assert last["codec"].lower() == f"video/{codec.lower()}"
            assert (last["width"], last["height"]) == (SIZE, SIZE)
            assert 22.5 <= rate <= 27.5

    await fx.wait_released(mf, "video_streams")
    records = [
        json.loads(line)["cdr"]
        for line in mf.log_text().splitlines()
        if '"avatar_mf.cdr"' in line and uac.call_id in line
    ]
    (vrec,) = records[-1]["video"]
    print("end record video (Chromium's camera at the MF):", vrec)
    assert vrec["codec"].upper().startswith(codec) and vrec["decoded"] >= 50
    assert vrec["decode_errors"] <= 2 and vrec["frames_out"] >= 50
