"""The MF's SIP user agent core, UAS side (RFC 3261 sections 8.2, 12, 13.3, 14, 15).

It is the transaction user of :class:`avatar_mf.sip.transaction_layer.TransactionLayer`:

- INVITE (8.2, 13.3): validated (RFC 4475 rules in ``sip/validate.py``), capped (503 with
  Retry-After past ``max_dialogs`` or while draining), answered 100 Trying at once by the
  transaction, then 200 with the SDP answer from the :class:`SessionFactory`. The 2xx is
  retransmitted (T1 doubling up to T2) until the ACK arrives; without an ACK within 64*T1 the
  call is ended with BYE (13.3.1.4).
- CANCEL (9.2): 487 on the pending INVITE, media released.
- BYE (15.1.2), re-INVITE (14.2) and UPDATE (RFC 3311) inside dialogs; 481 for requests that
  name no dialog (12.2.2); 491 for a re-INVITE while another is pending (14.2); 500 for an
  out-of-order CSeq (12.2.2).
- OPTIONS (11.2): 200 with Allow, Accept and Supported (503 while draining, so a proxy's
  dispatcher stops sending calls).
- Session timers (RFC 4028): Session-Expires negotiated in the 2xx (422 with Min-SE below
  ``min_se``); when the UE is the refresher it must refresh before expiry, otherwise the MF
  refreshes with UPDATE; a session not refreshed in time is ended with BYE (RFC 4028 10).
- Anything else: 405 with Allow for methods SIP defines, 501 for unknown methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip.build import make_response, new_branch, new_tag, response_for_error
from avatar_mf.sip.dialog import Dialog, DialogId, dialog_id_of
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import ClientTransaction, ServerTransaction
from avatar_mf.sip.uri import SipUri, parse_uri
from avatar_mf.sip.validate import validate_request
from avatar_mf.server.session import CallInfo, MediaSession, SessionFactory

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
SUPPORTED = "timer"
ACCEPT = "application/sdp"
#: Methods defined by SIP and its extensions that the MF does not handle: 405, not 501.
KNOWN_METHODS = frozenset(
    {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE"}
)


@dataclass(frozen=True, slots=True)
class UserAgentConfig:
    host: str
    user_agent: str
    max_dialogs: int
    retry_after: int
    session_expires: int
    min_se: int


class UaTransport(Protocol):
    """What the user agent needs below it besides the server transactions."""

    def send_request(self, request: Request, peer: Peer) -> ClientTransaction:
        """Send a request of the MF's own (BYE, UPDATE refresh) in a client transaction."""
        ...

    def send_response(self, response: Response, peer: Peer) -> None:
        """Send a response outside any transaction (2xx retransmissions, RFC 3261 13.3.1.4)."""
        ...

    def local_port(self, transport: str) -> int: ...


