"""The four SIP transaction state machines, sans-IO (RFC 3261 section 17, RFC 6026).

* :class:`InviteClient` -- RFC 3261 17.1.1 (Figure 5) with the RFC 6026 section 7.2 "Accepted"
  state and Timer M.
* :class:`NonInviteClient` -- RFC 3261 17.1.2 (Figure 6).
* :class:`InviteServer` -- RFC 3261 17.2.1 (Figure 7) with the RFC 6026 section 7.1 "Accepted"
  state and Timer L.
* :class:`NonInviteServer` -- RFC 3261 17.2.2 (Figure 8).

A machine never does I/O and never reads a clock. Each input method (``start``,
``on_request``, ``on_response``, ``on_tu_response``, ``on_timer``, ``on_transport_error``)
returns a list of *actions* for the caller to carry out, in order: :class:`Send`,
:class:`StartTimer`, :class:`CancelTimer`, :class:`ToTU`, :class:`Timeout`,
:class:`TransportFailed` and :class:`Terminated` (always last when present).

Every transition of a machine lives in one ``match`` statement (its ``_step`` method), one
``case`` per (state, input) edge of the RFC figure, so a reader can check it line by line.

Rules shared by the four machines:

* Input from the peer (requests, responses, timers, transport errors) never raises: an input that
  has no edge in the current state returns ``[]`` (ignored). "Terminated" is absorbing.
* Misuse by the TU (a response after the final one, a provisional after a 2xx, a status outside
  100..699, starting twice) raises :class:`TransactionError`.
* A timer input is acted on only if that timer is armed; a stale firing returns ``[]``. When a
  machine terminates it cancels every timer it still has armed, so each :class:`StartTimer` is
  matched by exactly one firing or one :class:`CancelTimer`.
* Reliable transports (TCP, TLS, SCTP) arm no retransmission timer (A, E, G) and Timers D, I, J
  and K are zero there (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2): instead of arming a
  zero-length timer the machine passes through the waiting state and terminates in the same
  call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from avatar_mf.sip.build import make_response
from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.message import Headers, Message, Request, Response, split_header_list
from avatar_mf.sip.timers import TimerConfig, TimerName

__all__ = [
    "Action",
    "AckIn",
    "CancelTimer",
    "Input",
    "InviteClient",
    "InviteServer",
    "NonInviteClient",
    "NonInviteServer",
    "RequestIn",
    "ResponseIn",
    "Send",
    "StartTimer",
    "State",
    "Terminated",
    "Timeout",
    "TimerFired",
    "ToTU",
    "TransactionError",
    "TransportError",
    "TransportFailed",
    "TuResponse",
    "ack_for_non_2xx",
]


class TransactionError(ValueError):
    """The transaction user misused a transaction (e.g. sent a second final response)."""


class State(Enum):
    """Transaction states of RFC 3261 17 and RFC 6026 (each machine uses a subset)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    """Pass ``message`` to the transport (to the transaction's peer)."""

    message: Message


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm timer ``name`` to fire once, ``delay`` seconds from now."""

    name: TimerName
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Disarm timer ``name`` (it is armed)."""

    name: TimerName


@dataclass(frozen=True, slots=True)
class ToTU:
    """Pass ``message`` up to the transaction user.

    Attributes:
        message: the request (server side: the original request, or an ACK in the Accepted
            state) or the response (client side).
        retransmission: only for an INVITE client in Accepted: this 2xx carries a To tag already
            passed up, i.e. it is a retransmission the TU must answer with its ACK again
            (RFC 6026 7.2 passes every 2xx up for that reason) but not treat as a new answer.
    """

    message: Message
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class Timeout:
    """Tell the TU the transaction timed out (Timer B, F or H)."""


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """Tell the TU the transport failed to deliver a message of this transaction."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: the caller drops it and any timer handle left for it."""


Action = Send | StartTimer | CancelTimer | ToTU | Timeout | TransportFailed | Terminated

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class RequestIn:
    """A retransmission of the request that created a server transaction."""

    request: Request


