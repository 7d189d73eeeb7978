"""The life of a call's media streams, written once for its audio and its video.

:mod:`avatar_mf.calls.audio` and :mod:`avatar_mf.calls.video` execute the m-lines of one kind of
an answer plan; what they do alike lives here:

* :func:`open_transport`: a stream runs on an RTP socket pair of its own from the node's port
  range (IMS, ``media.rtp_socket``) or, for an m-line BUNDLEd with the data channel (WebRTC,
  RFC 8843), on an :class:`~avatar_mf.media.srtp_path.SrtpPath` that :func:`attach_bundle`
  puts on the data channel's DTLS transport (SRTP keyed by that handshake, RFC 5764).
* :func:`start_stream`: the stream of a plan (its negotiated format, remote addresses,
  direction, the plane's limits and clocks), with the transport's RTP and RTCP wired to it.
* :func:`apply_plans`: a re-offer (RFC 3264 8.3.1) keeps the stream of an m-line whose plan is
  :func:`same_stream` (and its port), replaces one whose codec, payload type, answered fmtp or
  transport (rtcp-mux, BUNDLE) changed, closes one the re-offer disables or drops, and opens
  the new ones; a plan that gets no stream (no port, or refused by the kind) is answered with
  port 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from avatar_mf.clock import Clock
from avatar_mf.media.audio_stream import AudioStream, MediaLimits, StreamFormat
from avatar_mf.media.rtp_ports import PortRange, PortsExhausted
from avatar_mf.media.rtp_socket import RtpSocketPair
from avatar_mf.media.session import DataChannelSession
from avatar_mf.media.sockets import SocketLedger
from avatar_mf.media.srtp_path import SrtpPath
from avatar_mf.sdp.audio import OfferedFormat

#: Where a stream's packets go: its own UDP sockets (IMS) or SRTP on the data channel's
#: transport (WebRTC).
Transport = RtpSocketPair | SrtpPath


class StreamPlan(Protocol):
    """What a stream needs of an accepted m-line (:class:`~avatar_mf.sdp.audio.AudioPlan`,
    :class:`~avatar_mf.sdp.video.VideoPlan`)."""

    @property
    def index(self) -> int: ...
    @property
    def codec(self) -> OfferedFormat: ...
    @property
    def answer_fmtp(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def remote_address(self) -> str: ...
    @property
    def remote_port(self) -> int: ...
    @property
    def remote_rtcp_port(self) -> int: ...
    @property
    def rtcp_mux(self) -> bool: ...
    @property
    def bundled(self) -> bool: ...
    @property
    def sends(self) -> bool: ...
    @property
    def receives(self) -> bool: ...


class MediaPlane(Protocol):
    """What a stream needs of the node's media plane (``AudioPlane``, ``VideoPlane``)."""

    @property
    def clock(self) -> Clock: ...
    @property
    def host(self) -> str: ...
    @property
    def ports(self) -> PortRange: ...
    @property
    def ledger(self) -> SocketLedger: ...
    @property
    def limits(self) -> MediaLimits: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def drops(self) -> Counter[str]: ...
    @property
    def wallclock(self) -> Callable[[float], float] | None: ...


PlanT = TypeVar("PlanT", bound=StreamPlan)


class LiveStream(Protocol[PlanT]):
    """One open stream of a call: the plan it runs, the stream and its transport."""

    plan: PlanT

    @property
    def stream(self) -> AudioStream: ...
    @property
    def sockets(self) -> Transport: ...


LiveT = TypeVar("LiveT", bound="LiveStream[Any]")
StreamT = TypeVar("StreamT", bound=AudioStream)


def same_stream(before: StreamPlan, now: StreamPlan) -> bool:
    """Whether the plan ``now`` can keep the stream opened for ``before`` (RFC 3264 8.3.1):
    the same codec (by name), payload type, answered fmtp, rtcp-mux choice and transport."""
    return (
        before.codec.name.upper() == now.codec.name.upper()
        and before.codec.payload_type == now.codec.payload_type
        and before.answer_fmtp == now.answer_fmtp
        and before.rtcp_mux == now.rtcp_mux
        and before.bundled == now.bundled
    )


