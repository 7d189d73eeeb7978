"""The documented decisions of the four transaction machines, one input at a time.

RFC 3261 17.1.1, 17.1.2, 17.2.1, 17.2.2 and RFC 6026 7.1, 7.2; the sequences of timers over a
real clock are in test_transaction_layer.py, random sequences in test_transaction_stateful.py.
"""

from __future__ import annotations

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.message import Headers, Request, Response
from avatar_mf.sip.timers import TimerConfig, TimerName
from avatar_mf.sip.transaction import (
    CancelTimer,
    InviteClient,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Send,
    StartTimer,
    State,
    Terminated,
    Timeout,
    ToTU,
    TransactionError,
    TransportFailed,
    ack_for_non_2xx,
)

CONFIG = TimerConfig()


def request(method: str, to_tag: str | None = None) -> Request:
    to = "<sip:mf@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        "sip:mf@10.0.0.2",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1, SIP/2.0/UDP 10.0.0.9"),
                ("Route", "<sip:pcscf.example;lr>"),
                ("Max-Forwards", "70"),
                ("From", "<sip:ue@10.0.0.1>;tag=from1"),
                ("To", to),
                ("Call-ID", "call-m@10.0.0.1"),
                ("CSeq", f"7 {'INVITE' if method == 'ACK' else method}"),
            ]
        ),
    )


INVITE = request("INVITE")
BYE = request("BYE", to_tag="t")


def resp(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag="uas")


def test_invite_server_sends_100_trying_before_passing_the_invite_up() -> None:
    m = InviteServer(INVITE, reliable=False, config=CONFIG)
    actions = m.start()
    assert len(actions) == 2 and actions[1] == ToTU(INVITE)
    trying = actions[0]
    assert isinstance(trying, Send) and isinstance(trying.message, Response)
    assert trying.message.status == 100 and m.state is State.PROCEEDING
    with pytest.raises(TransactionError):
        m.start()


def test_invite_server_completed_confirmed_and_the_reliable_shortcut() -> None:
    m = InviteServer(INVITE, reliable=False, config=CONFIG)
    m.start()
    busy = resp(INVITE, 486)
    assert m.on_tu_response(busy) == [
        Send(busy),
        StartTimer(TimerName.G, 0.5),
        StartTimer(TimerName.H, 32.0),
    ]
    assert m.on_request(INVITE) == [Send(busy)]
    assert m.on_timer(TimerName.G) == [Send(busy), StartTimer(TimerName.G, 1.0)]
    assert m.on_request(request("ACK", "uas")) == [
        CancelTimer(TimerName.G),
        CancelTimer(TimerName.H),
        StartTimer(TimerName.I, 5.0),
    ]
    assert m.state is State.CONFIRMED
    assert m.on_request(INVITE) == [] and m.on_request(request("ACK", "uas")) == []
    assert m.on_timer(TimerName.H) == [], "a cancelled timer firing late is ignored"
    assert m.on_timer(TimerName.I) == [Terminated()]

    tcp = InviteServer(INVITE, reliable=True, config=CONFIG)
    tcp.start()
    assert tcp.on_tu_response(busy) == [Send(busy), StartTimer(TimerName.H, 32.0)]
    assert tcp.on_request(request("ACK", "uas")) == [CancelTimer(TimerName.H), Terminated()]


def test_invite_server_timer_h_and_transport_errors() -> None:
    m = InviteServer(INVITE, reliable=False, config=CONFIG)
    m.start()
    m.on_tu_response(resp(INVITE, 603))
    assert m.on_timer(TimerName.H) == [CancelTimer(TimerName.G), Timeout(), Terminated()]
    p = InviteServer(INVITE, reliable=True, config=CONFIG)
    p.start()
    assert p.on_transport_error() == [TransportFailed(), Terminated()]
    a = InviteServer(INVITE, reliable=True, config=CONFIG)
    a.start()
    a.on_tu_response(resp(INVITE, 200))
    assert a.on_transport_error() == [TransportFailed()] and a.state is State.ACCEPTED


def test_invite_server_accepted_resends_the_2xx_and_refuses_anything_else() -> None:
    m = InviteServer(INVITE, reliable=False, config=CONFIG)
    m.start()
    ok = resp(INVITE, 200)
    assert m.on_tu_response(ok) == [Send(ok), StartTimer(TimerName.L, 32.0)]
    assert m.on_request(INVITE) == [Send(ok)]
    assert m.on_tu_response(ok) == [Send(ok)]
    ack = request("ACK", "uas")
    assert m.on_request(ack) == [ToTU(ack)]
    for other in (resp(INVITE, 180), resp(INVITE, 202), resp(INVITE, 486)):
        with pytest.raises(TransactionError):
            m.on_tu_response(other)
    with pytest.raises(TransactionError):
        m.on_tu_response(Response(700, "Bogus"))
    assert m.on_timer(TimerName.L) == [Terminated()]
    with pytest.raises(TransactionError):
        m.on_tu_response(ok)