@dataclass(frozen=True, slots=True)
class AckIn:
    """An ACK matching an INVITE server transaction."""

    request: Request


@dataclass(frozen=True, slots=True)
class ResponseIn:
    """A response from the peer matching a client transaction."""

    response: Response


@dataclass(frozen=True, slots=True)
class TuResponse:
    """A response the TU passes to a server transaction."""

    response: Response


@dataclass(frozen=True, slots=True)
class TimerFired:
    """An armed timer fired."""

    name: TimerName


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport could not send a message of this transaction."""


Input = RequestIn | AckIn | ResponseIn | TuResponse | TimerFired | TransportError

_TRANSPORT_ERROR = TransportError()
_TERMINATED = Terminated()
_TIMEOUT = Timeout()
_TRANSPORT_FAILED = TransportFailed()


# --------------------------------------------------------------------------- helpers


def ack_for_non_2xx(request: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a 300-699 response (RFC 3261 17.1.1.3).

    Request-URI, Call-ID, From and the CSeq number come from the INVITE, To (with the tag) from
    the response; the only Via is the INVITE's top Via (same branch); Route headers are copied.
    """
    headers = request.headers
    first_via = headers.get("Via")
    top_via = split_header_list(first_via)[0] if first_via else ""
    cseq_value = headers.get("CSeq") or ""
    try:
        number = parse_cseq(cseq_value).seq
    except SipParseError:
        number = 1
    items: list[tuple[str, str]] = [("Via", top_via), ("Max-Forwards", "70")]
    from_ = headers.get("From")
    if from_ is not None:
        items.append(("From", from_))
    to = response.headers.get("To") or headers.get("To")
    if to is not None:
        items.append(("To", to))
    call_id = headers.get("Call-ID")
    if call_id is not None:
        items.append(("Call-ID", call_id))
    items.append(("CSeq", f"{number} ACK"))
    items.extend(("Route", value) for value in headers.get_all("Route"))
    return Request("ACK", request.uri, Headers(tuple(items)))


def _to_tag(message: Message) -> str | None:
    to = message.headers.get("To")
    if to is None:
        return None
    try:
        return parse_name_addr(to).tag
    except SipParseError:
        return to


def _check_tu_status(response: Response) -> None:
    if not 100 <= response.status <= 699:
        raise TransactionError(f"status {response.status} is outside 100..699")


class _Machine:
    """State, configuration and timer bookkeeping shared by the four machines."""

    __slots__ = ("_armed", "_config", "_reliable", "_started", "_state")

    def __init__(self, state: State, *, reliable: bool, config: TimerConfig) -> None:
        self._state = state
        self._reliable = reliable
        self._config = config
        # An insertion-ordered set: dict keys keep CancelTimer actions deterministic.
        self._armed: dict[TimerName, None] = {}
        self._started = False

    @property
    def state(self) -> State:
        return self._state

    @property
    def reliable(self) -> bool:
        return self._reliable

    @property
    def terminated(self) -> bool:
        return self._state is State.TERMINATED

    @property
    def armed_timers(self) -> tuple[TimerName, ...]:
        """Timers armed and neither fired nor cancelled yet."""
        return tuple(self._armed)

    def on_timer(self, name: TimerName) -> list[Action]:
        """Timer ``name`` fired. Ignored unless that timer is armed."""
        if name not in self._armed:
            return []
        del self._armed[name]
        return self._step(TimerFired(name))

    def on_transport_error(self) -> list[Action]:
        """The transport failed to send a message of this transaction."""
        return self._step(_TRANSPORT_ERROR)

    def abandon(self) -> list[Action]:
        """The TU destroys the transaction (e.g. RFC 3261 9.1: an INVITE still unanswered
        64*T1 after its CANCEL). Cancels every timer and terminates without notice."""
        if self._state is State.TERMINATED:
            return []
        return self._terminate()

    def _step(self, event: Input) -> list[Action]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _mark_started(self) -> None:
        if self._started:
            raise TransactionError("transaction already started")
        self._started = True

    def _arm(self, name: TimerName, delay: float) -> StartTimer:
        self._armed[name] = None
        return StartTimer(name, delay)

    def _disarm(self, *names: TimerName) -> list[Action]:
        out: list[Action] = []
        for name in names:
            if name in self._armed:
                del self._armed[name]
                out.append(CancelTimer(name))
        return out

    def _terminate(self, *notices: Action) -> list[Action]:
        """Enter Terminated: cancel what is armed, notify the TU, then :class:`Terminated`."""
        out: list[Action] = [CancelTimer(name) for name in self._armed]
        self._armed.clear()
        self._state = State.TERMINATED
        out.extend(notices)
        out.append(_TERMINATED)
        return out


