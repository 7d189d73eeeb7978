"""DTMF as RTP telephone-events (RFC 4733 sections 2.3 and 3).

The payload is one or more 4-octet event blocks (section 2.3; more than one only when the
sender repeats earlier events for redundancy, section 2.5.1.4)::

    |     event     |E|R| volume    |          duration             |

``event`` 0-9 are the digits, 10 ``*``, 11 ``#``, 12-15 ``A``-``D``, 16 flash (section 3.2);
``E`` marks the end of the event; ``volume`` is the power level in -dBm0 (0-63);
``duration`` is in RTP timestamp units from the event's start (the RTP timestamp of every
packet of one event is the event's start). The end packet is usually sent three times.

:class:`DtmfReceiver` turns a stream of telephone-event packets into one report per key
press: at its first end packet, or when a new event starts before the previous ended.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from avatar_mf.rtp.errors import RtpError

DIGITS = "0123456789*#ABCD"
FLASH = 16


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event block."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @property
    def digit(self) -> str | None:
        """``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``; ``None`` for other events."""
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise RtpError("telephone_event", f"event {self.event} volume {self.volume}")
        if not 0 <= self.duration <= 0xFFFF:
            raise RtpError("telephone_event", f"duration {self.duration}")
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )


def event_for_digit(digit: str) -> int:
    """The event code of a DTMF key (``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``)."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF key: {digit!r}")
    return index


def parse_telephone_events(payload: bytes) -> tuple[TelephoneEvent, ...]:
    """The event blocks of a payload; :class:`RtpError` unless it is a non-empty multiple of
    4 octets."""
    if not payload or len(payload) % 4:
        raise RtpError("telephone_event", f"{len(payload)} octets is not n x 4")
    events = []
    for offset in range(0, len(payload), 4):
        event, flags, duration = struct.unpack_from("!BBH", payload, offset)
        events.append(TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration))
    return tuple(events)


def build_telephone_events(events: tuple[TelephoneEvent, ...] | list[TelephoneEvent]) -> bytes:
    if not events:
        raise RtpError("telephone_event", "no event")
    return b"".join(e.serialize() for e in events)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press reported by :class:`DtmfReceiver`."""

    digit: str | None  # None for events that are not keys (flash, tones)
    event: int
    timestamp: int  # RTP timestamp of the event's start
    duration: int  # RTP timestamp units (the last one seen)
    ended: bool  # False when a new event cut it short (no end packet seen)


class DtmfReceiver:
    """One report per event from the packets of a telephone-event stream."""

    def __init__(self) -> None:
        self._current: tuple[int, TelephoneEvent] | None = None  # (timestamp, last block)
        self._reported: int | None = None  # timestamp of the last reported event

    def on_packet(self, timestamp: int, payload: bytes) -> list[DtmfDigit]:
        """Feed one packet (its RTP timestamp and payload); the key presses it completes."""
        events = parse_telephone_events(payload)
        block = events[-1]  # the newest event; earlier blocks are redundancy
        out: list[DtmfDigit] = []
        if self._current is not None and self._current[0] != timestamp:
            ts, previous = self._current
            if self._reported != ts:
                out.append(DtmfDigit(previous.digit, previous.event, ts, previous.duration, False))
                self._reported = ts
        self._current = (timestamp, block)
        if block.end and self._reported != timestamp:
            out.append(DtmfDigit(block.digit, block.event, timestamp, block.duration, True))
            self._reported = timestamp
        return out
