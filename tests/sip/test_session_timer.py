"""Session timers (RFC 4028): the negotiation functions and the refresh/expiry machine, one
(state, input) pair at a time, plus random input sequences (Hypothesis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.sip.errors import SipError
from avatar_mf.sip.message import Headers, Request
from avatar_mf.sip.session_timer import (
    Action,
    Arm,
    Disarm,
    Expired,
    RefreshState,
    SendRefresh,
    SessionRefresh,
    SessionTimer,
    Timer,
    negotiate,
    refresh_headers,
    response_headers,
)

S = RefreshState
UE_REFRESHES = SessionTimer(1800, "uac")
MF_REFRESHES = SessionTimer(1800, "uas")
NO_TIMER = SessionTimer(0, "uac")


def invite(*headers: tuple[str, str]) -> Request:
    base = [
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKst1"),
        ("From", "<sip:ue@10.0.0.1>;tag=f"),
        ("To", "<sip:mf@10.0.0.2>"),
        ("Call-ID", "st@10.0.0.1"),
        ("CSeq", "1 INVITE"),
    ]
    return Request("INVITE", "sip:mf@10.0.0.2", Headers.of([*base, *headers]))


# --------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("headers", "preferred", "expected"),
    [
        # No Session-Expires asked: the MF's own interval; the UE refreshes if it can.
        ((("Supported", "timer"),), 1800, SessionTimer(1800, "uac")),
        ((), 1800, SessionTimer(1800, "uas")),
        ((), 0, SessionTimer(0, "uas")),
        # Asked: the smaller of the two, the refresher asked if the UE supports timer.
        ((("Supported", "timer"), ("Session-Expires", "900;refresher=uas")), 1800,
         SessionTimer(900, "uas")),
        ((("Supported", "timer"), ("Session-Expires", "3600")), 1800, SessionTimer(1800, "uac")),
        ((("Session-Expires", "900;refresher=uac"),), 1800, SessionTimer(900, "uas")),
        ((("Session-Expires", "900"),), 0, SessionTimer(900, "uas")),
        # Never below the request's Min-SE.
        ((("Supported", "timer"), ("Min-SE", "2000")), 1800, SessionTimer(2000, "uac")),
    ],
)  # fmt: skip
def test_negotiate(
    headers: tuple[tuple[str, str], ...], preferred: int, expected: SessionTimer
) -> None:
    assert negotiate(invite(*headers), session_expires=preferred, min_se=90) == expected


def test_negotiate_refuses_too_small_or_unreadable() -> None:
    with pytest.raises(SipError) as small:
        negotiate(invite(("Session-Expires", "60")), session_expires=1800, min_se=90)
    assert small.value.status == 422
    assert ("Min-SE", "90") in small.value.headers
    with pytest.raises(SipError) as bad:
        negotiate(invite(("Session-Expires", "soon")), session_expires=1800, min_se=90)
    assert bad.value.status == 400


def test_response_and_refresh_headers() -> None:
    supported = invite(("Supported", "timer"))
    assert response_headers(NO_TIMER, supported) == ()
    assert response_headers(UE_REFRESHES, invite()) == (
        ("Session-Expires", "1800;refresher=uac"),
        ("Require", "timer"),
    )
    assert response_headers(MF_REFRESHES, invite()) == (("Session-Expires", "1800;refresher=uas"),)
    assert response_headers(MF_REFRESHES, supported) == (
        ("Session-Expires", "1800;refresher=uas"),
        ("Require", "timer"),
    )
    assert refresh_headers(MF_REFRESHES) == (
        ("Session-Expires", "1800;refresher=uac"),
        ("Supported", "timer"),
    )


# --------------------------------------------------------------------------- the machine

EXPIRY_DELAY = 1800 - 32  # SE - min(32, SE/3)
REFRESH_DELAY = 900  # SE/2


def machine_in(state: RefreshState) -> SessionRefresh:
    m = SessionRefresh()
    match state:
        case S.WATCHING:
            m.arm(UE_REFRESHES)
        case S.REFRESHING:
            m.arm(MF_REFRESHES)
        case S.EXPIRED:
            m.arm(UE_REFRESHES)
            m.on_timer(Timer.EXPIRY)
        case S.STOPPED:
            m.stop()
    assert m.state is state
    return m


Input = Callable[[SessionRefresh], list[Action]]
INPUTS: dict[str, Input] = {
    "arm_ue": lambda m: m.arm(UE_REFRESHES),
    "arm_mf": lambda m: m.arm(MF_REFRESHES),
    "arm_none": lambda m: m.arm(NO_TIMER),
    "refresh": lambda m: m.on_timer(Timer.REFRESH),
    "expiry": lambda m: m.on_timer(Timer.EXPIRY),
    "stop": lambda m: m.stop(),
}
_ARMED = {S.WATCHING: [Disarm(Timer.EXPIRY)], S.REFRESHING: [Disarm(Timer.REFRESH)]}
LIVE = (S.IDLE, S.WATCHING, S.REFRESHING)

#: (state, input) -> (actions, next state); pairs not listed: ``[]``, state unchanged.
TABLE: dict[tuple[RefreshState, str], tuple[list[Action], RefreshState]] = {
    **{
        (s, "arm_ue"): ([*_ARMED.get(s, []), Arm(Timer.EXPIRY, EXPIRY_DELAY)], S.WATCHING)
        for s in LIVE
    },
    **{
        (s, "arm_mf"): ([*_ARMED.get(s, []), Arm(Timer.REFRESH, REFRESH_DELAY)], S.REFRESHING)
        for s in LIVE
    },
    **{(s, "arm_none"): (_ARMED.get(s, []), S.IDLE) for s in LIVE},
    **{(s, "stop"): (_ARMED.get(s, []), S.STOPPED) for s in LIVE},
    (S.REFRESHING, "refresh"): (
        [SendRefresh(MF_REFRESHES), Arm(Timer.REFRESH, REFRESH_DELAY)],
        S.REFRESHING,
    ),
    (S.WATCHING, "expiry"): ([Expired()], S.EXPIRED),
}


@pytest.mark.parametrize("state", list(RefreshState), ids=lambda s: s.value)
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_input(state: RefreshState, name: str) -> None:
    m = machine_in(state)
    actions, after = TABLE.get((state, name), ([], state))
    assert INPUTS[name](m) == actions
    assert m.state is after


def test_expiry_of_a_short_session_is_two_thirds() -> None:
    """RFC 4028 10: SE - min(32, SE/3): a third before the end for intervals under 96 s."""
    m = SessionRefresh()
    assert m.arm(SessionTimer(90, "uac")) == [Arm(Timer.EXPIRY, 60)]


@given(st.lists(st.sampled_from(list(INPUTS)), max_size=40))
def test_timers_stay_matched(names: list[str]) -> None:
    """Any input order: each Arm is matched by one firing or one Disarm, at most one timer is
    armed, nothing is armed once Expired or Stopped, Expired comes at most once."""
    m = SessionRefresh()
    armed: set[Timer] = set()
    expired = 0
    for name in names:
        fired = {"refresh": Timer.REFRESH, "expiry": Timer.EXPIRY}.get(name)
        if fired is not None and fired in m.armed_timers:
            armed.discard(fired)
        for action in INPUTS[name](m):
            match action:
                case Arm(timer, _):
                    assert timer not in armed
                    armed.add(timer)
                case Disarm(timer):
                    assert timer in armed
                    armed.discard(timer)
                case Expired():
                    expired += 1
        assert armed == set(m.armed_timers)
        assert len(armed) <= 1
        if m.state in (S.EXPIRED, S.STOPPED, S.IDLE):
            assert not armed
    assert expired <= 1
