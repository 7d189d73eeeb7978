"""Hypothesis stateful tests of the four transaction machines (RFC 3261 17, RFC 6026).

Each test drives one machine with random sequences of every input it can get (request
retransmissions, ACKs, responses of every class, every timer name, transport errors, TU
responses) and checks, after every step:

* peer input never raises; TU misuse raises TransactionError exactly when the RFC model says so;
* the state moves only along the edges of the RFC figures, written out here independently of
  the implementation (plus the zero-timer shortcuts reliable transports take);
* Terminated is absorbing, is announced by a final ``Terminated`` action, and leaves no timer
  armed; every StartTimer is matched by one firing or one CancelTimer;
* a server sends at most one final response (its retransmissions are the same bytes);
* nothing is passed to the TU twice (except 2xx in the INVITE client's Accepted state, flagged as
  retransmissions when their To tag was seen, as RFC 6026 7.2 requires).
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from avatar_mf.sip.build import make_response
from avatar_mf.sip.message import Headers, Request, Response, serialize
from avatar_mf.sip.timers import TimerConfig, TimerName
from avatar_mf.sip.transaction import (
    Action,
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
)

S = State
CONFIG = TimerConfig()
STATUSES = [100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603]
TIMERS = list(TimerName)

# -- the RFC figures, as edge sets (self-loops are always allowed) ----------------------------

#: RFC 3261 Figure 7 + RFC 6026 Figure 7.
INVITE_SERVER_EDGES = {
    (S.PROCEEDING, S.COMPLETED),  # 300-699 from TU
    (S.PROCEEDING, S.ACCEPTED),  # 2xx from TU (RFC 6026)
    (S.PROCEEDING, S.TERMINATED),  # transport error
    (S.COMPLETED, S.CONFIRMED),  # ACK
    (S.COMPLETED, S.TERMINATED),  # Timer H or transport error
    (S.CONFIRMED, S.TERMINATED),  # Timer I
    (S.ACCEPTED, S.TERMINATED),  # Timer L
}
#: RFC 3261 Figure 8.
NON_INVITE_SERVER_EDGES = {
    (S.TRYING, S.PROCEEDING),
    (S.TRYING, S.COMPLETED),
    (S.PROCEEDING, S.COMPLETED),
    (S.PROCEEDING, S.TERMINATED),
    (S.COMPLETED, S.TERMINATED),
}
#: RFC 3261 Figure 5 + RFC 6026 Figure 5.
INVITE_CLIENT_EDGES = {
    (S.CALLING, S.PROCEEDING),
    (S.CALLING, S.COMPLETED),
    (S.CALLING, S.ACCEPTED),
    (S.CALLING, S.TERMINATED),  # Timer B or transport error
    (S.PROCEEDING, S.COMPLETED),
    (S.PROCEEDING, S.ACCEPTED),
    (S.COMPLETED, S.TERMINATED),  # Timer D or transport error
    (S.ACCEPTED, S.TERMINATED),  # Timer M
}
#: RFC 3261 Figure 6.
NON_INVITE_CLIENT_EDGES = {
    (S.TRYING, S.PROCEEDING),
    (S.TRYING, S.COMPLETED),
    (S.TRYING, S.TERMINATED),
    (S.PROCEEDING, S.COMPLETED),
    (S.PROCEEDING, S.TERMINATED),
    (S.COMPLETED, S.TERMINATED),
}


def zero_timer_shortcuts(
    edges: set[tuple[State, State]], waits: set[State]
) -> set[tuple[State, State]]:
    """On reliable transports a wait state whose timer is 0 is passed through in one step."""
    return {(a, S.TERMINATED) for (a, b) in edges if b in waits and (b, S.TERMINATED) in edges}


# -- messages ---------------------------------------------------------------------------------


def request(method: str, branch: str = "z9hG4bKstate1", to_tag: str | None = None) -> Request:
    to = "<sip:mf@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        "sip:mf@10.0.0.2",
        Headers.of(
            [
                ("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:ue@10.0.0.1>;tag=from1"),
                ("To", to),
                ("Call-ID", "call-state@10.0.0.1"),
                ("CSeq", f"1 {'INVITE' if method == 'ACK' else method}"),
            ]
        ),
    )


def peer_response(req: Request, status: int, to_tag: str = "tt1") -> Response:
    return make_response(req, status, to_tag=to_tag)


class _Harness(RuleBasedStateMachine):
    """Bookkeeping and per-step checks shared by the four machines."""

    EDGES: ClassVar[set[tuple[State, State]]] = set()
    WAITS: ClassVar[set[State]] = set()  # states whose leaving timer is 0 on reliable transports
    machine: InviteServer | NonInviteServer | InviteClient | NonInviteClient

    def __init__(self) -> None:
        super().__init__()
        self.armed: set[TimerName] = set()
        self.reliable = False
        self.finals_sent: set[bytes] = set()
        self.terminated_seen = False

    def allowed(self, before: State, after: State) -> bool:
        if before == after or (before, after) in self.EDGES:
            return True
        return self.reliable and (before, after) in zero_timer_shortcuts(self.EDGES, self.WAITS)

    def apply(
        self,
        actions: list[Action],
        before: State,
        *,
        timer: TimerName | None = None,
        transport_error: bool = False,
    ) -> list[Action]:
        after = self.machine.state
        if before is S.TERMINATED:
            assert actions == [], "Terminated is absorbing"
            return actions
        assert self.allowed(before, after), (before, after)
        for i, action in enumerate(actions):
            if isinstance(action, StartTimer):
                assert action.name not in self.armed, f"{action.name} armed twice"
                assert action.delay > 0
                if action.name in (TimerName.A, TimerName.E, TimerName.G):
                    assert not self.reliable, "no retransmissions over reliable transports"
                self.armed.add(action.name)
            elif isinstance(action, CancelTimer):
                assert action.name in self.armed, f"{action.name} cancelled but not armed"
                self.armed.discard(action.name)
            elif isinstance(action, Terminated):
                assert i == len(actions) - 1, "Terminated comes last"
                assert after is S.TERMINATED
            elif isinstance(action, Timeout):
                assert timer in (TimerName.B, TimerName.F, TimerName.H), timer
            elif isinstance(action, TransportFailed):
                assert transport_error
            elif isinstance(action, Send) and isinstance(action.message, Response):
                if action.message.status >= 200:
                    self.finals_sent.add(serialize(action.message))
                    assert len(self.finals_sent) == 1, "a server sent two final responses"
        terminated_now = any(isinstance(a, Terminated) for a in actions)
        assert terminated_now == (after is S.TERMINATED)
        if after is S.TERMINATED:
            assert self.armed == set(), f"timers left armed: {self.armed}"
            assert self.machine.armed_timers == ()
            self.terminated_seen = True
        assert set(self.machine.armed_timers) == self.armed
        return actions

    def fire(self, name: TimerName) -> list[Action]:
        before = self.machine.state
        was_armed = name in self.armed
        self.armed.discard(name)
        actions = self.machine.on_timer(name)
        if not was_armed:
            assert actions == [], f"unarmed timer {name} acted"
        return self.apply(actions, before, timer=name)

    @rule(name=st.sampled_from(TIMERS))
    def timer(self, name: TimerName) -> None:
        self.fire(name)

    @precondition(lambda self: bool(self.armed))
    @rule(data=st.data())
    def armed_timer(self, data: st.DataObject) -> None:
        self.fire(data.draw(st.sampled_from(sorted(self.armed))))

    @rule()
    def transport_error(self) -> None:
        before = self.machine.state
        self.apply(self.machine.on_transport_error(), before, transport_error=True)

    @invariant()
    def terminated_is_final(self) -> None:
        if self.terminated_seen:
            assert self.machine.state is S.TERMINATED

    def drain_timers(self) -> None:
        """Fire armed timers (terminal ones first) until none is left."""
        for _ in range(200):
            if not self.armed:
                return
            order = sorted(self.armed, key=lambda n: n in (TimerName.A, TimerName.E, TimerName.G))
            self.fire(order[0])
        raise AssertionError("timers never stopped")


# -- INVITE server ----------------------------------------------------------------------------


class InviteServerMachine(_Harness):
    machine: InviteServer
    EDGES = INVITE_SERVER_EDGES
    WAITS: ClassVar[set[State]] = {S.CONFIRMED}  # Timer I

    def __init__(self) -> None:
        super().__init__()
        self.invite = request("INVITE")
        self.responses = {s: make_response(self.invite, s, to_tag="srv") for s in STATUSES}
        self.passed_up_invite = 0
        self.final: Response | None = None

    @initialize(reliable=st.booleans(), trying=st.sampled_from([0.0, 0.1]))
    def start(self, reliable: bool, trying: float) -> None:
        self.reliable = reliable
        config = TimerConfig(trying=trying)
        self.machine = InviteServer(self.invite, reliable=reliable, config=config)
        actions = self.apply(self.machine.start(), S.PROCEEDING)
        if trying:  # the node's: 100 Trying only if the TU has not answered at 100 ms
            assert actions[0] == StartTimer(TimerName.TRYING, trying)
        else:
            assert isinstance(actions[0], Send) and isinstance(actions[0].message, Response)
            assert actions[0].message.status == 100, "100 Trying at once"
        self.count_to_tu(actions, S.PROCEEDING)

    @rule()
    def trying_timer(self) -> None:
        # The Trying timer sends one 100, and only while no response was sent.
        before = self.machine.state
        sent_before = self.machine.last_response
        armed = TimerName.TRYING in self.armed
        actions = self.fire(TimerName.TRYING)
        if armed:
            assert before is S.PROCEEDING and sent_before is None
            assert len(actions) == 1 and isinstance(actions[0], Send)
            assert isinstance(actions[0].message, Response) and actions[0].message.status == 100
        else:
            assert actions == []

    def count_to_tu(self, actions: list[Action], before: State) -> None:
        for action in actions:
            if isinstance(action, ToTU):
                assert isinstance(action.message, Request)
                if action.message.method == "INVITE":
                    self.passed_up_invite += 1
                    assert self.passed_up_invite == 1, "INVITE passed to the TU twice"
                else:
                    assert action.message.method == "ACK"
                    assert before is S.ACCEPTED, "only an ACK in Accepted goes up"

    @rule()
    def retransmission(self) -> None:
        before = self.machine.state
        actions = self.apply(self.machine.on_request(self.invite), before)
        self.count_to_tu(actions, before)
        sends = [a for a in actions if isinstance(a, Send)]
        if before in (S.PROCEEDING, S.COMPLETED, S.ACCEPTED):
            assert len(sends) == 1  # the cached response
            assert isinstance(sends[0].message, Response)
            assert sends[0].message is self.machine.last_response
        else:
            assert actions == []

    @rule()
    def ack(self) -> None:
        before = self.machine.state
        actions = self.apply(self.machine.on_request(request("ACK")), before)
        self.count_to_tu(actions, before)

    @rule(status=st.sampled_from(STATUSES))
    def tu_response(self, status: int) -> None:
        response = self.responses[status]
        before = self.machine.state
        legal = before is S.PROCEEDING or (before is S.ACCEPTED and response is self.final)
        if not legal:
            armed = self.machine.armed_timers
            with pytest.raises(TransactionError):
                self.machine.on_tu_response(response)
            assert self.machine.state is before and self.machine.armed_timers == armed
            return
        actions = self.apply(self.machine.on_tu_response(response), before)
        assert Send(response) in actions
        assert TimerName.TRYING not in self.machine.armed_timers, "a 100 after the TU's response"
        if status >= 200:
            self.final = response

    def teardown(self) -> None:
        if not hasattr(self, "machine"):
            return
        if self.machine.state is S.PROCEEDING:
            self.apply(self.machine.on_tu_response(self.responses[500]), S.PROCEEDING)
        self.drain_timers()
        assert self.machine.state is S.TERMINATED


# -- non-INVITE server ------------------------------------------------------------------------


class NonInviteServerMachine(_Harness):
    machine: NonInviteServer
    EDGES = NON_INVITE_SERVER_EDGES
    WAITS: ClassVar[set[State]] = {S.COMPLETED}  # Timer J

    def __init__(self) -> None:
        super().__init__()
        self.bye = request("BYE", to_tag="srv")
        self.responses = {s: make_response(self.bye, s) for s in STATUSES}
        self.passed_up = 0

    @initialize(reliable=st.booleans())
    def start(self, reliable: bool) -> None:
        self.reliable = reliable
        self.machine = NonInviteServer(self.bye, reliable=reliable, config=CONFIG)
        actions = self.apply(self.machine.start(), S.TRYING)
        assert actions == [ToTU(self.bye)]
        self.passed_up = 1

    @rule()
    def retransmission(self) -> None:
        before = self.machine.state
        actions = self.apply(self.machine.on_request(self.bye), before)
        assert not any(isinstance(a, ToTU) for a in actions), "BYE passed up twice"
        if before is S.TRYING or before is S.TERMINATED:
            assert actions == []
        else:
            last = self.machine.last_response
            assert last is not None and actions == [Send(last)]

    @rule()
    def ack(self) -> None:
        before = self.machine.state
        assert self.apply(self.machine.on_request(request("ACK")), before) == []

    @rule(status=st.sampled_from(STATUSES))
    def tu_response(self, status: int) -> None:
        response = self.responses[status]
        before = self.machine.state
        if before not in (S.TRYING, S.PROCEEDING):
            with pytest.raises(TransactionError):
                self.machine.on_tu_response(response)
            assert self.machine.state is before
            return
        actions = self.apply(self.machine.on_tu_response(response), before)
        assert actions[0] == Send(response)

    def teardown(self) -> None:
        if not hasattr(self, "machine"):
            return
        before = self.machine.state
        if before in (S.TRYING, S.PROCEEDING):
            self.apply(self.machine.on_tu_response(self.responses[200]), before)
        self.drain_timers()
        assert self.machine.state is S.TERMINATED


# -- INVITE client ----------------------------------------------------------------------------


class InviteClientMachine(_Harness):
    machine: InviteClient
    EDGES = INVITE_CLIENT_EDGES
    WAITS: ClassVar[set[State]] = {S.COMPLETED}  # Timer D

    def __init__(self) -> None:
        super().__init__()
        self.invite = request("INVITE", branch="z9hG4bKclient1")
        self.final_non2xx_up = 0
        self.tags_up: set[str | None] = set()
        self.sent_invites = 0

    @initialize(reliable=st.booleans())
    def start(self, reliable: bool) -> None:
        self.reliable = reliable
        self.machine = InviteClient(self.invite, reliable=reliable, config=CONFIG)
        actions = self.apply(self.machine.start(), S.CALLING)
        assert actions[0] == Send(self.invite)

    @rule(status=st.sampled_from(STATUSES), tag=st.sampled_from(["tt1", "tt2"]))
    def response(self, status: int, tag: str) -> None:
        before = self.machine.state
        actions = self.apply(
            self.machine.on_response(peer_response(self.invite, status, tag)), before
        )
        up = [a for a in actions if isinstance(a, ToTU)]
        if before is S.TERMINATED:
            return
        if status < 200:
            assert len(up) == (1 if before in (S.CALLING, S.PROCEEDING) else 0)
        elif status < 300:
            if before in (S.CALLING, S.PROCEEDING, S.ACCEPTED):
                assert len(up) == 1
                assert up[0].retransmission == (tag in self.tags_up)
                self.tags_up.add(tag)
            else:
                assert up == []
        else:
            if before in (S.CALLING, S.PROCEEDING):
                assert len(up) == 1 and not up[0].retransmission
                self.final_non2xx_up += 1
                assert self.final_non2xx_up == 1
                ack = next(a for a in actions if isinstance(a, Send))
                assert isinstance(ack.message, Request) and ack.message.method == "ACK"
            else:
                assert up == []
                if before is S.COMPLETED:
                    assert self.machine.ack is not None
                    assert actions == [Send(self.machine.ack)]

    @rule()
    def abandon(self) -> None:
        before = self.machine.state
        actions = self.machine.abandon()
        if before is S.TERMINATED:
            assert actions == []
            return
        assert actions[-1] == Terminated()
        self.armed.difference_update(a.name for a in actions if isinstance(a, CancelTimer))
        assert self.armed == set()
        self.terminated_seen = True

    def teardown(self) -> None:
        if not hasattr(self, "machine"):
            return
        if self.machine.state is S.PROCEEDING:
            self.apply(self.machine.on_response(peer_response(self.invite, 486)), S.PROCEEDING)
        self.drain_timers()
        assert self.machine.state is S.TERMINATED


# -- non-INVITE client ------------------------------------------------------------------------


class NonInviteClientMachine(_Harness):
    machine: NonInviteClient
    EDGES = NON_INVITE_CLIENT_EDGES
    WAITS: ClassVar[set[State]] = {S.COMPLETED}  # Timer K

    def __init__(self) -> None:
        super().__init__()
        self.bye = request("BYE", branch="z9hG4bKclient2", to_tag="remote")
        self.finals_up = 0

    @initialize(reliable=st.booleans())
    def start(self, reliable: bool) -> None:
        self.reliable = reliable
        self.machine = NonInviteClient(self.bye, reliable=reliable, config=CONFIG)
        actions = self.apply(self.machine.start(), S.TRYING)
        assert actions[0] == Send(self.bye)

    @rule(status=st.sampled_from(STATUSES))
    def response(self, status: int) -> None:
        before = self.machine.state
        actions = self.apply(self.machine.on_response(peer_response(self.bye, status)), before)
        up = [a for a in actions if isinstance(a, ToTU)]
        if before in (S.TRYING, S.PROCEEDING):
            assert len(up) == 1
            if status >= 200:
                self.finals_up += 1
                assert self.finals_up == 1
        else:
            assert up == [], "response retransmission passed up"

    @rule()
    def e_sequence(self) -> None:
        # Timer E intervals: doubling up to T2 in Trying, T2 in Proceeding.
        if TimerName.E not in self.armed:
            return
        before = self.machine.state
        actions = self.fire(TimerName.E)
        if before in (S.TRYING, S.PROCEEDING):
            start = next(a for a in actions if isinstance(a, StartTimer))
            assert start.delay <= CONFIG.t2
            if before is S.PROCEEDING:
                assert start.delay == CONFIG.t2

    def teardown(self) -> None:
        if not hasattr(self, "machine"):
            return
        self.drain_timers()
        assert self.machine.state is S.TERMINATED


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestInviteServerMachine = InviteServerMachine.TestCase
TestInviteServerMachine.settings = SETTINGS
TestNonInviteServerMachine = NonInviteServerMachine.TestCase
TestNonInviteServerMachine.settings = SETTINGS
TestInviteClientMachine = InviteClientMachine.TestCase
TestInviteClientMachine.settings = SETTINGS
TestNonInviteClientMachine = NonInviteClientMachine.TestCase
TestNonInviteClientMachine.settings = SETTINGS


# -- every (state, input kind) pair, exhaustively ---------------------------------------------

Machine = InviteServer | NonInviteServer | InviteClient | NonInviteClient
Step = str | int | TimerName

#: For each machine: how to reach each of its states from a fresh machine (unreliable transport).
PATHS: dict[str, dict[State, list[Step]]] = {
    "invite-server": {
        S.PROCEEDING: [],
        S.ACCEPTED: ["tu200"],
        S.COMPLETED: ["tu486"],
        S.CONFIRMED: ["tu486", "ACK"],
        S.TERMINATED: ["tu486", "ACK", TimerName.I],
    },
    "non-invite-server": {
        S.TRYING: [],
        S.PROCEEDING: ["tu180"],
        S.COMPLETED: ["tu200"],
        S.TERMINATED: ["tu200", TimerName.J],
    },
    "invite-client": {
        S.CALLING: [],
        S.PROCEEDING: [180],
        S.ACCEPTED: [200],
        S.COMPLETED: [486],
        S.TERMINATED: [486, TimerName.D],
    },
    "non-invite-client": {
        S.TRYING: [],
        S.PROCEEDING: [180],
        S.COMPLETED: [200],
        S.TERMINATED: [200, TimerName.K],
    },
}
EDGES = {
    "invite-server": INVITE_SERVER_EDGES,
    "non-invite-server": NON_INVITE_SERVER_EDGES,
    "invite-client": INVITE_CLIENT_EDGES,
    "non-invite-client": NON_INVITE_CLIENT_EDGES,
}
#: Every peer input: requests, responses of every class, every timer, a transport error.
PEER_INPUTS: list[Step] = ["INVITE", "BYE", "ACK", 100, 180, 200, 302, 486, 603, "ERR", *TIMERS]


def _new(kind: str) -> tuple[Machine, Request]:
    if kind == "invite-server":
        req = request("INVITE")
        return InviteServer(req, reliable=False, config=CONFIG), req
    if kind == "non-invite-server":
        req = request("BYE", to_tag="srv")
        return NonInviteServer(req, reliable=False, config=CONFIG), req
    if kind == "invite-client":
        req = request("INVITE", branch="z9hG4bKc")
        return InviteClient(req, reliable=False, config=CONFIG), req
    req = request("BYE", branch="z9hG4bKc", to_tag="remote")
    return NonInviteClient(req, reliable=False, config=CONFIG), req


def _apply(machine: Machine, req: Request, step: Step) -> list[Action]:
    if isinstance(step, TimerName):
        return machine.on_timer(step)
    if step == "ERR":
        return machine.on_transport_error()
    if isinstance(step, str) and step.startswith("tu"):
        assert isinstance(machine, InviteServer | NonInviteServer)
        return machine.on_tu_response(make_response(req, int(step[2:]), to_tag="srv"))
    if isinstance(step, int):
        if isinstance(machine, InviteClient | NonInviteClient):
            return machine.on_response(peer_response(req, step))
        return []  # a response never reaches a server transaction
    if isinstance(machine, InviteServer | NonInviteServer):
        return machine.on_request(request(step, to_tag="srv" if step == "ACK" else None))
    return []  # a request never reaches a client transaction


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_every_state_input_pair_is_total_and_on_the_graph(kind: str) -> None:
    """Each (state, peer input) pair, exhaustively: no exception, an RFC edge or no move."""
    for state, path in PATHS[kind].items():
        for inp in PEER_INPUTS:
            machine, req = _new(kind)
            machine.start()
            for step in path:
                _apply(machine, req, step)
            assert machine.state is state
            actions = _apply(machine, req, inp)
            after = machine.state
            assert after is state or (state, after) in EDGES[kind], (kind, state, inp, after)
            if state is S.TERMINATED:
                assert actions == []
