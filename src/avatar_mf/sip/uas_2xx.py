"""The UAS core's 2xx retransmission and ACK wait, sans-IO (RFC 3261 13.3.1.4).

After the TU hands the 2xx to an INVITE to its transaction, the UAS core (not the transaction)
retransmits it "with an interval that starts at T1 seconds and doubles for each retransmission
until it reaches T2 seconds", until the ACK for it arrives, over every transport ("even if
the transport at the UAS is reliable"); if no ACK has come 64*T1 seconds after the first 2xx,
the session is ended with a BYE.

:class:`AckWait` is that procedure as a state machine in the style of
:mod:`avatar_mf.sip.transaction`: it never does I/O and never reads a clock. Its inputs
(:meth:`AckWait.start`, :meth:`AckWait.on_timer`, :meth:`AckWait.on_ack`, :meth:`AckWait.stop`)
return *actions* for the caller to carry out in order: :class:`Arm` and :class:`Disarm` a
timer, :class:`Resend` the 2xx, :class:`AckTimedOut` (end the session with BYE).

States: Idle -> Waiting -> {Confirmed, TimedOut, Stopped}. Every transition is one ``case``
of :meth:`AckWait._step`. Rules:

* An input with no edge in the current state returns ``[]``; the three end states are
  absorbing. Starting twice raises :class:`AckWaitError`.
* A timer input is acted on only while that timer is armed (a stale firing returns ``[]``);
  leaving Waiting disarms what is still armed, so each :class:`Arm` is matched by one firing
  or one :class:`Disarm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AckTimedOut",
    "AckWait",
    "AckWaitError",
    "AckWaitState",
    "Action",
    "Arm",
    "Disarm",
    "Resend",
    "Timer",
]


class AckWaitError(ValueError):
    """The caller misused the machine (started it twice)."""


class AckWaitState(Enum):
    IDLE = "Idle"
    WAITING = "Waiting"
    CONFIRMED = "Confirmed"
    TIMED_OUT = "TimedOut"
    STOPPED = "Stopped"


class Timer(Enum):
    #: The next 2xx retransmission (T1, 2T1, ... capped at T2).
    RETRANSMIT = "retransmit"
    #: 64*T1 after the first 2xx: no ACK by then ends the session.
    ACK_WAIT = "ack_wait"


@dataclass(frozen=True, slots=True)
class Arm:
    """Arm ``timer`` to fire once, ``delay`` seconds from now."""

    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class Disarm:
    """Disarm ``timer`` (it is armed)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Resend:
    """Send the 2xx again, outside the transaction, to where the first one went."""


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """64*T1 passed without the ACK: end the session with a BYE."""


Action = Arm | Disarm | Resend | AckTimedOut


@dataclass(frozen=True, slots=True)
class _Start:
    pass


@dataclass(frozen=True, slots=True)
class _Fired:
    timer: Timer


@dataclass(frozen=True, slots=True)
class _Ack:
    pass


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Input = _Start | _Fired | _Ack | _Stop
_RESEND = Resend()
_TIMED_OUT = AckTimedOut()


class AckWait:
    """One 2xx to an INVITE waiting for its ACK. ``t1``, ``t2``: RFC 3261 timers (seconds)."""

    __slots__ = ("_armed", "_interval", "_state", "_t1", "_t2")

    def __init__(self, *, t1: float, t2: float) -> None:
        self._t1 = t1
        self._t2 = t2
        self._interval = t1
        self._state = AckWaitState.IDLE
        self._armed: dict[Timer, None] = {}

    @property
    def state(self) -> AckWaitState:
        return self._state

    @property
    def confirmed(self) -> bool:
        return self._state is AckWaitState.CONFIRMED

    @property
    def armed_timers(self) -> tuple[Timer, ...]:
        return tuple(self._armed)

    def start(self) -> list[Action]:
        """The 2xx was just sent (through the transaction)."""
        if self._state is not AckWaitState.IDLE:
            raise AckWaitError("already started")
        return self._step(_Start())

    def on_timer(self, timer: Timer) -> list[Action]:
        if timer not in self._armed:
            return []
        del self._armed[timer]
        return self._step(_Fired(timer))

    def on_ack(self) -> list[Action]:
        """The ACK for this 2xx (same CSeq number) arrived."""
        return self._step(_Ack())

    def stop(self) -> list[Action]:
        """The call ended, or a new 2xx (re-INVITE) replaces this one."""
        return self._step(_Stop())

    def _step(self, event: _Input) -> list[Action]:
        match self._state, event:
            case AckWaitState.IDLE, _Start():
                self._state = AckWaitState.WAITING
                return [
                    self._arm(Timer.RETRANSMIT, self._t1),
                    self._arm(Timer.ACK_WAIT, 64 * self._t1),
                ]
            case AckWaitState.IDLE, _Stop():
                self._state = AckWaitState.STOPPED
                return []
            case AckWaitState.WAITING, _Fired(Timer.RETRANSMIT):
                self._interval = min(self._interval * 2, self._t2)
                return [_RESEND, self._arm(Timer.RETRANSMIT, self._interval)]
            case AckWaitState.WAITING, _Fired(Timer.ACK_WAIT):
                return self._leave(AckWaitState.TIMED_OUT, _TIMED_OUT)
            case AckWaitState.WAITING, _Ack():
                return self._leave(AckWaitState.CONFIRMED)
            case AckWaitState.WAITING, _Stop():
                return self._leave(AckWaitState.STOPPED)
            case _:
                return []

    def _arm(self, timer: Timer, delay: float) -> Arm:
        self._armed[timer] = None
        return Arm(timer, delay)

    def _leave(self, state: AckWaitState, *notices: Action) -> list[Action]:
        out: list[Action] = [Disarm(timer) for timer in self._armed]
        self._armed.clear()
        self._state = state
        out.extend(notices)
        return out
