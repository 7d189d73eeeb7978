"""Wiring: builds the Media Function from its config and runs it.

Everything is built here by constructor injection, bottom-up: transports, the SIP endpoint,
the transaction layer, the user agent, the data channel factory and the call sessions. No
module keeps global state, so a test can run several MF nodes in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from avatar_mf.avatar.validate import validate_container
from avatar_mf.avatar_session.hub import AvatarHub
from avatar_mf.avatar_session.session import AvatarSettings
from avatar_mf.bootstrap.service import AppSourceError, bootstrap_service_factory
from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.calls.offerer import CallOfferFactory
from avatar_mf.clock import LoopClock
from avatar_mf.config import AppConfig
from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.endpoint import DataChannelEndpointFactory
from avatar_mf.node.admin import AdminServer
from avatar_mf.node.metrics import NodeMetrics
from avatar_mf.node.stages import build_stages, stage_settings
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.rooms.relay import RelayMetrics
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import ClientTransaction, TransactionLayer
from avatar_mf.storage import Authorizer, AvatarCache, FilesystemStore, SystemWallClock
from avatar_mf.storage.store import avatar_root
from avatar_mf.transport.admission import RateLimiter, TrustedPeers
from avatar_mf.transport.base import SipTransport
from avatar_mf.transport.endpoint import SipEndpoint
from avatar_mf.transport.tcp import TcpTransport
from avatar_mf.transport.udp import UdpTransport
from avatar_mf.ua.b2bua import TwoLegCalls, TwoLegConfig
from avatar_mf.ua.user_agent import Call, UserAgent, UserAgentConfig

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The node cannot start (a port taken, a folder unwritable); the message says which."""


