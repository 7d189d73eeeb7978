"""The ``avatar-mf-audio`` message codec and receiver (sans-IO; docs/protocol.md section 7).

Expected bytes are written out by hand from the documented layout, never produced by the
encoder under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.protocol.audio import (
    AudioError,
    AudioFormat,
    AudioReceiver,
    encode_audio,
    parse_audio,
)

#: 160 samples (10 ms): 0x0102, 0x0304, then zeros, little-endian.
PCM_LE = bytes([0x02, 0x01, 0x04, 0x03]) + bytes(316)


def test_a_message_by_hand_parses_to_its_fields() -> None:
    # version 1, format 1 (s16le), sequence 7, timestamp 320, then the samples.
    wire = bytes.fromhex("01 01 0007 00000140") + PCM_LE
    message = parse_audio(wire)
    assert (message.sequence, message.timestamp, message.format) == (7, 320, AudioFormat.S16LE)
    assert message.pcm == PCM_LE and message.samples == 160
    assert encode_audio(7, 320, PCM_LE) == wire


def test_l16_samples_are_big_endian_on_the_wire_and_little_endian_after_parsing() -> None:
    wire = bytes.fromhex("01 02 ffff ffffffff") + bytes([0x01, 0x02, 0x03, 0x04]) + bytes(316)
    message = parse_audio(wire)
    assert (message.sequence, message.timestamp, message.format) == (
        0xFFFF,
        0xFFFFFFFF,
        AudioFormat.L16,
    )
    assert message.pcm == PCM_LE
    assert encode_audio(0xFFFF, 0xFFFFFFFF, PCM_LE, AudioFormat.L16) == wire


@given(
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    samples=st.integers(160, 960),
    audio_format=st.sampled_from(AudioFormat),
    data=st.data(),
)
def test_round_trip(
    sequence: int, timestamp: int, samples: int, audio_format: AudioFormat, data: st.DataObject
) -> None:
    pcm = data.draw(st.binary(min_size=2 * samples, max_size=2 * samples))
    wire = encode_audio(sequence, timestamp, pcm, audio_format)
    assert len(wire) == 8 + 2 * samples
    message = parse_audio(wire)
    assert (message.sequence, message.timestamp, message.pcm, message.format) == (
        sequence,
        timestamp,
        pcm,
        audio_format,
    )


HEADER = bytes.fromhex("01 01 0000 00000000")


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "short"),
        (HEADER[:7], "short"),
        (bytes.fromhex("02 01 0000 00000000") + bytes(640), "version"),
        (bytes.fromhex("00 01 0000 00000000") + bytes(640), "version"),
        (bytes.fromhex("01 00 0000 00000000") + bytes(640), "format"),
        (bytes.fromhex("01 03 0000 00000000") + bytes(640), "format"),
        (HEADER + bytes(641), "odd-length"),
        (HEADER + bytes(1), "odd-length"),
        (HEADER, "too-short"),
        (HEADER + bytes(318), "too-short"),  # 159 samples
        (HEADER + bytes(1922), "too-long"),  # 961 samples
        (HEADER + bytes(65536), "too-long"),
    ],
)
def test_every_refusal_has_its_reason(wire: bytes, reason: str) -> None:
    with pytest.raises(AudioError) as caught:
        parse_audio(wire)
    assert (caught.value.code, caught.value.reason) == ("bad-audio", reason)
    receiver = AudioReceiver()
    with pytest.raises(AudioError):
        receiver.receive(wire, 0.0)
    assert receiver.refused == {reason: 1} and receiver.accepted == 0


def test_the_shortest_and_longest_messages_are_taken() -> None:
    assert parse_audio(HEADER + bytes(320)).samples == 160
    assert parse_audio(HEADER + bytes(1920)).samples == 960


def test_the_encoder_refuses_what_the_parser_would() -> None:
    for pcm in (bytes(319), bytes(318), bytes(1922)):
        with pytest.raises(ValueError):
            encode_audio(0, 0, pcm)


def _msg(sequence: int, timestamp: int, samples: int = 320) -> bytes:
    return (
        bytes([1, 1])
        + sequence.to_bytes(2, "big")
        + timestamp.to_bytes(4, "big")
        + bytes(2 * samples)
    )


def test_the_receiver_passes_the_senders_timeline_and_counts_losses_and_late_ones() -> None:
    receiver = AudioReceiver()
    out = [receiver.receive(_msg(65534, 0xFFFFFF00), 0.0)]
    out.append(receiver.receive(_msg(65535, 0xFFFFFF00 + 320 - (1 << 32)), 0.02))
    # 0 and 1 lost; 2 arrives after 3 (late), and 3 again (a duplicate).
    out.append(receiver.receive(_msg(3, 0xFFFFFF00 + 5 * 320 - (1 << 32)), 0.10))
    out.append(receiver.receive(_msg(2, 0xFFFFFF00 + 4 * 320 - (1 << 32)), 0.11))
    out.append(receiver.receive(_msg(3, 0xFFFFFF00 + 5 * 320 - (1 << 32)), 0.12))
    assert [r.timestamp for r in out] == [0xFFFFFF00, 0x40, 0x540, 0x400, 0x540]
    assert [r.sequence for r in out] == [65534, 65535, 3, 2, 3]
    assert (receiver.accepted, receiver.lost, receiver.late, receiver.duplicates) == (5, 2, 1, 1)
    assert not receiver.refused


def test_a_pause_with_the_clock_running_on_is_not_far_off() -> None:
    receiver = AudioReceiver()
    receiver.receive(_msg(1, 1000), 0.0)
    # 30 s of discontinuous transmission: the sequence goes on by one, the timestamp by 30 s.
    assert receiver.receive(_msg(2, 1000 + 30 * 16000), 30.0).timestamp == 1000 + 30 * 16000
    assert receiver.lost == 0 and not receiver.refused


def test_a_far_timestamp_is_refused_and_a_restarted_clock_is_followed_on_one_timeline() -> None:
    receiver = AudioReceiver()
    receiver.receive(_msg(10, 5000), 0.0)
    receiver.receive(_msg(11, 5320), 0.02)
    # A timestamp 1000 s away: refused.
    with pytest.raises(AudioError) as caught:
        receiver.receive(_msg(12, 5640 + 1000 * 16000), 0.04)
    assert caught.value.reason == "far-timestamp" and "+1000.0 s" in caught.value.message
    # A lone stray one does not move the timeline: the next normal message is taken as is.
    assert receiver.receive(_msg(13, 5960), 0.06).timestamp == 5960
    # The sender restarts its clock elsewhere: refused once, then followed from where it was.
    with pytest.raises(AudioError):
        receiver.receive(_msg(100, 50_000_000), 0.08)
    moved = receiver.receive(_msg(101, 50_000_320), 0.10)
    assert moved.timestamp == 5960 + round(0.04 * 16000)  # 40 ms after message 13
    assert receiver.receive(_msg(102, 50_000_640), 0.12).timestamp == moved.timestamp + 320
    assert receiver.refused == {"far-timestamp": 2} and receiver.restarts == 1
    assert receiver.accepted == 5


def test_random_timestamps_are_all_refused_after_the_first() -> None:
    receiver = AudioReceiver()
    receiver.receive(_msg(0, 0), 0.0)
    for n in range(1, 20):
        with pytest.raises(AudioError):
            receiver.receive(_msg(n, (n * 0x9E3779B9) % (1 << 32)), n * 0.02)
    assert receiver.accepted == 1 and receiver.refused == {"far-timestamp": 19}


def test_text_is_refused() -> None:
    receiver = AudioReceiver()
    error = receiver.refuse_text()
    assert (error.code, error.reason) == ("bad-audio", "text")
    assert receiver.refused == {"text": 1}


@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.binary(max_size=40),
                st.builds(
                    _msg,
                    st.integers(0, 0xFFFF),
                    st.integers(0, 0xFFFFFFFF),
                    st.integers(150, 970),
                ),
            ),
            st.floats(0, 0.5),
        ),
        max_size=30,
    )
)
def test_anything_is_taken_or_refused_with_an_audio_error(
    messages: list[tuple[bytes, float]],
) -> None:
    receiver = AudioReceiver()
    now = 0.0
    for data, step in messages:
        now += step
        try:
            received = receiver.receive(data, now)
        except AudioError as exc:
            assert exc.code == "bad-audio"
        else:
            assert 160 <= len(received.pcm) // 2 <= 960 and 0 <= received.timestamp < 1 << 32
    assert receiver.accepted + sum(receiver.refused.values()) == len(messages)
