"""The audio of one call: executes the audio part of an answer plan (``sdp.audio``).

For each accepted audio m-line (:class:`~avatar_mf.sdp.audio.AudioPlan`) it binds an RTP
socket pair from the port range (``media.rtp_socket``) or, for a WebRTC m-line BUNDLEd with
the data channel, an SRTP path the call attaches to the data channel's DTLS transport
(``media.srtp_path``, :meth:`CallAudio.attach_bundle`), builds the stream
(``media.audio_stream``) with the negotiated codec's decoder and encoder
(``codecs.registry``), and makes it a member of the call's audio room
(``rooms.audio_room``). A re-offer that keeps the codec keeps the stream and its port (RFC
3264 8.3.1); one that changes it (or the rtcp-mux choice) replaces the stream; an m-line the
re-offer disables closes it. Everything is released by :meth:`CallAudio.close` (BYE,
CANCEL, failure), which the call's media session always calls.

:class:`RegistryAudioCaps` adapts the codec registry to what the SDP planner asks
(:class:`~avatar_mf.sdp.audio.AudioCapabilities`).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from avatar_mf.calls.streams import (
    Transport,
    any_bundled,
    apply_plans,
    attach_bundle,
    open_transport,
    same_stream,
    start_stream,
)
from avatar_mf.clock import Clock
from avatar_mf.codecs.base import AudioCodec, AudioCodecSpec
from avatar_mf.codecs.registry import CodecRegistry, default_registry
from avatar_mf.media.audio_stream import AudioStream, MediaLimits
from avatar_mf.media.rtp_ports import PortRange, PortsExhausted
from avatar_mf.media.rtp_socket import RtpSocketPair
from avatar_mf.media.session import DataChannelSession
from avatar_mf.media.sockets import SocketLedger
from avatar_mf.rooms.audio_room import AudioMember, AudioRooms
from avatar_mf.sdp.audio import AudioPlan, OfferedFormat, format_fmtp
from avatar_mf.sdp.model import Attribute, Connection, MediaDescription

log = logging.getLogger(__name__)

#: Codecs whose decode + encode of a frame costs next to nothing (mixed on the loop).
CHEAP_CODECS = frozenset({"PCMU", "PCMA"})
#: The end reason text a media timeout gives (the BYE's Reason, the end record).
MEDIA_TIMEOUT = "media timeout"
#: Payload types the MF offers (second legs), by codec name; the first leg's codec keeps its own.
OFFER_PAYLOAD_TYPES = {"AMR-WB": 97, "AMR": 96, "PCMU": 0, "PCMA": 8, "OPUS": 111}
#: telephone-event payload types the MF offers, by clock rate (RFC 4733).
OFFER_EVENT_TYPES = {16000: 101, 8000: 100, 48000: 102}


class RegistryAudioCaps:
    """:class:`~avatar_mf.sdp.audio.AudioCapabilities` from a codec registry, limited to and
    ordered by the operator's ``media.audio_codecs`` (None: the registry's own order)."""

    def __init__(
        self, registry: CodecRegistry | None = None, allowed: Sequence[str] | None = None
    ) -> None:
        self._registry = registry
        self._allowed = [name.upper() for name in allowed] if allowed is not None else None

    @property
    def registry(self) -> CodecRegistry:
        return self._registry if self._registry is not None else default_registry()

    def specs(self) -> list[AudioCodecSpec]:
        """The codecs served, in preference order."""
        supported = list(self.registry.supported())
        if self._allowed is None:
            return supported
        return [s for name in self._allowed for s in supported if s.name.upper() == name]

    def preference(self) -> Sequence[tuple[str, int]]:
        return [(s.name, s.clock_rate) for s in self.specs()]

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        if self._allowed is not None and name.upper() not in self._allowed:
            return None
        codec = self.registry.codec(name, clock_rate, fmtp)
        return None if codec is None else codec.answer_fmtp(fmtp)

    def codec(self, plan: AudioPlan) -> AudioCodec | None:
        return self.registry.codec(plan.codec.name, plan.codec.clock_rate, plan.codec.params)


@dataclass(frozen=True, slots=True)
class AudioTotals:
    """Node-wide RTP figures (closed streams plus the open ones)."""

    packets_in: int
    packets_out: int
    lost: int
    jitter_max: float
    rtt_max: float
    forwarded: int


@dataclass
class AudioPlane:
    """What the node shares with every call's audio: sockets, rooms, counters."""

    clock: Clock
    host: str
    advertised_host: str
    ports: PortRange
    rooms: AudioRooms
    limits: MediaLimits = MediaLimits()
    caps: RegistryAudioCaps = field(default_factory=RegistryAudioCaps)
    ledger: SocketLedger = field(default_factory=SocketLedger)
    #: Packets dropped, node-wide, by reason.
    drops: Counter[str] = field(default_factory=Counter)
    #: Streams open now (``/stats`` held ``rtp_streams``).
    open_streams: int = 0
    streams_opened: int = 0
    #: Decoded incoming audio: (call id, PCM 20 ms, RTP timestamp, clock rate).
    audio_sink: Callable[[str, bytes, int, int], None] | None = None
    #: Whether a call's session wants its decoded voice now (a stage takes it): a room that
    #: forwards the call's RTP untouched then decodes it as well. None: never.
    audio_wanted: Callable[[str], bool] | None = None
    rng: random.Random = field(default_factory=random.Random)
    #: Figures of the streams already closed: packets in, out, lost.
    closed_totals: Counter[str] = field(default_factory=Counter)
    calls: set[CallAudio] = field(default_factory=set)
    #: Clock time -> Unix wall time for the RTCP SRs (shared with video: lip-sync).
    wallclock: Callable[[float], float] | None = None

    def totals(self) -> AudioTotals:
        packets_in = self.closed_totals["packets_in"]
        packets_out = self.closed_totals["packets_out"]
        lost = self.closed_totals["lost"]
        forwarded = self.closed_totals["forwarded"]
        jitter_max = rtt_max = 0.0
        for call in self.calls:
            for live in call.live.values():
                stats = live.stream.stats
                packets_in += stats.packets_in
                packets_out += stats.packets_out
                lost += stats.lost
                forwarded += stats.forwarded
                jitter_max = max(jitter_max, stats.jitter / live.stream.format.clock_rate)
                rtt_max = max(rtt_max, stats.rtt or 0.0)
        return AudioTotals(packets_in, packets_out, lost, jitter_max, rtt_max, forwarded)