async def open_transport(
    plan: StreamPlan, plane: MediaPlane, payload_types: frozenset[int] = frozenset()
) -> Transport:
    """The transport of ``plan``'s stream: an SRTP path the call attaches to the data
    channel's transport when ``plan`` is BUNDLEd (carrying ``payload_types``; empty: every
    one no other path claims), otherwise an RTP socket pair bound from the plane's port
    range (raises :class:`~avatar_mf.media.rtp_ports.PortsExhausted` or :class:`OSError`)."""
    if plan.bundled:
        # No socket of its own: attached to the data channel's transport by the call.
        return SrtpPath(node_drops=plane.drops, payload_types=payload_types)
    return await RtpSocketPair.open(
        plane.host, plane.ports, rtcp_mux=plan.rtcp_mux, ledger=plane.ledger
    )


def start_stream(
    kind: type[StreamT],
    plan: StreamPlan,
    sockets: Transport,
    plane: MediaPlane,
    *,
    samples_per_frame: int,
    event_payload_type: int | None = None,
    **options: Any,
) -> StreamT:
    """A stream of ``kind`` for ``plan`` on ``sockets``, which deliver their packets to it;
    ``options`` are the kind's own (a video stream's offered fmtp and feedback)."""
    fmt = StreamFormat(
        payload_type=plan.codec.payload_type,
        codec_name=plan.codec.name,
        clock_rate=plan.codec.clock_rate,
        fmtp=plan.answer_fmtp,
        event_payload_type=event_payload_type,
        samples_per_frame=samples_per_frame,
    )
    clock = plane.clock
    stream = kind(
        fmt,
        remote=(plan.remote_address, plan.remote_port),
        remote_rtcp=(plan.remote_address, plan.remote_rtcp_port),
        rtcp_mux=plan.rtcp_mux,
        send=sockets.send_rtp,
        send_rtcp=sockets.send_rtcp,
        now=clock.now(),
        limits=plane.limits,
        rng=plane.rng,
        node_drops=plane.drops,
        sends=plan.sends,
        receives=plan.receives,
        wallclock=plane.wallclock,
        **options,
    )

    def on_rtp(data: bytes, addr: tuple[str, int]) -> None:
        stream.receive(data, addr, clock.now())

    sockets.on_rtp = on_rtp
    sockets.on_rtcp = lambda data, addr: stream.receive_rtcp(data, addr, clock.now())
    return stream


async def apply_plans(
    live: dict[int, LiveT],
    plans: Sequence[PlanT],
    *,
    open_stream: Callable[[PlanT], Awaitable[int]],
    close_stream: Callable[[int], None],
    no_port: Callable[[Exception], None],
    same: Callable[[PlanT, PlanT], bool] = same_stream,
    kept: Callable[[LiveT], None] | None = None,
    admit: Callable[[], bool] | None = None,
    refusals: tuple[type[Exception], ...] = (),
) -> tuple[dict[int, int], list[PlanT]]:
    """Open, keep or replace the streams in ``live`` (by m-line index) for ``plans``; returns
    the RTP port of each served index and the plans that could not be served (port 0).

    ``open_stream`` opens a plan's stream and returns its port; ``close_stream`` closes the
    stream of an index; ``kept`` is told of each stream kept (its plan and direction already
    updated); ``admit`` may refuse a new stream before it opens, and an error of
    ``refusals`` while it opens refuses it too; ``no_port`` is told why no port could be bound.
    """
    ports: dict[int, int] = {}
    refused: list[PlanT] = []
    wanted = {plan.index for plan in plans}
    for index in list(live):
        if index not in wanted:
            close_stream(index)
    for plan in plans:
        current = live.get(plan.index)
        if current is not None and same(current.plan, plan):
            current.plan = plan
            current.stream.sends, current.stream.receives = plan.sends, plan.receives
            if kept is not None:
                kept(current)
            ports[plan.index] = current.sockets.port
            continue
        if current is not None:
            close_stream(plan.index)
        if admit is not None and not admit():
            refused.append(plan)
            continue
        try:
            ports[plan.index] = await open_stream(plan)
        except refusals:
            refused.append(plan)
        except (PortsExhausted, OSError) as exc:
            no_port(exc)
            refused.append(plan)
    return ports, refused


def attach_bundle(live: Iterable[LiveStream[Any]], dc: DataChannelSession) -> None:
    """Put the streams BUNDLEd with the data channel on ``dc``'s DTLS transport: their SRTP
    flows once its handshake is done (``media.srtp_path``)."""
    for current in live:
        if isinstance(current.sockets, SrtpPath):
            dc.attach_srtp(current.sockets)


def any_bundled(plans: Iterable[StreamPlan]) -> bool:
    """Whether any of ``plans`` runs SRTP on the data channel's transport."""
    return any(plan.bundled for plan in plans)