class _UaWire:
    """The user agent's view of the layers below it."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint
        self.layer: TransactionLayer | None = None

    def send_request(self, request: Request, peer: Peer) -> ClientTransaction:
        assert self.layer is not None
        return self.layer.send_request(request, peer)

    def send_response(self, response: Response, peer: Peer) -> None:
        try:
            self._endpoint.send(response, peer)
        except OSError as exc:
            log.info(
                "2xx retransmission failed: %s",
                exc,
                extra={"call_id": response.headers.get("Call-ID") or ""},
            )

    def local_port(self, transport: str) -> int:
        return self._endpoint.local_port(transport)


def _describe_call(
    call: Call,
    state: str,
    now: float,
    media: CallMediaSession | None,
    rooms: dict[str, tuple[str, str]],
) -> dict[str, object]:
    info = call.info
    room, participant = rooms.get(call.call_id, (None, None))
    entry: dict[str, object] = {
        "call_id": call.call_id,
        "state": state,
        "from": info.from_uri if info is not None else "",
        "to": info.to_uri if info is not None else "",
        "identity": info.identity if info is not None else "",
        "source": f"{call.peer.host}:{call.peer.port}",
        "transport": call.peer.transport,
        "age_seconds": round(max(0.0, now - call.created), 3),
        "confirmed": call.confirmed,
        "session_expires": call.session_expires,
        "room": room,
        "participant_id": participant,
        "data_channels": [],
        "messages_in": 0,
        "messages_out": 0,
        "bytes_in": 0,
        "bytes_out": 0,
    }
    if media is not None:
        dc = media.dc
        channels = []
        for stream_id in sorted(media.open_channels):
            spec = dc.streams.get(stream_id) if dc is not None else None
            channels.append(
                {
                    "stream_id": stream_id,
                    "label": spec.label if spec is not None else "",
                    "subprotocol": spec.subprotocol if spec is not None else "",
                }
            )
        entry.update(
            data_channels=channels,
            messages_in=media.messages_in,
            messages_out=media.messages_out,
            bytes_in=media.bytes_in,
            bytes_out=media.bytes_out,
        )
    return entry


class MediaFunction:
    """One MF node: SIP listeners, transaction layer, user agent and media."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.clock = LoopClock()
        self.metrics = NodeMetrics()
        self.relay_metrics = RelayMetrics()
        sip = config.sip
        self.timers = TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4)
        self.endpoint = SipEndpoint(
            trusted=TrustedPeers(str(n) for n in sip.trusted_peers),
            limiter=RateLimiter(
                self.clock, rate=sip.rate_limit_per_source, burst=sip.rate_limit_burst
            ),
            server_header=sip.user_agent,
        )
        media = config.media
        self.certificate = CertificateStore.load_or_create(config.dtls_certificate_dir)
        self.media = DataChannelEndpointFactory(
            self.certificate,
            media_host=str(media.host),
            sctp_max_message_size=media.max_message_size,
            setup_timeout=media.setup_timeout,
            user_data_max_length=media.sctp_max_chunk,
            sctp_port=media.sctp_port,
        )
        self.bootstrap = bootstrap_service_factory(config.bootstrap)
        self.sessions = CallSessionFactory(
            self.media,
            config,
            services={"http": self.bootstrap},
            observe_dc_setup=self.metrics.datachannel_setup.observe,
        )
        self._wire = _UaWire(self.endpoint)
        self.ua = UserAgent(
            UserAgentConfig(
                host=sip.contact_host,
                user_agent=sip.user_agent,
                max_dialogs=sip.max_dialogs,
                retry_after=sip.retry_after,
                session_expires=sip.session_expires,
                min_se=sip.min_se,
                answer_delay=sip.answer_delay,
            ),
            clock=self.clock,
            timers=self.timers,
            sessions=self.sessions,
            sender=self._wire,
            observe_setup=self.metrics.call_setup.observe,
            observe_duration=self.metrics.call_duration.observe,
        )
        self.layer = TransactionLayer(self.clock, self.timers, self.endpoint.send, self.ua)
        self._wire.layer = self.layer
        calls = config.calls
        self.two_leg = TwoLegCalls(
            TwoLegConfig(
                room_pattern=calls.room_pattern,
                outbound_proxy=calls.outbound_proxy_uri,
                no_answer_timeout=calls.no_answer_timeout,
                host=sip.contact_host,
                user_agent=sip.user_agent,
                session_expires=sip.session_expires,
                min_se=sip.min_se,
            ),
            ua=self.ua,
            answers=self.sessions,
            offers=CallOfferFactory(self.sessions),
            sender=self._wire,
            send_ack=self.layer.send_stateless,
            clock=self.clock,
            timers=self.timers,
        )
        self.ua.bridge = self.two_leg
        self.transports: dict[str, SipTransport] = {}
        self._tcp: TcpTransport | None = None
        pipeline = config.pipeline
        self.executor = StageExecutor(workers=pipeline.workers, max_pending=pipeline.max_pending)
        self.hub: AvatarHub | None = None
        self.cache: AvatarCache | None = None
        self.metrics.attach(self)
        self.admin = AdminServer(
            snapshot=self.snapshot,
            ready=lambda: not self.ua.draining,
            metrics=self.metrics.render,
            sessions=self.live_sessions,
            drop=self.drop_call,
            token=config.admin.token,
        )

    @property
    def tcp_connections(self) -> int:
        return self._tcp.connection_count if self._tcp is not None else 0

    def snapshot(self) -> dict[str, object]:
        """What the node holds now (``held``: all zero when idle) and its counters."""
        return {
            "held": {
                "dialogs": self.ua.active_calls,
                "pending_invites": self.ua.pending_invites,
                "transactions": self.layer.active_count,
                "call_sessions": len(self.sessions.sessions),
                "dc_sessions": self.media.active_sessions,
                "avatar_sessions": self.hub.session_count if self.hub is not None else 0,
                "rooms": len(self.hub.rooms) if self.hub is not None else 0,
                "media_sockets": self.media.open_sockets,
                "two_leg_calls": self.two_leg.active_pairs,
                "outgoing_invites": self.two_leg.outgoing_invites,
            },
            "tcp_connections": self.tcp_connections,
            "calls": self.ua.stats.calls(),
            "sip": self.endpoint.stats.as_dict(),
            "draining": self.ua.draining,
        }

    def live_sessions(self) -> list[dict[str, object]]:
        """The calls in progress, pending first, for ``GET /sessions``."""
        media = {s.call.call_id: s for s in self.sessions.sessions}
        rooms: dict[str, tuple[str, str]] = {}
        if self.hub is not None:
            for session in self.hub.sessions():
                rooms[session.call_id] = (session.participant.room.name, session.id)
        now = self.clock.now()
        out = []
        groups = (("pending", self.ua.pending_calls()), ("established", self.ua.calls()))
        for state, calls in groups:
            for call in calls:
                out.append(_describe_call(call, state, now, media.get(call.call_id), rooms))
        return out

    def drop_call(self, call_id: str) -> int:
        """End the calls with ``call_id`` (BYE, or 503 to a pending INVITE); how many."""
        calls = [c for c in (*self.ua.pending_calls(), *self.ua.calls()) if c.call_id == call_id]
        for call in calls:
            self.ua.drop(call, "dropped by operator")
        return len(calls)

    async def _listen(self, name: str, host: str, port: int) -> None:
        sip = self.config.sip
        if name == "udp":
            self.transports["udp"] = await UdpTransport.listen(
                host, port, self.endpoint, max_message_size=sip.max_message_size
            )
        elif name == "tcp":
            tcp = TcpTransport(
                self.endpoint,
                max_message_size=sip.max_message_size,
                idle_timeout=sip.tcp_idle_timeout,
            )
            await tcp.listen(host, port)
            self._tcp = tcp
            self.transports["tcp"] = tcp

    async def _start_avatar_services(self) -> None:
        """Storage, stages and the avatar hub; the avatar subprotocols are served from here."""
        cfg = self.config
        store = await FilesystemStore.open(
            avatar_root(cfg.storage.path),
            max_avatar_size=cfg.storage.max_avatar_size,
        )
        self.cache = AvatarCache(
            store,
            self.clock,
            max_bytes=cfg.storage.cache_bytes,
            max_entries=cfg.storage.cache_entries,
            ttl=cfg.storage.cache_ttl,
        )
        self.hub = AvatarHub(
            clock=self.clock,
            relay_metrics=self.relay_metrics,
            executor=self.executor,
            stages=build_stages(stage_settings(cfg.pipeline), validator=validate_container),
            settings=AvatarSettings(
                rate=cfg.pipeline.rate,
                max_transfer_size=cfg.storage.max_avatar_size,
            ),
            store=store,
            authorizer=Authorizer(store, SystemWallClock()),
            cache=self.cache,
        )
        self.sessions.services.update(self.hub.services())

    async def start(self) -> None:
        try:
            await self._start_avatar_services()
        except (OSError, LookupError, ValueError, TypeError) as exc:
            raise StartupError(f"avatar services: {exc}") from exc
        sip = self.config.sip
        host = str(sip.host)
        for name in sip.transports:
            try:
                await self._listen(name, host, sip.port)
            except OSError as exc:
                raise StartupError(f"SIP {name} listener {host}:{sip.port}: {exc}") from exc
        self.endpoint.attach(self.layer, self.transports)
        admin = self.config.admin
        if admin.enabled:
            try:
                await self.admin.start(str(admin.host), admin.port)
            except OSError as exc:
                raise StartupError(f"admin listener {admin.host}:{admin.port}: {exc}") from exc
        listening = " ".join(
            f"{name}:{host}:{t.local_port}" for name, t in self.transports.items()
        )
        log.info(
            "avatar-mf ready: sip %s media %s admin %s",
            listening,
            self.config.media.host,
            f"{self.config.admin.host}:{self.admin.port}" if self.admin.port else "off",
        )

    async def close(self) -> None:
        await self.admin.close()
        await self.ua.close_all("shutdown")
        # Give the BYEs a moment to leave before the sockets close.
        await asyncio.sleep(0.05)
        await self.media.close_all()
        if self.hub is not None:
            await self.hub.aclose()
        await self.bootstrap.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        self.executor.shutdown()
        self.two_leg.close()
        self.layer.close()
        for transport in self.transports.values():
            transport.close()
        if self._tcp is not None:
            await self._tcp.wait_closed()


    async def drain(self, grace: float) -> None:
        """Stop taking calls (503 to INVITE and OPTIONS) and wait up to ``grace`` seconds for
        the calls in progress to end by themselves."""
        self.ua.draining = True
        log.info("draining: %d calls in progress, up to %.1f s", self.ua.active_calls, grace)
        changed = asyncio.Event()
        self.ua.on_call_ended = lambda _call: changed.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self.ua.active_calls + self.ua.pending_invites > 0:
                    changed.clear()
                    # Re-check now and then: an INVITE refused while pending ends no call.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await changed.wait()


