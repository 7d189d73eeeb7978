"""Prometheus metrics of one MF node, served as ``GET /metrics`` on the admin listener.

Each :class:`~avatar_mf.node.app.MediaFunction` owns one :class:`NodeMetrics`: its own
:class:`~prometheus_client.CollectorRegistry` (no global registry, so several nodes can run in
one process, as the tests do). Almost everything is read at scrape time, by
:class:`NodeCollector`, from the counters the layers already keep (SIP endpoint, transaction
layer, user agent, call media, avatar hub and relay, avatar cache): the layers stay free of
Prometheus and a scrape costs one pass over a few dictionaries. The few observations that need
a distribution are real instruments (prometheus-client histograms fed through callbacks the
node injects: call setup time, call duration, data channel setup time) or, on the relay's hot
path, the relay's own :class:`~avatar_mf.rooms.relay.FixedHistogram`.

:data:`METRICS` is the catalogue: every metric with its type, labels and help text. The help
text in the exposition and the table in ``docs/operations.md`` both come from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from avatar_mf import __version__
from avatar_mf.transport.endpoint import method_label
from avatar_mf.ua.user_agent import ALLOWED_METHODS, FAILURE_LABELS

if TYPE_CHECKING:
    from avatar_mf.avatar_session.hub import AvatarHub
    from avatar_mf.calls.audio import AudioPlane
    from avatar_mf.calls.call_media import CallSessionFactory
    from avatar_mf.calls.video import VideoPlane
    from avatar_mf.media.endpoint import DataChannelEndpointFactory
    from avatar_mf.pipeline.executor import StageExecutor
    from avatar_mf.rooms.audio_room import AudioRooms
    from avatar_mf.rooms.relay import FixedHistogram, RelayMetrics
    from avatar_mf.sip.transaction_layer import TransactionLayer
    from avatar_mf.storage.cache import AvatarCache
    from avatar_mf.transport.endpoint import SipEndpoint
    from avatar_mf.ua.user_agent import UserAgent

__all__ = ["METRICS", "MetricSpec", "NodeCollector", "NodeMetrics", "NodeView"]

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of the catalogue."""

    name: str
    """The name as exposed (counters end in ``_total``)."""
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    instrument: bool = False
    """Observed by a prometheus-client instrument (not read by :class:`NodeCollector`)."""


