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
import secrets
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest

from avatar_mf.sdp.model import parse_sdp
from avatar_mf.sip.message import Response
from avatar_mf.sip.parser import parse_message
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import UeCall
from avatar_mf.ue.rtp_audio import UeAudio

from .pages import wait_for

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
ROOM = "browseraudio"

OFFER_JS = """async (bundlePolicy) => {
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
  });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((done) => pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') done();
    }));
  }
  return pc.localDescription.sdp;
}"""

STATS_JS = """async () => {
  const report = await window.pc.getStats();
  const out = {state: window.pc.connectionState, dc: window.dc.readyState};
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.received = s.packetsReceived; out.energy = s.totalAudioEnergy;
      out.codec = report.get(s.codecId) ? report.get(s.codecId).mimeType : null;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;
  });
  return out;
}"""


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    mf = MfProcess.start(
        tmp_path_factory.mktemp("webrtc-audio-mf"),
        settings={"MEDIA__HOST": HOST, "MEDIA__SETUP_TIMEOUT": "10"},
    )
    try:
        yield mf
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]


def with_dcmap(sdp: str) -> str:
    """The offer with the a=dcmap of stream 0 in its data channel m-line (RFC 8864)."""
    head, app = sdp.split("m=application", 1)
    return f'{head}m=application{app}a=dcmap:0 subprotocol="http"\r\n'


class SipUac(asyncio.DatagramProtocol):
    """Just enough of a SIP UAC over UDP on loopback for one call (INVITE, ACK, BYE)."""

    def __init__(self, mf_port: int) -> None:
        self.mf_port = mf_port
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.to_tag = ""
        self.port = 0
        #: Feature tags after the Contact URI (``;+sip.3gpp-avatar-support=...``).
        self.contact_params = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            self.responses.put_nowait(message)

    def send(self, method: str, cseq: int, body: str = "") -> None:
        assert self.transport is not None
        to = f"<sip:{ROOM}@{HOST}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} sip:{ROOM}@{HOST}:{self.mf_port} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:chromium@{HOST}>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:chromium@{HOST}:{self.port}>{self.contact_params}",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.transport.sendto(
            ("\r\n".join(lines) + "\r\n\r\n" + body).encode(), (HOST, self.mf_port)
        )

    async def final(self, method: str) -> Response:
        async with asyncio.timeout(15):
            while True:
                response = await self.responses.get()
                cseq = response.headers.get("CSeq") or ""
                if response.status >= 200 and cseq.endswith(method):
                    return response


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


@pytest.mark.parametrize("bundle_policy", ["balanced", "max-bundle"])
async def test_chromium_audio_bundled_with_its_data_channel(
    mf: MfProcess, browser_context: Any, bundle_policy: str
) -> None:
    """``balanced`` (the default): every m-line has its candidates; ``max-bundle``: Chromium
    156 writes the data channel m-line with port 9 and no candidate (only the tag's)."""
    page = await browser_context.new_page()
    # A secure context (getUserMedia): http on loopback is one.
    await page.goto(f"http://{HOST}:{mf.admin_port}/readyz")
    offer = with_dcmap(await page.evaluate(OFFER_JS, bundle_policy))
    assert "UDP/TLS/RTP/SAVPF" in offer and "a=group:BUNDLE 0 1" in offer

    loop = asyncio.get_running_loop()
    transport, uac = await loop.create_datagram_endpoint(
        lambda: SipUac(mf.sip_port), local_addr=(HOST, 0)
    )
    t = np.arange(16000 * 6) / 16000.0
    tone = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    ims = UeAudio(HOST, codecs=("PCMU",), pcm=tone)
    try:
        uac.send("INVITE", 1, offer)
        ok = await uac.final("INVITE")
        assert ok.status == 200, ok
        uac.to_tag = (ok.headers.get("To") or "").split("tag=")[1].split(";")[0]
        uac.send("ACK", 1)
        answer = ok.body.decode()
        audio = parse_sdp(ok.body).media[0]
        assert audio.port != 0 and "opus/48000/2" in answer, answer
        await page.evaluate(
            "(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", answer
        )

        async with UeCall.dial(
            f"sip:{ROOM}@{HOST}", HOST, mf.sip_port, ice=False, rtp_audio=ims, setup_timeout=5.0
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

        uac.send("BYE", 2)
        bye = await uac.final("BYE")
        assert bye.status == 200
        uac.to_tag = ""
    finally:
        if uac.to_tag:  # failed mid-call: end it, so that the MF stops cleanly
            uac.send("BYE", 2)
            await asyncio.sleep(0.2)
        transport.close()
        await page.close()

    async def idle() -> bool:
        held = (await asyncio.to_thread(mf.stats))["held"]
        return held["rtp_streams"] == 0 and held.get("calls", 0) == 0

    await wait_for(idle, 10.0, "every stream released")
