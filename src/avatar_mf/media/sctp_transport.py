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
"""

from __future__ import annotations

import asyncio
import math
import time
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
    DataChunk,
    ForwardTsnChunk,
    InitChunk,
    RTCSctpTransport,
    SackChunk,
    parse_packet,
    tsn_plus_one,
)
from aiortc.utils import uint16_add, uint32_gt
from google_crc32c import value as crc32c

AIORTC_USER_DATA_MAX_LENGTH: int = USERDATA_MAX_LENGTH
"""aiortc's DATA chunk payload size (1160 bytes in 1.16); the largest value allowed here, since
aiortc's DTLS layer reads at most 1500-byte records."""

MIN_USER_DATA_MAX_LENGTH = 64

MAX_SACK_DELAY = 0.5
"""RFC 9260 6.2: a SACK is never delayed by more than 500 ms."""


@dataclass(frozen=True, slots=True)
class SctpTuning:
    """How often the association acknowledges and how it packs chunks (RFC 9260 6.2, 6.10).

    ``sack_every=1, bundle=False`` is aiortc's own behaviour (a SACK per packet with DATA, a
    packet per chunk)."""

    sack_every: int = 2
    """A SACK at least for every ``sack_every`` packets that carry DATA (RFC 9260: 2)."""
    sack_delay: float = 0.2
    """Seconds a SACK may wait for the next packet (RFC 9260: 200 ms, at most 500 ms)."""
    bundle: bool = True
    """Bundle several DATA chunks (and a FORWARD TSN) into one packet."""

    def __post_init__(self) -> None:
        if self.sack_every < 1:
            raise ValueError(f"sack_every must be at least 1, not {self.sack_every}")
        if not 0 < self.sack_delay <= MAX_SACK_DELAY:
            raise ValueError(f"sack_delay must be in (0, {MAX_SACK_DELAY}], not {self.sack_delay}")


DEFAULT_TUNING = SctpTuning()
"""Delayed SACKs (every second packet, 200 ms) and bundling."""

AIORTC_TUNING = SctpTuning(sack_every=1, bundle=False)
"""aiortc's behaviour: a SACK for every packet with DATA, one chunk per packet."""

_MAX_CHUNKS_LENGTH = SCTP_MAX_PACKET_LENGTH - SCTP_COMMON_HEADER_LENGTH

_TAG = Struct("!L")  # the verification tag, at offset 4 of the common header
_CHECKSUM = Struct("<L")  # the CRC32c, at offset 8, little-endian
_CHUNK_HEADER = Struct("!BBH")
_DATA_HEADER = Struct("!LHHL")  # TSN, stream id, stream sequence number, PPID
_CHUNK_DATA = 0
_CHUNK_INIT = 1
_CHUNK_FORWARD_TSN = ForwardTsnChunk.type
_WHOLE = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
_MIN_PACKET = SCTP_COMMON_HEADER_LENGTH + 4


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