# --------------------------------------------------------------------------- INVITE server


class InviteServer(_Machine):
    """INVITE server transaction: RFC 3261 17.2.1 (Figure 7) as updated by RFC 6026 7.1.

    States: Proceeding -> {Completed -> Confirmed, Accepted} -> Terminated.

    Decisions (each a deliberate reading of the RFCs):

    * 100 Trying only when the answer is slow: :meth:`start` passes the INVITE up and arms the
      Trying timer (``TimerConfig.trying``, 100 ms); if the TU has sent no response when it
      fires, the machine sends 100 (Trying). RFC 3261 17.2.1 requires the 100 unless the TU
      answers within 200 ms; the MF usually answers in a few ms, and a 100 that is not sent
      costs nothing (one datagram fewer per call). ``trying = 0`` sends it at once.
    * A retransmitted INVITE in Proceeding re-sends the most recent provisional response
      (a 100 Trying if none was sent yet, which also disarms the Trying timer), RFC 3261
      17.2.1.
    * A retransmitted INVITE in Accepted re-sends the last 2xx. RFC 6026 7.1 says such
      retransmissions are "absorbed"; the product answers them with the cached 2xx instead, so
      a UAC whose 2xx was lost gets it again at once rather than at the TU's next 2xx
      retransmission. It is still not passed to the TU.
    * 2xx responses from the TU in Accepted are passed to the transport (RFC 6026 7.1: the UAS
      core's 2xx retransmissions, RFC 3261 13.3.1.4, go through the transaction). They must be
      the 2xx already sent: a different response there raises :class:`TransactionError`, so a
      server transaction never sends two different final responses.
    * An ACK in Accepted is passed to the TU (RFC 6026 7.1: "MUST be passed directly to the TU
      and not absorbed"); the transaction stays in Accepted until Timer L.
    * A retransmitted INVITE in Completed re-sends the final non-2xx response; ACK in Completed
      moves to Confirmed (Timer I: T4, or 0 on reliable transports).
    * Timer G retransmits the non-2xx final response, doubling up to T2, until the ACK comes;
      Timer H (64*T1) without an ACK terminates with :class:`Timeout`.
    * A transport error in Proceeding or Completed informs the TU and terminates (Figure 7). In
      Accepted it informs the TU and keeps the state: RFC 6026 has no edge for it, but the TU
      retransmitting the 2xx should learn that the transport failed; the transaction still
      absorbs INVITE retransmissions until Timer L.
    """

    __slots__ = ("_final", "_g_interval", "_provisional", "request")

    def __init__(self, request: Request, *, reliable: bool, config: TimerConfig) -> None:
        super().__init__(State.PROCEEDING, reliable=reliable, config=config)
        self.request = request
        self._provisional: Response | None = None  # the last provisional sent
        self._final: Response | None = None
        self._g_interval = config.t1

    @property
    def last_response(self) -> Response | None:
        """The last response sent: the final one if any, else the last provisional (None
        while nothing was sent)."""
        return self._final if self._final is not None else self._provisional

    @property
    def final_response(self) -> Response | None:
        return self._final

    def start(self) -> list[Action]:
        """The transaction was created for :attr:`request`: pass it up, and send 100 Trying
        at once (``trying = 0``) or arm the Trying timer."""
        self._mark_started()
        delay = self._config.timer_trying(self._reliable)
        if delay <= 0:
            return [Send(self._trying()), ToTU(self.request)]
        return [self._arm(TimerName.TRYING, delay), ToTU(self.request)]

    def _trying(self) -> Response:
        """The 100 (Trying), recorded as the last provisional sent."""
        self._provisional = make_response(self.request, 100)
        return self._provisional

    def on_request(self, request: Request) -> list[Action]:
        """A request matched this transaction: an INVITE retransmission or an ACK."""
        if request.method == "ACK":
            return self._step(AckIn(request))
        if request.method == self.request.method:
            return self._step(RequestIn(request))
        return []

    def on_tu_response(self, response: Response) -> list[Action]:
        """The TU sends ``response``. Raises :class:`TransactionError` on misuse."""
        _check_tu_status(response)
        return self._step(TuResponse(response))

    def _step(self, event: Input) -> list[Action]:
        config = self._config
        match self._state, event:
            # -- Proceeding ------------------------------------------------------------------
            case State.PROCEEDING, RequestIn():
                if self._provisional is None:
                    return [*self._disarm(TimerName.TRYING), Send(self._trying())]
                return [Send(self._provisional)]
            case State.PROCEEDING, TimerFired(TimerName.TRYING):
                return [Send(self._trying())]
            case State.PROCEEDING, TuResponse(response) if response.status < 200:
                self._provisional = response
                return [*self._disarm(TimerName.TRYING), Send(response)]
            case State.PROCEEDING, TuResponse(response) if response.status < 300:
                self._final = response
                self._state = State.ACCEPTED
                return [
                    *self._disarm(TimerName.TRYING),
                    Send(response),
                    self._arm(TimerName.L, config.timer_l(self._reliable)),
                ]
            case State.PROCEEDING, TuResponse(response):
                self._final = response
                self._state = State.COMPLETED
                out: list[Action] = [*self._disarm(TimerName.TRYING), Send(response)]
                g = config.timer_g(self._reliable)
                if g is not None:
                    self._g_interval = g
                    out.append(self._arm(TimerName.G, g))
                out.append(self._arm(TimerName.H, config.timer_h(self._reliable)))
                return out
            case State.PROCEEDING, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Completed -------------------------------------------------------------------
            case State.COMPLETED, RequestIn():
                assert self._final is not None
                return [Send(self._final)]
            case State.COMPLETED, AckIn():
                self._state = State.CONFIRMED
                out = self._disarm(TimerName.G, TimerName.H)
                i = config.timer_i(self._reliable)
                if i > 0:
                    out.append(self._arm(TimerName.I, i))
                    return out
                return out + self._terminate()
            case State.COMPLETED, TimerFired(TimerName.G):
                assert self._final is not None
                self._g_interval = config.next_interval(TimerName.G, self._g_interval)
                return [Send(self._final), self._arm(TimerName.G, self._g_interval)]
            case State.COMPLETED, TimerFired(TimerName.H):
                return self._terminate(_TIMEOUT)
            case State.COMPLETED, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Confirmed: absorbs ACK and INVITE retransmissions -----------------------------
            case State.CONFIRMED, TimerFired(TimerName.I):
                return self._terminate()
            # -- Accepted (RFC 6026) ---------------------------------------------------------
            case State.ACCEPTED, RequestIn():
                assert self._final is not None
                return [Send(self._final)]
            case State.ACCEPTED, AckIn(ack):
                return [ToTU(ack)]
            case State.ACCEPTED, TuResponse(response) if response == self._final:
                return [Send(response)]
            case State.ACCEPTED, TimerFired(TimerName.L):
                return self._terminate()
            case State.ACCEPTED, TransportError():
                return [_TRANSPORT_FAILED]
            # -- anything else ---------------------------------------------------------------
            case _, TuResponse(response):
                raise TransactionError(
                    f"cannot send {response.status} on an INVITE server transaction in "
                    f"{self._state.value}"
                )
            case _:
                return []


