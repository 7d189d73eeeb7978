"""Chromium's own WebRTC audio against a real MF: Opus over DTLS-SRTP, BUNDLEd with its data
channel (docs/media.md, "WebRTC-style audio").

A page makes the offer a browser UE makes (an audio track from Chromium's fake microphone, a
negotiated data channel on stream 0, every ICE candidate gathered), plus the ``a=dcmap`` the
IMS data channel needs (RFC 8864; the browser client munges it in the same way). The test
sends it to the MF in a plain SIP INVITE over UDP, gives the MF's answer back to the page, and
puts an IMS test UE (PCMU, no ICE) in the same room sending a tone: Chromium receives the
room's audio as Opus (getStats: packets and audio energy), the IMS UE hears Chromium's fake
microphone (transcoded through the room's mix), and the BYE releases every stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from avatar_mf.sdp.model import parse_sdp
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import UeCall
from avatar_mf.ue.rtp_audio import UeAudio

from . import webrtc_fixtures as fx
from .pages import wait_for
from .webrtc_fixtures import HOST, ROOM

pytestmark = pytest.mark.timeout(90)

OFFER_JS = (
    """async (bundlePolicy) => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection({bundlePolicy});
  window.pc = pc;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  window.dc = pc.createDataChannel('bootstrap', {negotiated: true, id: 0, protocol: 'http'});
  // Play what arrives (Chromium decodes and measures a remote track only once it plays).
  pc.addEventListener('track', (event) => {
    const sink = new Audio();
    sink.srcObject = event.streams[0] || new MediaStream([event.track]);
    sink.play();
  });"""
    + fx.GATHERED_OFFER_JS
)

STATS_JS = fx.stats_js(
    """    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.received = s.packetsReceived; out.energy = s.totalAudioEnergy;
      out.codec = report.get(s.codecId) ? report.get(s.codecId).mimeType : null;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;"""
)


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    yield from fx.run_mf(tmp_path_factory, "webrtc-audio-mf")


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


@pytest.mark.parametrize("bundle_policy", ["balanced", "max-bundle"])
async def test_chromium_audio_bundled_with_its_data_channel(
    mf: MfProcess, browser_context: Any, bundle_policy: str
) -> None:
    """``balanced`` (the default): every m-line has its candidates; ``max-bundle``: Chromium
    156 writes the data channel m-line with port 9 and no candidate (only the tag's)."""
    t = np.arange(16000 * 6) / 16000.0
    tone = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    ims = UeAudio(HOST, codecs=("PCMU",), pcm=tone)
    async with fx.mf_page(browser_context, mf) as page:
        offer = fx.with_dcmap(await page.evaluate(OFFER_JS, bundle_policy))
        assert "UDP/TLS/RTP/SAVPF" in offer and "a=group:BUNDLE 0 1" in offer

        async with fx.sip_call(mf, offer) as (_, ok):
            answer = ok.body.decode()
            audio = parse_sdp(ok.body).media[0]
            assert audio.port != 0 and "opus/48000/2" in answer, answer
            # The MF is an ICE-lite agent (media.ice_lite): Chromium runs the checks.
            assert parse_sdp(ok.body).has_attribute("ice-lite"), answer
            await fx.set_answer(page, answer)

            async with UeCall.dial(
                f"sip:{ROOM}@{HOST}",
                HOST,
                mf.sip_port,
                ice=False,
                rtp_audio=ims,
                setup_timeout=5.0,
            ):
                stats: dict[str, Any] = {}

                async def flowing() -> bool:
                    stats.update(await page.evaluate(STATS_JS))
                    return (
                        stats.get("received", 0) > 100
                        and stats.get("energy", 0) > 0.01
                        and ims.packets_in > 100
                    )

                await wait_for(flowing, 20.0, "audio both ways")
                await asyncio.sleep(1.0)
            heard = rms(ims.received_pcm())
            print("chromium:", stats, f"IMS UE heard Chromium's microphone at RMS {heard:.0f}")
            assert stats["state"] == "connected" and stats["codec"] == "audio/opus"
            assert stats["dc"] == "open" and stats.get("sent", 0) > 50
            assert heard > 100  # Chromium's fake microphone beeps: not silence

    await fx.wait_released(mf, "rtp_streams")
