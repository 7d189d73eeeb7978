"""SIP session timers at the UAS, sans-IO (RFC 4028).

Two parts:

* Negotiation, pure functions: :func:`negotiate` chooses Session-Expires and the refresher
  for the 2xx to an INVITE or UPDATE (RFC 4028 9: 422 with Min-SE below the local minimum,
  never below the request's Min-SE, ``refresher=uac`` only when the UAC supports "timer");
  :func:`response_headers` are the 2xx's Session-Expires and Require (RFC 4028 9);
  :func:`refresh_headers` those of the MF's own refresh UPDATE (RFC 4028 7.4).
* :class:`SessionRefresh`, the refresh/expiry machine (RFC 4028 10) in the style of
  :mod:`avatar_mf.sip.transaction`: no I/O, no clock; :meth:`SessionRefresh.arm`,
  :meth:`SessionRefresh.on_timer` and :meth:`SessionRefresh.stop` return actions for the
  caller to carry out in order (:class:`Arm`, :class:`Disarm`, :class:`SendRefresh`,
  :class:`Expired`). When the UE refreshes (``refresher=uac`` in the 2xx) the MF ends the
  session if no refresh came SE - min(32, SE/3) seconds after the last one; when the MF
  refreshes (``refresher=uas``) it sends a refresh every SE/2 seconds.

States of the machine: Idle (no timer negotiated), Watching (the UE refreshes), Refreshing
(the MF refreshes), Expired, Stopped. Every transition is one ``case`` of
:meth:`SessionRefresh._step`; an input with no edge in a state returns ``[]``; Expired and
Stopped are absorbing; a timer input is acted on only while that timer is armed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum

from avatar_mf.sip.errors import SipError
from avatar_mf.sip.message import Request

__all__ = [
    "Action",
    "Arm",
    "Disarm",
    "Expired",
    "RefreshState",
    "SendRefresh",
    "SessionRefresh",
    "SessionTimer",
    "Timer",
    "negotiate",
    "refresh_headers",
    "response_headers",
    "supports_timer",
]

#: No session timer (the request did not ask for one and none is configured).
_NONE = 0


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """A negotiated session interval: ``expires`` seconds (0: none) and who refreshes,
    ``"uac"`` (the UE, which sent the INVITE) or ``"uas"`` (the MF)."""

    expires: int = _NONE
    refresher: str = "uac"


def supports_timer(request: Request) -> bool:
    return "timer" in {t.strip().lower() for t in request.headers.get_list("Supported")}


def negotiate(request: Request, *, session_expires: int, min_se: int) -> SessionTimer:
    """RFC 4028 9: Session-Expires and the refresher for the 2xx to ``request``.

    ``session_expires``: the MF's preferred interval (0: none unless asked); ``min_se``: the
    smallest it accepts. Raises SipError 422 (with Min-SE) for a smaller one asked, 400 for an
    unreadable Session-Expires.
    """
    value = request.headers.get("Session-Expires")
    supported = supports_timer(request)
    se = session_expires
    refresher = "uac" if supported else "uas"
    floor = 0  # RFC 4028 9: never below the request's Min-SE
    with contextlib.suppress(ValueError):
        floor = int((request.headers.get("Min-SE") or "0").partition(";")[0].strip())
    if value is not None:
        head, _, params = value.partition(";")
        try:
            asked = int(head.strip())
        except ValueError:
            raise SipError(400, "Bad Session-Expires") from None
        if asked < min_se:
            raise SipError(422, headers=(("Min-SE", str(min_se)),))
        se = min(asked, se) if se else asked
        for param in params.split(";"):
            name, _, val = param.partition("=")
            if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
                refresher = val.strip().lower()
        if refresher == "uac" and not supported:
            refresher = "uas"
    if se:
        se = max(se, floor)
    return SessionTimer(se, refresher)


def response_headers(timer: SessionTimer, request: Request) -> tuple[tuple[str, str], ...]:
    """RFC 4028 9: Session-Expires in the 2xx; Require: timer is a MUST with
    ``refresher=uac`` and a SHOULD whenever the UAC supports timer."""
    if not timer.expires:
        return ()
    headers = [("Session-Expires", f"{timer.expires};refresher={timer.refresher}")]
    if timer.refresher == "uac" or supports_timer(request):
        headers.append(("Require", "timer"))
    return tuple(headers)


def refresh_headers(timer: SessionTimer) -> tuple[tuple[str, str], ...]:
    """The MF's refresh UPDATE. RFC 4028 7.4: the parameter names the refresher relative to
    this request, whose UAC is the MF: "uac" keeps the MF the refresher ("uas" would hand it
    to the UE)."""
    return (("Session-Expires", f"{timer.expires};refresher=uac"), ("Supported", "timer"))


# --------------------------------------------------------------------------- the machine


class RefreshState(Enum):
    IDLE = "Idle"
    WATCHING = "Watching"
    REFRESHING = "Refreshing"
    EXPIRED = "Expired"
    STOPPED = "Stopped"


class Timer(Enum):
    #: The MF refreshes: send the next refresh (SE/2).
    REFRESH = "refresh"
    #: The UE refreshes: end the session if it has not by then (SE - min(32, SE/3)).
    EXPIRY = "expiry"


@dataclass(frozen=True, slots=True)
class Arm:
    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class Disarm:
    timer: Timer


@dataclass(frozen=True, slots=True)
class SendRefresh:
    """Send a refresh (UPDATE) for ``timer``."""

    timer: SessionTimer


@dataclass(frozen=True, slots=True)
class Expired:
    """No refresh in time: end the session with BYE (RFC 4028 10)."""


Action = Arm | Disarm | SendRefresh | Expired


@dataclass(frozen=True, slots=True)
class _Negotiated:
    timer: SessionTimer


@dataclass(frozen=True, slots=True)
class _Fired:
    timer: Timer


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Input = _Negotiated | _Fired | _Stop
_EXPIRED = Expired()


def expiry_delay(expires: int) -> float:
    """RFC 4028 10: the refreshee ends the session SE - min(32, SE/3) after a refresh."""
    return expires - min(32, expires / 3)


class SessionRefresh:
    """The session timer of one dialog at the MF (see the module doc)."""

    __slots__ = ("_armed", "_state", "_timer")

    def __init__(self) -> None:
        self._state = RefreshState.IDLE
        self._timer = SessionTimer()
        self._armed: dict[Timer, None] = {}

    @property
    def state(self) -> RefreshState:
        return self._state

    @property
    def timer(self) -> SessionTimer:
        """The interval in force (the last one negotiated)."""
        return self._timer

    @property
    def armed_timers(self) -> tuple[Timer, ...]:
        return tuple(self._armed)

    def arm(self, timer: SessionTimer) -> list[Action]:
        """A 2xx with ``timer`` was sent (INVITE, re-INVITE or UPDATE): a refresh happened;
        start counting again."""
        return self._step(_Negotiated(timer))

    def on_timer(self, timer: Timer) -> list[Action]:
        if timer not in self._armed:
            return []
        del self._armed[timer]
        return self._step(_Fired(timer))

    def stop(self) -> list[Action]:
        """The dialog ended."""
        return self._step(_Stop())

    def _step(self, event: _Input) -> list[Action]:
        match self._state, event:
            case ((RefreshState.EXPIRED | RefreshState.STOPPED), _):
                return []
            case _, _Stop():
                return self._disarm_all(RefreshState.STOPPED)
            case _, _Negotiated(timer) if not timer.expires:
                self._timer = timer
                return self._disarm_all(RefreshState.IDLE)
            case _, _Negotiated(timer) if timer.refresher == "uac":
                self._timer = timer
                out = self._disarm_all(RefreshState.WATCHING)
                return [*out, self._arm(Timer.EXPIRY, expiry_delay(timer.expires))]
            case _, _Negotiated(timer):
                self._timer = timer
                out = self._disarm_all(RefreshState.REFRESHING)
                return [*out, self._arm(Timer.REFRESH, timer.expires / 2)]
            case RefreshState.REFRESHING, _Fired(Timer.REFRESH):
                timer = self._timer
                return [SendRefresh(timer), self._arm(Timer.REFRESH, timer.expires / 2)]
            case RefreshState.WATCHING, _Fired(Timer.EXPIRY):
                self._state = RefreshState.EXPIRED
                return [_EXPIRED]
            case _:
                return []

    def _arm(self, timer: Timer, delay: float) -> Arm:
        self._armed[timer] = None
        return Arm(timer, delay)

    def _disarm_all(self, state: RefreshState) -> list[Action]:
        out: list[Action] = [Disarm(timer) for timer in self._armed]
        self._armed.clear()
        self._state = state
        return out