# --------------------------------------------------------------------------- non-INVITE server


class NonInviteServer(_Machine):
    """Non-INVITE server transaction: RFC 3261 17.2.2 (Figure 8).

    States: Trying -> Proceeding -> Completed -> Terminated.

    * A retransmitted request in Trying is absorbed (the TU has not answered yet).
    * In Proceeding a retransmission re-sends the last provisional response; in Completed the
      final response. So a retransmitted BYE gets the cached response and never reaches the TU
      twice.
    * Completed lasts Timer J: 64*T1 on unreliable transports, 0 on reliable ones.
    * A transport error in Proceeding or Completed informs the TU and terminates. In Trying
      nothing has been sent, so there is no edge (the input is ignored).
    """

    __slots__ = ("_final", "_provisional", "request")

    def __init__(self, request: Request, *, reliable: bool, config: TimerConfig) -> None:
        super().__init__(State.TRYING, reliable=reliable, config=config)
        self.request = request
        self._provisional: Response | None = None
        self._final: Response | None = None

    @property
    def last_response(self) -> Response | None:
        return self._final if self._final is not None else self._provisional

    @property
    def final_response(self) -> Response | None:
        return self._final

    def start(self) -> list[Action]:
        """The transaction was created for :attr:`request`: pass it up."""
        self._mark_started()
        return [ToTU(self.request)]

    def on_request(self, request: Request) -> list[Action]:
        """A retransmission of the request matched this transaction."""
        if request.method != self.request.method:
            return []
        return self._step(RequestIn(request))

    def on_tu_response(self, response: Response) -> list[Action]:
        """The TU sends ``response``. Raises :class:`TransactionError` on misuse."""
        _check_tu_status(response)
        return self._step(TuResponse(response))

    def _enter_completed(self, response: Response) -> list[Action]:
        self._final = response
        self._state = State.COMPLETED
        j = self._config.timer_j(self._reliable)
        if j > 0:
            return [Send(response), self._arm(TimerName.J, j)]
        return [Send(response), *self._terminate()]

    def _step(self, event: Input) -> list[Action]:
        match self._state, event:
            # -- Trying ----------------------------------------------------------------------
            case State.TRYING, RequestIn():
                return []
            case State.TRYING, TuResponse(response) if response.status < 200:
                self._provisional = response
                self._state = State.PROCEEDING
                return [Send(response)]
            case State.TRYING, TuResponse(response):
                return self._enter_completed(response)
            # -- Proceeding ------------------------------------------------------------------
            case State.PROCEEDING, RequestIn():
                assert self._provisional is not None
                return [Send(self._provisional)]
            case State.PROCEEDING, TuResponse(response) if response.status < 200:
                self._provisional = response
                return [Send(response)]
            case State.PROCEEDING, TuResponse(response):
                return self._enter_completed(response)
            case State.PROCEEDING, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Completed -------------------------------------------------------------------
            case State.COMPLETED, RequestIn():
                assert self._final is not None
                return [Send(self._final)]
            case State.COMPLETED, TimerFired(TimerName.J):
                return self._terminate()
            case State.COMPLETED, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- anything else ---------------------------------------------------------------
            case _, TuResponse(response):
                raise TransactionError(
                    f"cannot send {response.status} on a {self.request.method} server "
                    f"transaction in {self._state.value}"
                )
            case _:
                return []


