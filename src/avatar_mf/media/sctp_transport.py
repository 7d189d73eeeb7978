"""SCTP over DTLS for data channels (RFC 8261, RFC 8831), with hooks over aiortc's.

1. A state callback: aiortc's ``RTCSctpTransport`` emits no event when the association comes up
   or goes down; the session needs both (setup completion, remote ABORT/SHUTDOWN).
2. A per-association DATA chunk size (``user_data_max_length``). aiortc fragments messages into
   chunks of a module-wide size chosen for a 1280-byte path MTU; some paths (tunnels, IMS access
   with extra encapsulation) carry less and stall on full-size chunks. The module constant is
   read inside ``_send``, so the override is a copy of aiortc 1.16's ``_send`` with the size as a
   parameter. It only replaces aiortc's when a size is configured.
3. Partial reliability as RFC 8831 section 6.1 and RFC 3758 mean it (``a=dcmap max-time``,
   RFC 8864 5.1.1: the W3C ``maxPacketLifeTime``). aiortc starts a message's lifetime when it
   leaves its data-channel queue for SCTP, and sends a message whose lifetime ran out while it
   waited behind a full congestion window. Here the lifetime starts when the message is handed
   to the channel (:meth:`ImsSctpTransport._data_channel_send`); a message that expires before
   it has a TSN is dropped (it never reaches the wire), and one that expires with a TSN but
   before its first transmission is abandoned unsent (RFC 3758 3.5: a FORWARD TSN covers it).
   ``max-time=0`` means one transmission (aiortc took 0 for "reliable"). One message can be
   sent fully reliably on a partially reliable channel (:meth:`ImsSctpTransport.send_reliably`;
   RFC 3758 chooses the policy per message): the session does it for the messages its
   ``reliable_messages`` test marks (an ARF CONFIG unit on an animation channel).
4. Cheaper per message (:class:`SctpTuning`): delayed SACKs (RFC 9260 6.2: a SACK for at least
   every second packet with DATA, within ``sack_delay`` of the first unacknowledged one, and
   at once when a packet shows a gap or a duplicate, or carries a FORWARD TSN); DATA (and
   FORWARD TSN) chunks bundled into one packet up to aiortc's packet size (RFC 9260 6.10;
   aiortc sends one chunk per packet, so one DTLS record and one datagram per message); and a
   waiting SACK bundled ahead of outgoing DATA, so that a channel with messages both ways
   (an avatar room of two) needs almost no SACK of its own.
5. A receive fast path (:meth:`ImsSctpTransport._handle_data`): the packet is parsed in place
   (RFC 9260 3: common header, CRC32c, chunk walk) and the common DATA chunk, the next TSN in
   sequence with no gap outstanding, a whole message (B and E bits, 3.3.1), the next one of its
   stream when ordered, with nothing waiting in that stream's reassembly queue, is handed to
   the channel at once, with the bookkeeping aiortc's ``_receive_data_chunk`` would do
   (cumulative TSN, stream sequence number, SACK due); no chunk object, no reassembly queue.
   Every other chunk, and any DATA chunk outside those conditions, goes through aiortc's
   objects and code as before.
6. A send fast path (:meth:`ImsSctpTransport._send_now`, ``SctpTuning.fast_paths``): once
   the association is established, a message that fits one DATA chunk, with nothing waiting
   ahead of it in the data-channel queue and room for it in the congestion window (RFC 9260
   7.2.1, with aiortc's burst limit), gets its TSN and stream sequence number at once (6.1,
   6.6) as a :class:`~avatar_mf.media.sctp_send.OutChunk` (serialized once) in the outbound
   queue, and the one flush task of the turn transmits the turn's chunks bundled. The chunk
   is one of aiortc's, with aiortc's bookkeeping, so retransmission (T3-rtx, fast
   retransmit), abandonment and FORWARD TSN (RFC 3758) work on it unchanged; the message's
   PR-SCTP policy is set as in item 3. Anything else (fragments, a full window, messages
   already queued, the association not up) takes aiortc's queues as before. T3-rtx is started
   only when not running (6.3.2 R1), and restarted (R3) by moving its deadline: the running
   timer is re-armed for the rest when it fires, instead of a cancel and a new timer per SACK.
7. A SACK fast path (:meth:`ImsSctpTransport._fast_sack`): a SACK with no gap ack blocks and
   no duplicate TSNs that moves the cumulative TSN ack point forward, outside fast recovery
   and with no FORWARD TSN outstanding, is applied in place (RFC 9260 6.2.1, 3.3.4): the acked
   chunks leave the sent queue and the flight size, one RTT sample (6.3.1, Karn's rule),
   cwnd grows as aiortc grows it (7.2.1, 7.2.2), T3 stops (R2) or restarts (R3), and
   transmission resumes only if something waits. Every other SACK goes to aiortc's
   ``_receive_sack_chunk``. ``SctpTuning(fast_paths=False)`` (``media.sctp_fast_paths =
   false``) turns items 6 and 7 off.
8. No coroutine per packet (issue 16): once the DTLS layer's own record layer has taken over
   (:class:`~avatar_mf.media.dtls_transport.ImsDtlsTransport`), a packet comes synchronously
   from the socket's callback to :meth:`ImsSctpTransport.receive_now`, which handles the
   chunks items 5 and 7 take (a whole message that is not DCEP, a plain SACK with nothing
   in the data-channel queue) without a coroutine, and hands the first other chunk and the
   rest of its packet to a task; until that task is done every later packet waits behind it,
   so packets are handled in the order they arrived. A SACK found due there (6.2) leaves at
   the end of the loop's turn, with the turn's DATA when there is some (6.10). Sends of the
   fast paths go through the DTLS layer's ``send_data_now`` (no coroutine), and the send
   side is flushed by one callback per turn (``call_soon``), a task only when aiortc's
   data-channel queue has something (its flush awaits).
9. The initial congestion window is RFC 9260 7.2.1's ``min(4 * MTU, max(2 * MTU, 4404))``
   bytes (:data:`INITIAL_CWND`; MTU: aiortc's SCTP packet size, 1189), not aiortc's three
   DATA chunks (3,480 bytes): the first flight of a burst carries a chunk more.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct, pack

from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    CHUNK_TYPES,
    SCTP_COMMON_HEADER_LENGTH,
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    SCTP_MAX_PACKET_LENGTH,
    SCTP_TSN_MODULO,
    USERDATA_MAX_LENGTH,
    WEBRTC_BINARY,
    WEBRTC_BINARY_EMPTY,
    WEBRTC_DCEP,
    WEBRTC_STRING,
    WEBRTC_STRING_EMPTY,
    ForwardTsnChunk,
    InitChunk,
    RTCSctpTransport,
    SackChunk,
    parse_packet,
    tsn_plus_one,
)
from aiortc.utils import uint16_add, uint32_gt, uint32_gte
from google_crc32c import value as crc32c

from .dtls_transport import ImsDtlsTransport
from .sctp_send import OutChunk, pack_packets, plain_sack, sack_bytes

AIORTC_USER_DATA_MAX_LENGTH: int = USERDATA_MAX_LENGTH
"""aiortc's DATA chunk payload size (1160 bytes in 1.16); the largest value allowed here, since
aiortc's DTLS layer reads at most 1500-byte records."""

