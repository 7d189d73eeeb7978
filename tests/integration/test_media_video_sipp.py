"""SIPp offers IMS video (PCMU audio + H.264 video, RTP/AVPF, no ICE) and plays H.264 RTP from
a pcap; the MF answers the video m-line, receives, reassembles and decodes the pictures.

The pcap is made here: a moving test pattern encoded by the product's H.264 encoder (x264
through PyAV, ``avatar_mf.codecs.video``), cut into RTP packets by the product's RFC 6184
packetizer (``avatar_mf.rtp.h264``: STAP-A for SPS+PPS, FU-A for the large slices), 25
pictures a second, in a libpcap file that SIPp's ``play_pcap_video`` replays to the video port
of the MF's answer. The offer lists a 10-bit High profile first (the MF cannot decode it) and
Constrained Baseline second: the answer must pick the second. ``/stats`` shows the MF's video
counters; the call ends with SIPp's BYE and nothing is held afterwards.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.codecs.base import Fmtp
from avatar_mf.codecs.video import H264Codec, Picture
from avatar_mf.rtp.h264 import H264Packetizer
from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.testing.process import MfProcess, free_port
from tests.rtp.video_streams import pattern

from .conftest import assert_idle, sipp_run

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mf_settings(
        {
            "SIP__T1": "0.005",
            "SIP__T4": "0.05",
            "MEDIA__SETUP_TIMEOUT": "5",
            "MEDIA__AUDIO_CODECS": "PCMU",
        }
    ),
]

HOST = "127.0.0.1"
FPS = 25
PICTURES = 40
WIDTH, HEIGHT = 320, 240


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> None:
    """A libpcap file of RTP packets sent at the given times (addresses rewritten by SIPp)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, (at, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", 6002, 6004, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        ) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", int(at), int((at % 1) * 1e6), len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def busy_pattern(n: int) -> np.ndarray:
    """The test pattern with a block of noise (seeded): pictures of a few kB, so that the
    packetizer fragments them (FU-A)."""
    picture = pattern(n, WIDTH, HEIGHT)
    noise = np.random.default_rng(n).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    picture[40:136, 100:196] = noise
    return picture


def h264_rtp(payload_type: int) -> list[tuple[float, bytes]]:
    """The test pattern as H.264 RTP packets with their send times (25 fps, 90 kHz clock)."""
    encoder = H264Codec(Fmtp({"packetization-mode": "1"})).encoder(WIDTH, HEIGHT)
    packetizer = H264Packetizer(mode=1, mtu=1200)
    packets: list[tuple[float, bytes]] = []
    seq = 1000
    for n in range(PICTURES):
        (unit,) = encoder.encode(Picture.from_rgb(busy_pattern(n)))
        payloads = packetizer.packetize(unit)
        for i, payload in enumerate(payloads):
            marker = i == len(payloads) - 1
            rtp = RtpPacket(payload_type, seq, n * 90000 // FPS, 0x7171, payload, marker)
            packets.append((n / FPS, rtp.serialize()))
            seq += 1
    return packets


def video_stats(mf: MfProcess) -> dict[str, int]:
    stats = json.loads(mf.http_get("/stats")[1])
    return {k: int(v) for k, v in stats["video"].items()}


async def test_sipp_h264_video_from_pcap_is_decoded(mf: MfProcess, tmp_path: Path) -> None:
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    packets = h264_rtp(payload_type=98)
    write_pcap(workdir / "video.pcap", packets)
    assert len(packets) > 2 * PICTURES  # fragmented units, not one packet per picture
    before = video_stats(mf)
    result = await asyncio.to_thread(
        sipp_run,
        workdir / "run",
        "video_pcap.xml",
        mf,
        call_length_ms=2500,
        trace_messages=True,
        extra=["-s", "pcapvideo", "-mp", str(free_port()), "-mi", HOST],
    )
    assert (result.returncode, result.successful) == (0, 1), result.describe()
    answer = next(m for m in result.messages if not m.sent and m.first_line.endswith("200 OK"))
    video_line = next(line for line in answer.text.splitlines() if line.startswith("m=video"))
    print("MF answer:", video_line.strip())
    assert int(video_line.split()[1]) > 0
    assert "a=fmtp:98 profile-level-id=42e01f;packetization-mode=1" in answer.text
    after = video_stats(mf)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print(f"SIPp -> MF: {len(packets)} H.264 RTP packets, {PICTURES} pictures sent; MF: {delta}")
    assert delta["packets_in"] >= len(packets) - 2
    assert delta["units"] >= PICTURES - 1
    assert delta["decoded"] >= PICTURES - 2
    assert delta["decode_errors"] == 0
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["video_streams"] == 0 and stats["held"]["rtp_sockets"] == 0