def test_non_invite_server_absorbs_in_trying_and_caches_afterwards() -> None:
    m = NonInviteServer(BYE, reliable=False, config=CONFIG)
    assert m.start() == [ToTU(BYE)]
    assert m.on_request(BYE) == [] and m.on_transport_error() == []
    trying = resp(BYE, 100)
    assert m.on_tu_response(trying) == [Send(trying)] and m.state is State.PROCEEDING
    assert m.on_request(BYE) == [Send(trying)]
    ok = resp(BYE, 200)
    assert m.on_tu_response(ok) == [Send(ok), StartTimer(TimerName.J, 32.0)]
    assert m.on_request(BYE) == [Send(ok)]
    with pytest.raises(TransactionError):
        m.on_tu_response(resp(BYE, 500))
    assert m.on_timer(TimerName.J) == [Terminated()]
    tcp = NonInviteServer(BYE, reliable=True, config=CONFIG)
    tcp.start()
    assert tcp.on_tu_response(ok) == [Send(ok), Terminated()]


def test_invite_client_sequence() -> None:
    m = InviteClient(INVITE, reliable=False, config=CONFIG)
    assert m.start() == [
        Send(INVITE),
        StartTimer(TimerName.A, 0.5),
        StartTimer(TimerName.B, 32.0),
    ]
    assert m.on_timer(TimerName.A) == [Send(INVITE), StartTimer(TimerName.A, 1.0)]
    assert m.on_timer(TimerName.A) == [Send(INVITE), StartTimer(TimerName.A, 2.0)]
    ringing = resp(INVITE, 180)
    assert m.on_response(ringing) == [
        CancelTimer(TimerName.A),
        CancelTimer(TimerName.B),
        ToTU(ringing),
    ]
    assert m.on_response(Response(99, "Bad")) == []
    ok = resp(INVITE, 200)
    assert m.on_response(ok) == [StartTimer(TimerName.M, 32.0), ToTU(ok)]
    assert m.on_response(ok) == [ToTU(ok, retransmission=True)]
    assert m.on_response(resp(INVITE, 486)) == [] and m.on_response(ringing) == []
    assert m.on_timer(TimerName.M) == [Terminated()]


def test_invite_client_acks_non_2xx_itself() -> None:
    m = InviteClient(INVITE, reliable=True, config=CONFIG)
    assert m.start() == [Send(INVITE), StartTimer(TimerName.B, 32.0)]
    busy = resp(INVITE, 486)
    actions = m.on_response(busy)
    ack = ack_for_non_2xx(INVITE, busy)
    assert actions == [CancelTimer(TimerName.B), Send(ack), ToTU(busy), Terminated()]
    assert ack.method == "ACK" and ack.uri == INVITE.uri
    assert ack.headers.get_all("Via") == ["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1"]
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.headers.get("CSeq") == "7 ACK"
    assert ack.headers.get("Route") == "<sip:pcscf.example;lr>"
    assert ack.headers.get("Call-ID") == INVITE.headers.get("Call-ID")


def test_non_invite_client_sequence() -> None:
    m = NonInviteClient(BYE, reliable=False, config=CONFIG)
    m.start()
    delays = []
    for _ in range(5):
        actions = m.on_timer(TimerName.E)
        start = actions[-1]
        assert isinstance(start, StartTimer)
        delays.append(start.delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    ok = resp(BYE, 200)
    assert m.on_response(ok) == [
        CancelTimer(TimerName.E),
        CancelTimer(TimerName.F),
        StartTimer(TimerName.K, 5.0),
        ToTU(ok),
    ]
    assert m.on_response(ok) == []
    assert m.on_timer(TimerName.K) == [Terminated()]
    assert m.on_timer(TimerName.K) == [] and m.on_response(ok) == []


def test_abandon_cancels_everything_silently() -> None:
    m = InviteClient(INVITE, reliable=False, config=CONFIG)
    m.start()
    m.on_response(resp(INVITE, 183))
    assert m.abandon() == [Terminated()]
    n = NonInviteClient(BYE, reliable=False, config=CONFIG)
    n.start()
    assert n.abandon() == [CancelTimer(TimerName.E), CancelTimer(TimerName.F), Terminated()]
    assert n.abandon() == []
