"""The transaction layer with a fake clock and a recording transport (RFC 3261 17, 9.2; RFC 6026).

No sockets: ``send`` appends to a list and :class:`FakeClock` moves time. Covers the RFC timer
sequences, request and response matching (RFC 3261 17.1.3, 17.2.3, including the RFC 2543
fallback), CANCEL and ACK handling, retransmissions, and a property test that random
interleavings of many transactions end with nothing left alive and no timer armed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.sip.build import make_response
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.message import Headers, Message, Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction import State
from avatar_mf.sip.transaction_layer import (
    ClientTransaction,
    ServerTransaction,
    Transaction,
    TransactionError,
    TransactionLayer,
)
from avatar_mf.testing.clock import FakeClock

UDP = Peer("udp", "10.0.0.1", 5060)
TCP = Peer("tcp", "10.0.0.1", 40000, connection_id=7)
T = TimerConfig()
T1 = T.t1


# -- messages ---------------------------------------------------------------------------------


def req(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKaaa",
    sent_by: str = "10.0.0.1:5060",
    transport: str = "UDP",
    call_id: str = "call-1@10.0.0.1",
    from_tag: str = "ft1",
    to_tag: str | None = None,
    cseq: int = 1,
    cseq_method: str | None = None,
    uri: str = "sip:mf@10.0.0.2",
) -> Request:
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    to = "<sip:mf@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    if cseq_method is None:
        cseq_method = "INVITE" if method == "ACK" else method
    return Request(
        method,
        uri,
        Headers.of(
            [
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"<sip:ue@10.0.0.1>;tag={from_tag}"),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {cseq_method}"),
            ]
        ),
    )


def ack_for(invite: Request, response: Response, *, branch: str | None = None) -> Request:
    """The peer's ACK: same branch for a non-2xx (17.1.1.3), a new one for a 2xx (13.2.2.4)."""
    via = invite.headers.get("Via")
    assert via is not None
    if branch is not None:
        via = via.split(";branch=")[0] + f";branch={branch}"
    headers = invite.headers.set("Via", via).set("CSeq", "1 ACK")
    to = response.headers.get("To")
    assert to is not None
    return Request("ACK", invite.uri, headers.set("To", to))


def cancel_for(invite: Request) -> Request:
    cseq = invite.headers.get("CSeq")
    assert cseq is not None
    return Request("CANCEL", invite.uri, invite.headers.set("CSeq", cseq.split()[0] + " CANCEL"))


# -- the fakes --------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A recording transport: every (time, message, peer) passed to ``send``."""

    clock: FakeClock
    sent: list[tuple[float, Message, Peer]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, message: Message, peer: Peer) -> None:
        if self.fail:
            raise ConnectionResetError("peer gone")
        self.sent.append((self.clock.now(), message, peer))

    def statuses(self) -> list[int]:
        return [m.status for _, m, _ in self.sent if isinstance(m, Response)]

    def times(self, method: str) -> list[float]:
        return [t for t, m, _ in self.sent if isinstance(m, Request) and m.method == method]

    def clear(self) -> None:
        self.sent.clear()


@dataclass
class RecordingTU:
    """A transaction user that records every callback and can answer automatically."""

    auto_status: int | None = None
    on_cancel_status: int | None = 487
    requests: list[tuple[ServerTransaction, Request]] = field(default_factory=list)
    acks: list[tuple[Request, Peer]] = field(default_factory=list)
    cancels: list[tuple[ServerTransaction, Request]] = field(default_factory=list)
    responses: list[tuple[ClientTransaction, Response]] = field(default_factory=list)
    timeouts: list[Transaction] = field(default_factory=list)
    transport_errors: list[Transaction] = field(default_factory=list)
    raise_on_request: BaseException | None = None

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        self.requests.append((tx, request))
        if self.raise_on_request is not None:
            raise self.raise_on_request
        if self.auto_status is not None:
            tx.respond(make_response(request, self.auto_status, to_tag="uas1"))

    def on_ack(self, request: Request, source: Peer) -> None:
        self.acks.append((request, source))

    def on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        self.cancels.append((tx, cancel))
        if self.on_cancel_status is not None:
            tx.respond(make_response(tx.request, self.on_cancel_status, to_tag="uas1"))

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        self.responses.append((tx, response))

    def on_transaction_timeout(self, tx: Transaction) -> None:
        self.timeouts.append(tx)

    def on_transport_error(self, tx: Transaction) -> None:
        self.transport_errors.append(tx)


