"""RFC 7118 section 5 at the user agent: the MF's in-dialog requests (BYE) to a WebSocket
client go over the connection the dialog came on, whatever its Contact says. A browser
(JsSIP) puts a ``.invalid`` host and ``transport=ws`` in its Contact and Via, over ws and wss
alike; the MF, the WebSocket server, can reach it on that connection only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatar_mf.sip.message import Request
from avatar_mf.sip.peer import Peer
from avatar_mf.testing.sip import UacDialogState, UaHarness, to_tag_of

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()


@dataclass
class BrowserDialog(UacDialogState):
    """A JsSIP-like UAC: random ``.invalid`` host in Via and Contact, Contact transport=ws."""

    @property
    def contact(self) -> str:
        return "<sip:k3l5q9a2@df7jal23ls0d.invalid;transport=ws;ob>"

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/{self.peer.transport.upper()} df7jal23ls0d.invalid;branch={branch}"


@pytest.fixture
async def mf() -> AsyncIterator[UaHarness]:
    harness = UaHarness()
    try:
        yield harness
        await harness.assert_idle()
    finally:
        harness.close()


@pytest.mark.parametrize("transport", ["ws", "wss"])
async def test_bye_goes_back_on_the_websocket_connection(mf: UaHarness, transport: str) -> None:
    browser = BrowserDialog(peer=Peer(transport, "192.0.2.7", 50123, 17))
    ok = await mf.call(browser, OFFER)
    assert ok.headers.get("Contact") == f"<sip:mf@10.0.0.2:5060;transport={transport}>"
    mf.sessions.sessions[0].fail("DTLS setup timeout")
    await mf.settle()
    [bye] = mf.wire.select("BYE", requests=True)
    assert bye.peer == browser.peer  # same transport, same connection
    assert isinstance(bye.message, Request)
    assert bye.message.uri == "sip:k3l5q9a2@df7jal23ls0d.invalid;transport=ws;ob"
    via = bye.message.headers.get("Via") or ""
    assert via.startswith(f"SIP/2.0/{transport.upper()} 10.0.0.2:5060;branch=")
    assert to_tag_of(bye.message) == browser.local_tag
    await mf.deliver(browser.reply(bye.message, 200), browser.peer)
