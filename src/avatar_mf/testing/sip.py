"""Shipped fakes for testing SIP call flows against the MF's user agent without a network.

Everything here is sans-IO: time is a :class:`~avatar_mf.testing.clock.FakeClock`, the wire is a
list, media sessions are fakes whose behaviour a test controls.

* :class:`RecordingWire` -- the transport under the :class:`~avatar_mf.sip.transaction_layer.
  TransactionLayer` (its ``send``) and the user agent's :class:`~avatar_mf.ua.user_agent.
  UaTransport` (``send_request`` through the layer, ``send_response`` recorded as sent outside
  any transaction, ``local_port``). Every message is kept with its :class:`Peer` and the time.
* :class:`UacDialogState` -- the UE's side of one dialog: builds INVITE, ACK, CANCEL, BYE,
  re-INVITE, UPDATE, OPTIONS (or any method) with the right Via branch, CSeq, tags and Contact,
  so tests read like call flows, and answers the MF's own requests.
* :class:`FakeSessionFactory` / :class:`FakeMediaSession` -- implement
  :class:`~avatar_mf.ua.media_seam.SessionFactory` / :class:`~avatar_mf.ua.media_seam.
  MediaSession`: answer with a given body, refuse with a :class:`SipError`, raise anything,
  wait for an :class:`asyncio.Event` before answering, fail later through ``on_failure``, and
  count every ``create``, ``renegotiate`` and ``close``.
* :class:`UaHarness` -- the three above wired to a real :class:`UserAgent` and a real
  :class:`TransactionLayer` (as ``node/app.py`` wires them), with :meth:`UaHarness.settle` to
  let the user agent's tasks run and :meth:`UaHarness.assert_idle`, the leak invariant: no call,
  no pending INVITE, no transaction and no armed timer once the flows ended, every media session
  closed exactly once, no task failed.

A call flow::

    mf = UaHarness()                      # inside a running event loop
    ue = UacDialogState()
    await mf.deliver(ue.invite(offer))    # 100 Trying, then the factory answers
    ok = mf.wire.final("INVITE")          # 200 with the SDP answer
    await mf.deliver(ue.ack(ok))          # learns the MF's To tag
    await mf.deliver(ue.bye())
    await mf.assert_idle()
    mf.close()
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avatar_mf.clock import Clock
from avatar_mf.sip.build import make_response, new_branch, new_call_id, new_tag
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.message import Headers, Message, Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import ClientTransaction, TransactionLayer
from avatar_mf.testing.clock import FakeClock
from avatar_mf.ua.media_seam import CallInfo, FailureCallback, MediaSession
from avatar_mf.ua.user_agent import UserAgent, UserAgentConfig

__all__ = [
    "DEFAULT_ANSWER",
    "DEFAULT_UA_CONFIG",
    "UE_TCP",
    "UE_UDP",
    "FakeMediaSession",
    "FakeSessionFactory",
    "RecordingWire",
    "Sent",
    "UaHarness",
    "UacDialogState",
    "cseq_of",
    "sip_error_with_warning",
    "to_tag_of",
]

#: Where the test UE sends from, over UDP and over one TCP connection.
UE_UDP = Peer("udp", "10.0.0.1", 5060)
UE_TCP = Peer("tcp", "10.0.0.1", 40000, connection_id=7)

#: A plausible answer to an IMS avatar offer: audio refused, one data channel m-line accepted.
DEFAULT_ANSWER = (
    b"v=0\r\n"
    b"o=avatar-mf 1 1 IN IP4 10.0.0.2\r\n"
    b"s=-\r\n"
    b"c=IN IP4 10.0.0.2\r\n"
    b"t=0 0\r\n"
    b"m=audio 0 RTP/AVP 97\r\n"
    b"m=application 40000 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    b"a=setup:passive\r\n"
    b"a=sctp-port:5000\r\n"
    b'a=dcmap:1000 label="avatar-meta";subprotocol="3gpp-ar-metadata"\r\n'
)

DEFAULT_UA_CONFIG = UserAgentConfig(
    host="10.0.0.2",
    user_agent="avatar-mf-test",
    max_dialogs=10,
    retry_after=30,
    session_expires=1800,
    min_se=90,
)


def cseq_of(message: Message) -> tuple[int, str]:
    """``(number, method)`` of a message's CSeq."""
    cseq = parse_cseq(message.headers.get("CSeq") or "")
    return cseq.seq, cseq.method