def _c(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(f"avatar_mf_{name}_total", "counter", help, labels)


def _g(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(f"avatar_mf_{name}", "gauge", help, labels)


def _h(name: str, help: str, *labels: str, instrument: bool = False) -> MetricSpec:
    return MetricSpec(f"avatar_mf_{name}", "histogram", help, labels, instrument)


#: Every metric the node exposes besides the standard ``process_*`` and ``python_info``.
METRICS: tuple[MetricSpec, ...] = (
    # -- node
    _g("start_time_seconds", "Unix time the node started."),
    _g("build_info", "Always 1; the version label says which avatar-mf runs.", "version"),
    _g("draining", "1 while the node drains (SIGTERM/SIGINT: new INVITEs and OPTIONS get 503)."),
    # -- SIP
    _c("sip_requests_received", "SIP requests received, by method.", "method"),
    _c("sip_responses_received", "SIP responses received, by status code.", "code"),
    _c("sip_requests_sent", "SIP requests sent (BYE, UPDATE refreshes), by method.", "method"),
    _c(
        "sip_responses_sent",
        "SIP responses sent, by the method they answer and status code (retransmissions included).",
        "method",
        "code",
    ),
    _c(
        "sip_messages_refused",
        "SIP messages refused before the transaction layer: rate_limited (dropped), "
        "untrusted (403) or unparsable (400 or dropped).",
        "reason",
    ),
    _g("sip_transactions_active", "SIP transactions in progress (server and client)."),
    _c(
        "sip_transactions_created",
        "SIP transactions created, by side and method.",
        "side",
        "method",
    ),
    _c("sip_transaction_timeouts", "SIP transactions ended by a timeout (Timer B, F or H)."),
    _c("sip_transport_errors", "Transport failures reported to the user agent."),
    _c(
        "sip_retransmissions_absorbed",
        "Retransmissions received and absorbed by a transaction: request (re-answered from the "
        "transaction), ack (ACK of a non-2xx) or response (final response re-sent by the peer).",
        "kind",
    ),
    _c(
        "sip_retransmissions_sent",
        "Retransmissions sent: transaction (Timers A, E, G over UDP) or ok (2xx re-sent "
        "until its ACK, RFC 3261 13.3.1.4).",
        "kind",
    ),
    _g("sip_tcp_connections", "Open SIP TCP connections."),
    # -- calls
    _g("dialogs_active", "Established calls (2xx sent, not ended)."),
    _g("invites_pending", "Initial INVITEs not answered yet."),
    _c("calls_started", "Initial INVITEs accepted for processing (not refused at once)."),
    _c("calls_answered", "Calls set up: 200 OK sent with an SDP answer."),
    _c("calls_ended", "Calls ended, by reason (see docs/operations.md for the reasons).", "reason"),
    _c(
        "calls_failed",
        "Calls that ended in a failure, by reason: the subset of calls_ended that is not a "
        "normal end (bye, cancelled, operator, shutdown).",
        "reason",
    ),
    _h("call_setup_seconds", "Seconds from an initial INVITE to its 200 OK.", instrument=True),
    _h(
        "call_duration_seconds",
        "Seconds from 200 OK to the end of answered calls.",
        instrument=True,
    ),
    # -- media
    _g("call_sessions_active", "Call media sessions (SDP state and data channel association)."),
    _g("datachannel_sessions_active", "DTLS/SCTP associations created and not yet released."),
    _g("media_sockets_open", "UDP sockets held by data channel sessions."),
    _h(
        "datachannel_setup_seconds",
        "Seconds from starting a data channel association to SCTP up (ICE, DTLS, SCTP).",
        instrument=True,
    ),
    _c(
        "datachannel_sessions_failed",
        "Data channel associations that never came up, by reason (setup_timeout ...).",
        "reason",
    ),
    _g(
        "datachannels_open",
        "Data channels open, by subprotocol (other: no service for it).",
        "subprotocol",
    ),
    _c("datachannels_opened", "Data channels opened, by subprotocol.", "subprotocol"),
    _c(
        "datachannel_messages",
        "Data channel messages, by subprotocol and direction (rx: from UEs, tx: to UEs).",
        "subprotocol",
        "direction",
    ),
    _c(
        "datachannel_bytes",
        "Data channel payload bytes, by subprotocol and direction (rx: from UEs, tx: to UEs).",
        "subprotocol",
        "direction",
    ),
    # -- RTP audio (IMS style)
    _g("rtp_streams_active", "RTP audio streams open (one per call with accepted audio)."),
    _c("rtp_streams_opened", "RTP audio streams opened since start."),
    _g("audio_rooms_active", "Rooms with at least one RTP audio member."),
    _c("rtp_packets", "RTP packets, by direction (rx: accepted from UEs, tx: sent).", "direction"),
    _c("rtp_packets_lost", "RTP packets missing at playout (concealed), from UEs."),
    _c(
        "rtp_dropped",
        "RTP/RTCP datagrams dropped, by reason: malformed, source (not the latched address), "
        "payload_type (not negotiated), ssrc, oversize, rate (flood), late, duplicate, "
        "overflow, send_error.",
        "reason",
    ),
    _g("rtp_jitter_seconds_max", "Largest interarrival jitter (RFC 3550 A.8) of the open streams."),
    _g("rtp_rtt_seconds_max", "Largest round-trip time (RTCP LSR/DLSR) of the open streams."),
    _g(
        "audio_mix_seconds_p99",
        "99th percentile of the last 1000 mixing ticks' decode + mix + encode time.",
    ),
    _c("audio_mix_ticks", "Audio room ticks, by mode (forward, mix).", "mode"),
    # -- RTP video (IMS style; the network-rendered avatar out)
    _g("video_streams_active", "RTP video streams open (one per accepted video m-line)."),
    _c(
        "video_packets",
        "RTP video packets, by direction (rx: accepted from UEs, tx: the rendered avatar sent).",
        "direction",
    ),
    _c(
        "video_frames",
        "Video frames, by kind: decoded (from UEs), sent (rendered avatar frames encoded and "
        "sent), keyframes_sent, skipped_out (rendered frames a receiver did not get: it or the "
        "encoder pool behind, the rate cap).",
        "kind",
    ),
    _c(
        "video_keyframe_requests",
        "RTCP key frame requests, by direction (rx: PLI + FIR from UEs, tx: sent to UEs).",
        "direction",
    ),
    _c(
        "audio_frames",
        "Audio frames handled, by kind: decoded (or concealed) and encoded by room mixing, "
        "forwarded untouched between two legs with one codec.",
        "kind",
    ),
    # -- avatar services and relay
    _g("rooms_active", "Rooms with at least one participant."),
    _g("avatar_sessions_active", "Calls with an avatar session (an avatar channel open)."),
    _g(
        "animation_data_sessions",
        "Avatar sessions using each animation-data stage now (the stages their hello selected: "
        "text, voice, camera ...), by stage.",
        "stage",
    ),
    _c(
        "relay_delivered", "Relayed units/messages handed to a receiver's channel, by kind.", "kind"
    ),
    _c("relay_stale_dropped", "Animation units dropped for slow receivers (a newer one came)."),
    _c("relay_overflows", "Metadata receivers whose queue overflowed (their queue was cleared)."),
    _h(
        "relay_latency_seconds",
        "Seconds from a unit offered to a receiver's relay queue to its send on the channel "
        "(animation or metadata); above zero only while the receiver's channel is backed up.",
        "kind",
    ),
    _c(
        "stage_errors",
        "Avatar pipeline stage failures, by stage and kind (busy, failed, rejected, internal).",
        "stage",
        "kind",
    ),
    _c(
        "avatar_error_replies",
        "error messages sent to UEs on the metadata channel, by code.",
        "code",
    ),
    _c(
        "audio_channel_messages",
        "Raw audio messages on avatar-mf-audio data channels (voice without RTP), by outcome: "
        "accepted, a refusal reason (too-long, far-timestamp ...), unsupported (voice not "
        "agreed) or conflict (the session's voice comes from RTP).",
        "outcome",
    ),
    _g("stage_jobs_pending", "Stage jobs (text animation, avatar validation) in the executor."),
    # -- storage
    _c("avatar_cache_hits", "Avatar cache lookups answered from the cache."),
    _c("avatar_cache_misses", "Avatar cache lookups not in the cache (loads + coalesced)."),
    _c("avatar_cache_loads", "Avatar store reads started by the cache."),
    _c("avatar_cache_coalesced", "Avatar cache misses that joined a load already in flight."),
    _c("avatar_cache_evictions", "Avatars evicted from the cache for room."),
    _c("avatar_cache_expirations", "Avatars dropped from the cache after their TTL."),
    _c("avatar_cache_load_failures", "Avatar store reads that failed."),
    _g("avatar_cache_entries", "Avatars held in the cache."),
    _g("avatar_cache_bytes", "Bytes held in the avatar cache."),
)

_SPECS: Mapping[str, MetricSpec] = {spec.name: spec for spec in METRICS}
#: The methods the user agent handles: their request counters start at 0.
UA_METHODS = tuple(sorted(ALLOWED_METHODS))

CALL_SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CALL_DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
DC_SETUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NodeView(Protocol):
    """What :class:`NodeCollector` reads (a :class:`~avatar_mf.node.app.MediaFunction`)."""

    @property
    def endpoint(self) -> SipEndpoint: ...
    @property
    def layer(self) -> TransactionLayer: ...
    @property
    def ua(self) -> UserAgent: ...
    @property
    def sessions(self) -> CallSessionFactory: ...
    @property
    def media(self) -> DataChannelEndpointFactory: ...
    @property
    def executor(self) -> StageExecutor: ...
    @property
    def hub(self) -> AvatarHub | None: ...
    @property
    def cache(self) -> AvatarCache | None: ...
    @property
    def relay_metrics(self) -> RelayMetrics: ...
    @property
    def tcp_connections(self) -> int: ...
    @property
    def audio(self) -> AudioPlane | None: ...
    @property
    def audio_rooms(self) -> AudioRooms: ...
    @property
    def video(self) -> VideoPlane | None: ...


def _family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    spec = _SPECS[name]
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help, labels=labels)
    assert spec.kind == "gauge", name
    return GaugeMetricFamily(spec.name, spec.help, labels=labels)


def _histogram_family(name: str) -> HistogramMetricFamily:
    spec = _SPECS[name]
    assert spec.kind == "histogram", name
    return HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def _describe(spec: MetricSpec) -> Metric:
    return _histogram_family(spec.name) if spec.kind == "histogram" else _family(spec.name)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _add_histogram(family: HistogramMetricFamily, labels: list[str], hist: FixedHistogram) -> None:
    buckets = [(_le(bound), float(count)) for bound, count in hist.cumulative()]
    family.add_metric(labels, buckets, hist.sum)


class NodeCollector(Collector):
    """Reads a node's counters at scrape time (see the module docstring)."""

    def __init__(self, node: NodeView, *, start_time: float) -> None:
        self._node = node
        self._start_time = start_time

    def describe(self) -> Iterable[Metric]:
        return [_describe(spec) for spec in METRICS if not spec.instrument]

    def collect(self) -> Iterable[Metric]:
        node = self._node
        out: list[Metric] = []

        def add(name: str, value: float, *labels: str) -> Metric:
            family = _family(name)
            family.add_metric(list(labels), value)
            out.append(family)
            return family

        def add_counts(
            name: str,
            values: Iterable[tuple[tuple[str, ...], float]],
            zeros: Iterable[tuple[str, ...]] = (),
        ) -> None:
            # ``zeros``: label sets shown as 0 before they first count, so that rate() and
            # dashboards have a series from the first scrape on.
            merged: dict[tuple[str, ...], float] = dict.fromkeys(zeros, 0)
            for labels, value in values:
                merged[labels] = merged.get(labels, 0) + value
            family = _family(name)
            for labels, value in sorted(merged.items()):
                family.add_metric(list(labels), value)
            out.append(family)

        add("avatar_mf_start_time_seconds", self._start_time)
        add("avatar_mf_build_info", 1, __version__)
        add("avatar_mf_draining", 1 if node.ua.draining else 0)
        self._sip(node, add, add_counts)
        self._calls(node, add, add_counts)
        self._media(node, add, add_counts)
        self._rtp(node, add, add_counts)
        self._video(node, add, add_counts)
        self._avatar(node, add, add_counts, out)
        return out

    # Each section below reads one layer's counters.

    @staticmethod
    def _sip(node: NodeView, add: _Add, add_counts: _AddCounts) -> None:
        sip = node.endpoint.stats
        add_counts(
            "avatar_mf_sip_requests_received_total",
            (((m,), v) for m, v in sip.requests_received.items()),
            [(m,) for m in UA_METHODS],
        )
        add_counts(
            "avatar_mf_sip_responses_received_total",
            (((str(c),), v) for c, v in sip.responses_received.items()),
        )
        add_counts(
            "avatar_mf_sip_requests_sent_total",
            (((m,), v) for m, v in sip.requests_sent.items()),
        )
        add_counts(
            "avatar_mf_sip_responses_sent_total",
            (((m, str(c)), v) for (m, c), v in sip.responses_sent.items()),
        )
        add_counts(
            "avatar_mf_sip_messages_refused_total",
            [
                (("rate_limited",), sip.rate_limited),
                (("untrusted",), sip.untrusted),
                (("unparsable",), sip.bad_message),
            ],
        )
        stats = node.layer.stats
        add("avatar_mf_sip_transactions_active", node.layer.active_count)
        created: dict[tuple[str, str], int] = {}
        sides = (("server", stats.server_created), ("client", stats.client_created))
        for side, per_method in sides:
            for method, value in per_method.items():
                key = (side, method_label(method))
                created[key] = created.get(key, 0) + value
        add_counts("avatar_mf_sip_transactions_created_total", created.items())
        add("avatar_mf_sip_transaction_timeouts_total", stats.timeouts)
        add("avatar_mf_sip_transport_errors_total", stats.transport_errors)
        add_counts(
            "avatar_mf_sip_retransmissions_absorbed_total",
            [
                (("request",), stats.retransmissions_absorbed),
                (("ack",), stats.acks_absorbed),
                (("response",), stats.responses_absorbed),
            ],
        )
        add_counts(
            "avatar_mf_sip_retransmissions_sent_total",
            [
                (("transaction",), stats.retransmissions_sent),
                (("ok",), node.ua.stats.ok_retransmissions),
            ],
        )
        add("avatar_mf_sip_tcp_connections", node.tcp_connections)

    @staticmethod
    def _calls(node: NodeView, add: _Add, add_counts: _AddCounts) -> None:
        ua = node.ua
        add("avatar_mf_dialogs_active", ua.active_calls)
        add("avatar_mf_invites_pending", ua.pending_invites)
        add("avatar_mf_calls_started_total", ua.stats.calls_started)
        add("avatar_mf_calls_answered_total", ua.stats.calls_answered)
        add_counts(
            "avatar_mf_calls_ended_total",
            (((r,), v) for r, v in ua.stats.end_reasons.items()),
            [("bye",), ("cancelled",)],
        )
        add_counts(
            "avatar_mf_calls_failed_total",
            (((r,), v) for r, v in ua.stats.failure_reasons.items()),
            [(r,) for r in FAILURE_LABELS],
        )

    @staticmethod
    def _media(node: NodeView, add: _Add, add_counts: _AddCounts) -> None:
        traffic = node.sessions.traffic
        subprotocols = [*sorted(node.sessions.services), "other"]
        flows = [(s, d) for s in subprotocols for d in ("rx", "tx")]
        add("avatar_mf_call_sessions_active", len(node.sessions.sessions))
        add("avatar_mf_datachannel_sessions_active", node.media.active_sessions)
        add("avatar_mf_media_sockets_open", node.media.open_sockets)
        add_counts(
            "avatar_mf_datachannel_sessions_failed_total",
            (((r,), v) for r, v in traffic.failed.items()),
        )
        add_counts(
            "avatar_mf_datachannels_open",
            (((s,), v) for s, v in traffic.open_channels.items()),
            [(s,) for s in subprotocols],
        )
        add_counts(
            "avatar_mf_datachannels_opened_total",
            (((s,), v) for s, v in traffic.opened.items()),
            [(s,) for s in subprotocols],
        )
        add_counts("avatar_mf_datachannel_messages_total", traffic.messages.items(), flows)
        add_counts("avatar_mf_datachannel_bytes_total", traffic.bytes.items(), flows)

    @staticmethod
    def _rtp(node: NodeView, add: _Add, add_counts: _AddCounts) -> None:
        plane = node.audio
        rooms = node.audio_rooms
        add("avatar_mf_rtp_streams_active", plane.open_streams if plane else 0)
        add("avatar_mf_rtp_streams_opened_total", plane.streams_opened if plane else 0)
        add("avatar_mf_audio_rooms_active", len(rooms.rooms))
        totals = plane.totals() if plane is not None else None
        add_counts(
            "avatar_mf_rtp_packets_total",
            [
                (("rx",), totals.packets_in if totals else 0),
                (("tx",), totals.packets_out if totals else 0),
            ],
        )
        add("avatar_mf_rtp_packets_lost_total", totals.lost if totals else 0)
        add_counts(
            "avatar_mf_rtp_dropped_total",
            (((r,), v) for r, v in plane.drops.items()) if plane else (),
            [(r,) for r in ("malformed", "source", "payload_type", "ssrc", "oversize", "rate")],
        )
        add("avatar_mf_rtp_jitter_seconds_max", totals.jitter_max if totals else 0.0)
        add("avatar_mf_rtp_rtt_seconds_max", totals.rtt_max if totals else 0.0)
        jobs = sorted(rooms.stats.job_seconds)
        add("avatar_mf_audio_mix_seconds_p99", jobs[int(0.99 * (len(jobs) - 1))] if jobs else 0.0)
        add_counts(
            "avatar_mf_audio_frames_total",
            [
                (("decoded",), rooms.stats.decoded_frames),
                (("encoded",), rooms.stats.mixed_frames),
                (("forwarded",), totals.forwarded if totals else 0),
            ],
        )
        add_counts(
            "avatar_mf_audio_mix_ticks_total",
            (((m,), v) for m, v in rooms.stats.by_mode.items()),
            [("forward",), ("mix",)],
        )

    @staticmethod
    def _video(node: NodeView, add: _Add, add_counts: _AddCounts) -> None:
        plane = node.video
        t = plane.totals() if plane is not None else None

        def get(key: str) -> int:
            return t[key] if t is not None else 0

        add("avatar_mf_video_streams_active", plane.open_streams if plane else 0)
        add_counts(
            "avatar_mf_video_packets_total",
            [(("rx",), get("packets_in")), (("tx",), get("packets_out"))],
        )
        add_counts(
            "avatar_mf_video_frames_total",
            [
                (("decoded",), get("decoded")),
                (("sent",), get("frames_out")),
                (("keyframes_sent",), get("keyframes_out")),
                (("skipped_out",), get("skipped_out")),
            ],
        )
        add_counts(
            "avatar_mf_video_keyframe_requests_total",
            [
                (("rx",), get("pli_in") + get("fir_in")),
                (("tx",), get("pli_out") + get("fir_out")),
            ],
        )

    @staticmethod
    def _avatar(node: NodeView, add: _Add, add_counts: _AddCounts, out: list[Metric]) -> None:
        hub = node.hub
        relay = node.relay_metrics
        add("avatar_mf_rooms_active", len(hub.rooms) if hub is not None else 0)
        add("avatar_mf_avatar_sessions_active", hub.session_count if hub is not None else 0)
        add_counts(
            "avatar_mf_animation_data_sessions",
            (
                ((stage,), 1)
                for session in (hub.sessions() if hub is not None else ())
                for stage in session.selection.stages
            ),
            [(offer.name,) for offer in hub.animation_offers()] if hub is not None else [],
        )
        add_counts(
            "avatar_mf_relay_delivered_total",
            [
                (("animation",), relay.animation.delivered),
                (("metadata",), relay.metadata.delivered),
            ],
        )
        add("avatar_mf_relay_stale_dropped_total", relay.animation.dropped_stale)
        add("avatar_mf_relay_overflows_total", relay.metadata.overflowed)
        latency = _histogram_family("avatar_mf_relay_latency_seconds")
        _add_histogram(latency, ["animation"], relay.animation_latency)
        _add_histogram(latency, ["metadata"], relay.metadata_latency)
        out.append(latency)
        add_counts(
            "avatar_mf_stage_errors_total",
            hub.stage_errors.items() if hub is not None else (),
            [("animation_data", "busy"), ("animation_data", "failed")],
        )
        add_counts(
            "avatar_mf_avatar_error_replies_total",
            (((code,), v) for code, v in hub.error_replies.items()) if hub is not None else (),
        )
        add_counts(
            "avatar_mf_audio_channel_messages_total",
            (
                (((outcome,), v) for outcome, v in hub.session_stats.audio_messages.items())
                if hub is not None
                else ()
            ),
            [("accepted",)],
        )
        add("avatar_mf_stage_jobs_pending", node.executor.pending)
        cache = node.cache.stats() if node.cache is not None else None
        for name, value in (
            ("hits_total", cache.hits if cache else 0),
            ("misses_total", cache.misses if cache else 0),
            ("loads_total", cache.loads if cache else 0),
            ("coalesced_total", cache.coalesced if cache else 0),
            ("evictions_total", cache.evictions if cache else 0),
            ("expirations_total", cache.expirations if cache else 0),
            ("load_failures_total", cache.failures if cache else 0),
            ("entries", cache.entries if cache else 0),
            ("bytes", cache.bytes if cache else 0),
        ):
            add(f"avatar_mf_avatar_cache_{name}", value)


class _Add(Protocol):
    def __call__(self, name: str, value: float, *labels: str) -> Metric: ...


class _AddCounts(Protocol):
    def __call__(
        self,
        name: str,
        values: Iterable[tuple[tuple[str, ...], float]],
        zeros: Iterable[tuple[str, ...]] = (),
    ) -> None: ...


class NodeMetrics:
    """The metrics of one node: its registry, its instruments, and its collector once
    :meth:`attach` is called with the node."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.start_time = time.time()
        self.call_setup = self._histogram("avatar_mf_call_setup_seconds", CALL_SETUP_BUCKETS)
        self.call_duration = self._histogram(
            "avatar_mf_call_duration_seconds", CALL_DURATION_BUCKETS
        )
        self.datachannel_setup = self._histogram(
            "avatar_mf_datachannel_setup_seconds", DC_SETUP_BUCKETS
        )
        if process:
            # The standard process_* (CPU, memory, file descriptors, start time) and python_info.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def _histogram(self, name: str, buckets: tuple[float, ...]) -> Histogram:
        spec = _SPECS[name]
        return Histogram(name, spec.help, buckets=buckets, registry=self.registry)

    def attach(self, node: NodeView) -> None:
        """Start reading ``node``'s counters at each scrape."""
        self.registry.register(NodeCollector(node, start_time=self.start_time))

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an HTTP ``Accept`` header: (body, content type). Prometheus text
        format unless the scraper asks for OpenMetrics."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
