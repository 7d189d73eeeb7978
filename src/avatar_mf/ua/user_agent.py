"""The MF's SIP user agent core, UAS side (RFC 3261 sections 8.2, 12, 13.3, 14, 15).

It is the transaction user of :class:`avatar_mf.sip.transaction_layer.TransactionLayer`:

- INVITE (8.2, 13.3): validated (RFC 4475 rules in ``sip/validate.py``), capped (503 with
  Retry-After past ``max_dialogs`` or while draining), answered 100 Trying by the transaction
  when the answer takes longer than its Trying timer (the node's: 100 ms, RFC 3261 17.2.1;
  ``sip/timers.py``), then 200 with the SDP answer from the :class:`SessionFactory` and the
  request's Record-Route (12.1.1). The 2xx is
  retransmitted (T1 doubling up to T2) until the ACK for that INVITE (same CSeq number)
  arrives, over every transport ("even if the transport at the UAS is reliable"); without an
  ACK within 64*T1 the call is ended with BYE (13.3.1.4). An INVITE that can no longer be
  answered with a 2xx (media failure, drop, shutdown) gets an error response, never silence.
- CANCEL (9.2): 487 on the pending INVITE, media released.
- BYE (15.1.2), re-INVITE (14.2) and UPDATE (RFC 3311) inside dialogs; 481 for requests that
  name no dialog (12.2.2); 500 with a random Retry-After of 0-10 s for an INVITE that overlaps
  another INVITE of the dialog (14.2: one not yet answered, or the 2xx not yet ACKed) and for
  an UPDATE offer while an offer is unanswered (RFC 3311 5.2); 500 for an out-of-order CSeq
  (12.2.2). Requests still pending when the dialog ends get 487 (15.1.2).
- OPTIONS (11.2): 200 with Allow, Accept and Supported; 503 with Retry-After whenever an
  INVITE would get 503 (draining, ``max_dialogs`` reached, or the ``capacity`` callback naming
  a shortage such as file descriptors), so a proxy's dispatcher stops sending calls. Each
  change between able and unable to take calls is logged once.
- Session timers (RFC 4028): Session-Expires negotiated in the 2xx (422 with Min-SE below
  ``min_se``; never below the request's Min-SE); when the UE is the refresher it must refresh
  before expiry, otherwise the MF refreshes with UPDATE (``refresher=uac``: the MF, sender of
  the UPDATE, stays the refresher); a session not refreshed in time is ended with BYE, a
  refresh answered 408 or timing out ends it with BYE, one answered 481 ends it without
  (the UE has no such dialog any more, RFC 3261 12.2.1.2, RFC 5057 5.1) (RFC 4028 10).
- Anything else: 405 with Allow for methods SIP defines, 501 for unknown methods, checked
  before the dialog (8.2.1 comes before 12.2.2).
- The caller's identity (RFC 3325 9.1): P-Asserted-Identity when the INVITE comes from a peer
  configured as asserting it (``asserted_identity_peers``: the P-CSCF), else the From URI; a
  P-Asserted-Identity from any other peer is ignored. Avatar authorization trusts it.

The 2xx retransmission and ACK wait is the machine of ``sip/uas_2xx.py``, the session timer the
negotiation functions and machine of ``sip/session_timer.py``; this module carries their
actions out on its clock. Why a call ended is a :class:`~avatar_mf.ua.end_reason.CallEnd`.

Two-leg calls (RFC 7092 media-terminating B2BUA): when a :class:`CallBridge` is set
(``ua/b2bua.py``) and takes an INVITE, the bridge makes the call's media and the second leg;
responses to the MF's own INVITEs go to it; :meth:`UserAgent.send_provisional`,
:meth:`UserAgent.adopt_outgoing` and :meth:`UserAgent.end_call` are what it uses here.

Counters for ``/stats`` and ``/metrics``: ``stats``, a :class:`~avatar_mf.ua.stats.UaStats`
(calls started, answered, failed, ended, 2xx re-sent while waiting for the ACK, ends and
failures by label); the optional ``observe_setup`` and
``observe_duration`` callbacks get each call's setup time (INVITE to 2xx) and, for calls that
were answered, its duration (2xx to end). Every log line about a call carries its ``call_id``
as an ``extra`` field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip import session_timer, uas_2xx
from avatar_mf.sip.build import make_response, new_branch, new_tag, response_for_error
from avatar_mf.sip.dialog import Dialog, DialogId, dialog_id_of
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.session_timer import SessionRefresh, SessionTimer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction import State
from avatar_mf.sip.transaction_layer import ClientTransaction, ServerTransaction
from avatar_mf.sip.uri import SipUri, parse_uri
from avatar_mf.sip.validate import validate_request
from avatar_mf.ua.end_reason import FAILURE_LABELS, CallEnd, EndReason, is_failure
from avatar_mf.ua.media_seam import CallInfo, FailureCallback, MediaSession, SessionFactory
from avatar_mf.ua.stats import UaStats

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
#: The methods of ALLOW as a set (``method in ALLOW`` would match substrings such as "VITE").
ALLOWED_METHODS = frozenset(m.strip() for m in ALLOW.split(","))
SUPPORTED = "timer"
ACCEPT = "application/sdp"
#: Methods defined by SIP and its extensions that the MF does not handle: 405, not 501.
KNOWN_METHODS = frozenset(
    {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE"}
)


__all__ = [
    "ALLOW",
    "ALLOWED_METHODS",
    "FAILURE_LABELS",
    "Call",
    "CallBridge",
    "CallEnd",
    "EndReason",
    "UaTransport",
    "UserAgent",
    "UserAgentConfig",
    "is_failure",
]


@dataclass(frozen=True, slots=True)
class UserAgentConfig:
    host: str
    user_agent: str
    max_dialogs: int
    retry_after: int
    session_expires: int
    min_se: int
    #: Seconds between 100 Trying and the answer ("ring time"; lets labs test CANCEL).
    answer_delay: float = 0.0
    #: Peers whose P-Asserted-Identity is believed (RFC 3325 trust domain: the P-CSCF / IMS
    #: core). From any other source the header is ignored and the identity is the From URI.
    #: The default, loopback, is a lab default.
    asserted_identity_peers: tuple[IPv4Network | IPv6Network, ...] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )

    def asserts_identity(self, host: str) -> bool:
        """Whether a request from ``host`` (an IP literal) may assert the caller's identity.

        IPv4-mapped IPv6 addresses are checked as IPv4; anything not an IP address is not.
        """
        try:
            ip = ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.asserted_identity_peers)


class UaTransport(Protocol):
    """What the user agent needs below it besides the server transactions."""

    def send_request(self, request: Request, peer: Peer) -> ClientTransaction:
        """Send a request of the MF's own (BYE, UPDATE refresh) in a client transaction."""
        ...

    def send_response(self, response: Response, peer: Peer) -> None:
        """Send a response outside any transaction (2xx retransmissions, RFC 3261 13.3.1.4)."""
        ...

    def local_port(self, transport: str) -> int: ...


