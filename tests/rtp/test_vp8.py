"""RFC 7741 VP8 payload format: descriptor, frame reassembly, key frames, loss."""

from __future__ import annotations

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.rtp import RtpError
from avatar_mf.rtp.vp8 import (
    Vp8Depacketizer,
    Vp8Descriptor,
    Vp8Error,
    Vp8Frame,
    Vp8Packetizer,
    is_keyframe,
    parse_vp8_payload,
)
from tests.rtp.video_streams import vp8_frames


def _send(frames: tuple[bytes, ...], mtu: int) -> list[tuple[int, int, bool, bytes]]:
    packetizer = Vp8Packetizer(mtu=mtu, first_picture_id=0x7FFE)
    packets: list[tuple[int, int, bool, bytes]] = []
    seq = 65534
    for n, frame in enumerate(frames):
        payloads = packetizer.packetize(frame)
        for i, payload in enumerate(payloads):
            packets.append((seq & 0xFFFF, n * 3600, i == len(payloads) - 1, payload))
            seq += 1
    return packets


def _receive(packets: list[tuple[int, int, bool, bytes]], dep: Vp8Depacketizer) -> list[Vp8Frame]:
    out: list[Vp8Frame] = []
    for packet in packets:
        out.extend(dep.push(*packet))
    return out


def test_descriptor_layout_by_hand() -> None:
    # X=1 S=1 PID=0; I L T K; M + 15-bit PictureID 0x1234; TL0PICIDX 7; TID 2 Y KEYIDX 5
    wire = bytes([0x90, 0xF0, 0x92, 0x34, 7, (2 << 6) | 0x20 | 5, 0xAA])
    descriptor, data = parse_vp8_payload(wire)
    assert descriptor == Vp8Descriptor(
        start=True, picture_id=0x1234, tl0_pic_idx=7, tid=2, layer_sync=True, key_idx=5
    )
    assert data == b"\xaa"
    assert descriptor.serialize() + data == wire
    # 7-bit PictureID, N bit, partition 3, no start
    short = bytes([0xA3, 0x80, 0x05, 0xBB])
    descriptor, data = parse_vp8_payload(short)
    assert descriptor == Vp8Descriptor(
        start=False, partition=3, non_reference=True, picture_id=5, picture_id_15bit=False
    )
    assert descriptor.serialize() + data == short
    # no extension at all
    assert parse_vp8_payload(bytes([0x10, 0xCC])) == (Vp8Descriptor(start=True), b"\xcc")


def test_roundtrip_reassembles_and_decodes() -> None:
    frames = vp8_frames()
    packets = _send(frames, mtu=40)
    assert len(packets) > len(frames)
    received = _receive(packets, Vp8Depacketizer())
    assert [f.data for f in received] == list(frames)
    assert [f.keyframe for f in received] == [True] + [False] * (len(frames) - 1)
    assert [f.picture_id for f in received] == [(0x7FFE + n) & 0x7FFF for n in range(len(frames))]
    decoder = av.CodecContext.create("vp8", "r")
    pictures = sum(len(decoder.decode(av.Packet(f.data))) for f in received)
    assert pictures == len(frames)
    assert is_keyframe(frames[0]) and not is_keyframe(frames[1])


@pytest.mark.parametrize("lost", ["first", "middle", "last"])
def test_a_lost_packet_drops_its_frame_only(lost: str) -> None:
    frames = vp8_frames()
    packets = _send(frames, mtu=20)
    in_frame_2 = [i for i, p in enumerate(packets) if p[1] == 2 * 3600]
    assert len(in_frame_2) >= 3
    index = {"first": in_frame_2[0], "middle": in_frame_2[1], "last": in_frame_2[-1]}[lost]
    dep = Vp8Depacketizer()
    received = _receive(packets[:index] + packets[index + 1 :], dep)
    assert [f.timestamp for f in received] == [n * 3600 for n in range(len(frames)) if n != 2]
    assert dep.frames_dropped == 1
    assert [f.data for f in received] == [f for n, f in enumerate(frames) if n != 2]


def test_malformed_descriptors() -> None:
    for wire in (b"", b"\x90", bytes([0x90, 0x80]), bytes([0x90, 0x80, 0x81]), bytes([0x10])):
        with pytest.raises(Vp8Error):
            parse_vp8_payload(wire)
    with pytest.raises(Vp8Error):
        Vp8Descriptor(start=True, picture_id=0x8000).serialize()


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), max_size=20))
def test_any_payloads_raise_only_vp8_error(packets: list[tuple[bool, bytes]]) -> None:
    dep = Vp8Depacketizer()
    for seq, (marker, payload) in enumerate(packets):
        try:
            frames = dep.push(seq, seq // 3, marker, payload)
        except Vp8Error as exc:
            assert isinstance(exc, RtpError) and exc.reason.startswith("vp8_")
            continue
        assert all(f.data for f in frames)


@given(st.binary(min_size=1, max_size=300), st.integers(min_value=8, max_value=64))
def test_packetize_then_depacketize_is_identity(frame: bytes, mtu: int) -> None:
    payloads = Vp8Packetizer(mtu=mtu).packetize(frame)
    assert all(len(p) <= mtu for p in payloads)
    dep = Vp8Depacketizer()
    out: list[Vp8Frame] = []
    for i, payload in enumerate(payloads):
        out.extend(dep.push(i, 90, i == len(payloads) - 1, payload))
    assert [f.data for f in out] == [frame]
