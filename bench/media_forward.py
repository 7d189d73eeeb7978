"""Media plane benchmark, forwarding part: CPU per audio stream forwarded and transcoded, and
the most concurrent two-leg audio calls one MF process carries with p99 added latency < 20 ms.

Usage (``bench/media.py --only forwarding`` runs the same)::

    .venv/bin/python bench/media_forward.py [--seconds 10] [--calls 25,50,100,200,400]
                                            [--json FILE]

What runs where:

* **The MF side** is one child process running the product's media plane exactly as a node
  does (``calls.audio.CallAudio`` on SDP offers planned by ``sdp.audio``, real UDP sockets from
  the port range, ``rooms.audio_room`` rooms, the media worker pool): each "call" is a room of
  two RTP streams, which is what a two-leg call's media is (one stream per leg). No SIP: the
  signalling cost is ``bench/sipp_rate.py``'s.
* **The UEs** are one generator process (plain sockets and epoll, no asyncio): for each call
  two sockets, each sending one 20 ms RTP packet every 20 ms (PCMU, or AMR-WB for the
  transcoded leg) and reading what the MF sends back. Forwarded packets carry their send time
  (``time.perf_counter``, CLOCK_MONOTONIC on Linux, shared by both processes) in the first 8
  payload bytes: added latency = arrival - send, generator delays included (an upper bound).

Sections:

* ``forward``: N calls with PCMU on both legs (forwarded untouched): MF CPU per stream (% of
  one core), added latency p50/p99/max, loss.
* ``transcode``: N calls with PCMU on one leg and AMR-WB on the other (decode + mix + encode
  every 20 ms in the worker pool): MF CPU per stream and per call.
* ``capacity``: forwarding with more and more calls until p99 added latency reaches 20 ms or
  loss 1 % (or the generator falls behind: then the machine, not the MF, is the limit).

The MF child and the generator share the machine's cores: run on an otherwise idle machine,
never next to another benchmark (``pgrep -f bench/`` shows nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import select
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _common import describe_machine, markdown_table, percentile

HOST = "127.0.0.1"
PTIME = 0.020


# --------------------------------------------------------------------------- the MF side


def _offer(port: int, codec: str) -> bytes:
    fmt = {"PCMU": ("0", "a=rtpmap:0 PCMU/8000"), "AMR-WB": ("97", "a=rtpmap:97 AMR-WB/16000")}
    pt, rtpmap = fmt[codec]
    lines = [
        "v=0", "o=ue 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP {pt}", rtpmap, "a=ptime:20", "a=sendrecv",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


async def _mf_main(conn: Connection, legs: list[tuple[int, str, int, str]]) -> None:
    from avatar_mf.calls.audio import AudioPlane, CallAudio, RegistryAudioCaps
    from avatar_mf.clock import LoopClock
    from avatar_mf.media.audio_stream import MediaLimits
    from avatar_mf.media.rtp_ports import PortRange
    from avatar_mf.pipeline.executor import StageExecutor
    from avatar_mf.rooms.audio_room import AudioRooms
    from avatar_mf.sdp.audio import AudioPlan, plan_audio
    from avatar_mf.sdp.model import parse_sdp

    clock = LoopClock()
    pool = StageExecutor(workers=1, max_pending=4096)
    rooms = AudioRooms(clock, runner=lambda job: pool.run(job), max_members=2)
    plane = AudioPlane(
        clock=clock,
        host=HOST,
        advertised_host=HOST,
        ports=PortRange(40000, 59999),
        rooms=rooms,
        limits=MediaLimits(rtp_timeout=0.0, max_packets_per_second=1000),
        caps=RegistryAudioCaps(allowed=("PCMU", "AMR-WB")),
    )
    calls: list[CallAudio] = []
    ports: list[tuple[int, int]] = []
    for i, (port_a, codec_a, port_b, codec_b) in enumerate(legs):
        pair = []
        for leg, (port, codec) in enumerate(((port_a, codec_a), (port_b, codec_b))):
            call = CallAudio(plane, f"c{i}-{leg}", f"room{i}", lambda reason: None)
            plan = plan_audio(parse_sdp(_offer(port, codec)), 0, plane.caps)
            assert isinstance(plan, AudioPlan)
            opened, refused = await call.apply([plan])
            assert not refused
            pair.append(opened[0])
            calls.append(call)
        ports.append((pair[0], pair[1]))
    conn.send(ports)
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "start":
            cpu0 = time.process_time()
            modes = dict(rooms.stats.by_mode)
        elif command == "stop":
            conn.send(
                {
                    "cpu": time.process_time() - cpu0,
                    "ticks": {k: v - modes.get(k, 0) for k, v in rooms.stats.by_mode.items()},
                    "decoded": rooms.stats.decoded_frames,
                    "late_ticks": rooms.stats.late_ticks,
                }
            )
        elif command == "quit":
            break
    for call in calls:
        call.close()
    pool.shutdown()


def _mf_process(conn: Connection, legs: list[tuple[int, str, int, str]]) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_mf_main(conn, legs))


# --------------------------------------------------------------------------- the UEs


def _payloads(codec: str) -> list[bytes]:
    from avatar_mf.codecs.registry import audio_codec

    codec_obj = audio_codec(codec, 16000 if codec == "AMR-WB" else 8000, {})
    assert codec_obj is not None
    encoder = codec_obj.encoder()
    rng = random.Random(5)
    frames = []
    for _ in range(50):
        pcm = struct.pack("<320h", *(rng.randint(-3000, 3000) for _ in range(320)))
        frames.append(encoder.encode(pcm))
    return frames


def run_load(calls: int, codec_b: str, seconds: float) -> dict[str, Any]:
    """One measurement: ``calls`` calls (PCMU leg A, ``codec_b`` leg B) for ``seconds``."""
    from avatar_mf.rtp.packet import RtpPacket, parse_rtp

    socks: list[socket.socket] = []
    for _ in range(2 * calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    legs = [
        (socks[2 * i].getsockname()[1], "PCMU", socks[2 * i + 1].getsockname()[1], codec_b)
        for i in range(calls)
    ]
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_mf_process, args=(child, legs), daemon=True)
    proc.start()
    mf_ports: list[tuple[int, int]] = parent.recv()
    targets = []
    for i, (pa, pb) in enumerate(mf_ports):
        targets.append((socks[2 * i], (HOST, pa), "PCMU"))
        targets.append((socks[2 * i + 1], (HOST, pb), codec_b))
    payloads = {"PCMU": _payloads("PCMU"), codec_b: _payloads(codec_b)}
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    by_fd = {s.fileno(): s for s in socks}
    latencies: list[float] = []
    received = sent = 0
    behind = 0.0
    seq = 0
    warmup = 1.0
    start = time.perf_counter()
    next_tick = start
    measuring = False
    end = start + warmup + seconds
    while True:
        now = time.perf_counter()
        if not measuring and now >= start + warmup:
            measuring = True
            parent.send("start")
            received = sent = 0
            latencies.clear()
        if now >= end:
            break
        if now >= next_tick:
            behind = max(behind, now - next_tick) if measuring else behind
            for sock, addr, codec in targets:
                body = payloads[codec][seq % 50]
                if codec == "PCMU":
                    body = struct.pack("<d", time.perf_counter()) + body[8:]
                packet = RtpPacket(
                    0 if codec == "PCMU" else 97,
                    seq & 0xFFFF,
                    seq * 160,
                    id(sock) & 0xFFFFFFFF,
                    body,
                )
                try:
                    sock.sendto(packet.serialize(), addr)
                    sent += 1
                except BlockingIOError:
                    pass
            seq += 1
            next_tick += PTIME
        timeout = max(0.0, min(next_tick, end) - time.perf_counter())
        for fd, _ in poller.poll(timeout):
            sock = by_fd[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                arrived = time.perf_counter()
                received += 1
                if codec_b == "PCMU" and measuring:
                    try:
                        packet = parse_rtp(data)
                    except ValueError:
                        continue
                    if packet.payload_type == 0 and len(packet.payload) >= 8:
                        (stamp,) = struct.unpack("<d", packet.payload[:8])
                        if start < stamp <= arrived:
                            latencies.append(arrived - stamp)
    parent.send("stop")
    mf = parent.recv()
    parent.send("quit")
    proc.join(10)
    for s in socks:
        s.close()
    streams = 2 * calls
    return {
        "calls": calls,
        "codec_b": codec_b,
        "seconds": seconds,
        "mf_cpu_s": round(mf["cpu"], 3),
        "cpu_per_stream_pct": round(100 * mf["cpu"] / seconds / streams, 3),
        "cpu_per_call_pct": round(100 * mf["cpu"] / seconds / calls, 3),
        "mf_core_pct": round(100 * mf["cpu"] / seconds, 1),
        "sent": sent,
        "received": received,
        "loss_pct": round(100 * max(0, sent - received) / max(sent, 1), 2),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 2) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
        "generator_behind_ms": round(1000 * behind, 1),
        "ticks": mf["ticks"],
    }


HEADER = ("calls", "codecs", "MF CPU % core", "per stream %", "p50 ms", "p99 ms", "loss %")


def _row(r: dict[str, Any]) -> tuple[object, ...]:
    return (
        r["calls"], f"PCMU/{r['codec_b']}", r["mf_core_pct"], r["cpu_per_stream_pct"],
        r["p50_ms"], r["p99_ms"], r["loss_pct"],
    )  # fmt: skip


def run_sections(sections: set[str], seconds: float, steps: list[int]) -> dict[str, Any]:
    """Run the chosen sections (forward, transcode, capacity); print a table for each."""
    results: dict[str, Any] = {}
    if "forward" in sections:
        r = run_load(50, "PCMU", seconds)
        results["forward"] = r
        print("\n## forwarded (PCMU both legs)\n")
        print(markdown_table(HEADER, "rlrrrrr", [_row(r)]))
    if "transcode" in sections:
        r = run_load(25, "AMR-WB", seconds)
        results["transcode"] = r
        print("\n## transcoded (PCMU <-> AMR-WB)\n")
        print(markdown_table(HEADER, "rlrrrrr", [_row(r)]))
    if "capacity" in sections:
        done = []
        for calls in steps:
            r = run_load(calls, "PCMU", seconds)
            done.append(r)
            print(
                f"  {calls} calls: p99 {r['p99_ms']} ms, loss {r['loss_pct']} %, generator "
                f"behind up to {r['generator_behind_ms']} ms",
                file=sys.stderr,
            )
            if (r["p99_ms"] or 0) >= 20.0 or r["loss_pct"] >= 1.0:
                break
        results["capacity"] = done
        print("\n## capacity (forwarding)\n")
        print(markdown_table(HEADER, "rlrrrrr", [_row(r) for r in done]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="forward,transcode,capacity")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calls", default="25,50,100,200,300,400")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(describe_machine())
    results: dict[str, Any] = {"machine": describe_machine()}
    steps = [int(c) for c in args.calls.split(",")]
    results.update(run_sections(set(args.only.split(",")), args.seconds, steps))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
