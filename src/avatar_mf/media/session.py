"""One data channel association: path (ICE or UDP) -> DTLS -> SCTP -> negotiated channels.

The same class serves the MF (answerer) and test UEs (offerer); a
:class:`~avatar_mf.media.endpoint.DataChannelEndpointFactory` builds it. Life cycle::

    new --start()--> connecting --SCTP up--> connected --close()/peer--> closing --> closed
                         |  setup timeout, ICE or DTLS failure               \\-> failed
                         +--------------------------------------------------> closing

Channels are pre-negotiated (RFC 8832 is not used: no DCEP open): one per
:class:`~avatar_mf.media.params.StreamSpec`, ``negotiated=True, id=stream_id`` (RFC 8831
section 6.5, RFC 8864). Events go to the ``on_event`` handler (see :mod:`.events`).

Nothing a call may never use is built before it is needed (issue 16: a SIP-only peer such as
SIPp, which never speaks DTLS, costs a socket and a timer, nothing more): the DTLS transport, the
SCTP association and the channel objects are created when the association starts, and a session
that is the DTLS server on a path without ICE (the MF answering an ``actpass`` IMS offer
``passive``, RFC 8842 section 5.3) starts only when the peer's first DTLS record arrives
(:meth:`PacketPath.on_first_datagram`). Until then :attr:`DataChannelSession.channels` is empty;
:attr:`DataChannelSession.streams` lists the negotiated streams all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, cast

from aiortc import (
    RTCCertificate,
    RTCDataChannel,
    RTCDataChannelParameters,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCIceTransport,
)
from aiortc.rtcsctptransport import RTCSctpCapabilities

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.media.errors import (
    ChannelNotOpenError,
    MediaParamsError,
    MessageTooLargeError,
    SessionStateError,
    UnknownStreamError,
)
from avatar_mf.media.events import (
    ChannelClosed,
    ChannelOpened,
    EventHandler,
    MessageReceived,
    SessionClosed,
    SessionConnected,
    SessionEvent,
    SessionFailed,
)
from avatar_mf.media.ice_lite import IceLitePath
from avatar_mf.media.packet_path import PacketPath
from avatar_mf.media.params import DtlsRole, LocalParams, RemoteParams, StreamSpec, dtls_role
from avatar_mf.media.sctp_transport import DEFAULT_TUNING, ImsSctpTransport, SctpTuning
from avatar_mf.media.session_channel import SessionChannel
from avatar_mf.media.srtp_path import BundledDtlsTransport, SrtpPath

logger = logging.getLogger(__name__)

SessionState = Literal["new", "connecting", "connected", "closing", "closed", "failed"]

MessagePredicate = Callable[[str | bytes], bool]
"""A test of one message (see ``reliable_messages``)."""


class DataChannelSession:
    """The data channels of one m-line. Built by the endpoint factory, not directly."""

    def __init__(
        self,
        *,
        path: PacketPath,
        certificate: RTCCertificate,
        local: LocalParams,
        streams: Iterable[StreamSpec],
        clock: Clock,
        setup_timeout: float,
        user_data_max_length: int | None = None,
        sctp_tuning: SctpTuning = DEFAULT_TUNING,
        reliable_messages: Mapping[str, MessagePredicate] | None = None,
        dtls_fast_records: bool = True,
        on_event: EventHandler | None = None,
        on_released: Callable[[DataChannelSession], None] | None = None,
        remote: RemoteParams | None = None,
    ) -> None:
        """``remote``, when given, must already be applied to ``path``
        (:meth:`PacketPath.set_remote`); otherwise call :meth:`set_remote` later.
        ``reliable_messages`` maps a subprotocol to a test of its messages: on a partially
        reliable channel of that subprotocol (``max-time``/``max-retr``), the messages it holds
        true for are sent fully reliably (RFC 3758 sets the policy per message), e.g. the
        configuration a receiver needs to read the rest."""
        self._reliable_messages = dict(reliable_messages or {})
        self._reliable: dict[int, MessagePredicate] = {}
        self._path = path
        self._local = local
        self._remote = remote
        self._dtls_role: DtlsRole | None = (
            None if remote is None else dtls_role(local.setup, remote.setup)
        )
        if self._dtls_role is not None:
            path.set_dtls_role(self._dtls_role)
        self._clock = clock
        self._setup_timeout = setup_timeout
        self._on_event = on_event
        self._on_released = on_released

        self._state: SessionState = "new"
        self._started_at = 0.0
        self._timer: TimerHandle | None = None
        self._setup_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None

        # DTLS, SCTP and the channel objects: created by _transports() when first needed.
        self._certificate = certificate
        self._user_data_max_length = user_data_max_length
        self._sctp_tuning = sctp_tuning
        self._dtls_fast_records = dtls_fast_records
        self._dtls: BundledDtlsTransport | None = None
        self._sctp: ImsSctpTransport | None = None
        self._specs: dict[int, StreamSpec] = {}
        self._channels: dict[int, RTCDataChannel] = {}
        self._opened: set[int] = set()
        self.add_streams(streams)

    def __repr__(self) -> str:
        return f"DataChannelSession({self._local.address}:{self._local.port}, {self._state})"

    # read-only views

    @property
    def local(self) -> LocalParams:
        """What to write into the local SDP (offer or answer)."""
        return self._local

    @property
    def remote(self) -> RemoteParams | None:
        return self._remote

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def dtls_role(self) -> DtlsRole | None:
        """``"client"`` or ``"server"`` once the remote parameters are known."""
        return self._dtls_role

    @property
    def channels(self) -> Mapping[int, RTCDataChannel]:
        """Live data channels by stream id (a read-only view; closed channels leave it).
        Empty until the association starts (the channel objects are created then)."""
        return types.MappingProxyType(self._channels)

    @property
    def streams(self) -> Mapping[int, StreamSpec]:
        """The spec of every live stream by stream id, its channel created or not yet."""
        return types.MappingProxyType(self._specs)

    @property
    def transports_created(self) -> bool:
        """Whether the DTLS transport and SCTP association exist yet (they are created when
        the association starts: at :meth:`start`, or at the peer's first DTLS record when
        this side is the DTLS server on a path without ICE)."""
        return self._dtls is not None

    @property
    def open_sockets(self) -> int:
        """Sockets this session still holds (0 once closed or failed)."""
        return self._path.open_sockets

    # control

    async def set_remote(self, remote: RemoteParams) -> None:
        """Give the peer's parameters: from the offer (answerer, done by the factory) or from the
        answer (offerer). Decides the DTLS role. Once only, before :meth:`start`."""
        if self._remote is not None:
            raise SessionStateError("remote parameters already set")
        if self._state != "new":
            raise SessionStateError(f"cannot set remote parameters when {self._state}")
        role = dtls_role(self._local.setup, remote.setup)
        await self._path.set_remote(remote)
        self._remote = remote
        self._dtls_role = role
        self._path.set_dtls_role(role)

    @property
    def can_restart_ice(self) -> bool:
        """Whether :meth:`restart_ice` works here: the path is the MF's ICE-lite agent (aioice's
        full agent and the plain UDP path cannot restart)."""
        return isinstance(self._path, IceLitePath)

    def restart_ice(self, remote: RemoteParams) -> LocalParams:
        """Answer a re-offer that restarts ICE and keeps the DTLS association (same
        fingerprint and tls-id, RFC 8842 section 5.4): the path takes the peer's new ICE
        parameters and makes new local credentials (RFC 8445 section 9, RFC 8839
        4.4.1.2.2); DTLS, SCTP and every channel go on. Returns the new :attr:`local` for the
        answer. Raises :class:`MediaParamsError` (488) when the path cannot restart."""
        if self._state in ("closing", "closed", "failed"):
            raise SessionStateError(f"cannot restart ICE on a session that is {self._state}")
        if self._remote is None:
            raise SessionStateError("ICE restart before the remote parameters are known")
        path = self._path
        if not isinstance(path, IceLitePath):
            raise MediaParamsError("ICE restart is supported on the ICE-lite path only")
        ice = path.restart_ice(remote)
        self._remote = remote
        self._local = dataclasses.replace(self._local, ice=ice)
        return self._local

    def start(self) -> None:
        """Start connectivity (ICE, then DTLS, then SCTP) in the background and arm the setup
        timer. Progress and failure come as events. A second call does nothing."""
        if self._state != "new":
            if self._state in ("closing", "closed", "failed"):
                raise SessionStateError(f"cannot start a session that is {self._state}")
            return
        if self._remote is None:
            raise SessionStateError("start() before the remote parameters are known")
        self._state = "connecting"
        self._started_at = self._clock.now()
        self._timer = self._clock.call_later(self._setup_timeout, self._on_setup_timeout)
        if self._dtls_role == "server" and self._path.local_ice is None:
            # The peer speaks first: no task, no DTLS or SCTP object until it does (a peer
            # that never speaks DTLS costs nothing more; the setup timer ends the session).
            self._path.on_first_datagram(self._peer_spoke)
        else:
            self._setup_task = asyncio.create_task(self._connect(self._remote))

    def _peer_spoke(self) -> None:
        if self._state == "connecting" and self._setup_task is None and self._remote is not None:
            self._setup_task = asyncio.create_task(self._connect(self._remote))

    def add_streams(self, specs: Iterable[StreamSpec]) -> None:
        """Add pre-negotiated channels (initial streams, or a re-INVITE/UPDATE adding dcmap
        lines). On an established association they open at once (:class:`ChannelOpened`).
        Messages the peer sends on a stream before it is added here are dropped by SCTP."""
        if self._state in ("closing", "closed", "failed"):
            raise SessionStateError(f"cannot add streams to a session that is {self._state}")
        new = list(specs)
        ids = [spec.stream_id for spec in new]
        if len(set(ids)) != len(ids):
            raise MediaParamsError(f"duplicate stream ids in {ids}")
        taken = [i for i in ids if i in self._specs]
        if taken:
            raise MediaParamsError(f"stream ids already in use: {taken}")
        for spec in new:
            # Known before its channel is made: on an established association the channel
            # opens at once, and whoever hears ChannelOpened looks its spec up (its service
            # is chosen by subprotocol).
            self._specs[spec.stream_id] = spec
            if self._sctp is not None:
                self._add_channel(self._sctp, spec)
            predicate = self._reliable_messages.get(spec.subprotocol)
            if predicate is not None and (spec.max_time is not None or spec.max_retr is not None):
                self._reliable[spec.stream_id] = predicate

    def close_stream(self, stream_id: int) -> None:
        """Close one channel (SCTP stream reset, RFC 8831 section 6.7); :class:`ChannelClosed`
        follows when both directions are reset. A stream whose channel was not created yet
        (the association has not started) is just forgotten."""
        if stream_id in self._specs and stream_id not in self._channels:
            del self._specs[stream_id]
            self._reliable.pop(stream_id, None)
            return
        self._channel(stream_id).close()

    def send(self, stream_id: int, data: str | bytes) -> None:
        """Queue one message (str: WebRTC String, bytes: WebRTC Binary). Never blocks; see
        :meth:`buffered_amount` for back-pressure."""
        if stream_id in self._specs and stream_id not in self._channels:
            raise ChannelNotOpenError(f"stream {stream_id} is connecting")
        channel = self._channel(stream_id)
        if channel.readyState != "open":
            raise ChannelNotOpenError(f"stream {stream_id} is {channel.readyState}")
        reliable = self._reliable.get(stream_id)
        try:
            if reliable is not None and reliable(data):
                assert self._sctp is not None  # a channel exists only with its association
                self._sctp.send_reliably(channel, data)
            else:
                channel.send(data)
        except ValueError as exc:
            raise MessageTooLargeError(str(exc)) from exc

    def buffered_amount(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` and not yet handed to SCTP."""
        if stream_id in self._specs and stream_id not in self._channels:
            return 0
        return self._channel(stream_id).bufferedAmount

    def attach_srtp(self, path: SrtpPath) -> None:
        """Carry ``path``'s SRTP on this association's DTLS transport (an audio m-line
        BUNDLEd with the data channel, RFC 8843; keys from this handshake, RFC 5764)."""
        path.attach(self._transports())

    async def close(self) -> None:
        """Release every resource (channels, SCTP, DTLS, sockets, tasks, timer). Idempotent;
        returns once released. Reports :class:`SessionClosed` unless already terminated."""
        if self._release_task is None:
            if self._state in ("closed", "failed"):
                return
            self._begin_release("closed", failed=False)
        assert self._release_task is not None
        await asyncio.shield(self._release_task)

    # internals

    def _channel(self, stream_id: int) -> RTCDataChannel:
        try:
            return self._channels[stream_id]
        except KeyError:
            raise UnknownStreamError(f"no data channel on stream {stream_id}") from None

    def _transports(self) -> BundledDtlsTransport:
        """The DTLS transport, created (with the SCTP association and a channel object per
        stream) on first use."""
        if self._dtls is None:
            # RTCDtlsTransport is typed against RTCIceTransport but uses only role/_recv/_send,
            # which every PacketPath provides (see packet_path.py).
            # Audio BUNDLEd with the data channel shares this DTLS transport (media.srtp_path).
            dtls = BundledDtlsTransport(
                cast(RTCIceTransport, self._path),
                [self._certificate],
                fast_records=self._dtls_fast_records,
            )
            sctp = ImsSctpTransport(
                dtls,
                port=self._local.sctp_port,
                user_data_max_length=self._user_data_max_length,
                on_state=self._on_sctp_state,
                tuning=self._sctp_tuning,
            )
            self._dtls, self._sctp = dtls, sctp
            for spec in list(self._specs.values()):
                self._add_channel(sctp, spec)
        return self._dtls

    def _add_channel(self, sctp: ImsSctpTransport, spec: StreamSpec) -> None:
        parameters = RTCDataChannelParameters(
            label=spec.label,
            maxPacketLifeTime=spec.max_time,
            maxRetransmits=spec.max_retr,
            ordered=spec.ordered,
            protocol=spec.subprotocol,
            negotiated=True,
            id=spec.stream_id,
        )
        try:
            # Its open/message/close come to _on_channel_event (no pyee listeners to add).
            channel = SessionChannel(sctp, parameters, self._on_channel_event)
        except ValueError as exc:  # id still registered in SCTP (a reset in progress)
            raise MediaParamsError(str(exc)) from exc
        stream_id = spec.stream_id
        self._channels[stream_id] = channel
        if channel.readyState == "open":  # added to an established association
            self._on_channel_open(stream_id)

    def _emit(self, event: SessionEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            # A faulty consumer must not break the association (or the other sessions).
            logger.exception("%r: event handler failed on %r", self, event)

    def _on_channel_event(
        self, channel: SessionChannel, event: str, args: tuple[object, ...]
    ) -> None:
        stream_id = channel.id
        assert stream_id is not None  # negotiated channels always have their id
        if event == "message":
            data = args[0]
            assert isinstance(data, str | bytes)
            self._on_message(stream_id, data)
        elif event == "open":
            self._on_channel_open(stream_id)
        else:
            self._on_channel_close(stream_id, channel)

    def _on_channel_open(self, stream_id: int) -> None:
        if stream_id not in self._opened:
            self._opened.add(stream_id)
            self._emit(ChannelOpened(stream_id))

    def _on_message(self, stream_id: int, data: str | bytes) -> None:
        self._emit(MessageReceived(stream_id, data))

    def _on_channel_close(self, stream_id: int, channel: RTCDataChannel) -> None:
        if self._channels.get(stream_id) is channel:
            del self._channels[stream_id]
            del self._specs[stream_id]
            self._reliable.pop(stream_id, None)
        if stream_id in self._opened:
            self._opened.discard(stream_id)
            self._emit(ChannelClosed(stream_id))

    async def _connect(self, remote: RemoteParams) -> None:
        try:
            try:
                await self._path.connect()
            except ConnectionError as exc:
                logger.info("%r: ICE failed: %s", self, exc)
                self._begin_release("ice failed", failed=True)
                return
            assert self._dtls_role is not None
            dtls = self._transports()
            assert self._sctp is not None
            dtls._set_role(self._dtls_role)
            await dtls.start(
                RTCDtlsParameters(
                    fingerprints=[
                        RTCDtlsFingerprint(algorithm=a, value=v) for a, v in remote.fingerprints
                    ]
                )
            )
            if dtls.state != "connected":
                reason = "dtls handshake failed"
                if dtls.failure_reason:
                    reason += f": {dtls.failure_reason}"
                self._begin_release(reason, failed=True)
                return
            dtls.add_listener("statechange", self._on_dtls_state)
            await self._sctp.start(
                RTCSctpCapabilities(maxMessageSize=remote.max_message_size), remote.sctp_port
            )
        except Exception as exc:
            logger.exception("%r: setup error", self)
            self._begin_release(f"setup error: {exc}", failed=True)

    def _on_setup_timeout(self) -> None:
        self._timer = None
        if self._state == "connecting":
            # Name the layer still not up: ICE (the path) first, then DTLS, then SCTP. Without
            # ICE nothing precedes DTLS (a peer that never sent a record: DTLS).
            dtls = "new" if self._dtls is None else self._dtls.state
            layer = "SCTP" if dtls == "connected" else "DTLS" if dtls != "new" else "ICE"
            if layer == "ICE" and self._path.local_ice is None:
                layer = "DTLS"
            self._begin_release(f"setup timeout in {layer}", failed=True)

    def _on_sctp_state(self, state: str) -> None:
        if state == "connected" and self._state == "connecting":
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._state = "connected"
            self._emit(SessionConnected(self._clock.now() - self._started_at))
        elif state == "closed" and self._state in ("connecting", "connected"):
            self._begin_release("sctp closed", failed=self._state == "connecting")

    def _on_dtls_state(self) -> None:
        if self._dtls is None or self._state not in ("connecting", "connected"):
            return
        if self._dtls.state in ("closed", "failed"):
            self._begin_release(f"dtls {self._dtls.state}", failed=self._state == "connecting")

    def _begin_release(self, reason: str, *, failed: bool) -> None:
        if self._release_task is not None:
            return
        self._state = "closing"
        self._release_task = asyncio.create_task(self._release(reason, failed))

    async def _release(self, reason: str, failed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._setup_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sctp is not None:
            try:
                # ABORT to the peer if associated; closes every channel (ChannelClosed events).
                await self._sctp.stop()
            except Exception:
                logger.exception("%r: SCTP stop failed", self)
        if self._dtls is not None:
            self._dtls.remove_all_listeners()
            dtls_task = self._dtls._task
            try:
                await self._dtls.stop()  # close_notify if connected
            except Exception:
                logger.exception("%r: DTLS stop failed", self)
            if dtls_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await dtls_task
        try:
            await self._path.close()
        except Exception:
            logger.exception("%r: closing the path failed", self)
        self._channels.clear()
        self._specs.clear()
        self._reliable.clear()
        self._opened.clear()
        self._state = "failed" if failed else "closed"
        on_released, self._on_released = self._on_released, None
        if on_released is not None:
            on_released(self)
        self._emit(SessionFailed(reason) if failed else SessionClosed(reason))
        # The last event is out: drop the handler (typically a bound method of an object that
        # holds this session) so both are freed by reference counting once their owners let
        # go, instead of waiting as a cycle for the garbage collector.
        self._on_event = None