K = TypeVar("K", bound=Hashable)


class _ClockTimers(Generic[K]):
    """The clock handles of one machine's timers, by the machine's timer name."""

    __slots__ = ("_clock", "_handles")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handles: dict[K, TimerHandle] = {}

    def arm(self, name: K, delay: float, fire: Callable[[K], None]) -> None:
        self.disarm(name)
        self._handles[name] = self._clock.call_later(delay, lambda: self._fired(name, fire))

    def disarm(self, name: K) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def disarm_all(self) -> None:
        for name in list(self._handles):
            self.disarm(name)

    def _fired(self, name: K, fire: Callable[[K], None]) -> None:
        self._handles.pop(name, None)
        fire(name)


@dataclass(eq=False, slots=True)
class OkWait:
    """The last 2xx to an INVITE of the call, waiting for its ACK (RFC 3261 13.3.1.4)."""

    response: Response
    #: Where the 2xx goes (the source of the INVITE it answers).
    peer: Peer
    machine: uas_2xx.AckWait
    timers: _ClockTimers[uas_2xx.Timer]


@dataclass(eq=False, slots=True)
class SessionTimerState:
    """The call's session timer (RFC 4028): the machine and its clock handles."""

    machine: SessionRefresh
    timers: _ClockTimers[session_timer.Timer]


