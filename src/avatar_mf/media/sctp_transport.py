"""SCTP over DTLS for data channels (RFC 8261, RFC 8831), with two hooks over aiortc's.

1. A state callback: aiortc's ``RTCSctpTransport`` emits no event when the association comes up
   or goes down; the session needs both (setup completion, remote ABORT/SHUTDOWN).
2. A per-association DATA chunk size (``user_data_max_length``). aiortc fragments messages into
   chunks of a module-wide size chosen for a 1280-byte path MTU; some paths (tunnels, IMS access
   with extra encapsulation) carry less and stall on full-size chunks. The module constant is
   read inside ``_send``, so the override is a copy of aiortc 1.16's ``_send`` with the size as a
   parameter. It only replaces aiortc's when a size is configured.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    USERDATA_MAX_LENGTH,
    DataChunk,
    RTCSctpTransport,
    tsn_plus_one,
)
from aiortc.utils import uint16_add

AIORTC_USER_DATA_MAX_LENGTH: int = USERDATA_MAX_LENGTH
"""aiortc's DATA chunk payload size (1160 bytes in 1.16); the largest value allowed here, since
aiortc's DTLS layer reads at most 1500-byte records."""

MIN_USER_DATA_MAX_LENGTH = 64

StateCallback = Callable[[str], None]
"""Called with ``"connected"`` when the association is established, ``"closed"`` when it ends."""


class ImsSctpTransport(RTCSctpTransport):
    """``RTCSctpTransport`` with a state callback and a configurable DATA chunk size."""

    def __init__(
        self,
        transport: RTCDtlsTransport,
        port: int = 5000,
        *,
        user_data_max_length: int | None = None,
        on_state: StateCallback | None = None,
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
        super()._set_state(state)

    async def _send(
        self,
        stream_id: int,
        pp_id: int,
        user_data: bytes,
        expiry: float | None = None,
        max_retransmits: int | None = None,
        ordered: bool = True,
    ) -> None:
        chunk_size = self._user_data_max_length
        if chunk_size is None:
            await super()._send(
                stream_id,
                pp_id,
                user_data,
                expiry=expiry,
                max_retransmits=max_retransmits,
                ordered=ordered,
            )
            return

        # Copy of aiortc 1.16 RTCSctpTransport._send with USERDATA_MAX_LENGTH -> chunk_size.
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

        await self._transmit()
