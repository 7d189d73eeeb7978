"""Shared set-up of the Chromium WebRTC tests (test_webrtc_audio.py, test_webrtc_video.py).

A module's MF (:func:`run_mf`), a page in a secure context on the MF's admin port
(:func:`mf_page`), the tail of an offer script that returns the offer once every ICE
candidate is gathered (:data:`GATHERED_OFFER_JS`), a getStats script (:func:`stats_js`), the
``a=dcmap`` the IMS data channel needs (:func:`with_dcmap`, RFC 8864), one SIP call over UDP
carrying the page's offer (:func:`sip_call`: INVITE, ACK, BYE), the answer given back to the
page (:func:`set_answer`) and the wait for the MF to release everything
(:func:`wait_released`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, cast

import pytest

from avatar_mf.sip.message import Response
from avatar_mf.sip.parser import parse_message
from avatar_mf.testing.process import MfProcess

from .pages import wait_for

HOST = "127.0.0.1"
ROOM = "browseraudio"

#: The end of an offer script (``pc`` its RTCPeerConnection): the offer with every candidate.
GATHERED_OFFER_JS = """
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((done) => pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') done();
    }));
  }
  return pc.localDescription.sdp;
}"""


def stats_js(each: str, after: str = "") -> str:
    """A page script returning the peer connection's and the bootstrap channel's states and
    what ``each`` (JS run for every getStats entry ``s`` of ``report``) and ``after`` put in
    ``out``."""
    return f"""async () => {{
  const report = await window.pc.getStats();
  const out = {{state: window.pc.connectionState, dc: window.dc.readyState}};
  report.forEach((s) => {{
{each}
  }});{after}
  return out;
}}"""


def run_mf(
    tmp_path_factory: pytest.TempPathFactory, name: str, settings: Mapping[str, str] | None = None
) -> Iterator[MfProcess]:
    """An MF on loopback for a module's tests (``settings`` beside the media host and a 10 s
    setup timeout); it must stop cleanly."""
    mf = MfProcess.start(
        tmp_path_factory.mktemp(name),
        settings={"MEDIA__HOST": HOST, "MEDIA__SETUP_TIMEOUT": "10", **(settings or {})},
    )
    try:
        yield mf
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]


@contextlib.asynccontextmanager
async def mf_page(browser_context: Any, mf: MfProcess) -> AsyncIterator[Any]:
    """A Chromium page on the MF's admin port: http on loopback is a secure context
    (getUserMedia)."""
    page = await browser_context.new_page()
    try:
        await page.goto(f"http://{HOST}:{mf.admin_port}/readyz")
        yield page
    finally:
        await page.close()


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


@contextlib.asynccontextmanager
async def sip_call(
    mf: MfProcess, offer: str, contact_params: str = ""
) -> AsyncIterator[tuple[SipUac, Response]]:
    """A call to the MF's room carrying ``offer``: the UAC and the MF's 200 (already ACKed).
    The BYE ends it on leaving (answered 200); a test failing mid-call still ends it, so that
    the MF stops cleanly."""
    loop = asyncio.get_running_loop()
    transport, uac = await loop.create_datagram_endpoint(
        lambda: SipUac(mf.sip_port), local_addr=(HOST, 0)
    )
    uac.contact_params = contact_params
    try:
        uac.send("INVITE", 1, offer)
        ok = await uac.final("INVITE")
        assert ok.status == 200, ok
        uac.to_tag = (ok.headers.get("To") or "").split("tag=")[1].split(";")[0]
        uac.send("ACK", 1)
        yield uac, ok
        uac.send("BYE", 2)
        bye = await uac.final("BYE")
        assert bye.status == 200
        uac.to_tag = ""
    finally:
        if uac.to_tag:  # failed mid-call
            uac.send("BYE", 2)
            await asyncio.sleep(0.2)
        transport.close()


async def set_answer(page: Any, sdp: str) -> None:
    """Give the MF's answer to the page's peer connection."""
    await page.evaluate("(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", sdp)


async def wait_released(mf: MfProcess, streams: str) -> None:
    """Wait until the MF holds no call and none of ``streams`` (``rtp_streams``, ...)."""

    async def idle() -> bool:
        held = (await asyncio.to_thread(mf.stats))["held"]
        return held[streams] == 0 and held.get("calls", 0) == 0

    await wait_for(idle, 10.0, "every stream released")