# --------------------------------------------------------------------------- INVITE client


class InviteClient(_Machine):
    """INVITE client transaction: RFC 3261 17.1.1 (Figure 5) as updated by RFC 6026 7.2.

    States: Calling -> Proceeding -> {Completed, Accepted} -> Terminated.

    * Timer A retransmits the INVITE in Calling (unreliable transports only), doubling each
      time with no cap; Timer B (64*T1) in Calling terminates with :class:`Timeout`. Both are
      cancelled when the first response arrives (they only act in Calling).
    * A 300-699 response is acknowledged by the transaction itself (:func:`ack_for_non_2xx`)
      and passed up once; its retransmissions re-send the ACK and are not passed up. Completed
      lasts Timer D.
    * A 2xx moves to Accepted for Timer M (64*T1). Every 2xx received in Accepted is passed up,
      as RFC 6026 7.2 requires (the TU answers each with its ACK); a 2xx whose To tag was
      already passed up is flagged ``ToTU.retransmission``; one with a new To tag (another fork)
      is not.
    * Proceeding has no timer: the TU ends a call attempt that never gets a final response with
      CANCEL, and after 64*T1 with :meth:`abandon` (RFC 3261 9.1).
    """

    __slots__ = ("_a_interval", "_ack", "_seen_2xx_tags", "request")

    def __init__(self, request: Request, *, reliable: bool, config: TimerConfig) -> None:
        super().__init__(State.CALLING, reliable=reliable, config=config)
        self.request = request
        self._a_interval = config.t1
        self._ack: Request | None = None
        self._seen_2xx_tags: set[str | None] = set()

    @property
    def ack(self) -> Request | None:
        """The ACK sent for a non-2xx final response, once there is one."""
        return self._ack

    def start(self) -> list[Action]:
        """Send the INVITE and arm Timers A (unreliable only) and B."""
        self._mark_started()
        out: list[Action] = [Send(self.request)]
        a = self._config.timer_a(self._reliable)
        if a is not None:
            self._a_interval = a
            out.append(self._arm(TimerName.A, a))
        out.append(self._arm(TimerName.B, self._config.timer_b(self._reliable)))
        return out

    def on_response(self, response: Response) -> list[Action]:
        """A response matched this transaction (RFC 3261 17.1.3)."""
        if not 100 <= response.status <= 699:
            return []
        return self._step(ResponseIn(response))

    def _step(self, event: Input) -> list[Action]:
        config = self._config
        match self._state, event:
            # -- Calling ---------------------------------------------------------------------
            case State.CALLING, TimerFired(TimerName.A):
                self._a_interval = config.next_interval(TimerName.A, self._a_interval)
                return [Send(self.request), self._arm(TimerName.A, self._a_interval)]
            case State.CALLING, TimerFired(TimerName.B):
                return self._terminate(_TIMEOUT)
            case State.CALLING, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Calling or Proceeding: responses --------------------------------------------
            case State.CALLING | State.PROCEEDING, ResponseIn(response) if response.status < 200:
                out = self._disarm(TimerName.A, TimerName.B)
                self._state = State.PROCEEDING
                out.append(ToTU(response))
                return out
            case State.CALLING | State.PROCEEDING, ResponseIn(response) if response.status < 300:
                out = self._disarm(TimerName.A, TimerName.B)
                self._state = State.ACCEPTED
                self._seen_2xx_tags.add(_to_tag(response))
                out.append(self._arm(TimerName.M, config.timer_m(self._reliable)))
                out.append(ToTU(response))
                return out
            case State.CALLING | State.PROCEEDING, ResponseIn(response):
                out = self._disarm(TimerName.A, TimerName.B)
                self._state = State.COMPLETED
                self._ack = ack_for_non_2xx(self.request, response)
                out.append(Send(self._ack))
                d = config.timer_d(self._reliable)
                if d > 0:
                    out.append(self._arm(TimerName.D, d))
                    out.append(ToTU(response))
                    return out
                out.append(ToTU(response))
                return out + self._terminate()
            # -- Completed -------------------------------------------------------------------
            case State.COMPLETED, ResponseIn(response) if response.status >= 300:
                assert self._ack is not None
                return [Send(self._ack)]
            case State.COMPLETED, TimerFired(TimerName.D):
                return self._terminate()
            case State.COMPLETED, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Accepted (RFC 6026) ---------------------------------------------------------
            case State.ACCEPTED, ResponseIn(response) if 200 <= response.status < 300:
                tag = _to_tag(response)
                seen = tag in self._seen_2xx_tags
                self._seen_2xx_tags.add(tag)
                return [ToTU(response, retransmission=seen)]
            case State.ACCEPTED, TimerFired(TimerName.M):
                return self._terminate()
            # -- anything else ---------------------------------------------------------------
            case _:
                return []