@dataclass(eq=False, slots=True)
class Reoffers:
    """In-dialog re-INVITEs and UPDATEs being answered (RFC 3261 14.2, RFC 3311 5.2)."""

    reinvite_pending: bool = False
    #: An UPDATE carrying an offer is being answered.
    update_pending: bool = False
    tasks: dict[ServerTransaction, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def offer_pending(self) -> bool:
        return self.reinvite_pending or self.update_pending


@dataclass(eq=False)
class Call:
    """One INVITE dialog at the UAS, from the INVITE to its end."""

    local_tag: str
    call_id: str
    peer: Peer
    invite_tx: ServerTransaction | None
    created: float
    session: SessionTimerState
    #: The session timer of the last 2xx (to the INVITE, a re-INVITE or an UPDATE).
    timer: SessionTimer = SessionTimer()
    dialog: Dialog | None = None
    media: MediaSession | None = None
    task: asyncio.Task[None] | None = None
    ok: OkWait | None = None
    reoffers: Reoffers = field(default_factory=Reoffers)
    #: Why the call ended (None while it goes on).
    end: CallEnd | None = None
    #: What the INVITE said about the caller (for logs and the admin session list).
    info: CallInfo | None = None
    #: Clock time the 2xx was first sent (0 until then).
    answered: float = 0.0
    #: The MF sent the INVITE of this dialog (the second leg of a two-leg call).
    outgoing: bool = False

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def confirmed(self) -> bool:
        """The ACK for the last 2xx came (a dialog the MF created as UAC needs none)."""
        if self.ok is None:
            return self.outgoing
        return self.ok.machine.confirmed

    @property
    def session_expires(self) -> int:
        return self.timer.expires

    @property
    def log_extra(self) -> dict[str, object]:
        """``extra`` fields of every log line about this call."""
        return {"call_id": self.call_id}


class CallBridge(Protocol):
    """Two-leg calls (``ua/b2bua.py``): the INVITEs it takes and its own INVITEs' responses."""

    def bridges(self, info: CallInfo) -> bool:
        """The INVITE described by ``info`` is a two-leg call (not a room)."""
        ...

    async def answer(
        self, call: Call, request: Request, info: CallInfo, on_failure: FailureCallback
    ) -> MediaSession:
        """The media of ``call`` once the second leg answered; raises SipError to refuse."""
        ...

    def on_invite_response(self, tx: ClientTransaction, response: Response) -> None: ...

    def on_invite_failed(self, tx: ClientTransaction, *, timeout: bool) -> None: ...


class UserAgent:
    """Transaction user for the MF. Construct with its collaborators; see the module doc."""

    def __init__(
        self,
        config: UserAgentConfig,
        *,
        clock: Clock,
        timers: TimerConfig,
        sessions: SessionFactory,
        sender: UaTransport,
        observe_setup: Callable[[float], None] | None = None,
        observe_duration: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        capacity: Callable[[], str | None] | None = None,
    ) -> None:
        self._cfg = config
        #: Why the node cannot take a call now besides draining and max_dialogs (None: it can).
        self._capacity = capacity
        self._refusing: str | None = None
        self._clock = clock
        self._timers = timers
        self._sessions = sessions
        self._sender = sender
        self._calls: dict[DialogId, Call] = {}
        self._pending: dict[int, Call] = {}  # id(invite server transaction) -> call
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        #: The random source of Retry-After values (tests seed it).
        self._rng = rng or random.Random()
        self.stats = UaStats()
        self._observe_setup = observe_setup
        self._observe_duration = observe_duration
        self.on_call_ended: Callable[[Call], None] | None = None
        #: Two-leg calls; None: every INVITE is answered by ``sessions``.
        self.bridge: CallBridge | None = None

    def reconfigure(self, config: UserAgentConfig) -> None:
        """Use ``config`` from the next request on (a configuration reload, SIGHUP); calls in
        progress keep the session timers they negotiated."""
        self._cfg = config

    # ------------------------------------------------------------------ introspection

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def has_room_for(self, dialogs: int) -> bool:
        """Whether ``dialogs`` more dialogs fit under ``max_dialogs`` beside the established
        calls and the INVITEs being answered (a two-leg call's second leg asks for one)."""
        return len(self._calls) + len(self._pending) + dialogs <= self._cfg.max_dialogs

    def retry_after_header(self) -> tuple[str, str]:
        """The Retry-After header a 503 for lack of capacity carries."""
        return ("Retry-After", str(self._cfg.retry_after))

    @property
    def pending_invites(self) -> int:
        return len(self._pending)

    def calls(self) -> list[Call]:
        """The established calls (their 2xx was sent)."""
        return list(self._calls.values())

    def pending_calls(self) -> list[Call]:
        """The calls whose INVITE is not answered yet."""
        return list(self._pending.values())

    # ------------------------------------------------------------------ TU interface

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        try:
            validate_request(request, supported=frozenset({"timer"}))
            self._dispatch(tx, request)
        except SipError as err:
            self._reject(tx, request, err)

    def on_ack(self, request: Request, source: Peer) -> None:
        try:
            did = dialog_id_of(request)
            seq = parse_cseq(request.headers.get("CSeq") or "").seq
        except SipError:
            return  # a malformed ACK is dropped, never answered (RFC 3261 17)
        call = self._calls.get(did) if did is not None else None
        if call is None or call.ended or call.ok is None:
            return
        if seq != _cseq_number(call.ok.response):
            return  # a late ACK for an earlier INVITE of the dialog (RFC 3261 13.2.2.4)
        self._run_ok(call, call.ok, call.ok.machine.on_ack())

    def on_cancel(self, invite_tx: ServerTransaction, cancel: Request) -> None:
        call = self._pending.pop(id(invite_tx), None)
        if call is None:
            return
        if invite_tx.final_response is None:
            invite_tx.respond(
                make_response(invite_tx.request, 487, to_tag=call.local_tag, headers=self._server())
            )
        self._finish(call, CallEnd(EndReason.CANCELLED), send_bye=False)

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        if tx.request.method == "INVITE" and self.bridge is not None:
            self.bridge.on_invite_response(tx, response)  # the MF sends no re-INVITE
            return
        if response.status < 200:
            return
        call = self._calls.get(self._client_dialog(tx))
        if call is None:
            return
        method = tx.request.method
        if method == "UPDATE" and response.status in (408, 481):
            # RFC 4028 10: a refresh that fails this way ends the session. After a 481 the UE
            # has no such dialog (RFC 3261 12.2.1.2, RFC 5057 5.1): a BYE would get 481 too.
            self._finish(
                call,
                CallEnd(EndReason.REFRESH_FAILED, str(response.status)),
                send_bye=response.status == 408,
            )

    def on_transaction_timeout(self, tx: ServerTransaction | ClientTransaction) -> None:
        if isinstance(tx, ClientTransaction) and tx.request.method == "INVITE" and self.bridge:
            self.bridge.on_invite_failed(tx, timeout=True)
        if isinstance(tx, ClientTransaction) and tx.request.method == "UPDATE":
            call = self._calls.get(self._client_dialog(tx))
            if call is not None:
                self._finish(call, CallEnd(EndReason.REFRESH_TIMEOUT), send_bye=True)

    def on_transport_error(self, tx: ServerTransaction | ClientTransaction) -> None:
        log.info(
            "transport error on %s transaction",
            tx.request.method,
            extra={"call_id": tx.request.headers.get("Call-ID") or ""},
        )
        if isinstance(tx, ClientTransaction) and tx.request.method == "INVITE" and self.bridge:
            self.bridge.on_invite_failed(tx, timeout=False)
        if isinstance(tx, ServerTransaction) and tx.state is State.TERMINATED:
            # The INVITE transaction is gone (RFC 3261 17.2.1 Figure 7: a transport error in
            # Proceeding terminates it): nobody can be answered, release the call now.
            call = self._pending.get(id(tx))
            if call is not None:
                self._finish(call, CallEnd(EndReason.TRANSPORT_ERROR), send_bye=False)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, tx: ServerTransaction, request: Request) -> None:
        method = request.method
        if method == "OPTIONS":
            self._options(tx, request)
            return
        if method not in ALLOWED_METHODS:
            self._not_handled(request)  # RFC 3261 8.2.1, before any dialog matching
        did = dialog_id_of(request)
        if did is None:
            if method == "INVITE":
                self._initial_invite(tx, request)
                return
            raise SipError(481)  # BYE, UPDATE outside a dialog
        call = self._calls.get(did)
        if call is None or call.dialog is None:
            raise SipError(481)
        call.dialog = call.dialog.receive(request)
        if method == "BYE":
            tx.respond(self._response(request, 200, call))
            self._finish(call, CallEnd(EndReason.BYE), send_bye=False)
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(tx, request, call)
        else:
            self._not_handled(request)

    def _not_handled(self, request: Request) -> NoReturn:
        if request.method in KNOWN_METHODS:
            raise SipError(405, headers=(("Allow", ALLOW),))
        raise SipError(501, headers=(("Allow", ALLOW),))

    def _reject(
        self, tx: ServerTransaction, request: Request, err: SipError, to_tag: str | None = None
    ) -> None:
        if request.method == "ACK":
            return
        if not _answerable(tx):
            return
        if to_tag is None:
            call = self._pending.get(id(tx))
            to_tag = call.local_tag if call is not None else new_tag()
        response = response_for_error(request, err, to_tag)
        tx.respond(response.with_headers(response.headers.add("Server", self._cfg.user_agent)))
        if err.status >= 500:
            log.info(
                "%s rejected %d %s",
                request.method,
                err.status,
                err.reason,
                extra={
                    "call_id": request.headers.get("Call-ID") or "",
                    "source": f"{tx.source.host}:{tx.source.port}",
                },
            )

    def _server(self) -> list[tuple[str, str]]:
        return [("Server", self._cfg.user_agent)]

    def _options(self, tx: ServerTransaction, request: Request) -> None:
        headers = [("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED)]
        self._check_capacity()
        tx.respond(make_response(request, 200, to_tag=new_tag(), headers=headers + self._server()))

    def unavailable(self) -> str | None:
        """Why a new call would be refused now (the 503 reason phrase), or None."""
        if self.draining:
            return "Draining"
        if len(self._calls) + len(self._pending) >= self._cfg.max_dialogs:
            return "Too Many Calls"
        return self._capacity() if self._capacity is not None else None

    def _check_capacity(self) -> None:
        """Raise the 503 an INVITE or OPTIONS gets while no call can be taken; log changes."""
        reason = self.unavailable()
        if reason != self._refusing:
            if reason is None:
                log.info("taking calls again")
            else:
                log.warning("cannot take calls: %s (INVITE and OPTIONS answered 503)", reason)
            self._refusing = reason
        if reason is not None:
            raise SipError(503, reason, headers=(self.retry_after_header(),))

    # ------------------------------------------------------------------ INVITE

    def _initial_invite(self, tx: ServerTransaction, request: Request) -> None:
        self._check_capacity()
        timer = self._negotiate_timer(request)
        call_id = request.headers.get("Call-ID") or ""
        call = Call(
            local_tag=new_tag(),
            call_id=call_id,
            peer=tx.source,
            invite_tx=tx,
            created=self._clock.now(),
            session=SessionTimerState(SessionRefresh(), _ClockTimers(self._clock)),
            timer=timer,
        )
        call.dialog = Dialog.from_request(request, call.local_tag)
        tx.local_tag = call.local_tag  # a CANCEL's 200 carries it too (RFC 3261 9.2)
        self._pending[id(tx)] = call
        self.stats.calls_started += 1
        info = call.info = self._call_info(request, tx.source)
        log.debug(
            "call %s: INVITE from %s to %s",
            call_id,
            info.identity,
            info.request_uri,
            extra={
                **call.log_extra,
                "source": f"{tx.source.host}:{tx.source.port}",
                "transport": tx.source.transport,
            },
        )
        call.task = self._spawn(self._answer(tx, request, call, info))

    def _negotiate_timer(self, request: Request) -> SessionTimer:
        """RFC 4028 9: choose Session-Expires and the refresher for the 2xx."""
        return session_timer.negotiate(
            request, session_expires=self._cfg.session_expires, min_se=self._cfg.min_se
        )

    def _call_info(self, request: Request, source: Peer) -> CallInfo:
        headers = request.headers
        frm = parse_name_addr(headers.get("From") or "")
        to = parse_name_addr(headers.get("To") or "")
        # RFC 3325 9.1: P-Asserted-Identity is believed only from the trust domain (the peers
        # configured as asserting it); from anyone else it is ignored, as if stripped.
        pai = headers.get_list("P-Asserted-Identity")
        if pai and not self._cfg.asserts_identity(source.host):
            log.info(
                "P-Asserted-Identity from %s ignored: not a peer that asserts identities",
                source.host,
                extra={"call_id": headers.get("Call-ID") or "", "source": source.host},
            )
            pai = []
        identity = parse_name_addr(pai[0]).uri if pai else frm.uri
        contacts = headers.get_list("Contact")
        return CallInfo(
            call_id=headers.get("Call-ID") or "",
            request_uri=request.uri,
            from_uri=frm.uri,
            to_uri=to.uri,
            identity=identity,
            contact=contacts[0] if contacts else "",
            source_host=source.host,
            asserted=bool(pai),
        )

    async def _answer(
        self, tx: ServerTransaction, request: Request, call: Call, info: CallInfo
    ) -> None:
        try:
            if self._cfg.answer_delay > 0:
                await self._sleep(self._cfg.answer_delay)
                if call.ended:
                    return

            def on_failure(reason: str) -> None:
                self._media_failed(call, reason)

            if self.bridge is not None and self.bridge.bridges(info):
                media = await self.bridge.answer(call, request, info, on_failure)
            else:
                media = await self._sessions.create(info, request.body, on_failure)
        except SipError as err:
            if not call.ended:
                self.stats.calls_failed += 1
                end = CallEnd(EndReason.REJECTED, str(err.status))
                self._finish(call, end, send_bye=False, error=err)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "media session creation failed for %s", call.call_id, extra=call.log_extra
            )
            if not call.ended:
                self.stats.calls_failed += 1
                error = SipError(500, "Media Setup Failed")
                end = CallEnd(EndReason.MEDIA_SETUP_FAILED)
                self._finish(call, end, send_bye=False, error=error)
            return
        if call.ended or not _answerable(tx):
            # CANCELled (or the transaction failed) while the media was being set up.
            self._finish(call, CallEnd(EndReason.INVITE_TX_ENDED), send_bye=False)
            await self._close_media(call, media)
            return
        self._pending.pop(id(tx), None)
        call.media = media
        assert call.dialog is not None
        self._calls[call.dialog.id] = call
        call.invite_tx = None
        ok = self._response(request, 200, call, body=media.local_sdp)
        self.stats.calls_answered += 1
        call.answered = now = self._clock.now()
        self._send_ok(call, tx, ok)
        try:
            media.answer_sent()
        except Exception:
            log.exception("starting the media of %s failed", call.call_id, extra=call.log_extra)
        self._arm_session_timer(call)
        setup = now - call.created
        if self._observe_setup is not None:
            self._observe_setup(setup)
        log.info(
            "call %s answered in %.0f ms",
            call.call_id,
            setup * 1000,
            extra={**call.log_extra, "setup_ms": round(setup * 1000, 1)},
        )

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds on the injected clock (a fake clock makes it instant)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        handle = self._clock.call_later(delay, wake)
        try:
            await done
        finally:
            handle.cancel()

    def _response(
        self, request: Request, status: int, call: Call, *, body: bytes = b""
    ) -> Response:
        headers: list[tuple[str, str]] = []
        if request.method == "INVITE" and 200 <= status < 300:
            # RFC 3261 12.1.1: every Record-Route of the request, in order, into the 2xx (the
            # UE builds its route set from them; without them its ACK and BYE skip the proxy).
            headers.extend(("Record-Route", rr) for rr in request.headers.get_all("Record-Route"))
        headers += [
            ("Contact", self._contact(call.peer)),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
        ]
        if request.method in ("INVITE", "UPDATE") and status == 200:
            headers.extend(session_timer.response_headers(call.timer, request))
        headers.extend(self._server())
        return make_response(
            request,
            status,
            to_tag=call.local_tag,
            headers=headers,
            body=body,
            content_type="application/sdp" if body else None,
        )

    def _send_ok(self, call: Call, tx: ServerTransaction, ok: Response) -> None:
        """Send the 2xx to an INVITE and keep it until its ACK (RFC 3261 13.3.1.4, the machine
        of ``sip/uas_2xx.py``): a 2xx of a re-INVITE replaces the one before."""
        if call.ok is not None:
            self._run_ok(call, call.ok, call.ok.machine.stop())
        tx.respond(ok)
        machine = uas_2xx.AckWait(t1=self._timers.t1, t2=self._timers.t2)
        wait = OkWait(ok, tx.source, machine, _ClockTimers(self._clock))
        call.ok = wait
        self._run_ok(call, wait, wait.machine.start())

    def _run_ok(self, call: Call, wait: OkWait, actions: list[uas_2xx.Action]) -> None:
        """Carry out the actions of the call's 2xx machine."""
        for action in actions:
            match action:
                case uas_2xx.Arm(timer, delay):
                    wait.timers.arm(
                        timer, delay, lambda t: self._run_ok(call, wait, wait.machine.on_timer(t))
                    )
                case uas_2xx.Disarm(timer):
                    wait.timers.disarm(timer)
                case uas_2xx.Resend():
                    self._sender.send_response(wait.response, wait.peer)
                    self.stats.ok_retransmissions += 1
                case uas_2xx.AckTimedOut():
                    self._finish(call, CallEnd(EndReason.NO_ACK), send_bye=True)

    def _reoffer(self, tx: ServerTransaction, request: Request, call: Call) -> None:
        is_invite = request.method == "INVITE"
        reoffers = call.reoffers
        offer_pending = reoffers.offer_pending
        # RFC 3261 14.2: an INVITE overlapping another INVITE of the dialog (not yet answered,
        # or its 2xx not yet ACKed) gets 500 with a random Retry-After of 0-10 s; RFC 3311
        # 5.2: so does an UPDATE offer while an offer received is unanswered. (491 is for
        # glare with an offer the MF sent; its refresh UPDATEs carry none.)
        if (is_invite and (offer_pending or not call.confirmed)) or (
            not is_invite and request.body and offer_pending
        ):
            raise SipError(500, headers=(("Retry-After", str(self._rng.randint(0, 10))),))
        # Negotiated first: a 422 must leave the media untouched.
        timer = self._negotiate_timer(request)
        if is_invite:
            reoffers.reinvite_pending = True
        elif request.body:
            reoffers.update_pending = True
        reoffers.tasks[tx] = self._spawn(self._answer_reoffer(tx, request, call, timer))

    async def _answer_reoffer(
        self, tx: ServerTransaction, request: Request, call: Call, timer: SessionTimer
    ) -> None:
        is_invite = request.method == "INVITE"
        try:
            try:
                if call.media is None:
                    raise SipError(500, "No media session")
                if request.body:
                    answer = await call.media.renegotiate(request.body)
                else:
                    answer = b"" if not is_invite else call.media.local_sdp
            except SipError as err:
                self._reject(tx, request, err)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renegotiation failed for %s", call.call_id, extra=call.log_extra)
                self._reject(tx, request, SipError(500, "Renegotiation Failed"))
                return
            if call.ended or not _answerable(tx):
                self._reject(tx, request, SipError(481))
                return
            call.timer = timer
            ok = self._response(request, 200, call, body=answer)
            if is_invite:
                self._send_ok(call, tx, ok)
            else:
                tx.respond(ok)
            self._arm_session_timer(call)
        finally:
            reoffers = call.reoffers
            if reoffers.tasks.get(tx) is asyncio.current_task():
                del reoffers.tasks[tx]
            if is_invite:
                reoffers.reinvite_pending = False
            elif request.body:
                reoffers.update_pending = False

    # ------------------------------------------------------------------ session timers

    def _arm_session_timer(self, call: Call) -> None:
        """A 2xx with the call's session timer went out: (re)start its machine."""
        self._run_session(call, call.session.machine.arm(call.timer))

    def _run_session(self, call: Call, actions: list[session_timer.Action]) -> None:
        """Carry out the actions of the call's session timer machine (RFC 4028 10)."""
        state = call.session
        for action in actions:
            match action:
                case session_timer.Arm(timer, delay):
                    state.timers.arm(
                        timer, delay, lambda t: self._run_session(call, state.machine.on_timer(t))
                    )
                case session_timer.Disarm(timer):
                    state.timers.disarm(timer)
                case session_timer.SendRefresh(timer):
                    if not call.ended:
                        headers = session_timer.refresh_headers(timer)
                        self._send_in_dialog(call, "UPDATE", headers)
                case session_timer.Expired():
                    self._finish(call, CallEnd(EndReason.SESSION_EXPIRED), send_bye=True)

    # ------------------------------------------------------------------ ending calls

    def _media_failed(self, call: Call, reason: str) -> None:
        log.info("call %s media failed: %s", call.call_id, reason, extra=call.log_extra)
        if not call.ended:
            error = SipError(500, "Media Setup Failed")
            if reason == EndReason.MEDIA_TIMEOUT.value[1]:
                end = CallEnd(EndReason.MEDIA_TIMEOUT)
            else:
                end = CallEnd(EndReason.MEDIA_FAILED, reason)
            self._finish(call, end, send_bye=True, error=error)

    # ------------------------------------------------------------------ for the bridge

    def send_provisional(self, call: Call, status: int, reason: str | None = None) -> None:
        """Send a 101-199 on the pending INVITE of ``call`` (with its To tag and Contact, and
        the INVITE's Record-Route, RFC 3261 12.1.1); nothing once it is answered or ended."""
        tx = call.invite_tx
        if tx is None or call.ended or not _answerable(tx):
            return
        headers = [("Record-Route", rr) for rr in tx.request.headers.get_all("Record-Route")]
        headers += [("Contact", self._contact(call.peer)), *self._server()]
        response = make_response(tx.request, status, reason, to_tag=call.local_tag, headers=headers)
        tx.respond(response)

    def adopt_outgoing(
        self,
        dialog: Dialog,
        peer: Peer,
        media: MediaSession,
        timer: SessionTimer,
        info: CallInfo,
    ) -> Call:
        """Take in a dialog the MF created as UAC (its INVITE answered 2xx and ACKed): from now
        on its in-dialog requests, session timer (``timer``, :func:`~avatar_mf.ua.uac_invite.
        leg_timer`) and end are handled like those of any call. ``peer``: where its requests
        go when the dialog names no transport (the outbound proxy)."""
        now = self._clock.now()
        call = Call(
            local_tag=dialog.local_tag,
            call_id=dialog.call_id,
            peer=peer,
            invite_tx=None,
            created=now,
            session=SessionTimerState(SessionRefresh(), _ClockTimers(self._clock)),
            timer=timer,
            dialog=dialog,
            media=media,
            info=info,
            answered=now,
            outgoing=True,
        )
        self._calls[dialog.id] = call
        self.stats.calls_started += 1
        self.stats.calls_answered += 1
        self._arm_session_timer(call)
        return call

    def end_call(self, call: Call, end: CallEnd, error: SipError | None = None) -> None:
        """End ``call`` for ``end`` (its text is the BYE's Reason): BYE when established,
        ``error`` (default 500) to its INVITE when still pending."""
        self._finish(call, end, send_bye=True, error=error)

    def drop(self, call: Call, reason: str = "dropped") -> None:
        """End a call: BYE when established, 503 to its INVITE when still pending (operator
        action, drain timeout). ``reason``: the text of the log line and the BYE's Reason."""
        self._finish(call, CallEnd(EndReason.OPERATOR, reason), send_bye=True, error=SipError(503))

    def _finish(
        self, call: Call, end: CallEnd, *, send_bye: bool, error: SipError | None = None
    ) -> None:
        """End ``call`` once: timers off, pending requests answered, BYE if asked and the call
        was established, media closed, counters and ``on_call_ended``.

        An INVITE still unanswered gets ``error`` (default 500): its transaction has no timer
        in Proceeding, so without an answer it and the UAC would wait forever.
        """
        if call.ended:
            return
        call.end = end
        reason = end.text
        if call.ok is not None:
            self._run_ok(call, call.ok, call.ok.machine.stop())
        self._run_session(call, call.session.machine.stop())
        current = asyncio.current_task()
        tx = call.invite_tx
        if tx is not None:
            self._pending.pop(id(tx), None)
            self._reject(tx, tx.request, error or SipError(500), call.local_tag)
        # RFC 3261 15.1.2: requests still pending in the dialog are answered, 487 recommended.
        for pending_tx, reoffer_task in list(call.reoffers.tasks.items()):
            self._reject(pending_tx, pending_tx.request, SipError(487))
            if reoffer_task is not current:
                reoffer_task.cancel()
        call.reoffers.tasks.clear()
        established = call.dialog is not None and self._calls.get(call.dialog.id) is call
        if established and call.dialog is not None:
            del self._calls[call.dialog.id]
            if send_bye:
                self._send_in_dialog(call, "BYE", (("Reason", f'SIP;text="{reason}"'),))
        task, call.task = call.task, None
        if task is not None and not task.done() and call.media is None and task is not current:
            task.cancel()
        if call.media is not None:
            media, call.media = call.media, None
            self._spawn(self._close_media(call, media))
        self.stats.calls_ended += 1
        label = end.label
        self.stats.end_reasons[label] += 1
        if end.failure:
            self.stats.failure_reasons[label] += 1
        duration = self._clock.now() - call.answered if call.answered else None
        if duration is not None and self._observe_duration is not None:
            self._observe_duration(duration)
        if log.isEnabledFor(logging.INFO):  # the extras are built only for a line written
            extra: dict[str, object] = {**call.log_extra, "reason": label}
            if duration is not None:
                extra["duration_s"] = round(duration, 3)
            log.info("call %s ended: %s", call.call_id, reason, extra=extra)
        if self.on_call_ended is not None:
            self.on_call_ended(call)

    def _send_in_dialog(
        self, call: Call, method: str, headers: tuple[tuple[str, str], ...]
    ) -> None:
        if call.dialog is None:
            return
        peer = self._destination(call)
        dialog, request = call.dialog.next_request(
            method, contact=self._contact(call.peer), headers=(*headers, *self._server_ua())
        )
        call.dialog = dialog
        port = self._sender.local_port(peer.transport)
        via = (
            f"SIP/2.0/{peer.transport.upper()} {self._cfg.host}:{port};branch={new_branch()};rport"
        )
        request = request.with_headers(request.headers.prepend("Via", via))
        try:
            self._sender.send_request(request, peer)
        except Exception:
            log.exception(
                "could not send %s for call %s", method, call.call_id, extra=call.log_extra
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _close_media(self, call: Call, media: MediaSession) -> None:
        try:
            await media.close()
        except Exception:
            log.exception("closing the media of %s failed", call.call_id, extra=call.log_extra)

    def _server_ua(self) -> tuple[tuple[str, str], ...]:
        return (("User-Agent", self._cfg.user_agent),)

    def _destination(self, call: Call) -> Peer:
        assert call.dialog is not None
        if call.peer.transport in ("ws", "wss"):
            # RFC 7118 section 5: the MF, the WebSocket server, cannot connect to a browser;
            # in-dialog requests go over the connection the dialog came on, whatever the
            # remote target says (a JsSIP Contact names a ".invalid" host, transport=ws).
            return call.peer
        hop = call.dialog.first_hop()
        with contextlib.suppress(SipError):
            uri = parse_uri(hop)
            if isinstance(uri, SipUri):
                transport = (uri.transport or call.peer.transport).lower()
                port = uri.port or (5061 if uri.scheme == "sips" else 5060)
                host = uri.host.strip("[]")
                same = transport == call.peer.transport and call.peer.reliable
                return Peer(transport, host, port, call.peer.connection_id if same else None)
        return call.peer

    def _contact(self, peer: Peer) -> str:
        port = self._sender.local_port(peer.transport)
        host = self._cfg.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"<sip:mf@{host}:{port};transport={peer.transport}>"

    def _client_dialog(self, tx: ClientTransaction) -> DialogId:
        request = tx.request
        frm = parse_name_addr(request.headers.get("From") or "")
        to = parse_name_addr(request.headers.get("To") or "")
        return (request.headers.get("Call-ID") or "", frm.tag or "", to.tag or "")

    async def close_all(self, reason: str) -> None:
        """End every call with BYE and release its media (shutdown). ``reason``: the text of
        the log lines and the BYEs' Reason."""
        end = CallEnd(EndReason.SHUTDOWN, reason)
        for call in list(self._calls.values()):
            self._finish(call, end, send_bye=True)
        for call in list(self._pending.values()):
            self._finish(call, end, send_bye=False, error=SipError(503))


def _answerable(tx: ServerTransaction) -> bool:
    """The transaction can still take a final response from the TU."""
    return tx.alive and tx.state is not State.TERMINATED and tx.final_response is None


def _cseq_number(message: Request | Response) -> int:
    try:
        return parse_cseq(message.headers.get("CSeq") or "").seq
    except SipError:
        return -1
