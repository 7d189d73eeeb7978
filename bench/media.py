"""Media plane benchmark: CPU per audio and video stream, section by section.

Usage::

    .venv/bin/python bench/media.py [--only codecs,forwarding,video,srtp] [--seconds 20]
        [--json FILE]

Sections (``--only`` picks some, comma-separated; all by default):

* ``codecs``: the audio codecs of :mod:`avatar_mf.codecs` in this process, one stream at a
  time, on ``--seconds`` of a synthetic speech-like 16 kHz signal cut in 20 ms frames: CPU
  (``time.process_time``) per 20 ms frame to encode, to decode, and to decode then re-encode
  (what a transcoding leg costs per stream and direction), and that last figure as a share of
  one core (CPU per frame / 20 ms). PCM is the MF's internal format (16 kHz mono s16le), so the
  G.711 and AMR figures include the 8 <-> 16 kHz resampling and the Opus decode figure the
  48 -> 16 kHz resampling; every figure includes the RTP payload format work.

* ``forwarding``: the RTP media plane of one MF process (``bench/media_forward.py``, which has
  the details): MF CPU per audio stream forwarded (PCMU both legs) and transcoded (PCMU <->
  AMR-WB), and the most concurrent two-leg audio calls with p99 added latency under 20 ms
  (``--forward-seconds`` per step, ``--calls`` the capacity steps).

* ``video``: CPU per received video stream at 640x480, 25 pictures/s, ``--video-seconds`` of a
  moving test pattern with a noise block (``avatar_mf.ue.rtp_video.pattern_picture``) encoded
  at ``--video-bitrate`` by the product's encoders, for H.264 (x264 Constrained Baseline,
  packetization-mode 1) and VP8: per picture, the RFC 6184/7741 depacketizing of its RTP
  payloads plus the FFmpeg decode to an I420 picture (what the MF does for each picture of
  each UE's camera), that as a share of one core at 25 fps, and the encode cost (what the
  sender side will pay per stream).

* ``srtp``: what WebRTC audio adds per stream on top of the codec (docs/media.md, "WebRTC-style
  audio"): CPU per 20 ms Opus RTP packet (a 12-byte header and a 47-byte payload) to protect it
  (sending) and to unprotect it (receiving) with pylibsrtp, for each DTLS-SRTP profile aiortc
  offers, and both together as a share of one core per stream (the crypto only); then the
  whole path, a real loopback ICE + DTLS association in this process: CPU per packet from
  one ``SrtpPath.send_rtp`` through aioice and aiortc's DTLS transport to the other end's
  ``on_rtp`` (both ends' Python hops and crypto).

Prints a markdown table per section (no assertions). Run it on an otherwise idle machine and
never next to another benchmark (``pgrep -f bench/`` shows nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import describe_machine, markdown_table
from avatar_mf.codecs import audio_codec

RATE = 16000
FRAME_BYTES = 640
FRAME_S = 0.020

#: (label, rtpmap name, clock rate, fmtp) of each codec measured.
CODECS: tuple[tuple[str, str, int, dict[str, str]], ...] = (
    ("PCMU", "PCMU", 8000, {}),
    ("PCMA", "PCMA", 8000, {}),
    ("AMR-WB 23.85 bandwidth-efficient", "AMR-WB", 16000, {}),
    ("AMR-WB 23.85 octet-aligned", "AMR-WB", 16000, {"octet-align": "1"}),
    ("AMR-WB 12.65", "AMR-WB", 16000, {"mode-set": "2"}),
    ("AMR 12.2", "AMR", 8000, {}),
    ("Opus 24 kbit/s", "opus", 48000, {}),
)


def speech_like(seconds: float, seed: int = 11) -> bytes:
    """Voiced speech-like PCM: harmonics of a gliding pitch shaped by moving formants,
    syllable-rate envelope, a little noise (vectorised; the tests have a slower, closer one)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = np.array([[700, 1200, 2600], [300, 2300, 3000], [500, 900, 2400]])
    which = formants[(t / 0.2).astype(int) % len(formants)]
    out = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0
        gain = sum(1.0 / (1 + ((fk - which[:, i]) / 120.0) ** 2) / (i + 1) for i in range(3))
        out += gain * np.sin(k * phase) * (fk < RATE / 2)
    out *= 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))
    out += 0.01 * rng.standard_normal(n)
    out = out / np.max(np.abs(out)) * 12000
    return bytes(out.astype("<i2").tobytes())


def cpu_per_call(fn: Callable[[bytes], Any], items: list[bytes]) -> float:
    """CPU seconds per call of ``fn`` over ``items`` (after two warm-up calls)."""
    for item in items[:2]:
        fn(item)
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / len(items)


def cpu_once_each(fn: Callable[[bytes], Any], items: list[bytes]) -> float:
    """CPU seconds per call of ``fn``, called once on each of ``items``."""
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / len(items)