def to_tag_of(message: Message) -> str | None:
    """The tag of a message's To header (None when it has none)."""
    return parse_name_addr(message.headers.get("To") or "").tag


def _branch_of(message: Message) -> str:
    via = message.headers.get("Via") or ""
    for param in via.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "branch":
            return value.strip()
    return ""


# --------------------------------------------------------------------------- the wire


@dataclass(frozen=True, slots=True)
class Sent:
    """One message the MF sent.

    Attributes:
        at: the clock time it was sent.
        message: the request or response.
        peer: where it went.
        stateless: True for a response the user agent sent outside any transaction (its 2xx
            retransmissions, RFC 3261 13.3.1.4), False for everything the layer sent.
    """

    at: float
    message: Message
    peer: Peer
    stateless: bool = False

    @property
    def method(self) -> str:
        """The request method, or the CSeq method of a response."""
        if isinstance(self.message, Request):
            return self.message.method
        return cseq_of(self.message)[1]

    @property
    def status(self) -> int | None:
        return self.message.status if isinstance(self.message, Response) else None

    @property
    def call_id(self) -> str:
        return self.message.headers.get("Call-ID") or ""


class RecordingWire:
    """A recording transport: the layer's ``send`` and the user agent's ``UaTransport``.

    Args:
        clock: stamps every message with the time it was sent.
        ports: the local port per transport (``local_port``), 5060 for any not listed.

    Attributes:
        layer: the transaction layer ``send_request`` goes through; set it after building the
            layer (the layer needs the wire's ``send`` first, as in ``node/app.py``).
        sent: every message sent, in order.
        fail: when set, every send raises :class:`ConnectionResetError` (a transport error).
    """

    def __init__(self, clock: Clock, *, ports: Mapping[str, int] | None = None) -> None:
        self._clock = clock
        self._ports = dict(ports or {})
        self.layer: TransactionLayer | None = None
        self.sent: list[Sent] = []
        self.fail = False

    # -- the layer's send and UaTransport -------------------------------------------------

    def send(self, message: Message, peer: Peer) -> None:
        """The transaction layer's ``send``: records ``message`` (or raises when failing)."""
        if self.fail:
            raise ConnectionResetError(f"{peer.transport}:{peer.host}:{peer.port} is gone")
        self.sent.append(Sent(self._clock.now(), message, peer))

    def send_request(self, request: Request, peer: Peer) -> ClientTransaction:
        if self.layer is None:
            raise RuntimeError("RecordingWire.layer is not set")
        return self.layer.send_request(request, peer)

    def send_response(self, response: Response, peer: Peer) -> None:
        if self.fail:
            return  # what node/app.py's wire does: log the OSError and carry on
        self.sent.append(Sent(self._clock.now(), response, peer, stateless=True))

    def local_port(self, transport: str) -> int:
        return self._ports.get(transport.lower(), 5060)

    # -- queries --------------------------------------------------------------------------

    def select(
        self,
        method: str | None = None,
        *,
        status: int | None = None,
        call_id: str | None = None,
        requests: bool | None = None,
    ) -> list[Sent]:
        """The records matching every filter given.

        ``method`` is the request method or the response's CSeq method; ``requests`` True
        keeps only requests, False only responses.
        """
        out: list[Sent] = []
        for record in self.sent:
            is_request = isinstance(record.message, Request)
            if requests is not None and is_request != requests:
                continue
            if method is not None and record.method != method:
                continue
            if status is not None and record.status != status:
                continue
            if call_id is not None and record.call_id != call_id:
                continue
            out.append(record)
        return out

    def responses(
        self, method: str | None = None, *, status: int | None = None, call_id: str | None = None
    ) -> list[Response]:
        """Responses sent (first transmissions and retransmissions alike), in order."""
        out: list[Response] = []
        for record in self.select(method, status=status, call_id=call_id, requests=False):
            assert isinstance(record.message, Response)
            out.append(record.message)
        return out

    def requests(self, method: str | None = None, *, call_id: str | None = None) -> list[Request]:
        """Requests the MF sent (its BYE and UPDATE, with their retransmissions), in order."""
        out: list[Request] = []
        for record in self.select(method, call_id=call_id, requests=True):
            assert isinstance(record.message, Request)
            out.append(record.message)
        return out

    def statuses(self, method: str | None = None, *, call_id: str | None = None) -> list[int]:
        return [r.status for r in self.responses(method, call_id=call_id)]

    def final(
        self, method: str = "INVITE", *, call_id: str | None = None, status: int | None = None
    ) -> Response:
        """The last final response to ``method``; fails when there is none."""
        finals = [
            r for r in self.responses(method, call_id=call_id, status=status) if r.status >= 200
        ]
        if not finals:
            raise AssertionError(f"no final response to {method} (sent: {self.summary()})")
        return finals[-1]

    def times(
        self, method: str | None = None, *, status: int | None = None, requests: bool | None = None
    ) -> list[float]:
        """When the matching messages were sent."""
        return [r.at for r in self.select(method, status=status, requests=requests)]

    def summary(self) -> list[str]:
        """A compact transcript, e.g. ``['100 INVITE', '200 INVITE', 'BYE']``, for messages."""
        out: list[str] = []
        for record in self.sent:
            if isinstance(record.message, Request):
                out.append(record.message.method)
            else:
                out.append(f"{record.message.status} {record.method}")
        return out

    def clear(self) -> None:
        self.sent.clear()


