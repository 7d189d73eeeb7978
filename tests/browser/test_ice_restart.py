"""Chromium restarts ICE on a live data channel call to the MF's ICE-lite agent (docs/media.md,
"ICE restart").

A page opens a negotiated data channel (stream 1000, a subprotocol without a service: the MF
echoes it) and makes the offer; the test carries it to the MF in a plain SIP INVITE over UDP
and gives the answer back. Once a message has gone round, the page calls ``pc.restartIce()``
and makes a new offer (new ``a=ice-ufrag``/``a=ice-pwd``, same fingerprint: RFC 8445 section 9,
RFC 8839 section 4.4.1.1.1); the test sends it as a re-INVITE in the same dialog and gives the
answer to the page. The MF's answer must carry new credentials of its own (RFC 8839
4.4.1.2.2), Chromium's selected pair must use the new ones on both sides, and messages must
still go both ways on the same channel (the DTLS and SCTP associations are kept, RFC 8842
5.4).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avatar_mf.sdp.model import SessionDescription, parse_sdp
from avatar_mf.testing.process import MfProcess

from . import webrtc_fixtures as fx
from .pages import wait_for
from .webrtc_fixtures import HOST

pytestmark = pytest.mark.timeout(60)

OFFER_JS = (
    """async () => {
  // Media access makes Chromium gather loopback host candidates (conftest.CHROMIUM_FLAGS).
  const media = await navigator.mediaDevices.getUserMedia({audio: true});
  media.getTracks().forEach((track) => track.stop());
  const pc = new RTCPeerConnection();
  window.pc = pc;
  window.got = [];
  window.dc = pc.createDataChannel('echo', {negotiated: true, id: 1000, protocol: 'echo-test'});
  window.dc.addEventListener('message', (event) => window.got.push(event.data));"""
    + fx.GATHERED_OFFER_JS
)

RESTART_JS = (
    """async () => {
  const pc = window.pc;
  pc.restartIce();"""
    + fx.GATHERED_OFFER_JS
)

#: The ICE state, the selected pair's ufrags (RTCIceTransport) and the channel's state.
STATE_JS = """() => {
  const ice = window.pc.sctp.transport.iceTransport;
  const pair = ice.getSelectedCandidatePair();
  return {
    ice: window.pc.iceConnectionState,
    dc: window.dc.readyState,
    local: pair ? pair.local.usernameFragment : null,
    remote: pair ? pair.remote.usernameFragment : null,
  };
}"""

SEND_JS = "(text) => window.dc.send(text)"
GOT_JS = "() => window.got"


def with_dcmap(sdp: str) -> str:
    """The offer with the a=dcmap of stream 1000 in its data channel m-line (RFC 8864)."""
    head, app = sdp.split("m=application", 1)
    return f'{head}m=application{app}a=dcmap:1000 subprotocol="echo-test"\r\n'


def dc_ice(sdp: SessionDescription) -> tuple[str | None, str | None, str | None]:
    """The data channel m-line's ufrag, pwd and fingerprint."""
    md = next(m for m in sdp.media if m.media == "application")
    return (
        md.attribute_value("ice-ufrag"),
        md.attribute_value("ice-pwd"),
        md.attribute_value("fingerprint"),
    )


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    yield from fx.run_mf(tmp_path_factory, "ice-restart-mf")


async def echoed(page: Any, text: str) -> None:
    """Send ``text`` from the page and wait for the MF's echo on the same channel."""
    await page.evaluate(SEND_JS, text)

    async def back() -> bool:
        return text in await page.evaluate(GOT_JS)

    await wait_for(back, 10.0, f"the echo of {text!r}")


async def test_chromium_restarts_ice_on_a_live_data_channel(
    mf: MfProcess, browser_context: Any
) -> None:
    loop = asyncio.get_running_loop()
    transport, uac = await loop.create_datagram_endpoint(
        lambda: fx.SipUac(mf.sip_port), local_addr=(HOST, 0)
    )
    try:
        async with fx.mf_page(browser_context, mf) as page:
            offer = with_dcmap(await page.evaluate(OFFER_JS))
            uac.send("INVITE", 1, offer)
            ok = await uac.final("INVITE")
            assert ok.status == 200, ok
            uac.to_tag = (ok.headers.get("To") or "").split("tag=")[1].split(";")[0]
            uac.send("ACK", 1)
            answer = parse_sdp(ok.body)
            assert answer.has_attribute("ice-lite"), ok.body.decode()
            await fx.set_answer(page, ok.body.decode())

            async def connected() -> dict[str, Any] | None:
                state: dict[str, Any] = await page.evaluate(STATE_JS)
                up = state["ice"] in ("connected", "completed") and state["dc"] == "open"
                return state if up else None

            before = await wait_for(connected, 10.0, "ICE connected, channel open")
            await echoed(page, "before-" + secrets.token_hex(4))

            reoffer = with_dcmap(await page.evaluate(RESTART_JS))
            old_ufrag, old_pwd, fingerprint = dc_ice(parse_sdp(offer.encode()))
            new_ufrag, new_pwd, new_fingerprint = dc_ice(parse_sdp(reoffer.encode()))
            assert (new_ufrag, new_pwd) != (old_ufrag, old_pwd) and new_fingerprint == fingerprint
            uac.send("INVITE", 2, reoffer)
            reok = await uac.final("INVITE")
            print("re-INVITE answered", reok.status, reok.reason, reok.headers.get("Warning"))
            assert reok.status == 200, reok
            uac.send("ACK", 2)
            reanswer = parse_sdp(reok.body)
            mf_old = dc_ice(answer)
            mf_new = dc_ice(reanswer)
            # RFC 8839 4.4.1.2.2: new credentials; RFC 8842 5.4: the same DTLS association.
            assert mf_new[0] != mf_old[0] and mf_new[1] != mf_old[1], reok.body.decode()
            assert mf_new[2] == mf_old[2]
            applied = time.monotonic()
            await fx.set_answer(page, reok.body.decode())

            async def restarted() -> dict[str, Any] | None:
                state = await connected()
                moved = state is not None and (state["local"], state["remote"]) == (
                    new_ufrag,
                    mf_new[0],
                )
                return state if moved else None

            after = await wait_for(restarted, 15.0, "the selected pair on the new credentials")
            took = time.monotonic() - applied
            print("before:", before, "after:", after, f"new pair selected in {took:.2f} s")
            await echoed(page, "after-" + secrets.token_hex(4))
            await echoed(page, "again-" + secrets.token_hex(4))

            uac.send("BYE", 3)
            bye = await uac.final("BYE")
            assert bye.status == 200
            uac.to_tag = ""
    finally:
        if uac.to_tag:  # failed mid-call
            uac.send("BYE", 3)
            await asyncio.sleep(0.2)
        transport.close()
    await fx.wait_released(mf, "dc_sessions")