def make_layer(
    auto_status: int | None = None, timers: TimerConfig = T
) -> tuple[TransactionLayer, FakeClock, Recorder, RecordingTU]:
    clock = FakeClock()
    send = Recorder(clock)
    tu = RecordingTU(auto_status=auto_status)
    return TransactionLayer(clock, timers, send, tu), clock, send, tu


def assert_idle(layer: TransactionLayer, clock: FakeClock) -> None:
    assert len(layer) == 0 and layer.active_count == 0
    assert clock.pending == 0


def state(tx: Transaction) -> State:
    """The state now (a function call, so mypy does not narrow it across inputs)."""
    return tx.state


def peer_reply(request: Request, status: int, to_tag: str = "remote1") -> Response:
    return make_response(request, status, to_tag=to_tag)


# -- timers -----------------------------------------------------------------------------------


def test_timer_values_follow_the_rfc_table() -> None:
    assert (T.t1, T.t2, T.t4) == (0.5, 4.0, 5.0)
    for reliable in (False, True):
        assert T.timer_b(reliable) == T.timer_f(reliable) == T.timer_h(reliable) == 32.0
        assert T.timer_l(reliable) == T.timer_m(reliable) == 64 * T1
    assert (T.timer_a(False), T.timer_e(False), T.timer_g(False)) == (T1, T1, T1)
    assert (T.timer_a(True), T.timer_e(True), T.timer_g(True)) == (None, None, None)
    assert (T.timer_d(False), T.timer_d(True)) == (32.0, 0.0)
    assert (T.timer_i(False), T.timer_i(True)) == (5.0, 0.0)
    assert (T.timer_j(False), T.timer_j(True)) == (32.0, 0.0)
    assert (T.timer_k(False), T.timer_k(True)) == (5.0, 0.0)
    slow = TimerConfig(t1=1.0, t2=8.0)
    assert slow.timer_d(False) == 64.0, "D covers the server's 64*T1 retransmission window"
    assert TimerConfig(t1=0.1, t2=4.0).timer_d(False) == 32.0, "D is at least 32 s"


@pytest.mark.parametrize(
    "kwargs",
    [{"t1": 0.0}, {"t1": -1.0}, {"t1": 5.0, "t2": 4.0}, {"t4": 0.0}, {"t2": float("inf")}],
)
def test_timer_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