def section_codecs(args: argparse.Namespace) -> dict[str, Any]:
    pcm = speech_like(args.seconds)
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
    rows: list[dict[str, Any]] = []
    for label, name, clock, fmtp in CODECS:
        codec = audio_codec(name, clock, fmtp)
        if codec is None:
            rows.append({"codec": label, "missing": True})
            continue
        payloads = [codec.encoder().encode(f) for f in frames]
        encode = cpu_per_call(codec.encoder().encode, frames)
        decode = cpu_per_call(codec.decoder().decode, payloads)
        dec, enc = codec.decoder(), codec.encoder()

        def transcode(payload: bytes, dec: Any = dec, enc: Any = enc) -> None:
            for i in range(0, len(out := dec.decode(payload)), FRAME_BYTES):
                enc.encode(out[i : i + FRAME_BYTES])

        both = cpu_per_call(transcode, payloads)
        size = sum(len(p) for p in payloads) / len(payloads)
        rows.append(
            {
                "codec": label,
                "payload_octets": round(size, 1),
                "encode_us": round(encode * 1e6, 1),
                "decode_us": round(decode * 1e6, 1),
                "transcode_us": round(both * 1e6, 1),
                "transcode_core_pct": round(both / FRAME_S * 100, 2),
            }
        )
    table = markdown_table(
        (
            "codec",
            "payload",
            "encode / 20 ms",
            "decode / 20 ms",
            "decode + re-encode",
            "% of a core per stream",
        ),
        "lrrrrr",
        (
            (r["codec"], "not available", "-", "-", "-", "-")
            if r.get("missing")
            else (
                r["codec"],
                f"{r['payload_octets']} B",
                f"{r['encode_us']} us",
                f"{r['decode_us']} us",
                f"{r['transcode_us']} us",
                f"{r['transcode_core_pct']} %",
            )
            for r in rows
        ),
    )
    print(f"## codecs ({args.seconds:.0f} s of speech-like audio, {len(frames)} frames)\n")
    print(table)
    return {"frames": len(frames), "rows": rows}