#: ``gc.set_threshold`` of the MF process (CPython's default is 700, 10, 10); see settle_heap.
GC_THRESHOLDS = (7000, 10, 10)


def settle_heap() -> None:
    """The garbage collector policy of the MF process, applied once the node has started.

    A call leaves no reference cycle behind (they are broken when it ends), so the cyclic
    collector finds next to nothing to free; what it costs is scanning, and a full collection
    stops the event loop for as long as it scans. Two settings, the collector staying on:

    * ``gc.freeze()`` after a last ``gc.collect()``: the ~120,000 objects of the imported
      modules and the start-up move to a permanent generation that collections no longer scan
      (a full collection of them alone stopped the loop for ~100 ms on the reference VM; they
      are freed by reference counting if ever). Full collections then scan only the calls and
      transactions alive (at 200 calls/s: ~130,000 objects, ~75 ms).
    * :data:`GC_THRESHOLDS`: a young collection every 7,000 net allocations instead of 700.
      Most objects of a call set-up die before one happens (they are no longer promoted to
      the older generations), young collections stay short (~10 ms), and full collections,
      which wait for ten collections of the middle generation, go from every ~5 s at
      200 calls/s to every few minutes (none in a 2-minute run at 200 calls/s).

    Measured in docs/performance.md ("SIP call rate"). Any cyclic garbage still made (by a
    library, an exception's traceback) is collected as before, only later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.debug("garbage collector: %d start-up objects frozen", gc.get_freeze_count())


async def serve(config: AppConfig) -> int:
    """Run one MF node until a signal; returns the process exit code.

    SIGTERM drains for ``lifecycle.drain_timeout``, SIGINT for ``lifecycle.sigint_drain_timeout``;
    then the remaining calls get BYE, everything is released and the exit code is 0. A second
    signal during the drain ends it at once (exit code 1).
    """
    try:
        node = MediaFunction(config)
    except (OSError, AppSourceError) as exc:
        # An unwritable storage folder, an unreadable DC application folder ...
        log.error("cannot start: %s", exc)
        return 1
    try:
        await node.start()
    except (StartupError, OSError) as exc:
        # A port already taken, an address not on this host ...
        log.error("cannot start: %s", exc)
        await node.close()
        return 1
    settle_heap()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second = asyncio.Event()

    def on_signal(sig: int) -> None:
        if not first.done():
            first.set_result(sig)
        else:
            second.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    sig = await first
    timeout = (
        config.lifecycle.drain_timeout
        if sig == signal.SIGTERM
        else config.lifecycle.sigint_drain_timeout
    )
    log.info("received %s", signal.Signals(sig).name)
    drain = asyncio.ensure_future(node.drain(timeout))
    interrupted = asyncio.ensure_future(second.wait())
    await asyncio.wait({drain, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    drain.cancel()
    interrupted.cancel()
    if second.is_set():
        log.warning("second signal: exiting at once")
        await node.close()
        return 1
    await node.close()
    # What the node still held after closing: all zero unless something leaked.
    log.info("stopped", extra={"held": node.snapshot()["held"]})
    return 0


def run(config: AppConfig) -> int:
    """Run the MF until SIGTERM or SIGINT; returns the process exit code."""
    import uvloop

    from avatar_mf.logging_setup import configure_logging

    configure_logging(config.log)
    return uvloop.run(serve(config))
