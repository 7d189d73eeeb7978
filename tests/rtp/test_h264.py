"""RFC 6184 H.264 payload format: packetization modes, reassembly across loss, parameter sets,
profile-level-id and the section 8.2.2 answer rules."""

from __future__ import annotations

import base64

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.rtp import RtpError
from avatar_mf.rtp.h264 import (
    FU_A,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    STAP_A,
    AccessUnit,
    H264Depacketizer,
    H264Error,
    H264Packetizer,
    ProfileLevelId,
    answer_h264_fmtp,
    format_sprop_parameter_sets,
    join_annexb,
    nal_type,
    parse_sprop_parameter_sets,
    split_annexb,
)
from tests.rtp.video_streams import h264_units


def _send(
    units: tuple[bytes, ...], packetizer: H264Packetizer, *, first_seq: int = 65530
) -> list[tuple[int, int, bool, bytes]]:
    """(sequence, timestamp, marker, payload) of every packet, 90 kHz at 25 fps."""
    packets: list[tuple[int, int, bool, bytes]] = []
    seq = first_seq
    for n, unit in enumerate(units):
        payloads = packetizer.packetize(unit)
        for i, payload in enumerate(payloads):
            packets.append((seq & 0xFFFF, n * 3600, i == len(payloads) - 1, payload))
            seq += 1
    return packets


def _receive(
    packets: list[tuple[int, int, bool, bytes]], depacketizer: H264Depacketizer
) -> list[AccessUnit]:
    out: list[AccessUnit] = []
    for packet in packets:
        out.extend(depacketizer.push(*packet))
    return out


def _decoded_frames(units: list[AccessUnit]) -> int:
    decoder = av.CodecContext.create("h264", "r")
    count = 0
    for unit in units:
        count += len(decoder.decode(av.Packet(unit.annexb())))
    count += len(decoder.decode(None))
    return count


def test_annexb_split_and_join() -> None:
    nals = [bytes([0x67, 1, 2, 0]), bytes([0x68, 3]), bytes([0x65, 4, 5])]
    stream = b"\x00\x00\x01" + nals[0][:-1] + b"\x00\x00\x00\x01" + nals[1] + b"\x00\x00\x01"
    stream += nals[2] + b"\x00\x00"
    assert split_annexb(stream) == [nals[0][:-1], nals[1], nals[2]]
    assert split_annexb(join_annexb(nals[1:])) == nals[1:]
    with pytest.raises(H264Error):
        split_annexb(b"\x65\x01")


def test_mode_1_roundtrip_with_fu_a_and_stap_a_decodes() -> None:
    units = h264_units()
    packetizer = H264Packetizer(mode=1, mtu=100)
    packets = _send(units, packetizer)
    kinds = {p[3][0] & 0x1F for p in packets}
    assert FU_A in kinds and STAP_A in kinds  # the IDR is fragmented, SPS+PPS+SEI aggregated
    assert all(len(p[3]) <= 100 for p in packets)
    received = _receive(packets, H264Depacketizer(mode=1))
    assert [u.nals for u in received] == [tuple(split_annexb(u)) for u in units]
    assert [u.timestamp for u in received] == [n * 3600 for n in range(len(units))]
    assert all(u.complete for u in received)
    assert [u.keyframe for u in received] == [True] + [False] * (len(units) - 1)
    assert _decoded_frames(received) == len(units)


def test_mode_0_sends_single_nal_units_only() -> None:
    units = h264_units()
    packets = _send(units, H264Packetizer(mode=0, mtu=1400))
    assert all(p[3][0] & 0x1F not in (STAP_A, FU_A) for p in packets)
    assert len(packets) == sum(len(split_annexb(u)) for u in units)
    received = _receive(packets, H264Depacketizer(mode=0))
    assert _decoded_frames(received) == len(units)
    with pytest.raises(H264Error) as info:
        H264Packetizer(mode=0, mtu=100).packetize(units[0])
    assert info.value.reason == "h264_too_large"
    # an aggregation packet is malformed in mode 0
    stap = H264Packetizer(mode=1).packetize([bytes([0x67, 1]), bytes([0x68, 2])])
    with pytest.raises(H264Error):
        H264Depacketizer(mode=0).push(1, 0, True, stap[0])