class _RoomFilled(Exception):
    """The call's audio room reached its cap while the call's RTP socket was opening."""


@dataclass
class _Live:
    plan: AudioPlan
    stream: AudioStream
    #: Its own UDP sockets (IMS style), or SRTP on the data channel's transport (WebRTC).
    sockets: Transport


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One stream's figures for the call's end record."""

    codec: str
    packets_in: int
    packets_out: int
    lost: int
    jitter_ms: float
    rtt_ms: float | None
    drops: int


class CallAudio:
    """The audio streams of one call (see the module docstring)."""

    def __init__(
        self,
        plane: AudioPlane,
        call_id: str,
        room: str,
        on_failure: Callable[[str], None],
    ) -> None:
        self._plane = plane
        self.call_id = call_id
        self.room = room
        self._on_failure = on_failure
        self.live: dict[int, _Live] = {}
        self.records: list[StreamRecord] = []
        self._closed = False
        self._offered_sockets: RtpSocketPair | None = None
        plane.calls.add(self)

    def room_has_space(self) -> bool:
        room = self._plane.rooms.rooms.get(self.room)
        if room is None:
            return True
        return self.call_id in room.members or not room.full

    async def apply(self, plans: Sequence[AudioPlan]) -> tuple[dict[int, int], list[AudioPlan]]:
        """Open, keep or replace the streams for ``plans``; returns the RTP port of each kept
        index and the plans that could not be served (room full, no port): port 0."""
        return await apply_plans(
            self.live,
            plans,
            open_stream=self._open,
            close_stream=self._close_stream,
            no_port=lambda exc: log.warning("call %s: no RTP port: %s", self.call_id, exc),
            same=self._same,
            # One audio stream per call in a room (the first); or the room is full.
            admit=lambda: not self.live and self.room_has_space(),
            refusals=(_RoomFilled,),
        )

    @staticmethod
    def _same(before: AudioPlan, now: AudioPlan) -> bool:
        return same_stream(before, now) and before.codec.clock_rate == now.codec.clock_rate

    def room_format(self) -> tuple[OfferedFormat, tuple[tuple[str, str], ...]] | None:
        """The codec (and fmtp) of the first audio member of the call's room: what the MF
        offers first on a second leg, so that the legs can be forwarded untouched."""
        room = self._plane.rooms.rooms.get(self.room)
        if room is None:
            return None
        for member in room.members.values():
            fmt = member.stream.format
            offered = OfferedFormat(fmt.payload_type, fmt.codec_name, fmt.clock_rate)
            return offered, fmt.fmtp
        return None

    async def offer(self) -> MediaDescription | None:
        """Bind a port pair and write the MF's audio m-line for an outgoing leg (RFC 3264 5):
        the room's codec first, then every codec the MF serves, telephone-event, rtcp-mux
        (RFC 5761: offered, used if the answer takes it). None when no port can be bound."""
        plane = self._plane
        try:
            sockets = await RtpSocketPair.open(
                plane.host, plane.ports, rtcp_mux=False, ledger=plane.ledger
            )
        except (PortsExhausted, OSError) as exc:
            log.warning("call %s: no RTP port to offer: %s", self.call_id, exc)
            return None
        self._offered_sockets = sockets
        formats: list[str] = []
        attrs: list[Attribute] = []
        seen: set[tuple[str, int]] = set()
        clocks: list[int] = []

        def add(name: str, rate: int, pt: int, fmtp: tuple[tuple[str, str], ...]) -> None:
            if (name.upper(), rate) in seen or str(pt) in formats:
                return
            seen.add((name.upper(), rate))
            formats.append(str(pt))
            # RFC 7587 section 7: Opus is always opus/48000/2 (a WebRTC first leg's codec).
            channels = "/2" if name.upper() == "OPUS" else ""
            attrs.append(Attribute("rtpmap", f"{pt} {name}/{rate}{channels}"))
            if fmtp:
                attrs.append(Attribute("fmtp", f"{pt} {format_fmtp(fmtp)}"))
            if rate not in clocks:
                clocks.append(rate)

        first = self.room_format()
        if first is not None:
            add(first[0].name, first[0].clock_rate, first[0].payload_type, first[1])
        for spec in plane.caps.specs():
            pt = OFFER_PAYLOAD_TYPES.get(spec.name.upper())
            if pt is not None and spec.channels == 1:
                add(spec.name, spec.clock_rate, pt, tuple(spec.fmtp.items()))
        for rate in clocks:
            event = OFFER_EVENT_TYPES.get(rate)
            if event is not None and str(event) not in formats:
                formats.append(str(event))
                attrs.append(Attribute("rtpmap", f"{event} telephone-event/{rate}"))
                attrs.append(Attribute("fmtp", f"{event} 0-15"))
        attrs += [Attribute("ptime", "20"), Attribute("rtcp-mux"), Attribute("sendrecv")]
        address = plane.advertised_host
        addrtype = "IP6" if ":" in address else "IP4"
        return MediaDescription(
            media="audio",
            port=sockets.port,
            proto="RTP/AVP",
            formats=tuple(formats),
            connections=(Connection("IN", addrtype, address),),
            attrs=tuple(attrs),
        )

    async def accept(self, plan: AudioPlan | None) -> None:
        """The answer to :meth:`offer` chose ``plan`` (None: refused): start the stream on
        the offered port, or release it."""
        sockets, self._offered_sockets = self._offered_sockets, None
        if sockets is None:
            return
        if plan is None:
            sockets.close()
            return
        if plan.rtcp_mux and sockets.rtcp is not None:
            sockets.rtcp.close()  # RTCP shares the RTP port now
            sockets.rtcp = None
        if not self.room_has_space():
            sockets.close()
            return
        try:
            await self._open(plan, sockets)
        except _RoomFilled:
            pass

    def attach_bundle(self, dc: DataChannelSession) -> None:
        """Put the WebRTC streams (BUNDLEd with the data channel) on ``dc``'s DTLS transport:
        their SRTP flows once its handshake is done (``media.srtp_path``)."""
        attach_bundle(self.live.values(), dc)

    @staticmethod
    def bundled(plans: Sequence[AudioPlan]) -> bool:
        """Whether any of ``plans`` runs SRTP on the data channel's transport."""
        return any_bundled(plans)

    async def _open(self, plan: AudioPlan, sockets: Transport | None = None) -> int:
        plane = self._plane
        codec = plane.caps.codec(plan)
        if codec is None:
            raise PortsExhausted(f"codec {plan.codec.name} vanished")  # not reachable
        if sockets is None:
            sockets = await open_transport(plan, plane)
            if isinstance(sockets, RtpSocketPair) and not self.room_has_space():
                # Other calls' streams took the room's last places while the socket opened.
                sockets.close()
                raise _RoomFilled(self.room)
        event = plan.telephone_event
        stream = start_stream(
            AudioStream,
            plan,
            sockets,
            plane,
            samples_per_frame=codec.spec.samples_per_frame_rtp,
            event_payload_type=event.payload_type if event is not None else None,
        )
        fmt = stream.format
        sink = plane.audio_sink
        wanted = plane.audio_wanted
        call_id = self.call_id
        member = AudioMember(
            key=call_id,
            stream=stream,
            decoder=codec.decoder(),
            encoder=codec.encoder(),
            cheap=plan.codec.name.upper() in CHEAP_CODECS,
            on_pcm=(
                (lambda pcm, ts: sink(call_id, pcm, ts, fmt.clock_rate))
                if sink is not None
                else None
            ),
            wants_pcm=(
                (lambda: wanted(call_id)) if wanted is not None and sink is not None else None
            ),
            pcm_decoder=codec.decoder(),
            on_timeout=self._timed_out,
        )
        self.live[plan.index] = _Live(plan, stream, sockets)
        plane.open_streams += 1
        plane.streams_opened += 1
        plane.rooms.room(self.room).add(member)
        return sockets.port

    def _timed_out(self) -> None:
        if not self._closed:
            log.info("call %s: no RTP for %.0f s", self.call_id, self._plane.limits.rtp_timeout)
            self._on_failure(MEDIA_TIMEOUT)

    @staticmethod
    def _record(live: _Live) -> StreamRecord:
        stats = live.stream.stats
        return StreamRecord(
            codec=f"{live.plan.codec.name}/{live.plan.codec.clock_rate}",
            packets_in=stats.packets_in,
            packets_out=stats.packets_out,
            lost=stats.lost,
            jitter_ms=round(stats.jitter * 1000.0 / live.plan.codec.clock_rate, 2),
            rtt_ms=None if stats.rtt is None else round(stats.rtt * 1000.0, 2),
            drops=sum(stats.drops.values()),
        )

    def summary(self) -> list[StreamRecord]:
        """Every stream of the call, closed ones first (for the end record)."""
        return [*self.records, *(self._record(live) for live in self.live.values())]

    def _close_stream(self, index: int) -> None:
        live = self.live.pop(index, None)
        if live is None:
            return
        stats = live.stream.stats
        self.records.append(self._record(live))
        room = self._plane.rooms.rooms.get(self.room)
        if room is not None and self.call_id in room.members:
            room.remove(self.call_id)
        live.stream.close()
        live.sockets.close()
        plane = self._plane
        plane.open_streams -= 1
        plane.closed_totals["packets_in"] += stats.packets_in
        plane.closed_totals["packets_out"] += stats.packets_out
        plane.closed_totals["lost"] += stats.lost
        plane.closed_totals["forwarded"] += stats.forwarded

    def streams(self) -> list[AudioStream]:
        return [live.stream for live in self.live.values()]

    def close(self) -> None:
        self._closed = True
        offered, self._offered_sockets = self._offered_sockets, None
        if offered is not None:
            offered.close()
        for index in list(self.live):
            self._close_stream(index)
        self._plane.calls.discard(self)
