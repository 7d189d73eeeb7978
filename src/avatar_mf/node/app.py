"""Wiring: builds the Media Function from its config and runs it.

Everything is built here by constructor injection, bottom-up: transports, the SIP endpoint,
the transaction layer, the user agent, the data channel factory and the call sessions. No
module keeps global state, so a test can run several MF nodes in one process.

Operations hooks: the SIP trace (:mod:`avatar_mf.node.trace`) taps the endpoint; every ended
call leaves a call-detail record (:mod:`avatar_mf.node.cdr`); SIGHUP reloads the
configuration from its sources and applies what can change live (:mod:`avatar_mf.node.reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import secrets
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from avatar_mf import __version__
from avatar_mf.arf import is_config_unit
from avatar_mf.avatar.validate import validate_container
from avatar_mf.avatar_session.hub import AvatarHub, SessionFacts
from avatar_mf.avatar_session.session import AvatarSettings
from avatar_mf.bootstrap.service import AppSourceError, bootstrap_service_factory
from avatar_mf.calls.audio import AudioPlane, RegistryAudioCaps
from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.calls.offerer import CallOfferFactory
from avatar_mf.calls.video import VideoPlane
from avatar_mf.clock import LoopClock
from avatar_mf.config import AppConfig, ConfigError, SipConfig
from avatar_mf.media.audio_stream import MediaLimits
from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.endpoint import DataChannelEndpointFactory
from avatar_mf.media.rtp_ports import PortRange
from avatar_mf.media.sctp_transport import SctpTuning
from avatar_mf.media.video_stream import VIDEO_LIMITS
from avatar_mf.node.admin import AdminServer
from avatar_mf.node.cdr import CdrWriter, call_record
from avatar_mf.node.metrics import NodeMetrics
from avatar_mf.node.preflight import preflight
from avatar_mf.node.reload import ReloadPlan, plan_reload, with_live
from avatar_mf.node.stages import StageLoadError, build_stages, stage_settings
from avatar_mf.node.trace import SipTrace
from avatar_mf.node.video_out import VideoPicker, network_animation, with_render_defaults
from avatar_mf.node.web_client import WebClientFiles, client_config
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.stage import ClosableProvider
from avatar_mf.protocol.names import SUBPROTOCOL_ANIMATION
from avatar_mf.rooms.audio_room import AudioRooms
from avatar_mf.rooms.relay import RelayMetrics
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import NODE_TRYING, TimerConfig
from avatar_mf.sip.transaction_layer import (
    ClientTransaction,
    TransactionLayer,
    TransactionLimits,
)
from avatar_mf.stages.animation.network import NetworkAnimation
from avatar_mf.storage import Authorizer, AvatarCache, FilesystemStore, SystemWallClock
from avatar_mf.storage.store import avatar_root
from avatar_mf.transport.admission import RateLimiter, TrustedPeers
from avatar_mf.transport.base import SipTransport
from avatar_mf.transport.endpoint import SipEndpoint
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable, FdBudget
from avatar_mf.transport.tcp import TcpTransport
from avatar_mf.transport.tls import client_context, server_context
from avatar_mf.transport.udp import UdpTransport
from avatar_mf.transport.ws import WebSocketTransport
from avatar_mf.ua.b2bua import TwoLegCalls, TwoLegConfig
from avatar_mf.ua.user_agent import Call, UserAgent, UserAgentConfig

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The node cannot start (a port taken, a folder unwritable); the message says which."""


class TlsReloadError(Exception):
    """A reload's TLS certificate and key cannot be loaded; the message says why."""


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
    facts: SessionFacts | None,
) -> dict[str, object]:
    info = call.info
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
        "room": facts.room if facts is not None else None,
        "participant_id": facts.participant_id if facts is not None else None,
        # The animation-data stages the avatar session uses (its hello's selection).
        "animation_data": list(facts.animation_data) if facts is not None else [],
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


