"""RFC 4733 telephone-events: payload layout, DTMF key reports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.rtp import RtpError
from avatar_mf.rtp.telephone_event import (
    DtmfDigit,
    DtmfReceiver,
    TelephoneEvent,
    build_telephone_events,
    event_for_digit,
    parse_telephone_events,
)


def test_layout_by_hand() -> None:
    # event 5, E=1, R=0, volume 10, duration 800 (100 ms at 8 kHz)
    wire = bytes([5, 0x80 | 10, 0x03, 0x20])
    (event,) = parse_telephone_events(wire)
    assert event == TelephoneEvent(5, True, 10, 800)
    assert event.digit == "5"
    assert build_telephone_events([event]) == wire
    assert TelephoneEvent(11).digit == "#"
    assert TelephoneEvent(16).digit is None
    assert event_for_digit("*") == 10 and event_for_digit("d") == 15
    with pytest.raises(ValueError):
        event_for_digit("x")


@pytest.mark.parametrize("wire", [b"", b"\x01", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_malformed(wire: bytes) -> None:
    with pytest.raises(RtpError):
        parse_telephone_events(wire)


@pytest.mark.parametrize(
    "event",
    [TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=1 << 16)],
)
def test_build_rejects_out_of_range(event: TelephoneEvent) -> None:
    with pytest.raises(RtpError):
        event.serialize()
    with pytest.raises(RtpError):
        build_telephone_events([])


def test_receiver_reports_each_key_once() -> None:
    rx = DtmfReceiver()
    ts = 8000
    reports: list[DtmfDigit] = []
    for duration in (160, 320, 480):
        reports += rx.on_packet(ts, TelephoneEvent(1, False, 10, duration).serialize())
    for _ in range(3):  # the end packet, sent three times
        reports += rx.on_packet(ts, TelephoneEvent(1, True, 10, 640).serialize())
    assert reports == [DtmfDigit("1", 1, ts, 640, True)]
    # A second key whose end packets were all lost, cut short by a third.
    assert rx.on_packet(16000, TelephoneEvent(11, False, 10, 160).serialize()) == []
    out = rx.on_packet(24000, TelephoneEvent(12, False, 10, 160).serialize())
    assert out == [DtmfDigit("#", 11, 16000, 160, False)]


@given(st.binary(max_size=24))
def test_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        events = parse_telephone_events(data)
    except RtpError:
        return
    # The reserved R bit is ignored on receipt and sent as 0.
    cleared = bytes(b & ~0x40 if i % 4 == 1 else b for i, b in enumerate(data))
    assert build_telephone_events(events) == cleared