# --------------------------------------------------------------------------- the UE


@dataclass
class UacDialogState:
    """The UE (UAC) side of one dialog with the MF: builds the requests of a call flow.

    Each new request gets a fresh RFC 3261 branch and the next CSeq; in-dialog requests carry
    the MF's To tag once :meth:`learn` saw it. Retransmit a request by delivering the same
    object again.

    Attributes:
        peer: where the UE sends from (the Via sent-by and the Contact follow it).
        call_id, local_tag: the UE's Call-ID and From tag.
        remote_tag: the MF's To tag, once learnt from a response.
        cseq: the CSeq number of the last request built.
        last_invite: the last INVITE built (initial or re-INVITE): ACK and CANCEL refer to it.
    """

    peer: Peer = UE_UDP
    call_id: str = field(default_factory=lambda: new_call_id("10.0.0.1"))
    local_tag: str = field(default_factory=new_tag)
    remote_tag: str | None = None
    local_uri: str = "sip:+15551230001@ims.example.net"
    remote_uri: str = "sip:avatar@mf.example.net"
    request_uri: str = "sip:avatar@10.0.0.2:5060"
    cseq: int = 0
    last_invite: Request | None = None

    @property
    def contact(self) -> str:
        return f"<sip:ue@{self.peer.host}:{self.peer.port};transport={self.peer.transport}>"

    def _via(self, branch: str) -> str:
        return (
            f"SIP/2.0/{self.peer.transport.upper()} {self.peer.host}:{self.peer.port}"
            f";branch={branch};rport"
        )

    def _to(self) -> str:
        to = f"<{self.remote_uri}>"
        return f"{to};tag={self.remote_tag}" if self.remote_tag else to

    def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
        branch: str | None = None,
        to_tag: str | None = None,
    ) -> Request:
        """A request of ``method`` in this dialog (out of dialog until the To tag is known).

        ``cseq`` overrides the next CSeq number (the counter is not moved); ``to_tag`` forces
        a To tag (for a request naming a dialog that does not exist).
        """
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to = self._to()
        if to_tag is not None:
            to = f"<{self.remote_uri}>;tag={to_tag}"
        pairs: list[tuple[str, str]] = [
            ("Via", self._via(branch or new_branch())),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.contact),
        ]
        pairs.extend(headers)
        if body:
            pairs.append(("Content-Type", "application/sdp"))
        return Request(method, self.request_uri, Headers.of(pairs), body)

    def invite(self, body: bytes = b"", *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """The initial INVITE, or a re-INVITE once the dialog's To tag is known."""
        self.last_invite = self.request("INVITE", body=body, headers=headers)
        return self.last_invite

    def ack(self, response: Response | None = None) -> Request:
        """The ACK for a response to the last INVITE.

        For a 2xx (or no response given) it is a new transaction (RFC 3261 13.2.2.4): a new
        branch, the INVITE's CSeq number, the To tag of ``response`` (learnt). For a 300-699
        it is part of the INVITE transaction (RFC 3261 17.1.1.3): the INVITE's branch, and the
        To of the response (not learnt: no dialog).
        """
        invite = self.last_invite
        if invite is None:
            raise ValueError("no INVITE to acknowledge")
        number = cseq_of(invite)[0]
        if response is not None and response.status >= 300:
            headers = invite.headers.set("CSeq", f"{number} ACK")
            headers = headers.set("To", response.headers.get("To") or self._to())
            return Request("ACK", invite.uri, headers.remove("Content-Type"))
        if response is not None:
            self.learn(response)
        return self.request("ACK", cseq=number)

    def cancel(self, invite: Request | None = None) -> Request:
        """The CANCEL for ``invite`` (default the last INVITE): its branch, To and CSeq number
        (RFC 3261 9.1)."""
        target = invite or self.last_invite
        if target is None:
            raise ValueError("no INVITE to cancel")
        number = cseq_of(target)[0]
        headers = target.headers.set("CSeq", f"{number} CANCEL").remove("Content-Type")
        headers = headers.remove("Contact")
        return Request("CANCEL", target.uri, headers)

    def bye(self, *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        return self.request("BYE", headers=headers)

    def update(self, body: bytes = b"", *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        return self.request("UPDATE", body=body, headers=headers)

    def options(self) -> Request:
        return self.request("OPTIONS", headers=(("Accept", "application/sdp"),))

    def learn(self, response: Response) -> None:
        """Take the MF's To tag from a response that carries one."""
        tag = to_tag_of(response)
        if tag:
            self.remote_tag = tag

    def reply(
        self, request: Request, status: int, *, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """The UE's response to a request the MF sent (its BYE or refresh UPDATE)."""
        return make_response(request, status, to_tag=self.local_tag, headers=headers)


# --------------------------------------------------------------------------- media fakes


class FakeMediaSession:
    """A :class:`~avatar_mf.ua.media_seam.MediaSession` that records what the UA asks.

    Attributes:
        call, offer: what the factory was given.
        local_sdp: the current answer.
        offers: every re-offer passed to :meth:`renegotiate`.
        reoffer_answer: the answer :meth:`renegotiate` returns (default: ``local_sdp``).
        reoffer_error: raised by :meth:`renegotiate` instead of answering (a SipError(488)
            refuses the re-offer; anything else is a bug in the media layer).
        reoffer_gate: when set, :meth:`renegotiate` waits for it before answering.
        close_count: how many times :meth:`close` was called (the UA must call it once).
        answer_sent_count: how many times :meth:`answer_sent` was called (once per answered
            call, never for a CANCELled or refused one).
    """

    def __init__(
        self, call: CallInfo, offer: bytes, on_failure: FailureCallback, answer: bytes
    ) -> None:
        self.call = call
        self.offer = offer
        self.local_sdp = answer
        self._on_failure = on_failure
        self.offers: list[bytes] = []
        self.reoffer_answer: bytes | None = None
        self.reoffer_error: BaseException | None = None
        self.reoffer_gate: asyncio.Event | None = None
        self.close_count = 0
        self.answer_sent_count = 0
        #: Called from :meth:`answer_sent` (tests record what the wire holds at that moment).
        self.on_answer_sent: Callable[[FakeMediaSession], None] | None = None

    @property
    def closed(self) -> bool:
        return self.close_count > 0

    async def renegotiate(self, offer: bytes) -> bytes:
        self.offers.append(offer)
        if self.reoffer_gate is not None:
            await self.reoffer_gate.wait()
        if self.reoffer_error is not None:
            raise self.reoffer_error
        if self.reoffer_answer is not None:
            self.local_sdp = self.reoffer_answer
        return self.local_sdp

    def answer_sent(self) -> None:
        self.answer_sent_count += 1
        if self.on_answer_sent is not None:
            self.on_answer_sent(self)

    async def close(self) -> None:
        self.close_count += 1

    def fail(self, reason: str = "DTLS setup timeout") -> None:
        """The media fails on its own (as a session does when DTLS never comes up)."""
        self._on_failure(reason)


class FakeSessionFactory:
    """A :class:`~avatar_mf.ua.media_seam.SessionFactory` with controllable behaviour.

    Args:
        answer: the SDP answer of every session created.
        error: raised by :meth:`create` instead of answering (``SipError(488, headers=...)``
            to refuse the offer, any other exception to simulate a broken media layer).
        gate: when set, :meth:`create` waits for it before answering (a slow answer: tests
            retransmit the INVITE or CANCEL it meanwhile).
        ignore_cancel: when the wait for ``gate`` is cancelled, finish creating the session
            anyway and return it (as a factory shielding a half-built session would): the UA
            must then close it.

    Attributes:
        sessions: every media session created, in order.
        calls, offers, failure_callbacks: what each :meth:`create` call was given.
        cancelled: how many :meth:`create` calls were cancelled while waiting.
    """

    def __init__(
        self,
        *,
        answer: bytes = DEFAULT_ANSWER,
        error: BaseException | None = None,
        gate: asyncio.Event | None = None,
        ignore_cancel: bool = False,
    ) -> None:
        self.answer = answer
        self.error = error
        self.gate = gate
        self.ignore_cancel = ignore_cancel
        self.sessions: list[FakeMediaSession] = []
        self.calls: list[CallInfo] = []
        self.offers: list[bytes] = []
        self.failure_callbacks: list[FailureCallback] = []
        self.cancelled = 0
        #: Given to every session created: called from its :meth:`FakeMediaSession.answer_sent`.
        self.on_answer_sent: Callable[[FakeMediaSession], None] | None = None

    @property
    def create_count(self) -> int:
        return len(self.calls)

    @property
    def open_sessions(self) -> list[FakeMediaSession]:
        return [s for s in self.sessions if not s.closed]

    async def create(
        self, call: CallInfo, offer: bytes, on_failure: FailureCallback
    ) -> MediaSession:
        self.calls.append(call)
        self.offers.append(offer)
        self.failure_callbacks.append(on_failure)
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                if not self.ignore_cancel:
                    raise
        if self.error is not None:
            raise self.error
        session = FakeMediaSession(call, offer, on_failure, self.answer)
        session.on_answer_sent = self.on_answer_sent
        self.sessions.append(session)
        return session


# --------------------------------------------------------------------------- the harness


class UaHarness:
    """A real :class:`UserAgent` over a real :class:`TransactionLayer`, a :class:`FakeClock`,
    a :class:`RecordingWire` and a :class:`FakeSessionFactory`, wired as in ``node/app.py``.

    Build it inside a running event loop (an ``async def`` test or fixture): the user agent
    answers in tasks, and the harness records every task the product creates (through the
    loop's task factory; :meth:`close` restores it) so a failed or leaked one is reported.
    """

    def __init__(
        self,
        config: UserAgentConfig = DEFAULT_UA_CONFIG,
        *,
        timers: TimerConfig | None = None,
        sessions: FakeSessionFactory | None = None,
        clock: FakeClock | None = None,
        rng: random.Random | None = None,
        capacity: Callable[[], str | None] | None = None,
    ) -> None:
        self.clock = clock or FakeClock(start=1000.0)
        #: The UA's random source (Retry-After values), seeded so runs repeat.
        self.rng = rng or random.Random(0)
        self.timers = timers or TimerConfig()
        self.wire = RecordingWire(self.clock)
        self.sessions = sessions or FakeSessionFactory()
        self.ua = UserAgent(
            config,
            clock=self.clock,
            timers=self.timers,
            sessions=self.sessions,
            sender=self.wire,
            rng=self.rng,
            capacity=capacity,
        )
        self.layer = TransactionLayer(self.clock, self.timers, self.wire.send, self.ua)
        self.wire.layer = self.layer
        self.tasks: list[asyncio.Task[Any]] = []
        self._loop = asyncio.get_running_loop()
        self._previous_factory = self._loop.get_task_factory()
        self._loop.set_task_factory(self._task_factory)

    def _task_factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        if self._previous_factory is not None:
            task: asyncio.Future[Any] = self._previous_factory(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        # Only the product's tasks (the UA's answers, re-offers, media closes): not the test
        # runner's own.
        frame = getattr(coro, "cr_frame", None)
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        if isinstance(task, asyncio.Task) and str(module).startswith("avatar_mf."):
            self.tasks.append(task)
        return task

    def close(self) -> None:
        """Restore the loop's task factory."""
        self._loop.set_task_factory(self._previous_factory)

    # -- driving --------------------------------------------------------------------------

    async def settle(self, rounds: int = 10) -> None:
        """Let the user agent's tasks run (the event loop turns ``rounds`` times)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def deliver(self, message: Request | Response, peer: Peer = UE_UDP) -> None:
        """The MF receives ``message`` (a UE request, or the UE's response to a request of the
        MF) from ``peer``; the user agent's tasks then run."""
        self.layer.receive(message, peer)
        await self.settle()

    async def advance(self, seconds: float, *, step: float | None = None) -> None:
        """Move the fake clock on by ``seconds`` (in ``step``s, letting tasks run after each)."""
        if step is None:
            self.clock.advance(seconds)
            await self.settle()
            return
        target = self.clock.now() + seconds
        while self.clock.now() < target:
            self.clock.advance(min(step, target - self.clock.now()))
            await self.settle()

    async def call(
        self, ue: UacDialogState, body: bytes, *, peer: Peer | None = None, ack: bool = True
    ) -> Response:
        """An answered call: INVITE, the 200 (returned, its To tag learnt), ACK if ``ack``."""
        await self.deliver(ue.invite(body), peer or ue.peer)
        ok = self.wire.final("INVITE", call_id=ue.call_id)
        if ok.status != 200:
            raise AssertionError(f"INVITE answered {ok.status} {ok.reason}")
        ue.learn(ok)
        if ack:
            await self.deliver(ue.ack(ok), peer or ue.peer)
        return ok

    # -- checks ---------------------------------------------------------------------------

    def task_errors(self) -> list[BaseException]:
        """Exceptions that ended tasks created since the harness was built (cancellation is
        not an error)."""
        errors: list[BaseException] = []
        for task in self.tasks:
            if task.done() and not task.cancelled():
                exc = task.exception()
                if exc is not None:
                    errors.append(exc)
        return errors

    def final_responses_per_transaction(self) -> dict[tuple[str, str, str], set[Response]]:
        """The distinct final responses sent per server transaction (branch, sent-by, CSeq
        method) -- a transaction must never send two different ones.

        Transactions are told apart by their RFC 3261 17.2.3 key, so a copy of a request that
        arrives after its transaction ended (a new transaction with the same key) counts as the
        same one: flows checked with this must not re-send a request that late.
        """
        out: dict[tuple[str, str, str], set[Response]] = {}
        for record in self.wire.sent:
            message = record.message
            if isinstance(message, Response) and message.status >= 200:
                via = (message.headers.get("Via") or "").split(";")[0]
                key = (_branch_of(message), via, record.method)
                out.setdefault(key, set()).add(message)
        return out

    async def assert_idle(self) -> None:
        """The leak invariant, for the end of a test whose flows all ended.

        No call and no pending INVITE in the user agent; after 64*T1 + T4 + 1 more seconds no
        transaction in the layer and no timer armed on the clock; every media session closed
        exactly once; no task left running or ended by an exception; no TU callback raised.
        """
        await self.settle()
        problems: list[str] = []
        if self.ua.active_calls or self.ua.pending_invites:
            problems.append(
                f"{self.ua.active_calls} calls and {self.ua.pending_invites} pending INVITEs"
            )
        self.clock.advance(64 * self.timers.t1 + self.timers.t4 + 1)
        await self.settle()
        if len(self.layer):
            live = self.layer.server_transactions() + self.layer.client_transactions()
            problems.append(f"transactions left: {live}")
        if self.clock.pending:
            problems.append(f"{self.clock.pending} timers armed")
        for session in self.sessions.sessions:
            if session.close_count != 1:
                problems.append(f"media of {session.call.call_id} closed {session.close_count}x")
        running = [t for t in self.tasks if not t.done()]
        if running:
            problems.append(f"tasks still running: {running}")
        errors = self.task_errors()
        if errors:
            problems.append(f"tasks failed: {errors!r}")
        if self.layer.stats.tu_errors:
            problems.append(f"{self.layer.stats.tu_errors} exceptions raised by the UA")
        for key, finals in self.final_responses_per_transaction().items():
            if len(finals) > 1:
                problems.append(f"{key} sent {sorted(r.status for r in finals)}")
        if problems:
            raise AssertionError("; ".join(problems))


def sip_error_with_warning(status: int = 488, text: str = "incompatible media") -> SipError:
    """A SipError as the media layer raises it for an unacceptable offer (RFC 3261 20.43)."""
    return SipError(status, headers=(("Warning", f'304 avatar-mf "{text}"'),))
