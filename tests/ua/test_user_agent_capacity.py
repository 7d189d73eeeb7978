"""OPTIONS and INVITE answered 503 whenever the node cannot take calls (issue 9), and the RFC
2543 INVITE of RFC 4475 3.4.1 accepted (the choice recorded in docs/design.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.message import Headers, Request
from avatar_mf.sip.parser import parse_message
from avatar_mf.testing.sip import DEFAULT_UA_CONFIG, UE_UDP, UacDialogState, UaHarness

RFC4475 = Path(__file__).resolve().parents[1] / "sip" / "rfc4475"


@pytest.fixture
async def shortage() -> AsyncIterator[list[str | None]]:
    yield [None]


@pytest.fixture
async def mf(shortage: list[str | None]) -> AsyncIterator[UaHarness]:
    harness = UaHarness(capacity=lambda: shortage[0])
    try:
        yield harness
        await harness.assert_idle()
    finally:
        harness.close()


async def test_options_503_while_the_node_lacks_file_descriptors(
    mf: UaHarness, shortage: list[str | None], caplog: pytest.LogCaptureFixture
) -> None:
    ue = UacDialogState()
    await mf.deliver(ue.options())
    assert mf.wire.final("OPTIONS").status == 200
    shortage[0] = "Out Of File Descriptors (12 free)"
    with caplog.at_level(logging.INFO, "avatar_mf.ua.user_agent"):
        for _ in range(3):
            await mf.deliver(ue.options())
            refusal = mf.wire.final("OPTIONS")
            assert refusal.status == 503 and refusal.reason.startswith("Out Of File Descriptors")
            assert refusal.headers.get("Retry-After") == str(DEFAULT_UA_CONFIG.retry_after)
        await mf.deliver(ue.invite(b"v=0\r\n"))
        assert mf.wire.final("INVITE").status == 503
        assert mf.sessions.sessions == []  # no media was set up
        shortage[0] = None
        await mf.deliver(ue.options())
        assert mf.wire.final("OPTIONS").status == 200
    lines = [r.getMessage() for r in caplog.records]
    # One line when it started refusing (not one per request), one when it recovered.
    assert sum("cannot take calls" in line for line in lines) == 1
    assert sum("taking calls again" in line for line in lines) == 1
    await mf.advance(40)


async def test_options_503_at_max_dialogs(mf: UaHarness) -> None:
    # The dialog cap: INVITEs get 503, so OPTIONS must say so too (a dispatcher probes with it).
    ues = [UacDialogState(peer=UE_UDP) for _ in range(DEFAULT_UA_CONFIG.max_dialogs)]
    for ue in ues:
        await mf.deliver(ue.invite(b"v=0\r\n"))
        ok = mf.wire.final("INVITE", call_id=ue.call_id)
        assert ok.status == 200
        await mf.deliver(ue.ack(ok))
    probe = UacDialogState()
    await mf.deliver(probe.options())
    refusal = mf.wire.final("OPTIONS")
    assert refusal.status == 503 and refusal.reason == "Too Many Calls"
    await mf.deliver(ues[0].bye())
    await mf.deliver(probe.options())
    assert mf.wire.final("OPTIONS").status == 200
    for ue in ues[1:]:
        await mf.deliver(ue.bye())
    await mf.advance(40)


async def test_rfc2543_invite_is_accepted_and_routed_by_from(mf: UaHarness) -> None:
    """RFC 4475 3.4.1: no Via branch, no tags, no Max-Forwards, no Contact."""
    invite = parse_message((RFC4475 / "inv2543.dat").read_bytes())
    assert isinstance(invite, Request) and "Contact" not in invite.headers
    await mf.deliver(invite)
    ok = mf.wire.final("INVITE")
    assert ok.status == 200, ok.reason
    # The 2543 UAC acknowledges without a branch; its ACK names the dialog by our To tag.
    to = ok.headers.get("To")
    assert to is not None and ";tag=" in to
    ack_headers = Headers(
        tuple((n, v) for n, v in invite.headers.items if n not in ("Content-Type",))
    )
    ack = Request("ACK", invite.uri, ack_headers.set("To", to).set("CSeq", "56 ACK"))
    await mf.deliver(ack)
    (call,) = mf.ua.calls()
    assert call.confirmed
    assert call.dialog is not None
    # Requests in the dialog go to the From URI, the UAC named no other place.
    assert call.dialog.remote_target == "sip:+13035551111@ift.client.example.net;user=phone"
    mf.ua.drop(call, "test")
    await mf.settle()
    (bye,) = mf.wire.requests("BYE")
    await mf.deliver(make_response(bye, 200, to_tag="ue2543"))
    await mf.advance(40)


async def test_an_rfc3261_invite_without_contact_is_still_400(mf: UaHarness) -> None:
    ue = UacDialogState()
    invite = ue.invite(b"v=0\r\n")
    await mf.deliver(Request("INVITE", invite.uri, invite.headers.remove("Contact"), invite.body))
    bad = mf.wire.final("INVITE")
    assert (bad.status, bad.reason) == (400, "Missing Contact")
    await mf.deliver(ue.ack(bad))
    await mf.advance(40)