def _ua_config(sip: SipConfig) -> UserAgentConfig:
    return UserAgentConfig(
        host=sip.contact_host,
        user_agent=sip.user_agent,
        max_dialogs=sip.max_dialogs,
        retry_after=sip.retry_after,
        session_expires=sip.session_expires,
        min_se=sip.min_se,
        answer_delay=sip.answer_delay,
        asserted_identity_peers=sip.asserted_identity_peers,
    )


def _admission(sip: SipConfig, clock: LoopClock) -> tuple[TrustedPeers, RateLimiter]:
    return (
        TrustedPeers(str(n) for n in sip.trusted_peers),
        RateLimiter(
            clock,
            rate=sip.rate_limit_per_source,
            burst=sip.rate_limit_burst,
            byte_rate=sip.rate_limit_bytes_per_source,
            byte_burst=2 * sip.rate_limit_bytes_per_source,
        ),
    )


def _trace_address(sip: SipConfig) -> str:
    """The node's address in traces: the first IP literal of advertised_host and host that is
    not a wildcard, else 0.0.0.0."""
    for host in (sip.contact_host, str(sip.host)):
        try:
            if not ipaddress.ip_address(host).is_unspecified:
                return host
        except ValueError:
            continue
    return "0.0.0.0"


class MediaFunction:
    """One MF node: SIP listeners, transaction layer, user agent and media."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.clock = LoopClock()
        self.metrics = NodeMetrics()
        self.relay_metrics = RelayMetrics()
        sip = config.sip
        self.timers = TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4, trying=NODE_TRYING)
        trusted, limiter = _admission(sip, self.clock)
        self.endpoint = SipEndpoint(trusted=trusted, limiter=limiter, server_header=sip.user_agent)
        self.trace = SipTrace(
            local_host=_trace_address(sip),
            local_port=self.endpoint.local_port,
            wall_clock=time.time,
        )
        self.endpoint.tap = self.trace
        self.cdr = CdrWriter(config.log.cdr_file)
        #: Set when a call ends, while a drain waits for the last one.
        self._drain_wakeup: asyncio.Event | None = None
        media = config.media
        self.certificate = CertificateStore.load_or_create(config.dtls_certificate_dir)
        self.media = DataChannelEndpointFactory(
            self.certificate,
            media_host=str(media.host),
            sctp_max_message_size=media.max_message_size,
            setup_timeout=media.setup_timeout,
            user_data_max_length=media.sctp_max_chunk,
            sctp_tuning=SctpTuning(
                sack_every=media.sctp_sack_every,
                bundle=media.sctp_bundle,
                fast_paths=media.sctp_fast_paths,
            ),
            dtls_fast_records=media.dtls_fast_records,
            ice_lite=media.ice_lite,
            # On a max-time/max-retr animation channel (TS 26.264's example has max-time=150)
            # a lost CONFIG would leave the receiver unable to read what follows.
            reliable_messages={SUBPROTOCOL_ANIMATION: is_config_unit},
            sctp_port=media.sctp_port,
        )
        self.bootstrap = bootstrap_service_factory(config.bootstrap)
        #: Decoding, mixing and encoding of audio rooms whose codecs are not cheap (AMR).
        self.media_pool = StageExecutor(workers=1, max_pending=256)
        #: Encoding the network-rendered avatar per receiver (its own pool: a burst of key
        #: frames never delays an audio room's tick); past its queue a frame is skipped.
        self.video_pool = StageExecutor(workers=media.video_encoders, max_pending=64)
        #: One media wall clock for every RTCP SR of the node (audio and video of a session
        #: share it: receivers lip-sync by it): Unix time = clock time + this offset.
        wall_offset = time.time() - self.clock.now()
        self.wallclock = lambda now: now + wall_offset
        #: Network animation providers a reload replaced (their pools close at shutdown).
        self._retired_animations: list[NetworkAnimation] = []
        #: Every other stage provider a reload replaced, closed with the node (sessions that
        #: started before the reload keep their stages until they end).
        self._retired_providers: list[ClosableProvider] = []
        self.audio_rooms = AudioRooms(
            self.clock,
            runner=lambda job: self.media_pool.run(job),
            max_members=media.max_audio_participants,
        )
        self.audio: AudioPlane | None = (
            AudioPlane(
                clock=self.clock,
                host=str(media.host),
                advertised_host=media.media_advertised_host,
                ports=PortRange(
                    media.rtp_port_min, media.rtp_port_max, start=secrets.randbelow(1 << 16)
                ),
                rooms=self.audio_rooms,
                limits=MediaLimits(
                    rtp_timeout=media.rtp_timeout, jitter_buffer_ms=media.jitter_buffer_ms
                ),
                caps=RegistryAudioCaps(allowed=media.audio_codecs),
                wallclock=self.wallclock,
            )
            if media.audio
            else None
        )
        #: IMS-style video, received and decoded in the media pool, the rendered avatar
        #: encoded in the video pool: served when ``media.video`` and audio are on (its
        #: sockets come from the same port range and ledger).
        self.video: VideoPlane | None = (
            VideoPlane(
                clock=self.clock,
                host=self.audio.host,
                ports=self.audio.ports,
                ledger=self.audio.ledger,
                runner=lambda job: self.media_pool.run(job),
                encode_runner=lambda job: self.video_pool.run(job),
                send_rate=config.render.rate,
                bitrate=media.video_bitrate,
                wallclock=self.wallclock,
                limits=dataclasses.replace(VIDEO_LIMITS, rtp_timeout=media.rtp_timeout),
            )
            if self.audio is not None and media.video
            else None
        )
        self.sessions = CallSessionFactory(
            self.media,
            config,
            services={"http": self.bootstrap},
            observe_dc_setup=self.metrics.datachannel_setup.observe,
            audio=self.audio,
            video=self.video,
        )
        self._wire = _UaWire(self.endpoint)
        self.ua = UserAgent(
            _ua_config(sip),
            clock=self.clock,
            timers=self.timers,
            sessions=self.sessions,
            sender=self._wire,
            observe_setup=self.metrics.call_setup.observe,
            observe_duration=self.metrics.call_duration.observe,
            capacity=self._capacity,
        )
        self.layer = TransactionLayer(
            self.clock,
            self.timers,
            self.endpoint.send,
            self.ua,
            TransactionLimits(
                max_transactions=sip.max_transactions,
                max_bytes=sip.transaction_memory,
                max_bytes_per_source=sip.transaction_memory_per_source,
                retry_after=sip.retry_after,
            ),
        )
        self.ua.on_call_ended = self._call_ended
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
        self.fds = FdBudget(self.clock, sip.fd_reserve)
        #: The connection transports (tcp, tls, ws, wss) by name, sharing one connection table.
        self.streams: dict[str, TcpTransport | WebSocketTransport] = {}
        self.connection_limits = ConnectionLimits(
            max_connections=sip.tcp_max_connections,
            max_connections_per_source=sip.tcp_max_connections_per_source,
            max_write_buffer=sip.tcp_max_write_buffer,
            message_timeout=sip.tcp_message_timeout,
            fd_reserve=sip.fd_reserve,
        )
        self.connections = ConnectionTable(self.connection_limits)
        self._server_ssl: ssl.SSLContext | None = None
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
            trace=self.trace,
            web_client=(
                WebClientFiles.shipped(client_config(config.sip))
                if config.admin.web_client
                else None
            ),
        )

    def _capacity(self) -> str | None:
        """Why the node cannot take a call now (too few file descriptors), or None. Calls may
        use the upper half of the reserve that TCP connections may not touch."""
        if self.fds.low(reserve=self.fds.reserve // 2):
            return f"Out Of File Descriptors ({self.fds.free()} free)"
        return None

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
                "transaction_bytes": self.layer.held_bytes,
                "call_sessions": len(self.sessions.sessions),
                "dc_sessions": self.media.active_sessions,
                "avatar_sessions": self.hub.session_count if self.hub is not None else 0,
                "rooms": len(self.hub.rooms) if self.hub is not None else 0,
                "media_sockets": self.media.open_sockets,
                "two_leg_calls": self.two_leg.active_pairs,
                "outgoing_invites": self.two_leg.outgoing_invites,
                "rtp_streams": self.audio.open_streams if self.audio is not None else 0,
                "rtp_sockets": self.audio.ledger.open_count if self.audio is not None else 0,
                "audio_rooms": len(self.audio_rooms.rooms),
                "video_streams": self.video.open_streams if self.video is not None else 0,
            },
            "video": dict(self.video.totals()) if self.video is not None else {},
            "tcp_connections": self.tcp_connections,
            "limits": self._limit_counters(),
            "connections": {name: t.connection_count for name, t in self.streams.items()},
            "calls": self.ua.stats.calls(),
            "sip": self.endpoint.stats.as_dict(),
            "draining": self.ua.draining,
        }

    def _limit_counters(self) -> dict[str, int]:
        """How often each limit of ``docs/operations.md`` (Limits) refused something. The
        connection counters cover every connection transport (tcp, tls, ws, wss)."""
        refused = self.connections.refused
        tcps = list(self.streams.values())
        return {
            "rate_limited": self.endpoint.stats.rate_limited,
            "transactions_refused": self.layer.stats.overloaded,
            "tcp_refused_node": refused.get("node", 0),
            "tcp_refused_source": refused.get("source", 0),
            "tcp_refused_fds": refused.get("fds", 0),
            "tcp_write_overflows": sum(t.write_overflows for t in tcps),
            "tcp_message_timeouts": sum(t.message_timeouts for t in tcps),
        }

    def live_sessions(self) -> list[dict[str, object]]:
        """The calls in progress, pending first, for ``GET /sessions``."""
        media = {s.call.call_id: s for s in self.sessions.sessions}
        facts = (
            {s.call_id: SessionFacts.of(s) for s in self.hub.sessions()}
            if self.hub is not None
            else {}
        )
        now = self.clock.now()
        out = []
        groups = (("pending", self.ua.pending_calls()), ("established", self.ua.calls()))
        for state, calls in groups:
            for call in calls:
                out.append(
                    _describe_call(
                        call, state, now, media.get(call.call_id), facts.get(call.call_id)
                    )
                )
        return out

    # -- call-detail records ----------------------------------------------------------------

    def _call_ended(self, call: Call) -> None:
        try:
            self.cdr.write(self.call_record(call))
        except Exception:  # a record must never break the end of a call
            log.exception("call record of %s failed", call.call_id, extra=call.log_extra)
        if self._drain_wakeup is not None:
            self._drain_wakeup.set()

    def call_record(self, call: Call) -> dict[str, object]:
        """The CDR of an ended call (:func:`avatar_mf.node.cdr.call_record`)."""
        assert call.end is not None
        now = self.clock.now()
        media = self.sessions.session_of(call.call_id)
        # The session may have been released before the call ended (its data channels
        # closed before the BYE): the hub kept what the record needs.
        facts = self.hub.facts_of(call.call_id, forget=True) if self.hub is not None else None
        described = _describe_call(call, "ended", now, media, facts)
        dc = media.dc if media is not None else None
        streams: list[dict[str, object]] = (
            [
                {"stream_id": sid, "label": spec.label, "subprotocol": spec.subprotocol}
                for sid, spec in sorted(dc.streams.items())
            ]
            if dc is not None
            else []
        )
        answered = call.answered
        return call_record(
            described,
            streams,
            end=call.end,
            start=time.time() - (now - call.created),
            setup=answered - call.created if answered else None,
            duration=now - answered if answered else 0.0,
            audio=(
                [dataclasses.asdict(r) for r in media.audio.summary()]
                if media is not None and media.audio is not None
                else []
            ),
            video=(
                [dataclasses.asdict(r) for r in media.video.summary()]
                if media is not None and media.video is not None
                else []
            ),
        )

    # -- reload (SIGHUP) --------------------------------------------------------------------

    def reconfigure(self, new: AppConfig) -> ReloadPlan:
        """Apply what can change live of ``new`` (see :mod:`avatar_mf.node.reload`) and keep
        the rest; returns the plan (what was applied, what needs a restart). Raises
        StageLoadError, having applied nothing, when a changed stage cannot be built."""
        plan = plan_reload(self.config, new)
        merged = with_live(self.config, new, plan.live)
        stages = None
        if plan.touches("pipeline.") and self.hub is not None:
            stages = build_stages(
                with_render_defaults(stage_settings(merged.pipeline), merged.render),
                validator=validate_container,
            )
        tls = self._check_tls(merged.sip)
        if plan.touches("log."):
            from avatar_mf.logging_setup import configure_logging

            configure_logging(merged.log)
        self.cdr.reopen(merged.log.cdr_file)  # every SIGHUP: logrotate moved the file
        if plan.touches("sip.trusted_peers") or plan.touches("sip.rate_limit"):
            self.endpoint.set_admission(*_admission(merged.sip, self.clock))
        if plan.touches("sip."):
            self.ua.reconfigure(_ua_config(merged.sip))
        if plan.touches("admin.token"):
            self.admin.set_token(merged.admin.token)
        if stages is not None and self.hub is not None:
            old_animation = network_animation(self.hub)
            kept = {id(stage.provider) for stage in stages}
            self._retired_providers += [
                stage.provider
                for stage in self.hub.stages
                if id(stage.provider) not in kept
                and isinstance(stage.provider, ClosableProvider)
                and not isinstance(stage.provider, NetworkAnimation)  # _wire_video_out's
            ]
            self.hub.stages = tuple(stages)
            self._wire_video_out(old_animation)
        if tls is not None and self._server_ssl is not None:
            certificate, private_key = tls
            self._server_ssl.load_cert_chain(certfile=certificate, keyfile=private_key)
            log.info("reload: TLS certificate loaded again from %s", certificate)
        self.config = merged
        return plan

    def _check_tls(self, sip: SipConfig) -> tuple[Path, Path] | None:
        """The certificate and key files to load into the tls/wss listeners' context on a
        reload (None without such a listener), once they proved to hold a matching pair: a
        failed ``load_cert_chain`` could leave the live context half changed. Raises
        TlsReloadError otherwise."""
        if self._server_ssl is None or sip.tls_certificate is None or sip.tls_private_key is None:
            return None
        try:
            server_context(sip.tls_certificate, sip.tls_private_key)
        except (OSError, ValueError) as exc:
            raise TlsReloadError(
                f"TLS certificate {sip.tls_certificate} and key {sip.tls_private_key}: {exc}"
            ) from exc
        return sip.tls_certificate, sip.tls_private_key

    def reload(self, load: Callable[[], AppConfig]) -> None:
        """SIGHUP: read the configuration again with ``load`` and apply it; a configuration
        with problems is logged and the running one kept. Never raises."""
        try:
            new = load()
            problems = preflight(new)
            if problems:
                raise ConfigError(problems)
            plan = self.reconfigure(new)
        except ConfigError as exc:
            log.error(
                "reload refused, the running configuration stays: %s",
                "; ".join(str(p) for p in exc.problems),
            )
            return
        except (StageLoadError, TlsReloadError) as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            return
        except Exception:
            log.exception("reload failed, the running configuration stays")
            return
        if plan.empty:
            log.info("reload: no setting changed")
            return
        if plan.live:
            log.info(
                "reload: applied %s",
                "; ".join(str(c) for c in plan.live),
                extra={"applied": [c.key_path for c in plan.live]},
            )
        if plan.restart:
            log.warning(
                "reload: needs a restart, not applied: %s",
                "; ".join(str(c) for c in plan.restart),
                extra={"restart_needed": [c.key_path for c in plan.restart]},
            )

    def drop_call(self, call_id: str) -> int:
        """End the calls with ``call_id`` (BYE, or 503 to a pending INVITE); how many."""
        calls = [c for c in (*self.ua.pending_calls(), *self.ua.calls()) if c.call_id == call_id]
        for call in calls:
            self.ua.drop(call, "dropped by operator")
        return len(calls)

    def listen_port(self, name: str) -> int:
        """The configured port of transport ``name``: tls, ws and wss have their own."""
        sip = self.config.sip
        return {"tls": sip.tls_port, "ws": sip.ws_port, "wss": sip.wss_port}.get(name, sip.port)

    def _tls_server_context(self) -> ssl.SSLContext:
        """The tls and wss listeners' context (sip.tls_certificate, sip.tls_private_key)."""
        if self._server_ssl is None:
            sip = self.config.sip
            # The config refuses tls or wss without both files.
            assert sip.tls_certificate is not None and sip.tls_private_key is not None
            try:
                self._server_ssl = server_context(sip.tls_certificate, sip.tls_private_key)
            except (OSError, ValueError) as exc:
                raise StartupError(
                    f"TLS certificate {sip.tls_certificate} and key {sip.tls_private_key}: {exc}"
                ) from exc
        return self._server_ssl

    async def _listen(self, name: str, host: str, port: int) -> None:
        sip = self.config.sip
        if name == "udp":
            self.transports["udp"] = await UdpTransport.listen(
                host, port, self.endpoint, max_message_size=sip.max_message_size
            )
        elif name in ("tcp", "tls"):
            secure = name == "tls"
            stream = TcpTransport(
                self.endpoint,
                max_message_size=sip.max_message_size,
                idle_timeout=sip.tcp_idle_timeout,
                limits=self.connection_limits,
                fds=self.fds,
                table=self.connections,
                name=name,
                server_ssl=self._tls_server_context() if secure else None,
                client_ssl=client_context() if secure else None,
            )
            await stream.listen(host, port)
            if name == "tcp":
                self._tcp = stream
            self.streams[name] = stream
            self.transports[name] = stream
        elif name in ("ws", "wss"):
            ws = WebSocketTransport(
                self.endpoint,
                table=self.connections,
                limits=self.connection_limits,
                fds=self.fds,
                max_message_size=sip.max_message_size,
                idle_timeout=sip.tcp_idle_timeout,
                ping_interval=sip.ws_ping_interval,
                origins=sip.ws_origins,
                ssl_context=self._tls_server_context() if name == "wss" else None,
            )
            await ws.listen(host, port)
            self.streams[name] = ws
            self.transports[name] = ws

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
            stages=build_stages(
                with_render_defaults(stage_settings(cfg.pipeline), cfg.render),
                validator=validate_container,
            ),
            settings=AvatarSettings(
                rate=cfg.pipeline.rate,
                max_transfer_size=cfg.storage.max_avatar_size,
                grant_recheck_interval=cfg.storage.grant_recheck_interval,
            ),
            store=store,
            authorizer=Authorizer(store, SystemWallClock()),
            cache=self.cache,
            play_audio=self.audio_rooms.play if self.audio is not None else None,
        )
        self.sessions.services.update(self.hub.services())
        if self.audio is not None:
            self.audio.audio_sink = self.hub.push_audio
            self.audio.audio_wanted = self.hub.wants_audio
        if self.video is not None:
            self.video.sink = self.hub.push_video
        self._wire_video_out(None)

    def _wire_video_out(self, old: NetworkAnimation | None) -> None:
        """The network animation stage (if configured) reads stored avatars through the cache
        and feeds the video plane's senders; a replaced one (reload) keeps rendering for its
        sessions until they end, then its pool is closed with the node."""
        if self.hub is None:
            return
        animation = network_animation(self.hub)
        if animation is not None and self.cache is not None:
            animation.avatar_loader = self.cache.get_blob
        if old is not None and old is not animation:
            self._retired_animations.append(old)
        if self.video is not None:
            self.video.picker = (
                VideoPicker(self.hub, self._retired_animations) if animation is not None else None
            )

    async def start(self) -> None:
        try:
            await self._start_avatar_services()
        except (OSError, LookupError, ValueError, TypeError) as exc:
            raise StartupError(f"avatar services: {exc}") from exc
        sip = self.config.sip
        host = str(sip.host)
        for name in sip.transports:
            port = self.listen_port(name)
            try:
                await self._listen(name, host, port)
            except OSError as exc:
                raise StartupError(f"SIP {name} listener {host}:{port}: {exc}") from exc
        self.endpoint.attach(self.layer, self.transports)
        admin = self.config.admin
        if admin.enabled:
            try:
                await self.admin.start(str(admin.host), admin.port)
            except OSError as exc:
                raise StartupError(f"admin listener {admin.host}:{admin.port}: {exc}") from exc
        self.log_ready_line()

    def log_ready_line(self) -> None:
        """The start-up line: version, listeners, DTLS fingerprint, active stages."""
        host = str(self.config.sip.host)
        listening = " ".join(f"{name}:{host}:{t.local_port}" for name, t in self.transports.items())
        admin = f"{self.config.admin.host}:{self.admin.port}" if self.admin.port else "off"
        fingerprint = self.certificate.fingerprint("sha-256")
        stages = [f"{s.kind}={s.name}" for s in self.hub.stages] if self.hub is not None else []
        log.info(
            "avatar-mf %s ready: sip %s media %s admin %s dtls sha-256 %s stages %s",
            __version__,
            listening,
            self.config.media.host,
            admin,
            fingerprint,
            " ".join(stages) or "none",
            extra={
                "version": __version__,
                "listeners": listening.split(),
                "media_host": str(self.config.media.host),
                "admin": admin,
                "dtls_fingerprint": f"sha-256 {fingerprint}",
                "stages": stages,
            },
        )

    async def close(self) -> None:
        await self.admin.close()
        self.trace.close()
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
        self.media_pool.shutdown()
        self.video_pool.shutdown()
        providers: list[ClosableProvider] = [*self._retired_animations, *self._retired_providers]
        if self.hub is not None:
            providers += [
                stage.provider
                for stage in self.hub.stages
                if isinstance(stage.provider, ClosableProvider)
            ]
        for provider in providers:  # worker processes, landmarkers, render pools
            try:
                provider.close()
            except Exception:
                log.exception("closing the stage provider %s failed", type(provider).__name__)
        self.two_leg.close()
        self.layer.close()
        for transport in self.transports.values():
            transport.close()
        for stream in self.streams.values():
            await stream.wait_closed()
        self.cdr.close()

    async def drain(self, grace: float) -> None:
        """Stop taking calls (503 to INVITE and OPTIONS) and wait up to ``grace`` seconds for
        the calls in progress to end by themselves."""
        self.ua.draining = True
        log.info("draining: %d calls in progress, up to %.1f s", self.ua.active_calls, grace)
        changed = self._drain_wakeup = asyncio.Event()
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


