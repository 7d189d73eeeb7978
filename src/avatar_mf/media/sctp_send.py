"""The SCTP send side's common case as bytes (RFC 9260 3.3.1, 3.3.4, 6.1, 6.2.1, 6.10).

Pure helpers for :class:`~avatar_mf.media.sctp_transport.ImsSctpTransport`'s send and SACK
fast paths; nothing here does I/O or keeps association state.

* :class:`OutChunk`: a DATA chunk (RFC 9260 3.3.1) built in one call with every field aiortc's
  sent-queue bookkeeping reads (``_acked``, ``_abandoned``, ``_book_size``, ``_expiry``,
  ``_in_flight``, ``_max_retransmits``, ``_misses``, ``_retransmit``, ``_sent_count``,
  ``_sent_time``), serialized once: a retransmission (T3-rtx, RFC 9260 6.3.3; fast
  retransmit, 7.2.4) sends the same bytes again. It is an aiortc ``DataChunk``, so aiortc's
  own SACK, T3 and FORWARD TSN code (RFC 3758) handle it unchanged.
* :func:`pack_packets`: chunks bundled into as few packets as fit one packet's chunk space, in
  order (RFC 9260 6.10); a chunk larger than the space goes alone.
* :func:`plain_sack`: the cumulative TSN ack and a_rwnd of a SACK chunk (RFC 9260 3.3.4) that
  has no gap ack blocks and no duplicate TSNs, the only SACK the fast path takes; None for
  any other.
* :func:`sack_bytes`: a SACK chunk with neither gaps nor duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from struct import Struct

from aiortc.rtcsctptransport import DataChunk

SACK_TYPE = 3
"""RFC 9260 3.2: chunk type 3, SACK."""

DATA_HEADER_LENGTH = 16
"""RFC 9260 3.3.1: type, flags, length, TSN, stream identifier, stream sequence number, PPID."""

_DATA_HEADER = Struct("!BBHLHHL")
_SACK = Struct("!BBHLLHH")  # type, flags, length, cumulative TSN ack, a_rwnd, gaps, duplicates
_SACK_BODY = Struct("!LLHH")
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def data_chunk_bytes(
    flags: int, tsn: int, stream_id: int, stream_seq: int, ppid: int, user_data: bytes
) -> bytes:
    """A DATA chunk on the wire, padded to a multiple of four bytes (RFC 9260 3.2, 3.3.1)."""
    length = DATA_HEADER_LENGTH + len(user_data)
    header = _DATA_HEADER.pack(0, flags, length, tsn, stream_id, stream_seq, ppid)
    return header + user_data + _PADDING[length & 3]


class OutChunk(DataChunk):
    """A DATA chunk for the sent queue, with aiortc's bookkeeping set and its bytes cached.

    Its wire fields (flags, TSN, stream, sequence number, PPID, user data) never change after
    it is built: aiortc marks a chunk abandoned, acked or due for retransmission through the
    underscore fields only."""

    def __init__(
        self,
        flags: int,
        tsn: int,
        stream_id: int,
        stream_seq: int,
        ppid: int,
        user_data: bytes,
        expiry: float | None = None,
        max_retransmits: int | None = None,
    ) -> None:
        # DataChunk.__init__ is not called: it would only set the fields below to defaults.
        self.flags = flags
        self.tsn = tsn
        self.stream_id = stream_id
        self.stream_seq = stream_seq
        self.protocol = ppid
        self.user_data = user_data
        self._abandoned = False
        self._acked = False
        self._book_size = len(user_data)
        self._expiry = expiry
        self._in_flight = False
        self._max_retransmits = max_retransmits
        self._misses = 0
        self._retransmit = False
        self._sent_count = 0
        self._sent_time = None
        self._wire = data_chunk_bytes(flags, tsn, stream_id, stream_seq, ppid, user_data)

    def __bytes__(self) -> bytes:
        return self._wire


def pack_packets(chunks: Iterable[bytes], limit: int) -> list[list[bytes]]:
    """``chunks`` (serialized, in order) grouped into packets of at most ``limit`` bytes of
    chunks each (RFC 9260 6.10); ``limit`` 0 puts every chunk in its own packet."""
    packets: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for chunk in chunks:
        if current and size + len(chunk) > limit:
            packets.append(current)
            current = []
            size = 0
        current.append(chunk)
        size += len(chunk)
    if current:
        packets.append(current)
    return packets


def plain_sack(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """``(cumulative TSN ack, a_rwnd)`` of the SACK chunk whose body is ``data[start:end]``
    when it reports no gap ack block and no duplicate TSN (RFC 9260 3.3.4); else None (also
    for a body too short to be a SACK)."""
    if end - start < _SACK_BODY.size:
        return None
    cumulative_tsn, a_rwnd, gaps, duplicates = _SACK_BODY.unpack_from(data, start)
    if gaps or duplicates:
        return None
    return cumulative_tsn, a_rwnd


def sack_bytes(cumulative_tsn: int, a_rwnd: int) -> bytes:
    """A SACK chunk with no gap ack blocks and no duplicate TSNs (RFC 9260 3.3.4)."""
    return _SACK.pack(SACK_TYPE, 0, 16, cumulative_tsn, a_rwnd, 0, 0)