INITIAL_CWND: int = min(4 * SCTP_MAX_PACKET_LENGTH, max(2 * SCTP_MAX_PACKET_LENGTH, 4404))
"""RFC 9260 7.2.1's initial cwnd in bytes, with aiortc's SCTP packet size as the MTU (4404)."""

MIN_USER_DATA_MAX_LENGTH = 64

MAX_SACK_DELAY = 0.5
"""RFC 9260 6.2: a SACK is never delayed by more than 500 ms."""


@dataclass(frozen=True, slots=True)
class SctpTuning:
    """How often the association acknowledges and how it packs chunks (RFC 9260 6.2, 6.10).

    ``sack_every=1, bundle=False, fast_paths=False`` is aiortc's own behaviour (a SACK per
    packet with DATA, a packet per chunk, aiortc's code for every message and SACK)."""

    sack_every: int = 2
    """A SACK at least for every ``sack_every`` packets that carry DATA (RFC 9260: 2)."""
    sack_delay: float = 0.2
    """Seconds a SACK may wait for the next packet (RFC 9260: 200 ms, at most 500 ms)."""
    bundle: bool = True
    """Bundle several DATA chunks (and a FORWARD TSN) into one packet."""
    fast_paths: bool = True
    """The send and SACK fast paths (module docstring, items 6 and 7); False: aiortc's
    queues and chunk objects for every message and SACK."""

    def __post_init__(self) -> None:
        if self.sack_every < 1:
            raise ValueError(f"sack_every must be at least 1, not {self.sack_every}")
        if not 0 < self.sack_delay <= MAX_SACK_DELAY:
            raise ValueError(f"sack_delay must be in (0, {MAX_SACK_DELAY}], not {self.sack_delay}")


DEFAULT_TUNING = SctpTuning()
"""Delayed SACKs (every second packet, 200 ms) and bundling."""

AIORTC_TUNING = SctpTuning(sack_every=1, bundle=False, fast_paths=False)
"""aiortc's behaviour: a SACK for every packet with DATA, one chunk per packet."""

_MAX_CHUNKS_LENGTH = SCTP_MAX_PACKET_LENGTH - SCTP_COMMON_HEADER_LENGTH

_TAG = Struct("!L")  # the verification tag, at offset 4 of the common header
_CHECKSUM = Struct("<L")  # the CRC32c, at offset 8, little-endian
_CHUNK_HEADER = Struct("!BBH")
_DATA_HEADER = Struct("!LHHL")  # TSN, stream id, stream sequence number, PPID
_CHUNK_DATA = 0
_CHUNK_INIT = 1
_CHUNK_SACK = SackChunk.type
_CHUNK_FORWARD_TSN = ForwardTsnChunk.type
_WHOLE = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
_MIN_PACKET = SCTP_COMMON_HEADER_LENGTH + 4
_FAST_BURST = 4 * USERDATA_MAX_LENGTH  # aiortc's burst limit outside fast recovery
_T3_SLACK = 0.001  # a re-armed T3 that fires this close to its deadline has expired
_NOT_TAKEN, _TAKEN, _TAKEN_DCEP = 0, 1, 2  # what _take_data did


class _Queued(tuple):  # type: ignore[type-arg]  # aiortc's (channel, pp_id, data) + policy
    """A data-channel queue entry of aiortc (unpacks as ``channel, pp_id, user_data``) that
    also carries its PR-SCTP policy, decided when it was sent: its absolute expiry
    (``time.time()`` seconds) or None, and its retransmission limit or None."""

    expiry: float | None
    max_retransmits: int | None


def _queued(
    entry: tuple[RTCDataChannel, int, bytes], expiry: float | None, max_retransmits: int | None
) -> _Queued:
    queued = _Queued(entry)
    queued.expiry = expiry
    queued.max_retransmits = max_retransmits
    return queued


StateCallback = Callable[[str], None]
"""Called with ``"connected"`` when the association is established, ``"closed"`` when it ends."""