def test_stap_a_and_fu_a_layout_by_hand() -> None:
    sps, pps = bytes([0x67, 0x42, 0x00]), bytes([0x68, 0xCE])
    (stap,) = H264Packetizer(mtu=64).packetize([sps, pps])
    assert stap == bytes([0x60 | 24, 0, 3]) + sps + bytes([0, 2]) + pps
    idr = bytes([0x65]) + bytes(range(40))
    fragments = H264Packetizer(mtu=16).packetize([idr])
    assert fragments[0][:2] == bytes([0x60 | 28, 0x80 | 5])
    assert fragments[-1][:2] == bytes([0x60 | 28, 0x40 | 5])
    assert all(f[1] == 5 for f in fragments[1:-1])
    assert b"".join(f[2:] for f in fragments) == idr[1:]


def test_lost_fragment_drops_that_nal_unit_and_marks_the_unit() -> None:
    units = h264_units()
    packets = _send(units, H264Packetizer(mtu=100))
    fu_middle = next(
        i
        for i, p in enumerate(packets)
        if p[3][0] & 0x1F == FU_A and not p[3][1] & 0xC0  # neither start nor end
    )
    depacketizer = H264Depacketizer()
    received = _receive(packets[:fu_middle] + packets[fu_middle + 1 :], depacketizer)
    assert depacketizer.fragments_dropped == 1
    assert len(received) == len(units)
    assert not received[0].complete
    # the broken slice is gone, the others of the unit are kept
    sent = split_annexb(units[0])
    assert len(received[0].nals) == len(sent) - 1
    assert set(received[0].nals) < set(sent)
    assert any(nal_type(n) == NAL_IDR for n in sent)
    assert all(u.complete for u in received[1:])


def test_lost_fu_start_discards_its_fragments() -> None:
    idr = bytes([0x65]) + bytes(range(1, 120))
    packets = _send((join_annexb([bytes([0x41, 9]), idr]),), H264Packetizer(mtu=30))
    start = next(i for i, p in enumerate(packets) if p[3][1] & 0x80)
    received = _receive(packets[:start] + packets[start + 1 :], H264Depacketizer())
    assert [u.nals for u in received] == [(bytes([0x41, 9]),)]
    assert not received[0].complete


def test_lost_marker_ends_the_unit_at_the_next_timestamp() -> None:
    depacketizer = H264Depacketizer()
    assert depacketizer.push(1, 0, False, bytes([0x41, 1])) == []
    # the marker packet (seq 2) is lost; seq 3 starts the next timestamp
    (first,) = depacketizer.push(3, 3600, False, bytes([0x41, 2]))
    assert first == AccessUnit(0, (bytes([0x41, 1]),), complete=False)
    (second,) = depacketizer.push(4, 3600, True, bytes([0x41, 3]))
    assert second.nals == (bytes([0x41, 2]), bytes([0x41, 3]))
    assert not second.complete  # seq 2 missing before it


def test_out_of_band_parameter_sets_prefix_an_idr() -> None:
    units = h264_units()
    nals = split_annexb(units[0])
    sps = next(n for n in nals if nal_type(n) == NAL_SPS)
    pps = next(n for n in nals if nal_type(n) == NAL_PPS)
    sprop = format_sprop_parameter_sets([sps, pps])
    assert parse_sprop_parameter_sets(sprop) == (sps, pps)
    stripped = (join_annexb(n for n in nals if nal_type(n) not in (NAL_SPS, NAL_PPS)),)
    stripped += units[1:]
    packets = _send(stripped, H264Packetizer(mtu=200))
    # without the sets the decoder cannot start
    bare = H264Depacketizer()
    received = _receive(packets, bare)
    assert received[0].nals[0] == stripped[0][4:] or nal_type(received[0].nals[0]) != NAL_SPS
    # with sprop-parameter-sets it can
    depacketizer = H264Depacketizer(parameter_sets=parse_sprop_parameter_sets(sprop))
    received = _receive(packets, depacketizer)
    assert received[0].nals[:2] == (sps, pps)
    assert _decoded_frames(received) == len(units)


def test_in_band_parameter_sets_are_remembered() -> None:
    units = h264_units()
    depacketizer = H264Depacketizer()
    _receive(_send(units, H264Packetizer()), depacketizer)
    nals = split_annexb(units[0])
    assert depacketizer.sps == next(n for n in nals if nal_type(n) == NAL_SPS)
    assert depacketizer.pps == next(n for n in nals if nal_type(n) == NAL_PPS)