def test_invite_client_over_udp_retransmits_with_timer_a_until_timer_b() -> None:
    layer, clock, send, tu = make_layer()
    tx = layer.send_request(req("INVITE"), UDP)
    clock.advance(40)
    # Timer A: 0.5, 1, 2, 4, 8, 16 s between sends; Timer B = 64*T1 = 32 s.
    assert send.times("INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tu.timeouts == [tx] and tx.state is State.TERMINATED
    assert_idle(layer, clock)
    assert layer.stats.timeouts == 1 and layer.stats.client_created["INVITE"] == 1


def test_invite_client_over_tcp_never_retransmits() -> None:
    layer, clock, send, tu = make_layer()
    tx = layer.send_request(req("INVITE", transport="TCP"), TCP)
    clock.advance(31.9)
    assert send.times("INVITE") == [0.0] and tu.timeouts == []
    clock.advance(0.1)
    assert tu.timeouts == [tx]
    assert_idle(layer, clock)


def test_invite_client_provisional_stops_retransmissions() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    tx = layer.send_request(invite, UDP)
    clock.advance(0.6)
    layer.receive(peer_reply(invite, 180), UDP)
    clock.advance(100)
    assert send.times("INVITE") == [0.0, 0.5]
    assert tx.state is State.PROCEEDING and tu.timeouts == []
    assert [r.status for _, r in tu.responses] == [180]
    tx.abandon()  # RFC 3261 9.1: the TU gives up
    assert_idle(layer, clock)


def test_invite_client_non_2xx_is_acked_by_the_transaction_and_passed_up_once() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    tx = layer.send_request(invite, UDP)
    busy = peer_reply(invite, 486)
    layer.receive(busy, UDP)
    layer.receive(busy, UDP)  # retransmission: ACK again, not passed up
    acks = [m for _, m, _ in send.sent if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 2 and acks[0] == acks[1]
    ack = acks[0]
    assert ack.uri == invite.uri
    assert ack.headers.get("Via") == invite.headers.get("Via")
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.headers.get("CSeq") == "1 ACK"
    assert [r.status for _, r in tu.responses] == [486]
    assert layer.stats.responses_absorbed == 1
    assert tx.state is State.COMPLETED
    clock.advance(31.9)
    assert tx.state is State.COMPLETED
    clock.advance(0.1)  # Timer D = 32 s
    assert_idle(layer, clock)


def test_invite_client_accepted_passes_every_2xx_up_for_timer_m() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    tx = layer.send_request(invite, UDP)
    ok = peer_reply(invite, 200)
    layer.receive(ok, UDP)
    layer.receive(ok, UDP)  # retransmission: the TU must ACK it again (RFC 6026 7.2)
    layer.receive(peer_reply(invite, 200, to_tag="fork2"), UDP)  # another fork
    assert [r for _, r in tu.responses][:2] == [ok, ok]
    assert len(tu.responses) == 3 and tx.state is State.ACCEPTED
    assert send.times("ACK") == [], "the ACK for a 2xx is the TU's"
    clock.advance(64 * T1)
    assert_idle(layer, clock)
    layer.receive(ok, UDP)
    assert layer.stats.stray_responses == 1 and len(tu.responses) == 3


def test_non_invite_client_timer_e_caps_at_t2_and_f_times_out() -> None:
    layer, clock, send, tu = make_layer()
    tx = layer.send_request(req("OPTIONS", to_tag=None), UDP)
    clock.advance(40)
    assert send.times("OPTIONS") == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert tu.timeouts == [tx]
    assert_idle(layer, clock)


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer, clock, send, tu = make_layer()
    bye = req("BYE", to_tag="remote1")
    tx = layer.send_request(bye, UDP)
    clock.advance(1.0)
    layer.receive(peer_reply(bye, 100), UDP)
    assert tx.state is State.PROCEEDING
    clock.advance(9.0)  # E fired at 1.5 (armed in Trying), then every T2
    assert send.times("BYE") == [0.0, 0.5, 1.5, 5.5, 9.5]
    ok = peer_reply(bye, 200)
    layer.receive(ok, UDP)
    layer.receive(ok, UDP)
    assert [r.status for _, r in tu.responses] == [100, 200]
    assert state(tx) is State.COMPLETED
    clock.advance(T.t4)  # Timer K
    assert_idle(layer, clock)


def test_non_invite_client_over_tcp_terminates_on_the_final_response() -> None:
    layer, clock, send, tu = make_layer()
    bye = req("BYE", to_tag="remote1", transport="TCP")
    layer.send_request(bye, TCP)
    layer.receive(peer_reply(bye, 200), TCP)
    assert_idle(layer, clock)
    assert [r.status for _, r in tu.responses] == [200]


def test_non_invite_server_keeps_completed_for_timer_j_over_udp() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    bye = req("BYE", to_tag="uas1")
    layer.receive(bye, UDP)
    assert send.statuses() == [200] and len(tu.requests) == 1
    clock.advance(31.0)
    layer.receive(bye, UDP)  # retransmitted BYE: the cached 200, not the TU
    assert send.statuses() == [200, 200]
    assert send.sent[0][1] is send.sent[1][1]
    assert len(tu.requests) == 1 and layer.stats.retransmissions_absorbed == 1
    assert len(layer) == 1
    clock.advance(1.0)  # J = 64*T1 = 32 s
    assert_idle(layer, clock)


def test_non_invite_server_over_tcp_terminates_at_once() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    layer.receive(req("BYE", to_tag="uas1", transport="TCP"), TCP)
    assert send.statuses() == [200]
    assert send.sent[0][2] == TCP, "the response goes back on the request's connection"
    assert_idle(layer, clock)


def test_retransmitted_bye_before_the_answer_is_absorbed() -> None:
    layer, clock, send, tu = make_layer()
    bye = req("BYE", to_tag="uas1")
    layer.receive(bye, UDP)
    layer.receive(bye, UDP)
    assert send.sent == [] and len(tu.requests) == 1
    tx = tu.requests[0][0]
    tx.respond(make_response(bye, 100))
    layer.receive(bye, UDP)  # Proceeding: the last provisional again
    tx.respond(make_response(bye, 200))
    layer.receive(bye, UDP)  # Completed: the final response again
    assert send.statuses() == [100, 100, 200, 200]
    assert len(tu.requests) == 1 and layer.stats.retransmissions_absorbed == 3
    with pytest.raises(TransactionError):
        tx.respond(make_response(bye, 481))


def test_invite_server_sends_100_trying_at_once() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    layer.receive(invite, UDP)
    assert send.statuses() == [100]
    assert send.sent[0][1].headers.get("To") == invite.headers.get("To"), "no To tag on 100"
    assert len(tu.requests) == 1 and tu.requests[0][0].state is State.PROCEEDING


SLOW_TRYING = TimerConfig(trying=0.1)  # the node's: 100 Trying only for a slow answer


@pytest.mark.parametrize("source", [UDP, TCP])
def test_a_quick_answer_goes_without_100_trying(source: Peer) -> None:
    # RFC 3261 17.2.1: no 100 is needed when the TU answers within 200 ms.
    layer, clock, send, tu = make_layer(timers=SLOW_TRYING)
    invite = req("INVITE")
    layer.receive(invite, source)
    assert send.statuses() == [] and clock.pending == 1  # the Trying timer
    tx = tu.requests[0][0]
    clock.advance(0.099)
    tx.respond(make_response(invite, 200, to_tag="uas1"))
    clock.advance(1.0)
    assert send.statuses() == [200]


def test_a_slow_answer_gets_100_trying_at_100_ms_then_the_answer() -> None:
    layer, clock, send, tu = make_layer(timers=SLOW_TRYING)
    invite = req("INVITE")
    layer.receive(invite, UDP)
    clock.advance(0.099)
    assert send.statuses() == []
    clock.advance(0.001)
    assert [(t, m.status) for t, m, _ in send.sent if isinstance(m, Response)] == [(0.1, 100)]
    assert send.sent[0][1].headers.get("To") == invite.headers.get("To"), "no To tag on 100"
    clock.advance(5.0)
    assert send.statuses() == [100], "one 100 only"
    tx = tu.requests[0][0]
    tx.respond(make_response(invite, 200, to_tag="uas1"))
    assert send.statuses() == [100, 200]


def test_a_provisional_from_the_tu_or_a_retransmission_replaces_the_timers_100() -> None:
    layer, clock, send, tu = make_layer(timers=SLOW_TRYING)
    ringing_invite = req("INVITE")
    retransmitted = req("INVITE", branch="z9hG4bKbbb", call_id="call-2@10.0.0.1")
    layer.receive(ringing_invite, UDP)
    tu.requests[0][0].respond(make_response(ringing_invite, 180, to_tag="uas1"))
    layer.receive(retransmitted, UDP)
    layer.receive(retransmitted, UDP)  # Timer A: a 100 at once, and no second one at 100 ms
    clock.advance(1.0)
    assert send.statuses() == [180, 100]


def test_retransmitted_invite_in_proceeding_resends_the_last_provisional() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    layer.receive(invite, UDP)
    layer.receive(invite, UDP)
    tx = tu.requests[0][0]
    ringing = make_response(invite, 180, to_tag="uas1")
    tx.respond(ringing)
    layer.receive(invite, UDP)
    assert send.statuses() == [100, 100, 180, 180]
    assert send.sent[-1][1] is ringing
    assert len(tu.requests) == 1


def test_invite_server_accepted_lasts_timer_l_and_answers_retransmissions() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    invite = req("INVITE")
    layer.receive(invite, UDP)
    tx = tu.requests[0][0]
    assert tx.state is State.ACCEPTED and send.statuses() == [100, 200]
    ok = send.sent[-1][1]
    assert isinstance(ok, Response)
    layer.receive(invite, UDP)  # deliberate: the cached 2xx, not RFC 6026's silent absorb
    assert send.sent[-1][1] is ok and len(tu.requests) == 1
    tx.respond(ok)  # the UAS core's own 2xx retransmission goes through the transaction
    assert send.statuses() == [100, 200, 200, 200]
    ack = ack_for(invite, ok, branch="z9hG4bKack2xx")
    layer.receive(ack, UDP)
    assert tu.acks == [(ack, UDP)]
    with pytest.raises(TransactionError):
        tx.respond(make_response(invite, 486, to_tag="uas1"))
    with pytest.raises(TransactionError):
        tx.respond(make_response(invite, 180, to_tag="uas1"))
    clock.advance(64 * T1 - 0.1)
    assert tx.state is State.ACCEPTED
    clock.advance(0.1)  # Timer L
    assert_idle(layer, clock)
    assert tu.timeouts == []


def test_ack_for_a_2xx_reusing_the_invite_branch_goes_to_the_tu_from_accepted() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    invite = req("INVITE")
    layer.receive(invite, UDP)
    ok = send.sent[-1][1]
    assert isinstance(ok, Response)
    ack = ack_for(invite, ok)  # same branch: matches the INVITE transaction in Accepted
    layer.receive(ack, UDP)
    layer.receive(ack, UDP)
    assert tu.acks == [(ack, UDP), (ack, UDP)], "RFC 6026 7.1: ACKs in Accepted go up"


def test_invite_server_timer_g_retransmits_until_ack_capped_at_t2() -> None:
    layer, clock, send, tu = make_layer(auto_status=486)
    invite = req("INVITE")
    layer.receive(invite, UDP)
    tx = tu.requests[0][0]
    assert tx.state is State.COMPLETED
    clock.advance(20.0)
    times = [t for t, m, _ in send.sent if isinstance(m, Response) and m.status == 486]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    busy = send.sent[-1][1]
    assert isinstance(busy, Response)
    layer.receive(invite, UDP)  # a retransmitted INVITE in Completed: the 486 again
    assert send.sent[-1][1] is busy and len(tu.requests) == 1
    ack = ack_for(invite, busy)
    layer.receive(ack, UDP)
    assert state(tx) is State.CONFIRMED and tu.acks == []
    count = len(send.sent)
    layer.receive(ack, UDP)  # absorbed in Confirmed
    layer.receive(invite, UDP)  # absorbed in Confirmed
    clock.advance(T.t4 - 0.1)
    assert len(send.sent) == count and state(tx) is State.CONFIRMED
    clock.advance(0.1)  # Timer I
    assert_idle(layer, clock)
    assert layer.stats.acks_absorbed == 2


def test_invite_server_timer_h_without_ack_times_out() -> None:
    layer, clock, send, tu = make_layer(auto_status=603)
    layer.receive(req("INVITE"), UDP)
    tx = tu.requests[0][0]
    clock.advance(64 * T1)
    assert tu.timeouts == [tx]
    assert send.statuses().count(603) == 11  # 0, .5, 1.5, 3.5, 7.5, then every 4 s to 31.5
    assert_idle(layer, clock)


def test_invite_server_over_tcp_no_timer_g_and_ack_terminates_at_once() -> None:
    layer, clock, send, tu = make_layer(auto_status=486)
    invite = req("INVITE", transport="TCP")
    layer.receive(invite, TCP)
    clock.advance(10)
    assert send.statuses() == [100, 486]
    busy = send.sent[-1][1]
    assert isinstance(busy, Response)
    layer.receive(ack_for(invite, busy), TCP)
    assert_idle(layer, clock)


def test_invite_server_over_tcp_times_out_with_timer_h() -> None:
    layer, clock, send, tu = make_layer(auto_status=486)
    layer.receive(req("INVITE", transport="TCP"), TCP)
    clock.advance(64 * T1)
    assert len(tu.timeouts) == 1
    assert_idle(layer, clock)


def test_ack_for_a_2xx_with_its_own_branch_goes_to_on_ack() -> None:
    layer, clock, send, tu = make_layer()
    ack = req("ACK", branch="z9hG4bKnew", to_tag="uas1")
    layer.receive(ack, UDP)
    assert tu.acks == [(ack, UDP)] and len(layer) == 0 and send.sent == []
    assert layer.stats.acks_to_tu == 1


# -- CANCEL -----------------------------------------------------------------------------------


def test_cancel_gets_200_and_the_tu_answers_487() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    layer.receive(invite, UDP)
    tx = tu.requests[0][0]
    tx.respond(make_response(invite, 180, to_tag="uas1"))
    cancel = cancel_for(invite)
    layer.receive(cancel, UDP)
    assert tu.cancels == [(tx, cancel)]
    responses = [
        (m.status, m.headers.get("CSeq")) for _, m, _ in send.sent if isinstance(m, Response)
    ]
    assert responses == [(100, "1 INVITE"), (180, "1 INVITE"), (200, "1 CANCEL"), (487, "1 INVITE")]
    to_200 = send.sent[2][1].headers.get("To")
    assert to_200 is not None and to_200.endswith(";tag=uas1"), "RFC 3261 9.2: same To tag"
    assert len(tu.requests) == 1, "CANCEL never reaches on_request"
    layer.receive(cancel, UDP)  # retransmitted CANCEL: the cached 200, TU not told again
    assert send.statuses()[-1] == 200 and len(tu.cancels) == 1
    busy = send.sent[3][1]
    assert isinstance(busy, Response)
    layer.receive(ack_for(invite, busy), UDP)
    assert state(tx) is State.CONFIRMED
    clock.advance(64 * T1)
    assert_idle(layer, clock)
    assert layer.stats.server_created == {"INVITE": 1, "CANCEL": 1}


def test_cancel_matching_nothing_gets_481() -> None:
    layer, clock, send, tu = make_layer()
    layer.receive(cancel_for(req("INVITE", branch="z9hG4bKnothere")), UDP)
    assert send.statuses() == [481]
    assert tu.cancels == [] and tu.requests == []
    clock.advance(64 * T1)
    assert_idle(layer, clock)


def test_cancel_with_another_sent_by_does_not_match() -> None:
    layer, clock, send, tu = make_layer()
    layer.receive(req("INVITE"), UDP)
    layer.receive(cancel_for(req("INVITE", sent_by="10.9.9.9:5060")), UDP)
    assert send.statuses() == [100, 481] and tu.cancels == []


def test_cancel_after_the_final_response_gets_200_and_changes_nothing() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    invite = req("INVITE")
    layer.receive(invite, UDP)
    layer.receive(cancel_for(invite), UDP)
    assert send.statuses() == [100, 200, 200]
    assert tu.cancels == [] and tu.requests[0][0].state is State.ACCEPTED


# -- RFC 2543 matching ------------------------------------------------------------------------


def test_rfc2543_requests_match_without_a_magic_cookie() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE", branch=None)
    layer.receive(invite, UDP)
    layer.receive(invite, UDP)  # retransmission: Request-URI, tags, Call-ID, CSeq, Via
    assert len(tu.requests) == 1 and send.statuses() == [100, 100]
    tx = tu.requests[0][0]
    layer.receive(cancel_for(invite), UDP)
    assert len(tu.cancels) == 1 and tu.cancels[0][0] is tx
    busy = [m for _, m, _ in send.sent if isinstance(m, Response) and m.status == 487][0]
    wrong_tag = ack_for(invite, make_response(invite, 487, to_tag="other"))
    layer.receive(wrong_tag, UDP)  # To tag differs from the response's: not this transaction
    assert tu.acks == [(wrong_tag, UDP)] and tx.state is State.COMPLETED
    layer.receive(ack_for(invite, busy), UDP)
    assert state(tx) is State.CONFIRMED


def test_rfc2543_new_cseq_or_old_branch_is_a_new_transaction() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    layer.receive(req("BYE", branch=None, to_tag="uas1"), UDP)
    layer.receive(req("BYE", branch=None, to_tag="uas1", cseq=2), UDP)
    layer.receive(req("BYE", branch="1234", to_tag="uas1", cseq=3), UDP)
    layer.receive(req("BYE", branch="1234", to_tag="uas1", cseq=3), UDP)
    assert len(tu.requests) == 3 and layer.stats.retransmissions_absorbed == 1


def test_rfc2543_ack_for_a_2xx_goes_to_the_tu() -> None:
    layer, clock, send, tu = make_layer(auto_status=200)
    invite = req("INVITE", branch=None)
    layer.receive(invite, UDP)
    ok = send.sent[-1][1]
    assert isinstance(ok, Response)
    ack = ack_for(invite, ok)
    layer.receive(ack, UDP)
    assert tu.acks == [(ack, UDP)]


# -- responses, errors, misuse ----------------------------------------------------------------


def test_responses_match_by_branch_and_cseq_method() -> None:
    layer, clock, send, tu = make_layer()
    invite = req("INVITE")
    tx = layer.send_request(invite, UDP)
    cancel = cancel_for(invite)
    ctx = layer.send_request(cancel, UDP)
    assert len(layer) == 2
    layer.receive(peer_reply(cancel, 200), UDP)
    assert tu.responses == [(ctx, tu.responses[0][1])] and ctx.state is State.COMPLETED
    layer.receive(peer_reply(invite, 487), UDP)
    assert tu.responses[1][0] is tx and tx.state is State.COMPLETED
    layer.receive(peer_reply(req("INVITE", branch="z9hG4bKother"), 200), UDP)
    layer.receive(peer_reply(req("OPTIONS"), 200), UDP)  # same branch, other method
    assert layer.stats.stray_responses == 2 and len(tu.responses) == 2
    clock.advance(64 * T1)
    assert_idle(layer, clock)


def test_transport_error_informs_the_tu_and_ends_the_transaction() -> None:
    layer, clock, send, tu = make_layer()
    bye = req("BYE", to_tag="uas1")
    layer.receive(bye, UDP)
    tx = tu.requests[0][0]
    send.fail = True
    tx.respond(make_response(bye, 200))
    assert tu.transport_errors == [tx]
    assert_idle(layer, clock)
    send.fail = False
    ctx = layer.send_request(req("OPTIONS"), UDP)
    send.fail = True
    clock.advance(T1)  # Timer E retransmission fails
    assert tu.transport_errors == [tx, ctx]
    assert_idle(layer, clock)
    assert layer.stats.transport_errors == 2


def test_a_failing_100_trying_does_not_pass_the_invite_up() -> None:
    layer, clock, send, tu = make_layer()
    send.fail = True
    layer.receive(req("INVITE", transport="TCP"), TCP)
    assert tu.requests == [] and len(tu.transport_errors) == 1
    assert_idle(layer, clock)


def test_tu_errors_become_responses(caplog: pytest.LogCaptureFixture) -> None:
    layer, clock, send, tu = make_layer()
    tu.raise_on_request = SipError(420, headers=(("Unsupported", "foo"),))
    layer.receive(req("OPTIONS"), UDP)
    assert send.statuses() == [420]
    assert send.sent[0][1].headers.get("Unsupported") == "foo"
    tu.raise_on_request = RuntimeError("bug")
    with caplog.at_level(logging.ERROR):
        layer.receive(req("OPTIONS", branch="z9hG4bKb2"), UDP)
    assert send.statuses() == [420, 500] and layer.stats.tu_errors == 1
    assert "on_request" in caplog.text


def test_malformed_requests_are_answered_400_and_responses_dropped() -> None:
    layer, clock, send, tu = make_layer()
    bad = Request("OPTIONS", "sip:mf@x", req("OPTIONS").headers.set("Via", "garbage"))
    layer.receive(bad, UDP)
    assert send.statuses() == [400] and tu.requests == []
    layer.receive(Response(200, "OK", Headers.of([("CSeq", "1 OPTIONS")])), UDP)
    no_via_ack = Request("ACK", "sip:mf@x", req("ACK").headers.remove("Via"))
    layer.receive(no_via_ack, UDP)
    assert send.statuses() == [400] and tu.acks == []
    assert layer.stats.malformed == 3 and len(layer) == 0


def test_send_request_rejects_misuse() -> None:
    layer, clock, send, tu = make_layer()
    with pytest.raises(TransactionError):
        layer.send_request(req("ACK"), UDP)
    with pytest.raises(TransactionError):
        layer.send_request(req("BYE", branch="old-style"), UDP)
    with pytest.raises(TransactionError):
        layer.send_request(req("BYE", cseq_method="INVITE"), UDP)
    layer.send_request(req("BYE"), UDP)
    with pytest.raises(TransactionError):
        layer.send_request(req("BYE"), UDP)
    assert len(layer) == 1


def test_close_drops_everything() -> None:
    layer, clock, send, tu = make_layer()
    layer.receive(req("INVITE"), UDP)
    layer.send_request(req("OPTIONS", branch="z9hG4bKo"), UDP)
    assert len(layer) == 2 and clock.pending == 2
    layer.close()
    assert_idle(layer, clock)


# -- property: random interleavings of many transactions --------------------------------------

KINDS = ("server-invite", "server-invite", "server-bye", "client-invite", "client-options")
#: What an op code means for a server-side and a client-side simulated transaction. The first op
#: that touches a transaction starts it (the peer sends the request / the TU sends it).
SERVER_OPS = ("request", "tu-1xx", "tu-final", "ack", "ack", "cancel", "advance", "fail-next")
CLIENT_OPS = ("advance", "peer-1xx", "peer-final", "peer-final", "peer-1xx", "advance", "advance",
              "fail-next")  # fmt: skip


@dataclass
class Sim:
    kind: str
    peer: Peer
    request: Request
    started: bool = False
    server: ServerTransaction | None = None
    client: ClientTransaction | None = None
    peer_final: int | None = None  # what the simulated remote answered our client request


class FlakyRecorder(Recorder):
    """Fails the next send once when armed (a TCP reset, an ICMP error)."""

    fail_next: bool = False

    def __call__(self, message: Message, peer: Peer) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("peer gone")
        super().__call__(message, peer)


class CheckingTU(RecordingTU):
    """Records a violation whenever a request reaches the TU while the transaction it would
    match is still alive (i.e. a retransmission was passed up)."""

    def __init__(self, sims: dict[str, Sim]) -> None:
        super().__init__(on_cancel_status=487)
        self.sims = sims
        self.violations: list[str] = []

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        sim = self.sims[request.headers.get("Call-ID") or ""]
        if sim.server is not None and sim.server.alive:
            self.violations.append(f"retransmission passed to the TU: {tx!r}")
        sim.server = tx
        super().on_request(tx, request)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    specs=st.lists(st.tuples(st.sampled_from(KINDS), st.booleans()), min_size=1, max_size=5),
    ops=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 7), st.floats(0.0, 6.0, allow_nan=False)),
        min_size=5,
        max_size=80,
    ),
)
def test_random_interleavings_end_with_nothing_alive(
    specs: list[tuple[str, bool]], ops: list[tuple[int, int, float]]
) -> None:
    clock = FakeClock()
    send = FlakyRecorder(clock)
    sims: dict[str, Sim] = {}
    tu = CheckingTU(sims)
    layer = TransactionLayer(clock, T, send, tu)
    order: list[Sim] = []
    for i, (kind, tcp) in enumerate(specs):
        call_id = f"call-{i}"
        method = {"server-bye": "BYE", "client-options": "OPTIONS"}.get(kind, "INVITE")
        peer = Peer("tcp", "10.0.0.1", 40000 + i, connection_id=i) if tcp else UDP
        request = req(
            method,
            branch=f"z9hG4bK{i}",
            call_id=call_id,
            transport="TCP" if tcp else "UDP",
            to_tag="uas1" if method == "BYE" else None,
        )
        sims[call_id] = Sim(kind, peer, request)
        order.append(sims[call_id])

    def tu_answer(sim: Sim, status: int) -> None:
        tx = sim.server
        if tx is None or not tx.alive or tx.final_response is not None:
            return
        if tx.method != "INVITE" and status == 180:
            status = 100
        tx.respond(make_response(tx.request, status, to_tag="uas1"))

    def peer_answer(sim: Sim, status: int) -> None:
        if sim.peer_final is not None and status >= 200:
            status = sim.peer_final  # the remote retransmits its one final response
        elif status >= 200:
            sim.peer_final = status
        layer.receive(make_response(sim.request, status, to_tag="remote"), sim.peer)

    def check() -> None:
        # The clock holds exactly the timers the live machines have armed.
        live: list[ServerTransaction | ClientTransaction] = [
            *layer.server_transactions(),
            *layer.client_transactions(),
        ]
        assert all(tx.alive for tx in live)
        assert clock.pending == sum(len(tx.armed_timers) for tx in live)
        for tx in live:
            assert set(tx.armed_timers) == set(tx._machine.armed_timers)
        assert tu.violations == []

    for index, code, dt in ops:
        check()
        sim = order[index % len(order)]
        server = sim.kind.startswith("server")
        op = SERVER_OPS[code] if server else CLIENT_OPS[code]
        if op == "advance":
            clock.advance(dt)
        elif op == "fail-next":
            send.fail_next = True
        elif not sim.started or op == "request":
            sim.started = True
            if server:
                layer.receive(sim.request, sim.peer)
            elif sim.client is None:
                sim.client = layer.send_request(sim.request, sim.peer)
        elif op == "tu-1xx":
            tu_answer(sim, 180)
        elif op == "tu-final":
            tu_answer(sim, 200 if dt < 3.0 else 486)
        elif op == "peer-1xx":
            peer_answer(sim, 180)
        elif op == "peer-final":
            peer_answer(sim, 200 if dt < 3.0 else 486)
        elif op == "ack" and sim.server is not None:
            final = sim.server.final_response
            if final is not None:
                branch = None if final.status >= 300 else f"z9hG4bKack{index}"
                layer.receive(ack_for(sim.request, final, branch=branch), sim.peer)
        elif op == "cancel" and sim.kind == "server-invite":
            layer.receive(cancel_for(sim.request), sim.peer)

    # Wind down: the TU answers what it has not answered; the remote answers what it let ring.
    send.fail_next = False
    for sim in order:
        tu_answer(sim, 486)
        if sim.client is not None and sim.client.state is State.PROCEEDING:
            peer_answer(sim, 486)
    check()
    clock.advance(64 * T1 + T.t4)
    assert tu.violations == [] and layer.stats.tu_errors == 0
    assert len(layer) == 0, layer.server_transactions() + layer.client_transactions()
    assert clock.pending == 0
    created = sum(layer.stats.server_created.values()) + sum(layer.stats.client_created.values())
    assert layer.stats.terminated == created


def test_a_failing_on_cancel_still_answers_the_invite_487(caplog: pytest.LogCaptureFixture) -> None:
    layer, clock, send, tu = make_layer()

    def broken(tx: ServerTransaction, cancel: Request) -> None:
        raise RuntimeError("bug")

    tu.on_cancel = broken  # type: ignore[method-assign]
    invite = req("INVITE")
    layer.receive(invite, UDP)
    with caplog.at_level(logging.ERROR):
        layer.receive(cancel_for(invite), UDP)
    assert send.statuses() == [100, 200, 487] and layer.stats.tu_errors == 1


def test_peer_reliability() -> None:
    assert not Peer("udp", "h", 1).reliable and not Peer("UDP", "h", 1).reliable
    assert Peer("tcp", "h", 1).reliable and Peer("tls", "h", 1, connection_id=3).reliable