@dataclass(eq=False)
class Call:
    """One INVITE dialog at the UAS, from the INVITE to its end."""

    local_tag: str
    call_id: str
    peer: Peer
    invite_tx: ServerTransaction | None
    created: float
    dialog: Dialog | None = None
    media: MediaSession | None = None
    task: asyncio.Task[None] | None = None
    ok: Response | None = None
    ok_timer: TimerHandle | None = None
    ok_interval: float = 0.0
    ok_deadline: float = 0.0
    confirmed: bool = False
    reinvite_pending: bool = False
    session_expires: int = 0
    refresher: str = "uac"
    expiry_timer: TimerHandle | None = None
    refresh_timer: TimerHandle | None = None
    ended: bool = False
    end_reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)


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
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._timers = timers
        self._sessions = sessions
        self._sender = sender
        self._calls: dict[DialogId, Call] = {}
        self._pending: dict[int, Call] = {}  # id(invite server transaction) -> call
        self.draining = False
        self.stats: dict[str, int] = {
            "calls_started": 0,
            "calls_answered": 0,
            "calls_failed": 0,
            "calls_ended": 0,
        }
        self.on_call_ended: Callable[[Call], None] | None = None

    # ------------------------------------------------------------------ introspection

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    # ------------------------------------------------------------------ TU interface

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        try:
            validate_request(request, supported=frozenset({"timer"}))
            self._dispatch(tx, request)
        except SipError as err:
            self._reject(tx, request, err)

    def on_ack(self, request: Request, source: Peer) -> None:
        did = dialog_id_of(request)
        call = self._calls.get(did) if did is not None else None
        if call is None or call.ended:
            return
        if call.ok_timer is not None:
            call.ok_timer.cancel()
            call.ok_timer = None
        call.confirmed = True

    def on_cancel(self, invite_tx: ServerTransaction, cancel: Request) -> None:
        call = self._pending.pop(id(invite_tx), None)
        if call is None:
            return
        if invite_tx.final_response is None:
            invite_tx.respond(
                make_response(invite_tx.request, 487, to_tag=call.local_tag, headers=self._server())
            )
        self._finish(call, "cancelled", send_bye=False)

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        if response.status < 200:
            return
        call = self._calls.get(self._client_dialog(tx))
        if call is None:
            return
        method = tx.request.method
        if method == "UPDATE" and response.status in (408, 481):
            # RFC 4028 10: a refresh that fails this way ends the session.
            self._finish(call, f"refresh failed ({response.status})", send_bye=True)

    def on_transaction_timeout(self, tx: ServerTransaction | ClientTransaction) -> None:
        if isinstance(tx, ClientTransaction) and tx.request.method == "UPDATE":
            call = self._calls.get(self._client_dialog(tx))
            if call is not None:
                self._finish(call, "refresh timed out", send_bye=True)

    def on_transport_error(self, tx: ServerTransaction | ClientTransaction) -> None:
        log.info("transport error on %s transaction", tx.request.method)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, tx: ServerTransaction, request: Request) -> None:
        method = request.method
        did = dialog_id_of(request)
        if method == "OPTIONS":
            self._options(tx, request)
            return
        if did is None:
            if method == "INVITE":
                self._initial_invite(tx, request)
            elif method in ("BYE", "UPDATE"):
                raise SipError(481)
            else:
                self._not_handled(request)
            return
        call = self._calls.get(did)
        if call is None or call.dialog is None:
            if method in ALLOW:
                raise SipError(481)
            self._not_handled(request)
            return
        call.dialog = call.dialog.receive(request)
        if method == "BYE":
            tx.respond(self._response(request, 200, call))
            self._finish(call, "bye", send_bye=False)
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(tx, request, call)
        else:
            self._not_handled(request)

    def _not_handled(self, request: Request) -> None:
        if request.method in KNOWN_METHODS:
            raise SipError(405, headers=(("Allow", ALLOW),))
        raise SipError(501, headers=(("Allow", ALLOW),))

    def _reject(self, tx: ServerTransaction, request: Request, err: SipError) -> None:
        if request.method == "ACK":
            return
        if tx.final_response is not None:
            return
        call = self._pending.get(id(tx))
        to_tag = call.local_tag if call is not None else new_tag()
        response = response_for_error(request, err, to_tag)
        tx.respond(response.with_headers(response.headers.add("Server", self._cfg.user_agent)))
        if err.status >= 500:
            log.info("%s rejected %d %s", request.method, err.status, err.reason)

    def _server(self) -> list[tuple[str, str]]:
        return [("Server", self._cfg.user_agent)]

    def _options(self, tx: ServerTransaction, request: Request) -> None:
        headers = [("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED)]
        if self.draining:
            raise SipError(503, "Draining", headers=(("Retry-After", str(self._cfg.retry_after)),))
        tx.respond(make_response(request, 200, to_tag=new_tag(), headers=headers + self._server()))

    # ------------------------------------------------------------------ INVITE

    def _initial_invite(self, tx: ServerTransaction, request: Request) -> None:
        retry = (("Retry-After", str(self._cfg.retry_after)),)
        if self.draining:
            raise SipError(503, "Draining", headers=retry)
        if len(self._calls) + len(self._pending) >= self._cfg.max_dialogs:
            raise SipError(503, "Too Many Calls", headers=retry)
        se, refresher = self._negotiate_timer(request)
        call_id = request.headers.get("Call-ID") or ""
        call = Call(
            local_tag=new_tag(),
            call_id=call_id,
            peer=tx.source,
            invite_tx=tx,
            created=self._clock.now(),
            session_expires=se,
            refresher=refresher,
        )
        call.dialog = Dialog.from_request(request, call.local_tag)
        self._pending[id(tx)] = call
        self.stats["calls_started"] += 1
        info = self._call_info(request, tx.source)
        call.task = asyncio.get_running_loop().create_task(self._answer(tx, request, call, info))

    def _negotiate_timer(self, request: Request) -> tuple[int, str]:
        """RFC 4028 9: choose Session-Expires and the refresher for the 2xx."""
        value = request.headers.get("Session-Expires")
        supported = {
            t.strip().lower() for t in request.headers.get_list("Supported")
        }
        se = self._cfg.session_expires
        refresher = "uac" if "timer" in supported else "uas"
        if value is not None:
            head, _, params = value.partition(";")
            try:
                asked = int(head.strip())
            except ValueError:
                raise SipError(400, "Bad Session-Expires") from None
            if asked < self._cfg.min_se:
                raise SipError(422, headers=(("Min-SE", str(self._cfg.min_se)),))
            se = min(asked, se) if se else asked
            for param in params.split(";"):
                name, _, val = param.partition("=")
                if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
                    refresher = val.strip().lower()
            if refresher == "uac" and "timer" not in supported:
                refresher = "uas"
        return se, refresher

    def _call_info(self, request: Request, source: Peer) -> CallInfo:
        headers = request.headers
        frm = parse_name_addr(headers.get("From") or "")
        to = parse_name_addr(headers.get("To") or "")
        pai = headers.get_list("P-Asserted-Identity")
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
        )

    async def _answer(
        self, tx: ServerTransaction, request: Request, call: Call, info: CallInfo
    ) -> None:
        try:
            media = await self._sessions.create(
                info, request.body, lambda reason: self._media_failed(call, reason)
            )
        except SipError as err:
            self._pending.pop(id(tx), None)
            if tx.final_response is None and not call.ended:
                self._reject(tx, request, err)
            self.stats["calls_failed"] += 1
            call.ended = True
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("media session creation failed for %s", call.call_id)
            self._pending.pop(id(tx), None)
            if tx.final_response is None:
                self._reject(tx, request, SipError(500, "Media Setup Failed"))
            self.stats["calls_failed"] += 1
            call.ended = True
            return
        if call.ended or self._pending.pop(id(tx), None) is None:
            # CANCELled while the media was being set up.
            await media.close()
            return
        call.media = media
        assert call.dialog is not None
        self._calls[call.dialog.id] = call
        call.invite_tx = None
        ok = self._response(request, 200, call, body=media.local_sdp)
        call.ok = ok
        tx.respond(ok)
        self.stats["calls_answered"] += 1
        if not tx.source.reliable:
            call.ok_interval = self._timers.t1
            call.ok_timer = self._clock.call_later(call.ok_interval, lambda: self._resend_ok(call))
        call.ok_deadline = self._clock.now() + 64 * self._timers.t1
        self._arm_session_timer(call)

    def _response(
        self, request: Request, status: int, call: Call, *, body: bytes = b""
    ) -> Response:
        headers = [("Contact", self._contact(call.peer)), ("Allow", ALLOW), ("Supported", SUPPORTED)]
        if request.method in ("INVITE", "UPDATE") and status == 200 and call.session_expires:
            headers.append(
                ("Session-Expires", f"{call.session_expires};refresher={call.refresher}")
            )
            if call.refresher == "uac":
                headers.append(("Require", "timer"))
        headers.extend(self._server())
        return make_response(
            request,
            status,
            to_tag=call.local_tag,
            headers=headers,
            body=body,
            content_type="application/sdp" if body else None,
        )

    def _resend_ok(self, call: Call) -> None:
        """RFC 3261 13.3.1.4: retransmit the 2xx until ACK, giving up after 64*T1."""
        call.ok_timer = None
        if call.ended or call.confirmed or call.ok is None:
            return
        if self._clock.now() >= call.ok_deadline:
            self._finish(call, "no ACK", send_bye=True)
            return
        self._sender.send_response(call.ok, call.peer)
        call.ok_interval = min(call.ok_interval * 2, self._timers.t2)
        call.ok_timer = self._clock.call_later(call.ok_interval, lambda: self._resend_ok(call))

    def _reoffer(self, tx: ServerTransaction, request: Request, call: Call) -> None:
        if request.method == "INVITE" and (call.reinvite_pending or not call.confirmed):
            raise SipError(491 if call.reinvite_pending else 500, headers=(("Retry-After", "1"),))
        if request.method == "INVITE":
            call.reinvite_pending = True
        asyncio.get_running_loop().create_task(self._answer_reoffer(tx, request, call))

    async def _answer_reoffer(self, tx: ServerTransaction, request: Request, call: Call) -> None:
        try:
            if call.media is None:
                raise SipError(500, "No media session")
            if request.body:
                answer = await call.media.renegotiate(request.body)
            else:
                answer = b"" if request.method == "UPDATE" else call.media.local_sdp
        except SipError as err:
            call.reinvite_pending = False
            self._reject(tx, request, err)
            return
        call.reinvite_pending = False
        if call.ended:
            self._reject(tx, request, SipError(481))
            return
        se, refresher = self._negotiate_timer(request)
        call.session_expires, call.refresher = se, refresher
        ok = self._response(request, 200, call, body=answer)
        tx.respond(ok)
        if request.method == "INVITE":
            call.ok, call.confirmed = ok, False
            call.ok_deadline = self._clock.now() + 64 * self._timers.t1
            if not tx.source.reliable:
                call.ok_interval = self._timers.t1
                call.ok_timer = self._clock.call_later(
                    call.ok_interval, lambda: self._resend_ok(call)
                )
        self._arm_session_timer(call)

    # ------------------------------------------------------------------ session timers

    def _arm_session_timer(self, call: Call) -> None:
        for handle in (call.expiry_timer, call.refresh_timer):
            if handle is not None:
                handle.cancel()
        call.expiry_timer = call.refresh_timer = None
        se = call.session_expires
        if not se:
            return
        if call.refresher == "uac":
            # RFC 4028 10: BYE before expiry if no refresh came: SE - min(32, SE/3).
            delay = se - min(32, se / 3)
            call.expiry_timer = self._clock.call_later(
                delay, lambda: self._finish(call, "session expired", send_bye=True)
            )
        else:
            call.refresh_timer = self._clock.call_later(se / 2, lambda: self._refresh(call))

    def _refresh(self, call: Call) -> None:
        call.refresh_timer = None
        if call.ended:
            return
        self._send_in_dialog(
            call,
            "UPDATE",
            (("Session-Expires", f"{call.session_expires};refresher=uas"), ("Supported", "timer")),
        )
        call.refresh_timer = self._clock.call_later(
            call.session_expires / 2, lambda: self._refresh(call)
        )

    # ------------------------------------------------------------------ ending calls

    def _media_failed(self, call: Call, reason: str) -> None:
        log.info("call %s media failed: %s", call.call_id, reason)
        if not call.ended:
            self._finish(call, f"media failed: {reason}", send_bye=call.dialog is not None)

    def drop(self, call: Call, reason: str = "dropped") -> None:
        """End an established call with BYE (operator action, drain timeout)."""
        self._finish(call, reason, send_bye=True)

    def _finish(self, call: Call, reason: str, *, send_bye: bool) -> None:
        if call.ended:
            return
        call.ended = True
        call.end_reason = reason
        for handle in (call.ok_timer, call.expiry_timer, call.refresh_timer):
            if handle is not None:
                handle.cancel()
        call.ok_timer = call.expiry_timer = call.refresh_timer = None
        if call.invite_tx is not None:
            self._pending.pop(id(call.invite_tx), None)
        established = call.dialog is not None and self._calls.get(call.dialog.id) is call
        if established and call.dialog is not None:
            del self._calls[call.dialog.id]
            if send_bye:
                self._send_in_dialog(call, "BYE", (("Reason", f'SIP;text="{reason}"'),))
        if call.task is not None and not call.task.done() and call.media is None:
            call.task.cancel()
        if call.media is not None:
            media, call.media = call.media, None
            asyncio.get_running_loop().create_task(media.close())
        self.stats["calls_ended"] += 1
        log.info("call %s ended: %s", call.call_id, reason)
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
        via = f"SIP/2.0/{peer.transport.upper()} {self._cfg.host}:{port};branch={new_branch()};rport"
        request = request.with_headers(request.headers.prepend("Via", via))
        try:
            self._sender.send_request(request, peer)
        except Exception:
            log.exception("could not send %s for call %s", method, call.call_id)

    def _server_ua(self) -> tuple[tuple[str, str], ...]:
        return (("User-Agent", self._cfg.user_agent),)

    def _destination(self, call: Call) -> Peer:
        assert call.dialog is not None
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
        """End every call with BYE and release its media (shutdown)."""
        for call in list(self._calls.values()):
            self._finish(call, reason, send_bye=True)
        for call in list(self._pending.values()):
            if call.invite_tx is not None and call.invite_tx.final_response is None:
                call.invite_tx.respond(
                    make_response(
                        call.invite_tx.request, 503, to_tag=call.local_tag, headers=self._server()
                    )
                )
            self._finish(call, reason, send_bye=False)