async def serve(config: AppConfig, load: Callable[[], AppConfig] | None = None) -> int:
    """Run one MF node until a signal; returns the process exit code.

    SIGTERM drains for ``lifecycle.drain_timeout``, SIGINT for ``lifecycle.sigint_drain_timeout``;
    then the remaining calls get BYE, everything is released and the exit code is 0. A second
    signal during the drain ends it at once (exit code 1). SIGHUP reads the configuration again
    with ``load`` (the same file, environment and command line) and applies what can change
    live (:meth:`MediaFunction.reload`); without ``load`` it only reopens the CDR file.
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

    def on_hangup() -> None:
        log.info("received SIGHUP: reloading the configuration")
        node.reload(load if load is not None else (lambda: node.config))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    sig = await first
    loop.remove_signal_handler(signal.SIGHUP)
    loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP ignored: the node is stopping")
    lifecycle = node.config.lifecycle
    timeout = lifecycle.drain_timeout if sig == signal.SIGTERM else lifecycle.sigint_drain_timeout
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


def run(config: AppConfig, load: Callable[[], AppConfig] | None = None) -> int:
    """Run the MF until SIGTERM or SIGINT; returns the process exit code. ``load`` reads the
    configuration again on SIGHUP."""
    import uvloop

    from avatar_mf.logging_setup import configure_logging

    configure_logging(config.log)
    return uvloop.run(serve(config, load))