class ImsSctpTransport(RTCSctpTransport):
    """``RTCSctpTransport`` with a state callback, a configurable DATA chunk size, partial
    reliability that starts at send time, delayed SACKs and bundling."""

    def __init__(
        self,
        transport: RTCDtlsTransport,
        port: int = 5000,
        *,
        user_data_max_length: int | None = None,
        on_state: StateCallback | None = None,
        tuning: SctpTuning = DEFAULT_TUNING,
    ) -> None:
        if user_data_max_length is not None and not (
            MIN_USER_DATA_MAX_LENGTH <= user_data_max_length <= AIORTC_USER_DATA_MAX_LENGTH
        ):
            raise ValueError(
                f"user_data_max_length must be {MIN_USER_DATA_MAX_LENGTH}-"
                f"{AIORTC_USER_DATA_MAX_LENGTH}, not {user_data_max_length}"
            )
        super().__init__(transport, port=port)
        self._cwnd = INITIAL_CWND  # aiortc starts at 3 DATA chunks (3,480 bytes)
        self._user_data_max_length = user_data_max_length
        self._on_state = on_state
        self._tuning = tuning
        self._packet_limit = _MAX_CHUNKS_LENGTH if tuning.bundle else 0
        # Delayed SACK state (RFC 9260 6.2): packets with DATA not yet acknowledged, and the
        # timer that acknowledges them at the latest.
        self._unacked_packets = 0
        self._sack_timer: asyncio.TimerHandle | None = None
        # True once a message with a lifetime was queued: only then is the outbound queue
        # searched for expired messages.
        self._lifetimes = False
        # Set by send_reliably around one channel.send.
        self._reliable_next = False
        # A flush is scheduled and has not started yet.
        self._flush_scheduled = False
        # A SACK the synchronous receive path found due, for the flush to send (item 8).
        self._sack_in_flush = False
        # The synchronous receive path (item 8): the DTLS layer when it is ours, the packets
        # waiting behind one a task handles (None: none is), and that task.
        self._dtls = transport if isinstance(transport, ImsDtlsTransport) else None
        self._backlog: deque[bytes] | None = None
        self._backlog_task: asyncio.Task[None] | None = None
        # Send fast path (module docstring, item 6): on unless aiortc's tuning is asked for.
        self._fast_send = tuning.fast_paths
        # Bytes of DATA the send fast path put in the outbound queue since the last
        # _transmit (all of it will go out at the next one).
        self._fast_pending = 0
        # T3-rtx restarted lazily (RFC 9260 6.3.2 R3): the timer's handle keeps its earlier
        # expiry and, when it fires, is re-armed for this deadline (loop time) if it is later.
        self._t3_deadline: float | None = None
        loop = self._loop  # aiortc's, the running loop when it was created
        assert loop is not None
        # The loop of the T3 timer and the flush tasks (create_task on it directly: cheaper
        # than asyncio.ensure_future's checks, once per burst of sends).
        self._timer_loop: asyncio.AbstractEventLoop = loop

    @property
    def tuning(self) -> SctpTuning:
        return self._tuning

    def _set_state(self, state: RTCSctpTransport.State) -> None:
        # Report before aiortc opens (ESTABLISHED) or closes (CLOSED) the channels, so the
        # session event comes first; aiortc drops its listeners on CLOSED, this hook is not one.
        on_state = self._on_state
        if on_state is not None:
            if state == self.State.ESTABLISHED:
                on_state("connected")
            elif state == self.State.CLOSED:
                # Nothing follows CLOSED: drop the callback (a bound method of the session
                # that owns this transport) so the pair is freed by reference counting, not
                # left as a cycle for the garbage collector (aiortc drops its listeners too).
                self._on_state = None
                on_state("closed")
        if state == self.State.CLOSED:
            self._cancel_sack_timer()
        super()._set_state(state)

    # -- receiving: delayed SACKs (RFC 9260 6.2) ---------------------------------------------

    async def _handle_data(self, data: bytes) -> None:
        # aiortc 1.16's _handle_data (parse_packet inlined, with the fast path for DATA: see
        # the module docstring, item 5), with the SACK decision of RFC 9260 6.2; behind any
        # packet the synchronous path left to its task (item 8).
        backlog = self._backlog
        if backlog is not None:
            backlog.append(data)
            return
        await self._handle_packet(data)

    async def _handle_packet(self, data: bytes) -> None:
        if len(data) >= _MIN_PACKET and data[SCTP_COMMON_HEADER_LENGTH] == _CHUNK_INIT:
            view = memoryview(data)
            if _CHECKSUM.unpack_from(data, 8)[0] == crc32c(
                b"".join((view[:8], b"\x00\x00\x00\x00", view[12:]))
            ):
                await self._handle_init_packet(data, _TAG.unpack_from(data, 4)[0])
            return
        chunks = self._walk(data)
        if chunks is not None:
            await self._finish_packet(data, chunks, 0, False)

    def _walk(self, data: bytes) -> list[tuple[int, int, int, int]] | None:
        """The chunks of a packet that is not an INIT, as (type, flags, body start, body end),
        after the common header's checks (RFC 9260 3.1, 8.5); None: the packet is dropped."""
        length = len(data)
        if length < _MIN_PACKET:
            return None
        view = memoryview(data)
        if _CHECKSUM.unpack_from(data, 8)[0] != crc32c(
            b"".join((view[:8], b"\x00\x00\x00\x00", view[12:]))
        ):
            return None
        if _TAG.unpack_from(data, 4)[0] != self._local_verification_tag:
            return None
        # Walk the chunks first (a malformed one drops the whole packet, as parse_packet does).
        chunks: list[tuple[int, int, int, int]] = []  # type, flags, start, end
        pos = SCTP_COMMON_HEADER_LENGTH
        unpack_chunk = _CHUNK_HEADER.unpack_from
        while pos <= length - 4:
            chunk_type, flags, chunk_length = unpack_chunk(data, pos)
            if (
                chunk_length < 4
                or pos + chunk_length > length
                or chunk_type == _CHUNK_INIT
                or (chunk_type == _CHUNK_DATA and chunk_length < 16)
            ):
                # Malformed (a DATA chunk shorter than its header would raise in aiortc's
                # parser), or an INIT bundled with other chunks: aiortc drops the packet.
                return None
            chunks.append((chunk_type, flags, pos + 4, pos + chunk_length))
            pos += (chunk_length + 3) & ~3
        return chunks

    async def _finish_packet(
        self, data: bytes, chunks: list[tuple[int, int, int, int]], first: int, has_data: bool
    ) -> None:
        """Handle ``chunks[first:]`` of a packet, then decide on its SACK."""
        forward_tsn = False
        for chunk_type, flags, start, end in chunks[first:]:
            if chunk_type == _CHUNK_DATA:
                has_data = True
                if flags & _WHOLE == _WHOLE and await self._fast_data(data, flags, start, end):
                    continue
            elif chunk_type == _CHUNK_SACK:
                if self._fast_send and await self._fast_sack(data, start, end):
                    continue
            elif chunk_type == _CHUNK_FORWARD_TSN:
                forward_tsn = True
            cls = CHUNK_TYPES.get(chunk_type)
            if cls is not None:
                await self._receive_chunk(cls(flags=flags, body=data[start:end]))
        if self._sack_at_once(has_data, forward_tsn):
            await self._send_sack()

    def _sack_at_once(self, has_data: bool, forward_tsn: bool) -> bool:
        """RFC 9260 6.2 after a packet: whether its SACK is due now; else the delayed SACK
        timer runs (started here if it was not)."""
        if not self._sack_needed:
            return False
        if has_data:
            self._unacked_packets += 1
        elif not forward_tsn:
            return False  # nothing new to acknowledge: the delayed SACK's timer is running
        if (
            forward_tsn
            or self._unacked_packets >= self._tuning.sack_every
            or self._sack_misordered  # a gap: the sender needs it for fast retransmit
            or self._sack_duplicates
            or self._association_state != self.State.ESTABLISHED
        ):
            return True
        if self._sack_timer is None:
            self._sack_timer = self._timer_loop.call_later(self._tuning.sack_delay, self._sack_due)
        return False

    # -- receiving without a coroutine (item 8) ----------------------------------------------

    def receive_now(self, data: bytes) -> None:
        """One SCTP packet from the DTLS layer's synchronous path (module docstring, item 8):
        its chunks are handled here as long as the fast paths take them; the first one they
        do not take, and the rest of the packet, go to a task, and every packet after it
        waits behind it (in :attr:`_backlog`) until the task has handled it."""
        backlog = self._backlog
        if backlog is not None:
            backlog.append(data)
            return
        dtls = self._dtls
        if (
            dtls is None
            or not dtls.sends_now
            or (len(data) >= _MIN_PACKET and data[SCTP_COMMON_HEADER_LENGTH] == _CHUNK_INIT)
        ):
            self._hand_over(data, None, 0, False)
            return
        chunks = self._walk(data)
        if chunks is None:
            return
        has_data = False
        taken = 0
        for chunk_type, flags, start, end in chunks:
            if chunk_type == _CHUNK_DATA:
                if flags & _WHOLE != _WHOLE or not self._fast_data_now(data, flags, start, end):
                    break
                has_data = True
            elif chunk_type != _CHUNK_SACK or not (
                self._fast_send and self._fast_sack_now(data, start, end)
            ):
                break
            taken += 1
        if taken < len(chunks):
            self._hand_over(data, chunks, taken, has_data)
        elif self._sack_at_once(has_data, False):
            # Sent at the end of this turn of the loop, with the DATA it may ride on (RFC
            # 9260 6.10) and acknowledging every packet of the turn.
            self._sack_in_flush = True
            self._schedule_flush()

    def _hand_over(
        self,
        data: bytes,
        chunks: list[tuple[int, int, int, int]] | None,
        first: int,
        has_data: bool,
    ) -> None:
        """Finish the packet ``data`` in a task (from ``chunks[first:]``, or all of it when
        ``chunks`` is None), and the packets that arrive meanwhile behind it."""
        self._backlog = deque()
        self._backlog_task = self._timer_loop.create_task(
            self._drain(data, chunks, first, has_data)
        )

    async def _drain(
        self,
        data: bytes,
        chunks: list[tuple[int, int, int, int]] | None,
        first: int,
        has_data: bool,
    ) -> None:
        try:
            if chunks is None:
                await self._handle_packet(data)
            else:
                await self._finish_packet(data, chunks, first, has_data)
            backlog = self._backlog
            while backlog:
                await self._handle_packet(backlog.popleft())
        except ConnectionError:
            pass  # the DTLS transport is closing: its own task reports it
        finally:
            self._backlog = None
            self._backlog_task = None

    async def stop(self) -> None:
        task = self._backlog_task
        if task is not None:
            self._backlog_task = None
            task.cancel()
        await super().stop()

    async def _handle_init_packet(self, data: bytes, verification_tag: int) -> None:
        # aiortc's rule: an INIT is alone in its packet, with verification tag 0.
        try:
            _, _, _, chunks = parse_packet(data)
        except ValueError:
            return
        if len(chunks) == 1 and isinstance(chunks[0], InitChunk) and verification_tag == 0:
            await self._receive_chunk(chunks[0])

    def _fast_data_now(self, data: bytes, flags: int, start: int, end: int) -> bool:
        """:meth:`_fast_data` for a message (DCEP, whose handling awaits, is left to the
        task), without a coroutine."""
        return self._take_data(data, flags, start, end, False) == _TAKEN

    async def _fast_data(self, data: bytes, flags: int, start: int, end: int) -> bool:
        """Deliver a whole-message DATA chunk that is next in line (module docstring, item
        5) and return True; False (nothing done) when aiortc's path must take it."""
        taken = self._take_data(data, flags, start, end, True)
        if taken == _TAKEN_DCEP:
            stream_id = _DATA_HEADER.unpack_from(data, start)[1]
            await self._data_channel_receive(stream_id, WEBRTC_DCEP, data[start + 12 : end])
        return taken != _NOT_TAKEN

    def _take_data(self, data: bytes, flags: int, start: int, end: int, dcep: bool) -> int:
        """The bookkeeping of :meth:`_fast_data` and the delivery of a message: _TAKEN;
        _TAKEN_DCEP when it is a DCEP message (``dcep``: the caller delivers it); _NOT_TAKEN
        (nothing done) when aiortc's path must take the chunk, or it is DCEP and not
        ``dcep``."""
        last = self._last_received_tsn
        if last is None or self._sack_misordered or self._reconfig_deferred is not None:
            return _NOT_TAKEN
        tsn, stream_id, stream_seq, pp_id = _DATA_HEADER.unpack_from(data, start)
        if tsn != tsn_plus_one(last) or (pp_id == WEBRTC_DCEP and not dcep):
            return _NOT_TAKEN
        stream = self._inbound_streams.get(stream_id)
        if stream is None:
            stream = self._get_inbound_stream(stream_id)
        elif stream.reassembly:
            return _NOT_TAKEN
        if not flags & SCTP_DATA_UNORDERED:
            if stream_seq != stream.sequence_number:
                return _NOT_TAKEN
            stream.sequence_number = uint16_add(stream_seq, 1)
        # aiortc's _receive_data_chunk and _mark_received, for this case.
        self._sack_needed = True
        self._last_received_tsn = tsn
        if self._sack_duplicates:
            self._sack_duplicates = [t for t in self._sack_duplicates if uint32_gt(t, tsn)]
        if pp_id == WEBRTC_DCEP:
            return _TAKEN_DCEP
        self._deliver(stream_id, pp_id, data[start + 12 : end])
        return _TAKEN

    def _deliver(self, stream_id: int, pp_id: int, payload: bytes) -> None:
        """aiortc 1.16's ``_data_channel_receive`` for a message (not DCEP), without a
        coroutine; a WebRTC String that is not UTF-8 is dropped (aiortc's raises, which ends
        the DTLS transport's task)."""
        channel = self._data_channels.get(stream_id)
        if channel is None:
            return
        if pp_id == WEBRTC_BINARY:
            channel.emit("message", payload)
        elif pp_id == WEBRTC_STRING:
            try:
                text = payload.decode("utf8")
            except UnicodeDecodeError:
                return
            channel.emit("message", text)
        elif pp_id == WEBRTC_BINARY_EMPTY:
            channel.emit("message", b"")
        elif pp_id == WEBRTC_STRING_EMPTY:
            channel.emit("message", "")

    async def _fast_sack(self, data: bytes, start: int, end: int) -> bool:
        """Take a SACK that only moves the cumulative TSN ack point forward (module
        docstring, item 7) and return True; False (nothing done) when aiortc's
        ``_receive_sack_chunk`` must take it."""
        if not self._apply_sack(data, start, end):
            return False
        if self._data_channel_queue or self._reconfig_queue:
            await self._data_channel_flush()
        if self._transmit_wanted():
            await self._transmit()
        return True

    def _fast_sack_now(self, data: bytes, start: int, end: int) -> bool:
        """:meth:`_fast_sack` without a coroutine, when nothing waits in the data-channel
        queue (whose flush awaits)."""
        if self._data_channel_queue or self._reconfig_queue:
            return False
        if not self._apply_sack(data, start, end):
            return False
        if self._transmit_wanted():
            self._transmit_now()
        return True

    def _transmit_wanted(self) -> bool:
        return (
            bool(self._outbound_queue)
            or self._forward_tsn_chunk is not None
            or any(chunk._retransmit for chunk in self._sent_queue)
        )

    def _apply_sack(self, data: bytes, start: int, end: int) -> bool:
        """The acknowledgement part of :meth:`_fast_sack`; False: nothing done."""
        sack = plain_sack(data, start, end)
        if sack is None:
            return False
        cumulative_tsn = sack[0]
        last = self._last_sacked_tsn
        if (
            not uint32_gt(cumulative_tsn, last)
            or self._fast_recovery_exit is not None
            or self._advanced_peer_ack_tsn != last
            or self._forward_tsn_streams
        ):
            return False
        # aiortc 1.16's _receive_sack_chunk without gap blocks (RFC 9260 6.2.1 D, 7.2.1,
        # 7.2.2, 6.3.1 for the RTT measurement, 6.3.2 R2/R3 for T3-rtx).
        self._last_sacked_tsn = cumulative_tsn
        cwnd_fully_utilized = self._flight_size >= self._cwnd
        done = 0
        done_bytes = 0
        sent = self._sent_queue
        flight = self._flight_size
        while sent and uint32_gte(cumulative_tsn, sent[0].tsn):
            chunk = sent.popleft()
            done += 1
            if not chunk._acked:
                done_bytes += chunk._book_size
            if chunk._in_flight:
                chunk._in_flight = False
                flight -= chunk._book_size
            if done == 1 and chunk._sent_count == 1 and chunk._sent_time is not None:
                # Karn's rule (6.3.1 C5): only a chunk sent once gives an RTT sample.
                self._update_rto(time.time() - chunk._sent_time)
        self._flight_size = flight
        if done and cwnd_fully_utilized:
            if self._cwnd <= self._ssthresh:  # slow start
                self._cwnd += min(done_bytes, USERDATA_MAX_LENGTH)
            else:  # congestion avoidance
                self._partial_bytes_acked += done_bytes
                if self._partial_bytes_acked >= self._cwnd:
                    self._partial_bytes_acked -= self._cwnd
                    self._cwnd += USERDATA_MAX_LENGTH
        if not sent:
            self._t3_cancel()  # R2: nothing outstanding
        elif done:
            self._t3_restart()  # R3: the earliest outstanding TSN was acknowledged
        if (sent and sent[0]._abandoned) or (
            self._outbound_queue and self._outbound_queue[0]._abandoned
        ):
            self._update_advanced_peer_ack_point()
        else:
            self._advanced_peer_ack_tsn = cumulative_tsn
        return True

    # -- T3-rtx, restarted lazily (RFC 9260 6.3.2) --------------------------------------

    def _t3_start(self) -> None:
        assert self._t3_handle is None
        self._t3_deadline = None
        self._t3_handle = self._timer_loop.call_later(self._rto, self._t3_fire)

    def _t3_restart(self) -> None:
        # R3 (a SACK acknowledged the earliest outstanding TSN) restarts T3 at every such
        # SACK: a timer that would fire no later than the new expiry is kept and re-armed
        # when it fires (_t3_fire), instead of a cancel and a new timer per SACK.
        deadline = self._timer_loop.time() + self._rto
        handle = self._t3_handle
        if handle is not None:
            if handle.when() <= deadline and self._fast_send:
                self._t3_deadline = deadline
                return
            handle.cancel()
        self._t3_deadline = None
        self._t3_handle = self._timer_loop.call_at(deadline, self._t3_fire)

    def _t3_cancel(self) -> None:
        self._t3_deadline = None
        super()._t3_cancel()

    def _t3_fire(self) -> None:
        deadline = self._t3_deadline
        self._t3_deadline = None
        if deadline is not None and deadline - self._timer_loop.time() > _T3_SLACK:
            self._t3_handle = self._timer_loop.call_at(deadline, self._t3_fire)
            return
        self._t3_expired()  # aiortc's: retransmit, back off the window (6.3.3)

    def _sack_due(self) -> None:
        self._sack_timer = None
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            dtls = self._dtls
            if dtls is not None and dtls.sends_now:
                self._send_sack_now()
            else:
                asyncio.ensure_future(self._send_sack())

    def _cancel_sack_timer(self) -> None:
        if self._sack_timer is not None:
            self._sack_timer.cancel()
            self._sack_timer = None

    def _take_sack(self) -> bytes:
        """The SACK chunk for what was received (aiortc 1.16's ``_send_sack`` up to the
        send); resets the delayed-SACK state."""
        last = self._last_received_tsn
        assert last is not None  # a SACK follows received DATA
        if not self._sack_misordered and not self._sack_duplicates:
            # The common case, without a SackChunk object.
            self._sack_needed = False
            self._unacked_packets = 0
            self._cancel_sack_timer()
            return sack_bytes(last, max(0, self._advertised_rwnd))
        gaps: list[list[int]] = []
        gap_next = None
        for tsn in sorted(self._sack_misordered):
            pos = (tsn - last) % SCTP_TSN_MODULO
            if tsn == gap_next:
                gaps[-1][1] = pos
            else:
                gaps.append([pos, pos])
            gap_next = tsn_plus_one(tsn)
        sack = SackChunk()
        sack.cumulative_tsn = last
        sack.advertised_rwnd = max(0, self._advertised_rwnd)
        sack.duplicates = self._sack_duplicates[:]
        sack.gaps = [(a, b) for a, b in gaps]
        self._sack_duplicates.clear()
        self._sack_needed = False
        self._unacked_packets = 0
        self._cancel_sack_timer()
        return bytes(sack)

    async def _send_sack(self) -> None:
        await self._send_chunks(self._take_sack())

    def _send_sack_now(self) -> None:
        self._send_chunks_now(self._take_sack())

    def _piggyback_sack(self) -> bytes | None:
        """A delayed SACK to bundle ahead of outgoing DATA (RFC 9260 6.2, 6.10), if one is
        waiting and bundling is on."""
        if (
            self._packet_limit
            and self._sack_needed
            and self._association_state == self.State.ESTABLISHED
        ):
            return self._take_sack()
        return None

    # -- sending: lifetimes from send time, bundling ----------------------------------------

    def send_reliably(self, channel: RTCDataChannel, data: bytes | str) -> None:
        """Send one message on ``channel`` fully reliably even if the channel is partially
        reliable (RFC 3758 3: the policy is chosen per message; RFC 8831 only sets a channel's
        default), e.g. the one message a receiver cannot do without. Raises as
        ``channel.send`` does."""
        self._reliable_next = True
        try:
            channel.send(data)
        finally:
            self._reliable_next = False

    def _data_channel_send(self, channel: RTCDataChannel, data: bytes | str) -> None:
        # aiortc 1.16's _data_channel_send, with the message's own PR-SCTP policy and one
        # flush task for all the messages sent before it runs (aiortc: a task per message).
        if data == "":
            pp_id, user_data = WEBRTC_STRING_EMPTY, b"\x00"
        elif isinstance(data, str):
            pp_id, user_data = WEBRTC_STRING, data.encode("utf8")
        elif data == b"":
            pp_id, user_data = WEBRTC_BINARY_EMPTY, b"\x00"
        else:
            pp_id, user_data = WEBRTC_BINARY, data
        if self._remote_max_message_size and len(user_data) > self._remote_max_message_size:
            raise ValueError(
                f"Cannot send message of {len(user_data)} bytes, the remote party "
                f"only supports messages up to {self._remote_max_message_size} bytes"
            )
        if self._fast_send and self._send_now(channel, pp_id, user_data):
            return
        channel._addBufferedAmount(len(user_data))
        entry: tuple[RTCDataChannel, int, bytes] = (channel, pp_id, user_data)
        lifetime = channel.maxPacketLifeTime
        if self._reliable_next:
            entry = _queued(entry, None, None)
        elif lifetime is not None:
            self._lifetimes = True
            if lifetime > 0:
                entry = _queued(entry, time.time() + lifetime / 1000, None)
            else:  # max-time=0: one transmission, never a retransmission
                entry = _queued(entry, None, 0)
        # else aiortc's entry: the channel's own policy (reliable, or max-retr)
        self._data_channel_queue.append(entry)
        self._schedule_flush()

    def _send_now(self, channel: RTCDataChannel, pp_id: int, user_data: bytes) -> bool:
        """The send fast path (module docstring, item 6): when the message fits one DATA
        chunk, nothing waits in the data-channel queue ahead of it, and the congestion window
        (RFC 9260 7.2.1, with aiortc's burst limit) lets it out at the next transmission, it
        becomes a DATA chunk in the outbound queue at once, with its TSN and stream sequence
        number (6.1, 6.6), and the flush task transmits it with the others sent this turn.
        False (nothing done) sends it through aiortc's queues."""
        size = len(user_data)
        stream_id = channel.id
        pending = self._fast_pending + size
        if (
            self._association_state != self.State.ESTABLISHED
            or stream_id is None
            or self._data_channel_queue
            or (self._outbound_queue and not self._fast_pending)
            or size > (self._user_data_max_length or USERDATA_MAX_LENGTH)
            or self._fast_recovery_exit is not None
            or pending > _FAST_BURST
            or self._flight_size + pending > self._cwnd
        ):
            return False
        expiry: float | None = None
        max_retransmits: int | None = None
        if not self._reliable_next:
            lifetime = channel.maxPacketLifeTime
            if lifetime is not None:
                self._lifetimes = True
                if lifetime > 0:
                    expiry = time.time() + lifetime / 1000
                else:  # max-time=0: one transmission, never a retransmission
                    max_retransmits = 0
            else:
                max_retransmits = channel.maxRetransmits
        if channel.ordered:
            stream_seq = self._outbound_stream_seq.get(stream_id, 0)
            self._outbound_stream_seq[stream_id] = uint16_add(stream_seq, 1)
            flags = _WHOLE
        else:
            stream_seq = 0
            flags = _WHOLE | SCTP_DATA_UNORDERED
        tsn = self._local_tsn
        self._local_tsn = tsn_plus_one(tsn)
        self._outbound_queue.append(
            OutChunk(flags, tsn, stream_id, stream_seq, pp_id, user_data, expiry, max_retransmits)
        )
        self._fast_pending = pending
        self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        """Flush the send side once at the end of this turn of the event loop (after the
        other callbacks already due: every datagram received in this turn)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            dtls = self._dtls
            if dtls is not None and dtls.sends_now:
                self._timer_loop.call_soon(self._flush_soon)
            else:
                self._timer_loop.create_task(self._scheduled_flush())

    def _flush_soon(self) -> None:
        dtls = self._dtls
        if (
            self._data_channel_queue
            or self._reconfig_queue
            or dtls is None
            or not dtls.sends_now
        ):
            self._timer_loop.create_task(self._scheduled_flush())
            return
        self._flush_scheduled = False
        sack_in_flush, self._sack_in_flush = self._sack_in_flush, False
        if self._association_state != self.State.ESTABLISHED:
            return
        if self._fast_pending:
            self._transmit_now()  # a waiting SACK rides on its first packet
        if sack_in_flush and self._sack_needed:
            self._send_sack_now()

    async def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        sack_in_flush, self._sack_in_flush = self._sack_in_flush, False
        if self._fast_pending and self._association_state == self.State.ESTABLISHED:
            await self._transmit()
        if self._data_channel_queue or self._reconfig_queue:
            await self._data_channel_flush()
        if sack_in_flush and self._sack_needed:
            await self._send_sack()

    async def _data_channel_flush(self) -> None:
        # aiortc 1.16's _data_channel_flush, except that (1) a message's expiry is the one set
        # when it was sent, and one that expired in this queue is dropped before it gets a
        # TSN; (2) with bundling, messages move to SCTP until a packet's worth of DATA is
        # waiting (aiortc: one message, transmitted alone), then go out together.
        if self._association_state != self.State.ESTABLISHED:
            return
        limit = self._packet_limit
        pending = 0
        queue = self._data_channel_queue
        # Like aiortc, nothing moves while SCTP still holds unsent DATA (so bufferedAmount
        # shows the backlog); then up to a packet's worth.
        moving = not self._outbound_queue
        while queue and (not self._outbound_queue or (moving and pending < limit)):
            item = queue.popleft()
            channel, protocol, user_data = item
            stream_id = channel.id
            if stream_id is None:
                # aiortc sets the first id once the association is up (only DCEP uses it).
                next_id = self._data_channel_id
                assert next_id is not None
                while next_id in self._data_channels:
                    next_id += 2
                self._data_channels[next_id] = channel
                channel._setId(next_id)
                stream_id = next_id
            if protocol == WEBRTC_DCEP:
                self._enqueue(stream_id, protocol, user_data, None, None, True)
                pending += len(user_data)
                continue
            expiry = None
            max_retransmits = channel.maxRetransmits
            if isinstance(item, _Queued):
                expiry, max_retransmits = item.expiry, item.max_retransmits
                if expiry is not None and expiry <= time.time():
                    channel._addBufferedAmount(-len(user_data))
                    continue
            self._enqueue(stream_id, protocol, user_data, expiry, max_retransmits, channel.ordered)
            pending += len(user_data)
            channel._addBufferedAmount(-len(user_data))
            if not limit:
                await self._transmit()
        if limit and pending:
            await self._transmit()
        await self._transmit_reconfig()

    def _abandon_unsent(self, now: float) -> bool:
        """Abandon the messages in the outbound queue whose lifetime ran out before their
        first transmission (RFC 3758 3.5 A1-A3); True if any was."""
        abandoned = False
        dropping = False
        for chunk in self._outbound_queue:
            if dropping:
                chunk._abandoned = True
            elif (
                chunk.flags & SCTP_DATA_FIRST_FRAG
                and not chunk._abandoned
                and chunk._expiry is not None
                and chunk._expiry <= now
            ):
                chunk._abandoned = dropping = abandoned = True
            if chunk.flags & SCTP_DATA_LAST_FRAG:
                dropping = False
        return abandoned

    def _packet(self, body: bytes) -> bytes:
        """One packet of already serialized chunks (RFC 9260 3)."""
        header = pack("!HHL", self._local_port, self._remote_port, self._remote_verification_tag)
        checksum = crc32c(header + b"\x00\x00\x00\x00" + body)
        return header + _CHECKSUM.pack(checksum) + body

    async def _send_chunks(self, body: bytes) -> None:
        """Send one packet of already serialized chunks (RFC 9260 3)."""
        await self.transport._send_data(self._packet(body))

    def _send_chunks_now(self, body: bytes) -> None:
        """:meth:`_send_chunks` without a coroutine (only while the DTLS layer
        :attr:`~avatar_mf.media.dtls_transport.ImsDtlsTransport.sends_now`); a packet that
        cannot be sent (the transport is closing) is lost, as a datagram would be."""
        dtls = self._dtls
        assert dtls is not None
        try:
            dtls.send_data_now(self._packet(body))
        except ConnectionError:
            pass

    def _bodies(self, chunks: list[bytes]) -> list[bytes]:
        """``chunks`` (serialized, in order) bundled into packet bodies as the tuning says,
        with a waiting SACK ahead of them (RFC 9260 6.10: control chunks first)."""
        if not chunks:
            return []
        limit = self._packet_limit
        packets = pack_packets(chunks, limit) if limit else [[c] for c in chunks]
        bodies: list[bytes] = []
        sack = self._piggyback_sack()
        if sack is not None:
            first = packets[0]
            if len(sack) + sum(map(len, first)) <= _MAX_CHUNKS_LENGTH:
                first.insert(0, sack)
            else:
                bodies.append(sack)
        bodies.extend(packet[0] if len(packet) == 1 else b"".join(packet) for packet in packets)
        return bodies

    async def _send_packed(self, chunks: list[bytes]) -> None:
        """Send ``chunks`` (serialized, in order) bundled as the tuning says, with a waiting
        SACK ahead of them (RFC 9260 6.10: control chunks first)."""
        dtls = self._dtls
        if dtls is not None and dtls.sends_now:
            for body in self._bodies(chunks):
                dtls.send_data_now(self._packet(body))
            return
        for body in self._bodies(chunks):
            await self._send_chunks(body)

    def _transmit_now(self) -> None:
        """:meth:`_transmit` without a coroutine (only while the DTLS layer sends now)."""
        for body in self._bodies(self._transmit_chunks()):
            self._send_chunks_now(body)

    async def _transmit(self) -> None:
        await self._send_packed(self._transmit_chunks())

    def _transmit_chunks(self) -> list[bytes]:
        """What :meth:`_transmit` sends, serialized, with the bookkeeping of sending it."""
        # aiortc 1.16's _transmit, with bundling, unsent expired messages skipped, and the
        # chunks serialized first and sent together at the end.
        self._fast_pending = 0
        if self._lifetimes and self._outbound_queue and self._abandon_unsent(time.time()):
            self._update_advanced_peer_ack_point()
        out: list[bytes] = []
        if self._forward_tsn_chunk is not None:
            out.append(bytes(self._forward_tsn_chunk))
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        if self._fast_recovery_exit is not None:
            burst_size = 2 * USERDATA_MAX_LENGTH
        else:
            burst_size = 4 * USERDATA_MAX_LENGTH
        cwnd = min(self._flight_size + burst_size, self._cwnd)

        retransmit_earliest = True
        for chunk in self._sent_queue:
            if chunk._retransmit:
                if self._fast_recovery_transmit:
                    self._fast_recovery_transmit = False
                elif self._flight_size >= cwnd:
                    return out
                self._flight_size_increase(chunk)
                chunk._misses = 0
                chunk._retransmit = False
                chunk._sent_count += 1
                out.append(bytes(chunk))
                if retransmit_earliest:
                    self._t3_restart()
            retransmit_earliest = False

        outbound = self._outbound_queue
        if outbound and self._flight_size < cwnd:
            skipped = False
            now = time.time()
            sent = self._sent_queue
            while outbound and self._flight_size < cwnd:
                chunk = outbound.popleft()
                sent.append(chunk)
                if chunk._abandoned:  # expired before its first transmission
                    skipped = True
                    continue
                if not chunk._in_flight:  # aiortc's _flight_size_increase
                    chunk._in_flight = True
                    self._flight_size += chunk._book_size
                chunk._sent_count += 1
                chunk._sent_time = now
                out.append(bytes(chunk))
            if not self._t3_handle and out:
                self._t3_start()
            if skipped:
                self._update_advanced_peer_ack_point()
                if self._forward_tsn_chunk is not None:
                    out.append(bytes(self._forward_tsn_chunk))
                    self._forward_tsn_chunk = None
                    if not self._t3_handle:
                        self._t3_start()
        return out

    async def _send(
        self,
        stream_id: int,
        pp_id: int,
        user_data: bytes,
        expiry: float | None = None,
        max_retransmits: int | None = None,
        ordered: bool = True,
    ) -> None:
        self._enqueue(stream_id, pp_id, user_data, expiry, max_retransmits, ordered)
        await self._transmit()

    def _enqueue(
        self,
        stream_id: int,
        pp_id: int,
        user_data: bytes,
        expiry: float | None,
        max_retransmits: int | None,
        ordered: bool,
    ) -> None:
        # aiortc 1.16's RTCSctpTransport._send up to the transmission, with
        # USERDATA_MAX_LENGTH -> the configured chunk size.
        chunk_size = self._user_data_max_length or USERDATA_MAX_LENGTH
        if ordered:
            stream_seq = self._outbound_stream_seq.get(stream_id, 0)
        else:
            stream_seq = 0

        fragments = math.ceil(len(user_data) / chunk_size)
        pos = 0
        for fragment in range(0, fragments):
            flags = 0 if ordered else SCTP_DATA_UNORDERED
            if fragment == 0:
                flags |= SCTP_DATA_FIRST_FRAG
            if fragment == fragments - 1:
                flags |= SCTP_DATA_LAST_FRAG
            chunk = OutChunk(
                flags,
                self._local_tsn,
                stream_id,
                stream_seq,
                pp_id,
                user_data[pos : pos + chunk_size],
                expiry,
                max_retransmits,
            )
            pos += chunk_size
            self._local_tsn = tsn_plus_one(self._local_tsn)
            self._outbound_queue.append(chunk)

        if ordered:
            self._outbound_stream_seq[stream_id] = uint16_add(stream_seq, 1)
