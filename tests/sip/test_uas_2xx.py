"""The 2xx retransmission / ACK wait machine (RFC 3261 13.3.1.4), one (state, input) pair at a
time, plus random input sequences (Hypothesis) for its invariants."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.sip.uas_2xx import (
    AckTimedOut,
    AckWait,
    AckWaitError,
    AckWaitState,
    Action,
    Arm,
    Disarm,
    Resend,
    Timer,
)

T1, T2 = 0.5, 4.0
S = AckWaitState
RT, AW = Timer.RETRANSMIT, Timer.ACK_WAIT


def machine_in(state: AckWaitState) -> AckWait:
    """A fresh machine driven into ``state``."""
    m = AckWait(t1=T1, t2=T2)
    if state is S.IDLE:
        return m
    if state is S.STOPPED:
        m.stop()
        return m
    m.start()
    if state is S.CONFIRMED:
        m.on_ack()
    elif state is S.TIMED_OUT:
        m.on_timer(AW)
    assert m.state is state
    return m


Input = Callable[[AckWait], list[Action]]
INPUTS: dict[str, Input] = {
    "ack": lambda m: m.on_ack(),
    "retransmit": lambda m: m.on_timer(RT),
    "ack_wait": lambda m: m.on_timer(AW),
    "stop": lambda m: m.stop(),
}

#: (state, input) -> (actions, next state). Every pair not listed: ``[]``, state unchanged.
TABLE: dict[tuple[AckWaitState, str], tuple[list[Action], AckWaitState]] = {
    (S.IDLE, "stop"): ([], S.STOPPED),
    (S.WAITING, "ack"): ([Disarm(RT), Disarm(AW)], S.CONFIRMED),
    (S.WAITING, "retransmit"): ([Resend(), Arm(RT, 2 * T1)], S.WAITING),
    (S.WAITING, "ack_wait"): ([Disarm(RT), AckTimedOut()], S.TIMED_OUT),
    (S.WAITING, "stop"): ([Disarm(RT), Disarm(AW)], S.STOPPED),
}


@pytest.mark.parametrize("state", list(AckWaitState), ids=lambda s: s.value)
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_input(state: AckWaitState, name: str) -> None:
    m = machine_in(state)
    actions, after = TABLE.get((state, name), ([], state))
    assert INPUTS[name](m) == actions
    assert m.state is after


def test_start_arms_both_timers_once() -> None:
    m = AckWait(t1=T1, t2=T2)
    assert m.start() == [Arm(RT, T1), Arm(AW, 64 * T1)]
    assert m.state is S.WAITING
    for state in AckWaitState:
        if state is not S.IDLE:
            with pytest.raises(AckWaitError):
                machine_in(state).start()


def test_retransmissions_double_up_to_t2() -> None:
    m = machine_in(S.WAITING)
    delays = []
    for _ in range(8):
        [resend, arm] = m.on_timer(RT)
        assert resend == Resend() and isinstance(arm, Arm)
        delays.append(arm.delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]


events = st.lists(st.sampled_from(["start", *INPUTS]), max_size=40)


@given(events)
def test_each_arm_is_matched_by_one_firing_or_one_disarm(names: list[str]) -> None:
    """Whatever the order of inputs: a timer is armed at most once at a time, each Arm ends in
    one firing or one Disarm, nothing is armed outside Waiting, and AckTimedOut comes at most
    once, never after the ACK."""
    m = AckWait(t1=T1, t2=T2)
    armed: set[Timer] = set()
    timed_out = confirmed = 0
    for name in names:
        before = set(m.armed_timers)
        if name == "start":
            if m.state is not S.IDLE:
                continue
            actions = m.start()
        else:
            actions = INPUTS[name](m)
            if name in ("retransmit", "ack_wait"):
                fired = RT if name == "retransmit" else AW
                if fired in before:
                    armed.discard(fired)
        for action in actions:
            match action:
                case Arm(timer, _):
                    assert timer not in armed
                    armed.add(timer)
                case Disarm(timer):
                    assert timer in armed
                    armed.discard(timer)
                case AckTimedOut():
                    timed_out += 1
        confirmed += m.state is S.CONFIRMED
        assert armed == set(m.armed_timers)
        if m.state is not S.WAITING:
            assert armed == set()
    assert timed_out <= 1
    assert not (timed_out and confirmed)