# --------------------------------------------------------------------------- non-INVITE client


class NonInviteClient(_Machine):
    """Non-INVITE client transaction: RFC 3261 17.1.2 (Figure 6).

    States: Trying -> Proceeding -> Completed -> Terminated.

    * Timer E retransmits the request (unreliable transports only): T1, doubling up to T2 in
      Trying; T2 once in Proceeding. Timer F (64*T1) terminates with :class:`Timeout`.
    * The first final response is passed up; Completed absorbs its retransmissions for Timer K
      (T4, or 0 on reliable transports).
    """

    __slots__ = ("_e_interval", "request")

    def __init__(self, request: Request, *, reliable: bool, config: TimerConfig) -> None:
        super().__init__(State.TRYING, reliable=reliable, config=config)
        self.request = request
        self._e_interval = config.t1

    def start(self) -> list[Action]:
        """Send the request and arm Timers E (unreliable only) and F."""
        self._mark_started()
        out: list[Action] = [Send(self.request)]
        e = self._config.timer_e(self._reliable)
        if e is not None:
            self._e_interval = e
            out.append(self._arm(TimerName.E, e))
        out.append(self._arm(TimerName.F, self._config.timer_f(self._reliable)))
        return out

    def on_response(self, response: Response) -> list[Action]:
        """A response matched this transaction (RFC 3261 17.1.3)."""
        if not 100 <= response.status <= 699:
            return []
        return self._step(ResponseIn(response))

    def _enter_completed(self, response: Response) -> list[Action]:
        out = self._disarm(TimerName.E, TimerName.F)
        self._state = State.COMPLETED
        k = self._config.timer_k(self._reliable)
        if k > 0:
            out.append(self._arm(TimerName.K, k))
            out.append(ToTU(response))
            return out
        out.append(ToTU(response))
        return out + self._terminate()

    def _step(self, event: Input) -> list[Action]:
        config = self._config
        match self._state, event:
            # -- Trying ----------------------------------------------------------------------
            case State.TRYING, TimerFired(TimerName.E):
                self._e_interval = config.next_interval(TimerName.E, self._e_interval)
                return [Send(self.request), self._arm(TimerName.E, self._e_interval)]
            case State.TRYING, ResponseIn(response) if response.status < 200:
                self._state = State.PROCEEDING
                return [ToTU(response)]
            # -- Proceeding ------------------------------------------------------------------
            case State.PROCEEDING, TimerFired(TimerName.E):
                self._e_interval = config.t2
                return [Send(self.request), self._arm(TimerName.E, config.t2)]
            case State.PROCEEDING, ResponseIn(response) if response.status < 200:
                return [ToTU(response)]
            # -- Trying or Proceeding --------------------------------------------------------
            case State.TRYING | State.PROCEEDING, ResponseIn(response):
                return self._enter_completed(response)
            case State.TRYING | State.PROCEEDING, TimerFired(TimerName.F):
                return self._terminate(_TIMEOUT)
            case State.TRYING | State.PROCEEDING, TransportError():
                return self._terminate(_TRANSPORT_FAILED)
            # -- Completed: absorbs response retransmissions ---------------------------------
            case State.COMPLETED, TimerFired(TimerName.K):
                return self._terminate()
            # -- anything else ---------------------------------------------------------------
            case _:
                return []


ServerMachine = InviteServer | NonInviteServer
ClientMachine = InviteClient | NonInviteClient
