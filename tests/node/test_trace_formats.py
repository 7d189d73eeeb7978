"""The SIP trace's wire formats (pcap, HEP3) read back by decoders written here from the
format descriptions (libpcap's file format, RFC 791/768/9293/8200, the HEP3 chunk list), and
the trace's filtering on a node-less :class:`SipTrace`."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import struct
from pathlib import Path

import pytest

from avatar_mf.node.capture import Endpoints, hep3_packet
from avatar_mf.node.trace import SipTrace, TraceError, parse_host_port
from avatar_mf.sip.parser import parse_message
from avatar_mf.sip.peer import Peer

OPTIONS = (
    b"OPTIONS sip:mf@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-t1\r\n"
    b"From: <sip:ue@192.0.2.7>;tag=a\r\nTo: <sip:mf@127.0.0.1>\r\n"
    b"Call-ID: trace-1@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071: a header whose checksum is right sums to 0xFFFF."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_pcap(path: Path) -> tuple[tuple[int, ...], list[tuple[float, bytes]]]:
    data = path.read_bytes()
    header = struct.unpack("<IHHiIII", data[:24])
    records, offset = [], 24
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[offset : offset + 16])
        assert incl == orig
        records.append((sec + usec / 1e6, data[offset + 16 : offset + 16 + incl]))
        offset += 16 + incl
    return header, records


def decode_ipv4_udp(packet: bytes) -> tuple[str, int, str, int, bytes]:
    assert packet[0] == 0x45  # version 4, 5-word header
    total, proto = struct.unpack("!H", packet[2:4])[0], packet[9]
    assert total == len(packet) and proto == 17
    assert ones_complement_sum(packet[:20]) == 0xFFFF
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    sport, dport, length, _ = struct.unpack("!HHHH", packet[20:28])
    assert length == len(packet) - 20
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, length)
    assert ones_complement_sum(pseudo + packet[20:]) == 0xFFFF
    return src, sport, dst, dport, packet[28:]


def decode_hep3(packet: bytes) -> dict[int, bytes]:
    assert packet[:4] == b"HEP3"
    assert struct.unpack("!H", packet[4:6])[0] == len(packet)
    chunks, offset = {}, 6
    while offset < len(packet):
        vendor, kind, length = struct.unpack("!HHH", packet[offset : offset + 6])
        assert vendor == 0 and length >= 6
        chunks[kind] = packet[offset + 6 : offset + length]
        offset += length
    assert offset == len(packet)
    return chunks


def test_pcap_file_holds_checksummed_ipv4_udp_packets(tmp_path: Path) -> None:
    trace = SipTrace(local_host="127.0.0.1", local_port=lambda _t: 5060, wall_clock=lambda: 1.5)
    trace.enable(pcap=tmp_path / "t.pcap")
    message = parse_message(OPTIONS)
    trace.tap("in", message, None, Peer("udp", "192.0.2.7", 5062))
    trace.tap("out", message, OPTIONS, Peer("udp", "192.0.2.7", 5062))
    trace.disable()
    header, records = read_pcap(tmp_path / "t.pcap")
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, header[5], 101)  # LINKTYPE_RAW
    assert [t for t, _ in records] == [1.5, 1.5]
    incoming = decode_ipv4_udp(records[0][1])
    outgoing = decode_ipv4_udp(records[1][1])
    assert incoming[:4] == ("192.0.2.7", 5062, "127.0.0.1", 5060)
    assert outgoing[:4] == ("127.0.0.1", 5060, "192.0.2.7", 5062)
    assert parse_message(incoming[4]).headers.get("Call-ID") == "trace-1@test"
    assert outgoing[4] == OPTIONS


def test_pcap_of_tcp_and_ipv6(tmp_path: Path) -> None:
    trace = SipTrace(local_host="::1", local_port=lambda _t: 5060, wall_clock=lambda: 2.0)
    trace.enable(pcap=tmp_path / "t.pcap")
    message = parse_message(OPTIONS)
    for _ in range(2):
        trace.tap("out", message, OPTIONS, Peer("tcp", "::1", 40000, connection_id=3))
    trace.close()
    _, records = read_pcap(tmp_path / "t.pcap")
    seqs = []
    for _, packet in records:
        assert packet[0] >> 4 == 6
        length, next_header = struct.unpack("!HB", packet[4:7])
        assert next_header == 6 and length == len(packet) - 40
        segment = packet[40:]
        pseudo = packet[8:40] + struct.pack("!I", length) + b"\0\0\0\x06"
        assert ones_complement_sum(pseudo + segment) == 0xFFFF
        sport, dport, seq = struct.unpack("!HHI", segment[:8])
        assert (sport, dport) == (5060, 40000)
        assert segment[20:] == OPTIONS
        seqs.append(seq)
    assert seqs[1] == seqs[0] + len(OPTIONS)  # the stream continues: Wireshark reassembles


def test_pcap_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "old.pcap").write_bytes(b"keep")
    trace = SipTrace(local_host="127.0.0.1", local_port=lambda _t: 5060, wall_clock=lambda: 0.0)
    with pytest.raises(TraceError) as caught:
        trace.enable(pcap=tmp_path / "old.pcap")
    assert caught.value.status == 409
    assert (tmp_path / "old.pcap").read_bytes() == b"keep"
    assert not trace.active


def test_hep3_packet_chunks() -> None:
    ends = Endpoints("192.0.2.7", 5062, "198.51.100.1", 5060, "udp")
    chunks = decode_hep3(hep3_packet(ends, OPTIONS, 1700000000.25, capture_id=7,
                                     correlation_id="trace-1@test"))  # fmt: skip
    assert chunks[1] == bytes([2]) and chunks[2] == bytes([17])  # AF_INET, UDP
    assert chunks[3] == ipaddress.ip_address("192.0.2.7").packed
    assert chunks[4] == ipaddress.ip_address("198.51.100.1").packed
    assert struct.unpack("!H", chunks[7])[0] == 5062
    assert struct.unpack("!H", chunks[8])[0] == 5060
    assert struct.unpack("!I", chunks[9])[0] == 1700000000
    assert struct.unpack("!I", chunks[10])[0] == 250000
    assert chunks[11] == bytes([1])  # SIP
    assert struct.unpack("!I", chunks[12])[0] == 7
    assert chunks[15] == OPTIONS
    assert chunks[17] == b"trace-1@test"


def test_hep3_reaches_a_collector_on_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(5)
        port = collector.getsockname()[1]
        trace = SipTrace(local_host="127.0.0.1", local_port=lambda _t: 5060, wall_clock=lambda: 3.0)
        trace.enable("trace-1@test", hep=f"127.0.0.1:{port}")
        trace.tap("in", parse_message(OPTIONS), None, Peer("udp", "127.0.0.2", 5062))
        chunks = decode_hep3(collector.recv(65535))
        trace.close()
    assert chunks[3] == bytes([127, 0, 0, 2]) and chunks[4] == bytes([127, 0, 0, 1])
    assert parse_message(chunks[15]).headers.get("Call-ID") == "trace-1@test"


def test_per_call_trace_sees_only_that_call(caplog: pytest.LogCaptureFixture) -> None:
    trace = SipTrace(local_host="127.0.0.1", local_port=lambda _t: 5060, wall_clock=lambda: 0.0)
    other = parse_message(OPTIONS.replace(b"trace-1@test", b"other@test"))
    peer = Peer("udp", "127.0.0.2", 5062)
    trace.tap("in", parse_message(OPTIONS), None, peer)  # off: nothing
    trace.enable("trace-1@test")
    with caplog.at_level(logging.INFO, logger="avatar_mf.trace"):
        trace.tap("in", other, None, peer)
        trace.tap("in", parse_message(OPTIONS), None, peer)
    lines = [r for r in caplog.records if r.name == "avatar_mf.trace"]
    assert len(lines) == 1 and trace.messages == 1
    record = lines[0]
    assert record.__dict__["call_id"] == "trace-1@test"
    assert record.__dict__["sip"].startswith("OPTIONS sip:mf@127.0.0.1:5060 SIP/2.0\r\n")
    trace.disable("trace-1@test")
    assert not trace.active and json.loads(json.dumps(trace.status()))["on"] is False


@pytest.mark.parametrize("text", ["example.com:9060", "127.0.0.1", "127.0.0.1:0", "[::1]:x"])
def test_hep_target_must_be_ip_and_port(text: str) -> None:
    with pytest.raises(TraceError):
        parse_host_port(text)
    assert parse_host_port("[::1]:9060") == ("::1", 9060)
