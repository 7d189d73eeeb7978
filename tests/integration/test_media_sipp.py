"""SIPp offers IMS audio (AMR-WB + PCMU, no ICE) and plays RTP from a pcap into a room.

The pcap is written here with the product's RTP packetizer (``avatar_mf.rtp.packet``) and G.711
encoder: PCMU of a known tone pattern, 20 ms per packet, in a libpcap file (Ethernet, IPv4,
UDP) that SIPp's ``play_pcap_audio`` replays to the address of the MF's answer. The MF runs
with ``media.audio_codecs`` preferring PCMU, so the answer names PCMU; a test UE in the same
room receives the tone:

* with PCMU the two members share one codec and the MF forwards the packets untouched;
* with AMR-WB the MF decodes the PCMU and encodes AMR-WB (the decode/encode counters grow).

The call ends with SIPp's BYE and the MF holds nothing afterwards (``rtp_streams`` 0).
"""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.codecs.registry import audio_codec
from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.ue import UeCall
from avatar_mf.ue.rtp_audio import UeAudio

from .conftest import assert_idle, sipp_run
from .test_media_audio import best_correlation

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mf_settings(
        {
            "SIP__T1": "0.005",
            "SIP__T4": "0.05",
            "MEDIA__SETUP_TIMEOUT": "5",
            "MEDIA__AUDIO_CODECS": "PCMU,AMR-WB",
        }
    ),
]

HOST = "127.0.0.1"


def tone_pattern() -> bytes:
    """1 kHz for 0.4 s, 0.2 s of silence, 600 Hz for 0.4 s, silence: 16 kHz PCM, 1.4 s."""
    t = np.arange(int(0.4 * 16000)) / 16000
    quiet = np.zeros(int(0.2 * 16000))
    parts = [8000 * np.sin(2 * np.pi * 1000 * t), quiet, 8000 * np.sin(2 * np.pi * 600 * t), quiet]
    return np.concatenate(parts).astype("<i2").tobytes()


def write_pcap(path: Path, payloads: list[bytes], *, payload_type: int) -> None:
    """A libpcap file of one RTP stream, 20 ms apart (addresses are rewritten by SIPp)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, payload in enumerate(payloads):
        rtp = RtpPacket(payload_type, i, i * 160, 0x5151, payload, marker=i == 0).serialize()
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        ) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        at = i * 0.020
        out.append(struct.pack("<IIII", int(at), int((at % 1) * 1e6), len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def metric(mf: MfProcess, name: str, label: str = "") -> float:
    body = mf.http_get("/metrics")[1].decode()
    total = 0.0
    for line in body.splitlines():
        match = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match and label in (match.group(1) or ""):
            total += float(match.group(2))
    return total


@pytest.mark.parametrize(("ue_codec", "floor"), [("PCMU", 0.8), ("AMR-WB", 0.5)])
async def test_sipp_audio_from_pcap_reaches_the_other_ue(
    mf: MfProcess, tmp_path: Path, ue_codec: str, floor: float
) -> None:
    pcmu = audio_codec("PCMU", 8000, {})
    assert pcmu is not None
    encoder, decoder = pcmu.encoder(), pcmu.decoder()
    tone = tone_pattern()
    payloads = [encoder.encode(tone[i : i + 640]) for i in range(0, len(tone), 640)]
    sent = b"".join(decoder.decode(p) for p in payloads)  # what the pcap carries, decoded
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    write_pcap(workdir / "audio.pcap", payloads, payload_type=0)
    before = {
        "rx": metric(mf, "avatar_mf_rtp_packets_total", 'direction="rx"'),
        "decoded": metric(mf, "avatar_mf_audio_frames_total", 'kind="decoded"'),
        "forwarded": metric(mf, "avatar_mf_audio_frames_total", 'kind="forwarded"'),
    }
    listener = UeAudio(HOST, codecs=(ue_codec,))
    room = f"pcap{ue_codec.replace('-', '').lower()}"
    async with UeCall.dial(f"sip:{room}@{HOST}", HOST, mf.sip_port, ice=False, rtp_audio=listener):
        result = await asyncio.to_thread(
            sipp_run,
            workdir / "run",
            "audio_pcap.xml",
            mf,
            call_length_ms=2500,
            trace_messages=True,
            extra=["-s", room, "-mp", str(free_port()), "-mi", HOST],
        )
    assert (result.returncode, result.successful) == (0, 1), result.describe()
    answer = next(m for m in result.messages if not m.sent and m.first_line.endswith("200 OK"))
    audio_line = next(line for line in answer.text.splitlines() if line.startswith("m=audio"))
    print("MF answer:", audio_line.strip())
    rx = metric(mf, "avatar_mf_rtp_packets_total", 'direction="rx"') - before["rx"]
    decoded = metric(mf, "avatar_mf_audio_frames_total", 'kind="decoded"') - before["decoded"]
    forwarded = metric(mf, "avatar_mf_audio_frames_total", 'kind="forwarded"') - before["forwarded"]
    peak, delay = best_correlation(sent, listener.received_pcm())
    print(
        f"SIPp -> {ue_codec} UE: {rx:.0f} RTP packets received by the MF, {decoded:.0f} frames "
        f"decoded, {forwarded:.0f} forwarded; correlation {peak:.3f} at {delay * 1000:.0f} ms"
    )
    assert rx >= len(payloads) - 2
    if ue_codec == "PCMU":
        assert forwarded >= len(payloads) - 2
    else:
        assert decoded >= len(payloads) - 2
    assert peak > floor
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["rtp_streams"] == 0 and stats["held"]["rtp_sockets"] == 0