def section_srtp(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import pylibsrtp
    from aiortc.rtcdtlstransport import SRTP_PROFILES

    from avatar_mf.rtp.packet import RtpPacket

    count = int(args.seconds * 50)
    packets = [
        RtpPacket(111, i & 0xFFFF, i * 960, 0x1234ABCD, os.urandom(47)).serialize()
        for i in range(count)
    ]
    rows: list[dict[str, Any]] = []
    for profile in SRTP_PROFILES:
        key = os.urandom(profile.key_length + profile.salt_length)

        def session(direction: int, key: bytes = key, kind: int = profile.libsrtp_profile) -> Any:
            policy = pylibsrtp.Policy(key=key, ssrc_type=direction, srtp_profile=kind)
            return pylibsrtp.Session(policy)

        sender = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        receiver = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
        protected = [sender.protect(p) for p in packets]
        sender = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        # Each packet once (SRTP refuses replays, so no warm-up calls on the same packets).
        protect = cpu_once_each(sender.protect, packets)
        unprotect = cpu_once_each(receiver.unprotect, protected)
        both = protect + unprotect
        rows.append(
            {
                "profile": profile.openssl_profile.decode(),
                "protect_us": round(protect * 1e6, 2),
                "unprotect_us": round(unprotect * 1e6, 2),
                "core_pct": round(both / FRAME_S * 100, 3),
            }
        )
    table = markdown_table(
        ("DTLS-SRTP profile", "protect / packet", "unprotect / packet", "% of a core per stream"),
        "lrrr",
        (
            (r["profile"], f"{r['protect_us']} us", f"{r['unprotect_us']} us", f"{r['core_pct']} %")
            for r in rows
        ),
    )
    print(f"## srtp ({count} Opus RTP packets of 59 B, both directions per stream)\n")
    print(table)
    path = asyncio.run(_srtp_path_cost(packets))
    print(
        f"\nThrough the BUNDLE transport (media/srtp_path.py, loopback ICE + DTLS, both ends in "
        f"this process): {path * 1e6:.1f} us CPU per packet from the sender's SrtpPath.send_rtp "
        f"to the receiver's on_rtp, {path / FRAME_S * 100:.2f} % of a core per stream and "
        "direction.\n"
    )
    return {"packets": count, "rows": rows, "path_us": round(path * 1e6, 1)}


async def _srtp_path_cost(packets: list[bytes]) -> float:
    """CPU seconds per packet sent by one SrtpPath and received by another over a real
    loopback ICE + DTLS association (the UE and the MF of the tests, in this process)."""
    from avatar_mf.media import CertificateStore, DataChannelEndpointFactory, StreamSpec
    from avatar_mf.media.srtp_path import SrtpPath
    from avatar_mf.media.ue_side import UeDataChannels, as_remote

    factory = DataChannelEndpointFactory(CertificateStore.generate(), media_host="127.0.0.1")
    ue = await UeDataChannels("127.0.0.1", ice=True).offer([StreamSpec(1000)])
    mf = await factory.create(as_remote(ue.local), [StreamSpec(1000)], srtp=True)
    await ue.set_remote(as_remote(mf.local))
    sender, receiver = SrtpPath(), SrtpPath()
    keys = (asyncio.Event(), asyncio.Event())
    sender.on_ready, receiver.on_ready = keys[0].set, keys[1].set
    arrived = asyncio.Event()
    got, target = [0], [0]

    def on_rtp(data: bytes, addr: tuple[str, int]) -> None:
        got[0] += 1
        if got[0] >= target[0]:
            arrived.set()

    receiver.on_rtp = on_rtp
    ue.attach_srtp(sender)
    mf.attach_srtp(receiver)
    mf.start()
    ue.start()
    try:
        await asyncio.wait_for(asyncio.gather(keys[0].wait(), keys[1].wait()), 10)
        await asyncio.sleep(0.2)  # both transports connected
        start = time.process_time()
        for i in range(0, len(packets), 10):  # bursts of 10 (what a busy tick sends)
            target[0] = min(i + 10, len(packets))
            arrived.clear()
            for packet in packets[i : i + 10]:
                sender.send_rtp(packet, ("", 0))
            await asyncio.wait_for(arrived.wait(), 5)
        return (time.process_time() - start) / len(packets)
    finally:
        sender.close()
        receiver.close()
        await mf.close()
        await ue.close()


def section_forwarding(args: argparse.Namespace) -> dict[str, Any]:
    import media_forward

    steps = [int(c) for c in args.calls.split(",")]
    return media_forward.run_sections(
        {"forward", "transcode", "capacity"}, args.forward_seconds, steps
    )


def section_video(args: argparse.Namespace) -> dict[str, Any]:
    from avatar_mf.codecs.base import Fmtp
    from avatar_mf.codecs.video import H264Codec, Vp8Codec
    from avatar_mf.rtp.h264 import AccessUnit, H264Depacketizer, H264Packetizer
    from avatar_mf.rtp.vp8 import Vp8Depacketizer, Vp8Packetizer
    from avatar_mf.ue.rtp_video import pattern_picture

    width, height, fps = 640, 480, 25
    count = int(args.video_seconds * fps)
    pictures = [pattern_picture(i, width, height) for i in range(count)]
    rows: list[dict[str, Any]] = []
    for label in ("H.264", "VP8"):
        codec = (
            H264Codec(Fmtp({"packetization-mode": "1"})) if label == "H.264" else Vp8Codec(Fmtp())
        )
        encoder = codec.encoder(width, height, fps=fps, bitrate=args.video_bitrate)
        start = time.process_time()
        units = [encoder.encode(p)[0] for p in pictures]
        encode = (time.process_time() - start) / count
        packetizer = H264Packetizer(mode=1) if label == "H.264" else Vp8Packetizer()
        packets = [packetizer.packetize(u) for u in units]
        decoder = codec.decoder()
        depacketizer = H264Depacketizer() if label == "H.264" else Vp8Depacketizer()
        start = time.process_time()
        seq = decoded = 0
        for n, payloads in enumerate(packets):
            for i, payload in enumerate(payloads):
                for unit in depacketizer.push(seq, n * 3600, i == len(payloads) - 1, payload):
                    data = unit.annexb() if isinstance(unit, AccessUnit) else unit.data
                    decoded += len(decoder.decode(data))
                seq = (seq + 1) & 0xFFFF
        decode = (time.process_time() - start) / count
        rows.append(
            {
                "codec": label,
                "pictures": count,
                "decoded": decoded,
                "kbit_s": round(sum(map(len, units)) * 8 / args.video_seconds / 1000, 1),
                "packets_per_picture": round(sum(map(len, packets)) / count, 2),
                "receive_ms": round(decode * 1000, 3),
                "receive_core_pct": round(decode * fps * 100, 2),
                "encode_ms": round(encode * 1000, 3),
                "encode_core_pct": round(encode * fps * 100, 2),
            }
        )
    table = markdown_table(
        (
            "codec",
            "bit rate",
            "packets / picture",
            "depacketize + decode / picture",
            "% of a core per stream received",
            "encode / picture",
            "% of a core per stream sent",
        ),
        "lrrrrrr",
        (
            (
                r["codec"],
                f"{r['kbit_s']} kbit/s",
                f"{r['packets_per_picture']}",
                f"{r['receive_ms']} ms",
                f"{r['receive_core_pct']} %",
                f"{r['encode_ms']} ms",
                f"{r['encode_core_pct']} %",
            )
            for r in rows
        ),
    )
    print(f"## video (640x480, 25 fps, {args.video_seconds:.0f} s, {count} pictures)\n")
    print(table)
    return {"pictures": count, "rows": rows}


#: The sections, in the order they run; each prints its table and returns its figures.
SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "codecs": section_codecs,
    "forwarding": section_forwarding,
    "video": section_video,
    "srtp": section_srtp,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per codec (codecs)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--forward-seconds", type=float, default=8.0, help="seconds per load step (forwarding)"
    )
    parser.add_argument(
        "--calls", default="25,50,100,200,300,400", help="capacity steps (forwarding)"
    )
    parser.add_argument(
        "--video-seconds", type=float, default=10.0, help="seconds of video per codec (video)"
    )
    parser.add_argument(
        "--video-bitrate", type=int, default=1_000_000, help="encoder bit rate (video)"
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    print(describe_machine() + "\n")
    results = {name: SECTIONS[name](args) for name in chosen}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
