"""A test UE that registers with a registrar and waits for calls (the called party, UE2).

::

    async with await UeListener.open("127.0.0.1", 5070, user="ue2") as ue2:
        await ue2.registered(5.0)                 # REGISTER ... 200 (refreshed before expiry)
        call = await ue2.next_call(10.0)          # an INVITE arrived and was answered
        await call.wait_channels_open(5.0)        # the usual UeCall from here on
        client = AvatarClient(call)

The UAS side of RFC 3261 that it drives (transactions are the product's
:class:`~avatar_mf.sip.transaction_layer.TransactionLayer`, through :mod:`.sip_client`):

* 10: the binding, :class:`~avatar_mf.ue.registration.Registration` (refresh before expiry,
  retry after failures, removal on close);
* 13.3.1.1: an INVITE gets 180 Ringing (with the To tag of the dialog to be), then after
  :attr:`AnswerPolicy.ring_seconds` either the answer or the rejection status the policy names
  (``--reject 486``: Busy Here);
* 13.3.1.4: the 2xx is retransmitted (T1 doubling up to T2) until its ACK, the machine of
  :mod:`avatar_mf.sip.uas_2xx`; without an ACK after 64*T1 the UE ends the call with BYE;
* 9.2: a CANCEL before the answer gets 487 on the INVITE (the layer answered the CANCEL 200);
* the offer is answered with the UE's usual data channels (RFC 8864: the offered streams whose
  subprotocol the UE speaks), media started at once, see :meth:`UeCall.answer_invite`.

Every INVITE leaves an :class:`IncomingRecord` in :attr:`UeListener.history` (answered,
rejected, cancelled), and every answered call waits in a queue for :meth:`UeListener.next_call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from avatar_mf.clock import Clock, LoopClock, TimerHandle
from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.sip import uas_2xx
from avatar_mf.sip.build import make_response
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import ServerTransaction
from avatar_mf.ue.call import DATACHANNEL_FEATURE_TAG, UeCall
from avatar_mf.ue.offer import ANSWER_STREAMS
from avatar_mf.ue.registration import Registration, RegistrationStatus
from avatar_mf.ue.rtp_audio import UeAudio
from avatar_mf.ue.sip_client import DEFAULT_USER_AGENT, SipClient, SipTransportName

__all__ = ["AnswerPolicy", "IncomingRecord", "UeListener"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """How the listening UE treats an INVITE.

    Attributes:
        reject: answer every INVITE with this final status (e.g. 486 Busy Here, 603 Decline)
            instead of taking the call; None answers 200.
        ring_seconds: how long the UE rings (180 sent) before the final response.
        streams: the streams it takes from an offer, by subprotocol (None: all offered;
            default: http, 3gpp-ar-metadata, 3gpp-ar-animation, avatar-mf-transfer).
        audio: a factory of :class:`~avatar_mf.ue.rtp_audio.UeAudio`: each answered call
            answers the offer's audio m-line and sends/records RTP.
    """

    reject: int | None = None
    ring_seconds: float = 0.0
    streams: tuple[DcMap, ...] | None = ANSWER_STREAMS
    #: Makes the IMS-style audio of each answered call (None: audio m-lines get port 0).
    audio: Callable[[], UeAudio] | None = None

    def __post_init__(self) -> None:
        if self.reject is not None and not 300 <= self.reject <= 699:
            raise ValueError(f"a rejection is a final non-2xx status (300-699), not {self.reject}")
        if self.ring_seconds < 0:
            raise ValueError("ring_seconds must not be negative")


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    """One INVITE the UE received and what became of it."""

    call_id: str
    caller: str
    """The From URI."""
    status: int
    """The final status the UE sent (200, the policy's rejection, 487 after CANCEL, 488)."""
    cancelled: bool = False
    at: float = 0.0


@dataclass(eq=False)
class _Incoming:
    tx: ServerTransaction
    invite: Request
    call: UeCall
    task: asyncio.Task[None] | None = None
    ok: Response | None = None
    wait: uas_2xx.AckWait | None = None
    timers: dict[uas_2xx.Timer, TimerHandle] = field(default_factory=dict)


def _caller(invite: Request) -> str:
    try:
        return parse_name_addr(invite.headers.get("From") or "").uri
    except SipParseError:
        return invite.headers.get("From") or ""


class UeListener:
    """A registered UE answering (or rejecting) the calls it receives. Build with :meth:`open`."""

    def __init__(
        self,
        sip: SipClient,
        *,
        user: str,
        domain: str,
        policy: AnswerPolicy | None = None,
        expires: int = 600,
        refresh_margin: float = 30.0,
        retry_after: float = 5.0,
        register: bool = True,
        timers: TimerConfig | None = None,
        setup_timeout: float = 10.0,
        clock: Clock | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        contact_feature_tags: str = DATACHANNEL_FEATURE_TAG,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sip = sip
        self.user = user
        self.aor = f"sip:{user}@{domain}"
        self.policy = policy or AnswerPolicy()
        self._timers = timers or TimerConfig()
        self._setup_timeout = setup_timeout
        self._clock = clock or LoopClock()
        self._user_agent = user_agent
        self._feature_tags = contact_feature_tags
        self._now = now
        self.history: list[IncomingRecord] = []
        """Every INVITE received, oldest first."""
        self.calls: list[UeCall] = []
        """Every call answered, oldest first."""
        self._queue: asyncio.Queue[UeCall] = asyncio.Queue()
        self._pending: dict[ServerTransaction, _Incoming] = {}
        self._waiting_ack: dict[tuple[str, int], _Incoming] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._registered = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._closed = False
        self.registration: Registration | None = None
        if register:
            self.registration = Registration(
                aor=self.aor,
                registrar=f"sip:{domain}",
                contact=sip.contact(user, feature_tags=contact_feature_tags),
                clock=self._clock,
                send=self._send_register,
                expires=expires,
                refresh_margin=refresh_margin,
                retry_after=retry_after,
                on_change=self._registration_changed,
                user_agent=user_agent,
            )
        sip.set_uas(self)

    @classmethod
    async def open(
        cls,
        proxy_host: str,
        proxy_port: int,
        *,
        user: str,
        domain: str | None = None,
        transport: SipTransportName = "udp",
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        policy: AnswerPolicy | None = None,
        expires: int = 600,
        refresh_margin: float = 30.0,
        register: bool = True,
        timers: TimerConfig | None = None,
        setup_timeout: float = 10.0,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> UeListener:
        """Open the UE's SIP endpoint towards the proxy (its registrar and outbound proxy) and
        send the first REGISTER (unless ``register`` is False). ``domain`` is the AOR's host
        part and the REGISTER's Request-URI (default: ``proxy_host:proxy_port``)."""
        sip = await SipClient.open(
            proxy_host,
            proxy_port,
            transport=transport,
            local_host=local_host,
            local_port=local_port,
            timers=timers,
            user_agent=user_agent,
        )
        listener = cls(
            sip,
            user=user,
            domain=domain or f"{proxy_host}:{proxy_port}",
            policy=policy,
            expires=expires,
            refresh_margin=refresh_margin,
            register=register,
            timers=timers,
            setup_timeout=setup_timeout,
            user_agent=user_agent,
        )
        if listener.registration is not None:
            listener.registration.start()
        return listener

    async def __aenter__(self) -> UeListener:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- registration -----------------------------------------------------------------------

    def _send_register(self, request: Request) -> None:
        if self._closed:
            return
        self._spawn(self._register_exchange(request))

    async def _register_exchange(self, request: Request) -> None:
        registration = self.registration
        assert registration is not None
        try:
            response = await self.sip.request(request)
        except (TimeoutError, ConnectionError, OSError) as exc:
            if not self._closed:
                registration.on_failure(f"REGISTER: {exc}")
            return
        if not self._closed or registration.state == "unregistered":
            registration.on_response(response)

    def _registration_changed(self, status: RegistrationStatus) -> None:
        if status.state == "registered":
            self._registered.set()
        else:
            self._registered.clear()
        log.info(
            "ue %s: registration %s %s %s", self.user, status.state, status.status, status.reason
        )
        self._status_changed.set()

    async def registered(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> RegistrationStatus:
        """Wait for the first outcome of the registration; return it if it is 'registered',
        else raise :class:`ConnectionError` with the registrar's answer."""
        registration = self.registration
        if registration is None:
            raise RuntimeError("this listener does not register")
        try:
            async with asyncio.timeout(timeout):
                while registration.last is None or registration.last.state == "registering":
                    self._status_changed.clear()
                    await self._status_changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no answer to REGISTER within {timeout} s") from None
        last = registration.last
        if last.state != "registered":
            raise ConnectionError(f"registration failed: {last.status} {last.reason}")
        return last

    # -- outgoing calls ---------------------------------------------------------------------

    def dial(self, target_uri: str, **options: Any) -> UeCall:
        """A call from this UE (its registered Contact, through its proxy) to ``target_uri``;
        ``async with`` it as any :class:`UeCall`. ``options``: those of :meth:`UeCall.dial`
        (``from_uri`` defaults to the UE's AOR)."""
        options.setdefault("from_uri", self.aor)
        options.setdefault("user_agent", self._user_agent)
        options.setdefault("contact_feature_tags", self._feature_tags)
        options.setdefault("timers", self._timers)
        options.setdefault("contact_user", self.user)
        return UeCall.over(self.sip, target_uri, **options)

    # -- incoming calls (SipClient's UasHandler) --------------------------------------------

    def on_invite(self, tx: ServerTransaction, invite: Request) -> None:
        if self._closed:
            raise SipError(480, "Temporarily Unavailable")
        call = UeCall.incoming(
            self.sip,
            invite,
            streams=self.policy.streams,
            setup_timeout=self._setup_timeout,
            user_agent=self._user_agent,
            contact_feature_tags=self._feature_tags,
            contact_user=self.user,
            now=self._now,
            rtp_audio=self.policy.audio() if self.policy.audio is not None else None,
        )
        pending = _Incoming(tx, invite, call)
        self._pending[tx] = pending
        tx.respond(
            make_response(
                invite,
                180,
                to_tag=call.local_tag,
                headers=[("Contact", self.sip.contact(self.user, feature_tags=self._feature_tags))],
            )
        )
        pending.task = self._spawn(self._answer(pending))

    async def _answer(self, pending: _Incoming) -> None:
        invite, call, tx = pending.invite, pending.call, pending.tx
        if self.policy.ring_seconds:
            await asyncio.sleep(self.policy.ring_seconds)
        if self._pending.pop(tx, None) is None:
            return  # cancelled meanwhile
        reject = self.policy.reject
        if reject is not None:
            tx.respond(make_response(invite, reject, to_tag=call.local_tag))
            call.end_unanswered(f"rejected with {reject}")
            self._record(invite, reject)
            return
        try:
            ok = await call.answer_invite(invite)
        except SipError as exc:
            tx.respond(make_response(invite, exc.status, exc.reason, to_tag=call.local_tag))
            call.end_unanswered(f"answered {exc.status}")
            self._record(invite, exc.status)
            return
        tx.respond(ok)
        self._record(invite, 200)
        self.calls.append(call)
        self._start_ack_wait(pending, ok)
        self._queue.put_nowait(call)

    def on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        pending = self._pending.pop(tx, None)
        if pending is None:
            return  # answered already: the CANCEL has no effect (RFC 3261 9.2)
        if pending.task is not None:
            pending.task.cancel()
        tx.respond(make_response(pending.invite, 487, to_tag=pending.call.local_tag))
        pending.call.end_unanswered("CANCEL")
        self._record(pending.invite, 487, cancelled=True)

    def on_ack(self, ack: Request) -> None:
        seq = parse_cseq(ack.headers.get("CSeq") or "0 ACK").seq
        pending = self._waiting_ack.pop((ack.headers.get("Call-ID") or "", seq), None)
        if pending is not None and pending.wait is not None:
            self._run_ack_wait(pending, pending.wait.on_ack())

    def _start_ack_wait(self, pending: _Incoming, ok: Response) -> None:
        pending.ok = ok
        pending.wait = uas_2xx.AckWait(t1=self._timers.t1, t2=self._timers.t2)
        seq = parse_cseq(pending.invite.headers.get("CSeq") or "0 INVITE").seq
        self._waiting_ack[(pending.call.call_id, seq)] = pending
        self._run_ack_wait(pending, pending.wait.start())

    def _run_ack_wait(self, pending: _Incoming, actions: list[uas_2xx.Action]) -> None:
        wait = pending.wait
        assert wait is not None
        for action in actions:
            match action:
                case uas_2xx.Arm(timer, delay):
                    pending.timers[timer] = self._clock.call_later(
                        delay, self._ack_timer_callback(pending, timer)
                    )
                case uas_2xx.Disarm(timer):
                    handle = pending.timers.pop(timer, None)
                    if handle is not None:
                        handle.cancel()
                case uas_2xx.Resend():
                    if pending.ok is not None and not self.sip.closed:
                        with contextlib.suppress(OSError):
                            self.sip.resend_response(pending.ok, pending.tx.source)
                case uas_2xx.AckTimedOut():
                    self._waiting_ack = {
                        k: v for k, v in self._waiting_ack.items() if v is not pending
                    }
                    pending.call.errors.append("no ACK for the 200 (64*T1)")
                    self._spawn(pending.call.hangup())

    def _ack_timer_callback(self, pending: _Incoming, timer: uas_2xx.Timer) -> Callable[[], None]:
        return lambda: self._ack_timer(pending, timer)

    def _ack_timer(self, pending: _Incoming, timer: uas_2xx.Timer) -> None:
        pending.timers.pop(timer, None)
        if pending.wait is not None:
            self._run_ack_wait(pending, pending.wait.on_timer(timer))

    def _record(self, invite: Request, status: int, *, cancelled: bool = False) -> None:
        self.history.append(
            IncomingRecord(
                invite.headers.get("Call-ID") or "",
                _caller(invite),
                status,
                cancelled,
                self._now(),
            )
        )
        self._status_changed.set()

    async def next_call(
        self,
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> UeCall:
        """The next call the UE answered (oldest first); TimeoutError if none comes."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            raise TimeoutError(f"no call answered within {timeout} s") from None

    async def wait_for_record(
        self,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Sequence[IncomingRecord]:
        """Wait until ``count`` INVITEs have had their final response; return the history."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.history) < count:
                    self._status_changed.clear()
                    await self._status_changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{count} INVITEs not answered within {timeout} s") from None
        return list(self.history)

    # -- closing ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(
        self,
        timeout: float = 2.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> None:
        """Hang up every call, remove the binding (REGISTER Expires: 0), close the endpoint."""
        if self._closed:
            return
        self._closed = True
        for pending in list(self._pending.values()):
            if pending.task is not None:
                pending.task.cancel()
            with contextlib.suppress(Exception):
                pending.tx.respond(
                    make_response(pending.invite, 480, to_tag=pending.call.local_tag)
                )
        self._pending.clear()
        for pending in list(self._waiting_ack.values()):
            for handle in pending.timers.values():
                handle.cancel()
        self._waiting_ack.clear()
        for call in self.calls:
            await call.hangup(timeout)
        registration = self.registration
        if registration is not None:
            removal = registration.unregister()
            if removal is not None:
                with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                    async with asyncio.timeout(timeout):
                        response = await self.sip.request(removal)
                    registration.on_response(response)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sip.set_uas(None)
        await self.sip.close()
