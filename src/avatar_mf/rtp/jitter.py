"""A fixed-delay jitter buffer for 20 ms audio packets, driven by a clock value passed in.

Packets go in as they arrive (:meth:`JitterBuffer.push`), in any order; the media clock takes
one item out per 20 ms tick (:meth:`JitterBuffer.pop`):

* the first packet of a talk spurt waits ``depth_ms`` before play-out starts (room for the
  packets that follow it to arrive late or out of order);
* then each tick gives the packet with the next sequence number (a :class:`JitterFrame`), or a
  :class:`JitterLoss` when it has not arrived: the decoder conceals that frame;
* a packet that arrives after its tick was played is dropped (``late``), as is a second copy
  of a packet (``duplicate``) and a packet too far ahead to fit (``overflow``, then the buffer
  restarts from it: the sender jumped);
* after ``idle_reset_ms`` of ticks with an empty buffer (the sender stopped, DTX), the buffer
  stops giving losses (:meth:`pop` returns ``None``) and the next packet starts a new spurt.

One packet is one 20 ms frame (ptime 20, what the MF negotiates). Sequence numbers are
unwrapped (RFC 3550 section 5.1: they wrap at 2^16). Pure: no timers, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FRAME_MS = 20


class PushResult(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    OVERFLOW = "overflow"  # accepted, but the buffer restarted from this packet


@dataclass(frozen=True, slots=True)
class JitterFrame:
    """A packet due now."""

    sequence: int
    timestamp: int
    payload: bytes
    marker: bool = False


@dataclass(frozen=True, slots=True)
class JitterLoss:
    """The packet due now did not arrive in time: conceal one frame."""

    sequence: int


@dataclass(frozen=True, slots=True)
class JitterCounters:
    accepted: int
    played: int
    lost: int
    late: int
    duplicate: int
    overflow: int
    resets: int


class JitterBuffer:
    """Reorders by sequence number and plays one packet per tick after ``depth_ms``."""

    def __init__(self, depth_ms: int = 60, *, capacity_ms: int = 1000, idle_reset_ms: int = 400):
        if depth_ms < 0 or capacity_ms < max(depth_ms, FRAME_MS):
            raise ValueError("need 0 <= depth_ms <= capacity_ms")
        self.depth_ms = depth_ms
        self._capacity = capacity_ms // FRAME_MS
        self._idle_reset = max(1, idle_reset_ms // FRAME_MS)
        self._packets: dict[int, JitterFrame] = {}
        self._next: int | None = None  # extended sequence number due at the next tick
        self._anchor: int | None = None  # extended seq of the last packet seen (for unwrap)
        self._first_arrival: float | None = None
        self._playing = False
        self._idle_ticks = 0
        self._accepted = self._played = self._lost = 0
        self._late = self._duplicate = self._overflow = self._resets = 0

    def _extend(self, seq: int) -> int:
        reference = self._next if self._next is not None else self._anchor
        if reference is None:
            return seq
        delta = ((seq - reference + 0x8000) & 0xFFFF) - 0x8000
        return reference + delta

    def push(
        self, sequence: int, timestamp: int, payload: bytes, now: float, marker: bool = False
    ) -> PushResult:
        """Store one packet that arrived at ``now`` (seconds)."""
        ext = self._extend(sequence)
        self._anchor = ext
        frame = JitterFrame(sequence, timestamp, payload, marker)
        if self._next is not None and ext < self._next:
            self._late += 1
            return PushResult.LATE
        if ext in self._packets:
            self._duplicate += 1
            return PushResult.DUPLICATE
        result = PushResult.ACCEPTED
        low = self._next if self._next is not None else min(self._packets, default=ext)
        if ext - low >= self._capacity or low - ext >= self._capacity:
            self._overflow += 1
            self._restart()
            self._anchor = ext
            result = PushResult.OVERFLOW
        self._packets[ext] = frame
        if self._first_arrival is None:
            self._first_arrival = now
        self._accepted += 1
        return result

    def _restart(self) -> None:
        self._packets.clear()
        self._next = None
        self._first_arrival = None
        self._playing = False
        self._idle_ticks = 0
        self._resets += 1

    def pop(self, now: float) -> JitterFrame | JitterLoss | None:
        """The item for the tick at ``now``: a frame, a loss, or ``None`` (not playing)."""
        if not self._playing:
            if self._first_arrival is None or now < self._first_arrival + self.depth_ms / 1000:
                return None
            self._playing = True
            self._next = min(self._packets)
        assert self._next is not None
        due = self._next
        self._next += 1
        frame = self._packets.pop(due, None)
        if frame is not None:
            self._idle_ticks = 0
            self._played += 1
            return frame
        if not self._packets:
            self._idle_ticks += 1
            if self._idle_ticks >= self._idle_reset:
                anchor = self._next
                self._restart()
                self._resets -= 1  # an idle stop is not a reset
                self._anchor = anchor
                return None
        self._lost += 1
        return JitterLoss(due & 0xFFFF)

    @property
    def buffered(self) -> int:
        """Packets waiting."""
        return len(self._packets)

    @property
    def playing(self) -> bool:
        return self._playing

    def counters(self) -> JitterCounters:
        return JitterCounters(
            accepted=self._accepted,
            played=self._played,
            lost=self._lost,
            late=self._late,
            duplicate=self._duplicate,
            overflow=self._overflow,
            resets=self._resets,
        )
