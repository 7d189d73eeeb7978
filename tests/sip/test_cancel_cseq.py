"""RFC 3261 9.1: a CANCEL's CSeq has the number of the request it cancels and the method
CANCEL. One whose CSeq method is INVITE is answered 400 and cancels nothing (issue 9: it was
accepted and cancelled the INVITE)."""

from __future__ import annotations

from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.transaction import State
from tests.sip.test_transaction_layer import (
    T1,
    UDP,
    ack_for,
    assert_idle,
    cancel_for,
    make_layer,
    req,
    state,
)


def test_a_cancel_whose_cseq_method_is_invite_is_400_and_cancels_nothing() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    layer.receive(invite, UDP)
    tx = tu.requests[0][0]
    good = cancel_for(invite)
    bad = Request("CANCEL", good.uri, good.headers.set("CSeq", invite.headers.get("CSeq") or ""))
    layer.receive(bad, UDP)
    assert send.statuses() == [100, 400]
    rejected = send.sent[-1][1]
    assert isinstance(rejected, Response)
    assert rejected.headers.get("CSeq") == invite.headers.get("CSeq")  # copied from the CANCEL
    assert tu.cancels == [] and state(tx) is State.PROCEEDING  # the INVITE goes on
    assert layer.stats.malformed == 1

    layer.receive(good, UDP)  # a well-formed CANCEL still cancels
    assert send.statuses() == [100, 400, 200, 487] and len(tu.cancels) == 1
    busy = send.sent[-1][1]
    assert isinstance(busy, Response)
    layer.receive(ack_for(invite, busy), UDP)
    clock.advance(64 * T1)
    assert_idle(layer, clock)