@pytest.mark.parametrize(
    ("text", "profile", "level"),
    [
        ("42e01f", "constrained-baseline", 3.1),
        ("42C01E", "constrained-baseline", 3.0),
        ("42001f", "baseline", 3.1),
        ("4d0028", "main", 4.0),
        ("4d8028", "constrained-baseline", 4.0),
        ("640032", "high", 5.0),
        ("640c1f", "constrained-high", 3.1),
        ("42f00b", "constrained-baseline", 1.05),  # constraint_set3 + level_idc 11 = 1b
        ("420009", "baseline", 1.05),
        ("6e001f", "high-10", 3.1),
        ("ff001f", None, 3.1),
    ],
)
def test_profile_level_id(text: str, profile: str | None, level: float) -> None:
    plid = ProfileLevelId.parse(text)
    assert plid.profile == profile
    assert plid.level == level
    assert str(plid) == text.lower()


def test_answer_rules_rfc6184_8_2_2() -> None:
    # profile and packetization-mode echoed; level no higher than offered nor than the MF's max
    assert answer_h264_fmtp({"profile-level-id": "42e01f", "packetization-mode": "1"}) == {
        "profile-level-id": "42e01f",
        "packetization-mode": "1",
    }
    assert answer_h264_fmtp({"profile-level-id": "640033", "packetization-mode": "1"}) == {
        "profile-level-id": "64001f",
        "packetization-mode": "1",
    }
    assert answer_h264_fmtp({"profile-level-id": "42e00d"}) == {
        "profile-level-id": "42e00d",
        "packetization-mode": "0",
    }
    # no parameters: Baseline level 1.0, mode 0 (section 8.1 defaults)
    assert answer_h264_fmtp({}) == {"profile-level-id": "42000a", "packetization-mode": "0"}
    # level-asymmetry-allowed: the MF states the level it receives
    answer = answer_h264_fmtp(
        {"profile-level-id": "42e00a", "packetization-mode": "1", "level-asymmetry-allowed": "1"}
    )
    assert answer is not None and answer["profile-level-id"] == "42e01f"
    assert answer["level-asymmetry-allowed"] == "1"
    # not served: interleaved mode, a 10-bit profile, a malformed id
    assert answer_h264_fmtp({"packetization-mode": "2"}) is None
    assert answer_h264_fmtp({"profile-level-id": "6e001f"}) is None
    assert answer_h264_fmtp({"profile-level-id": "zz"}) is None


def test_interleaved_payloads_are_rejected() -> None:
    for kind in (25, 26, 27, 29):
        with pytest.raises(H264Error):
            H264Depacketizer().push(0, 0, True, bytes([kind, 0, 1, 2]))


def test_sprop_rejects_what_is_not_a_parameter_set() -> None:
    with pytest.raises(H264Error):
        parse_sprop_parameter_sets(base64.b64encode(bytes([0x65, 1])).decode())
    with pytest.raises(H264Error):
        parse_sprop_parameter_sets("!!!")


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=20))
def test_any_payloads_raise_only_h264_error(packets: list[tuple[bool, bytes]]) -> None:
    depacketizer = H264Depacketizer()
    for seq, (marker, payload) in enumerate(packets):
        try:
            units = depacketizer.push(seq, seq // 3, marker, payload)
        except H264Error as exc:
            assert isinstance(exc, RtpError) and exc.reason.startswith("h264_")
            continue
        for unit in units:
            assert unit.nals and all(n for n in unit.nals)


@given(st.text(max_size=40))
def test_any_text_parameters_raise_only_h264_error(text: str) -> None:
    for call in (parse_sprop_parameter_sets, ProfileLevelId.parse):
        try:
            call(text)
        except H264Error:
            pass
    assert answer_h264_fmtp({"profile-level-id": text, "packetization-mode": text}) in (
        None,
        answer_h264_fmtp({"profile-level-id": text, "packetization-mode": text}),
    )


@given(st.binary(max_size=200))
def test_any_byte_stream_raises_only_h264_error(stream: bytes) -> None:
    try:
        nals = split_annexb(stream)
    except H264Error:
        return
    try:
        payloads = H264Packetizer(mtu=32).packetize(nals)
    except H264Error:
        return
    depacketizer = H264Depacketizer()
    units: list[AccessUnit] = []
    for i, payload in enumerate(payloads):
        units.extend(depacketizer.push(i, 0, i == len(payloads) - 1, payload))
    assert [u.nals for u in units] == [tuple(nals)]