class _Packer:
    """Chunks to send, packed into as few packets as fit (one per chunk when ``limit`` is 0)."""

    __slots__ = ("_sctp", "_parts", "_size", "_limit")

    def __init__(self, sctp: ImsSctpTransport, limit: int) -> None:
        self._sctp = sctp
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit

    async def add(self, data: bytes) -> None:
        if self._parts and self._size + len(data) > self._limit:
            await self.flush()
        self._parts.append(data)
        self._size += len(data)

    async def flush(self) -> None:
        if self._parts:
            sack = self._sctp._piggyback_sack()
            if sack is not None:
                if self._size + len(sack) <= _MAX_CHUNKS_LENGTH:
                    self._parts.insert(0, sack)  # control chunks come first (RFC 9260 6.10)
                else:
                    await self._sctp._send_chunks(sack)
            body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            await self._sctp._send_chunks(body)


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
        # A flush task is scheduled and has not started yet.
        self._flush_scheduled = False

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
        # the module docstring, item 5), with the SACK decision of RFC 9260 6.2.
        length = len(data)
        if length < _MIN_PACKET:
            return
        verification_tag = _TAG.unpack_from(data, 4)[0]
        checksum = _CHECKSUM.unpack_from(data, 8)[0]
        view = memoryview(data)
        if checksum != crc32c(b"".join((view[:8], b"\x00\x00\x00\x00", view[12:]))):
            return
        if data[SCTP_COMMON_HEADER_LENGTH] == _CHUNK_INIT:
            await self._handle_init_packet(data, verification_tag)
            return
        if verification_tag != self._local_verification_tag:
            return
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
                return
            chunks.append((chunk_type, flags, pos + 4, pos + chunk_length))
            pos += (chunk_length + 3) & ~3
        has_data = False
        forward_tsn = False
        for chunk_type, flags, start, end in chunks:
            if chunk_type == _CHUNK_DATA:
                has_data = True
                if flags & _WHOLE == _WHOLE and await self._fast_data(data, flags, start, end):
                    continue
            elif chunk_type == _CHUNK_FORWARD_TSN:
                forward_tsn = True
            cls = CHUNK_TYPES.get(chunk_type)
            if cls is not None:
                await self._receive_chunk(cls(flags=flags, body=data[start:end]))
        if not self._sack_needed:
            return
        if has_data:
            self._unacked_packets += 1
        elif not forward_tsn:
            return  # nothing new to acknowledge: the delayed SACK's timer is running
        if (
            forward_tsn
            or self._unacked_packets >= self._tuning.sack_every
            or self._sack_misordered  # a gap: the sender needs it for fast retransmit
            or self._sack_duplicates
            or self._association_state != self.State.ESTABLISHED
        ):
            await self._send_sack()
        elif self._sack_timer is None:
            self._sack_timer = asyncio.get_running_loop().call_later(
                self._tuning.sack_delay, self._sack_due
            )

    async def _handle_init_packet(self, data: bytes, verification_tag: int) -> None:
        # aiortc's rule: an INIT is alone in its packet, with verification tag 0.
        try:
            _, _, _, chunks = parse_packet(data)
        except ValueError:
            return
        if len(chunks) == 1 and isinstance(chunks[0], InitChunk) and verification_tag == 0:
            await self._receive_chunk(chunks[0])

    async def _fast_data(self, data: bytes, flags: int, start: int, end: int) -> bool:
        """Deliver a whole-message DATA chunk that is next in line (module docstring, item
        5) and return True; False (nothing done) when aiortc's path must take it."""
        last = self._last_received_tsn
        if last is None or self._sack_misordered or self._reconfig_deferred is not None:
            return False
        tsn, stream_id, stream_seq, pp_id = _DATA_HEADER.unpack_from(data, start)
        if tsn != tsn_plus_one(last):
            return False
        stream = self._inbound_streams.get(stream_id)
        if stream is None:
            stream = self._get_inbound_stream(stream_id)
        elif stream.reassembly:
            return False
        if not flags & SCTP_DATA_UNORDERED:
            if stream_seq != stream.sequence_number:
                return False
            stream.sequence_number = uint16_add(stream_seq, 1)
        # aiortc's _receive_data_chunk and _mark_received, for this case.
        self._sack_needed = True
        self._last_received_tsn = tsn
        if self._sack_duplicates:
            self._sack_duplicates = [t for t in self._sack_duplicates if uint32_gt(t, tsn)]
        await self._data_channel_receive(stream_id, pp_id, data[start + 12 : end])
        return True

    def _sack_due(self) -> None:
        self._sack_timer = None
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            asyncio.ensure_future(self._send_sack())

    def _cancel_sack_timer(self) -> None:
        if self._sack_timer is not None:
            self._sack_timer.cancel()
            self._sack_timer = None

    def _take_sack(self) -> SackChunk:
        """The SACK for what was received (aiortc 1.16's ``_send_sack`` up to the send);
        resets the delayed-SACK state."""
        gaps: list[list[int]] = []
        gap_next = None
        last = self._last_received_tsn
        assert last is not None  # a SACK follows received DATA
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
        return sack

    async def _send_sack(self) -> None:
        await self._send_chunks(bytes(self._take_sack()))

    def _piggyback_sack(self) -> bytes | None:
        """A delayed SACK to bundle ahead of outgoing DATA (RFC 9260 6.2, 6.10), if one is
        waiting and bundling is on."""
        if (
            self._packet_limit
            and self._sack_needed
            and self._association_state == self.State.ESTABLISHED
        ):
            return bytes(self._take_sack())
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
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.ensure_future(self._scheduled_flush())

    async def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        await self._data_channel_flush()

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

    async def _send_chunks(self, body: bytes) -> None:
        """Send one packet of already serialized chunks (RFC 9260 3)."""
        header = pack("!HHL", self._local_port, self._remote_port, self._remote_verification_tag)
        checksum = crc32c(header + b"\x00\x00\x00\x00" + body)
        await self.transport._send_data(header + pack("<L", checksum) + body)

    async def _transmit(self) -> None:
        # aiortc 1.16's _transmit, with bundling and unsent expired messages skipped.
        if self._lifetimes and self._outbound_queue and self._abandon_unsent(time.time()):
            self._update_advanced_peer_ack_point()
        packer = _Packer(self, self._packet_limit)
        if self._forward_tsn_chunk is not None:
            await packer.add(bytes(self._forward_tsn_chunk))
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
                    await packer.flush()
                    return
                self._flight_size_increase(chunk)
                chunk._misses = 0
                chunk._retransmit = False
                chunk._sent_count += 1
                await packer.add(bytes(chunk))
                if retransmit_earliest:
                    self._t3_restart()
            retransmit_earliest = False

        skipped = False
        while self._outbound_queue and self._flight_size < cwnd:
            chunk = self._outbound_queue.popleft()
            self._sent_queue.append(chunk)
            if chunk._abandoned:  # expired before its first transmission
                skipped = True
                continue
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            chunk._sent_time = time.time()
            await packer.add(bytes(chunk))
            if not self._t3_handle:
                self._t3_start()
        if skipped:
            self._update_advanced_peer_ack_point()
            if self._forward_tsn_chunk is not None:
                await packer.add(bytes(self._forward_tsn_chunk))
                self._forward_tsn_chunk = None
                if not self._t3_handle:
                    self._t3_start()
        await packer.flush()

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
            chunk = DataChunk()
            chunk.flags = 0
            if not ordered:
                chunk.flags = SCTP_DATA_UNORDERED
            if fragment == 0:
                chunk.flags |= SCTP_DATA_FIRST_FRAG
            if fragment == fragments - 1:
                chunk.flags |= SCTP_DATA_LAST_FRAG
            chunk.tsn = self._local_tsn
            chunk.stream_id = stream_id
            chunk.stream_seq = stream_seq
            chunk.protocol = pp_id
            chunk.user_data = user_data[pos : pos + chunk_size]

            chunk._abandoned = False
            chunk._acked = False
            chunk._book_size = len(chunk.user_data)
            chunk._expiry = expiry
            chunk._in_flight = False
            chunk._max_retransmits = max_retransmits
            chunk._misses = 0
            chunk._retransmit = False
            chunk._sent_count = 0
            chunk._sent_time = None

            pos += chunk_size
            self._local_tsn = tsn_plus_one(self._local_tsn)
            self._outbound_queue.append(chunk)

        if ordered:
            self._outbound_stream_seq[stream_id] = uint16_add(stream_seq, 1)
