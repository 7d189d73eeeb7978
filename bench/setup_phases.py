"""In-process MF CPU per data channel set-up, split by phase (issue 16).

Usage::

    .venv/bin/python bench/setup_phases.py [--calls 300] [--rounds 3] [--modes no-ice,ice]
                                           [--baseline-src OTHER/src]

The MF half and the UE half of a data channel association (the MF's
:class:`~avatar_mf.media.endpoint.DataChannelEndpointFactory` answering, a
:class:`~avatar_mf.media.ue_side.UeDataChannels` offering, the four default streams 0, 10,
1000, 1002) run in two processes, each with its own uvloop, over loopback UDP; the UE process
takes its commands (offer, start, close) over a pipe, which a helper thread of the MF's
process reads. The MF's event loop thread does nothing but the MF's work, so its CPU time
(``time.thread_time``) between two marks is what the MF spent in that phase:

* ``create``: ``factory.create`` (socket bind, session object; what the SDP answer needs),
  by process CPU time: the event loop may resolve a bind address on its thread pool;
* ``dtls``: from ``start()`` to the MF's DTLS transport connected (with ICE: the
  connectivity checks first; the handshake: OpenSSL,
  aiortc's Python around it, the fingerprint check, SRTP keys when negotiated);
* ``sctp+open``: from DTLS connected to the last ``ChannelOpened`` (INIT / INIT-ACK with its
  state cookie / COOKIE-ECHO / COOKIE-ACK, then the pre-negotiated channels opening);
* ``close``: the MF's ``close()`` (SCTP ABORT, DTLS close_notify, socket) until released.

Calls run one at a time (set up, then closed by the MF), ``--calls`` per round; figures are the
median over rounds of the mean per call, in microseconds, and the round-to-round spread. Not in
here: SIP and the SDP answer (``bench/sip_call_path.py``) and the avatar session's pipeline
(``bench/scene_membership.py``). ``--baseline-src DIR`` runs the same script with another
checkout's ``src`` first (rows ``baseline`` and ``this``, rounds interleaved). Prints figures
only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PHASES = ("create", "dtls", "sctp+open", "close")

BENCH_CPU = 0.0
"""MF thread CPU spent sending the UE its commands (subtracted from the phases)."""

DTLS_CONNECTED: dict[Any, float] = {}
"""MF thread CPU time at which each DTLS transport reached ``connected``."""


def mark_dtls_connected() -> None:
    """Note in DTLS_CONNECTED when a DTLS transport of the MF's thread is connected (a bench
    instrument: a wrapper around aiortc's ``_set_state``)."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport, State

    set_state = RTCDtlsTransport._set_state
    mf_thread = threading.get_ident()

    def _set_state(self: Any, state: Any) -> None:
        if state == State.CONNECTED and threading.get_ident() == mf_thread:
            DTLS_CONNECTED[self] = time.thread_time()
        set_state(self, state)

    RTCDtlsTransport._set_state = _set_state  # type: ignore[method-assign]


def ue_process(conn: Any, ice: bool) -> None:
    """The UE side, in its own process: commands from the MF's process over ``conn``
    (``offer`` -> its LocalParams, ``start`` with the MF's, ``close``, ``stop``)."""
    import uvloop

    async def serve() -> None:
        from avatar_mf.media.params import as_remote
        from avatar_mf.media.ue_side import UeDataChannels

        loop = asyncio.get_running_loop()
        ue = UeDataChannels("127.0.0.1", ice=ice)
        session: Any = None
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "offer":
                session = await ue.offer(argument)
                conn.send(session.local)
            elif command == "start":
                await session.set_remote(as_remote(argument))
                session.start()
                conn.send(None)
            elif command == "close":
                await session.close()
                conn.send(None)
            else:
                conn.send(None)
                return

    uvloop.run(serve())


class UeProcess:
    """The MF's handle on the UE process."""

    def __init__(self, ice: bool) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=ue_process, args=(child, ice), daemon=True)
        self.process.start()

    async def ask(self, command: str, argument: Any = None) -> Any:
        global BENCH_CPU
        cpu = time.thread_time()
        self.conn.send((command, argument))  # a pipe write: the bench's CPU, not the MF's
        BENCH_CPU += time.thread_time() - cpu
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.process.join(10)


async def one_call(factory: Any, ue: UeProcess, streams: Sequence[Any]) -> dict[str, float]:
    from avatar_mf.media import ChannelOpened, SessionEvent
    from avatar_mf.media.params import as_remote

    loop = asyncio.get_running_loop()
    all_open = loop.create_future()
    opened: set[int] = set()
    marks: dict[str, float] = {}

    def on_mf(event: SessionEvent) -> None:
        if isinstance(event, ChannelOpened):
            opened.add(event.stream_id)
            if len(opened) == len(streams) and not all_open.done():
                marks["open"] = time.thread_time()
                all_open.set_result(None)

    ue_local = await ue.ask("offer", list(streams))
    # Process CPU: the loop may resolve a bind address on its thread pool; no command to the
    # UE is outstanding here, so the pipe-reading thread is idle.
    t0 = time.process_time()
    mf = await factory.create(as_remote(ue_local), streams, on_event=on_mf)
    t1 = time.process_time()
    t_start = time.thread_time()
    mf.start()
    bench = BENCH_CPU
    await ue.ask("start", mf.local)
    t_start += BENCH_CPU - bench  # the command to the UE is not the MF's work
    await asyncio.wait_for(all_open, 10)
    marks["dtls"] = DTLS_CONNECTED[mf._dtls]
    t_close = time.thread_time()
    DTLS_CONNECTED.pop(mf._dtls, None)
    await mf.close()
    t_end = time.thread_time()
    await ue.ask("close")
    return {
        "create": t1 - t0,
        "dtls": marks["dtls"] - t_start,
        "sctp+open": marks["open"] - marks["dtls"],
        "close": t_end - t_close,
    }


async def one_round(ice: bool, calls: int) -> dict[str, float]:
    from avatar_mf.media import CertificateStore, DataChannelEndpointFactory, StreamSpec

    factory = DataChannelEndpointFactory(
        CertificateStore.generate(validity_days=2), media_host="127.0.0.1"
    )
    streams = [
        StreamSpec(0, subprotocol="http"),
        StreamSpec(10, subprotocol="http"),
        StreamSpec(1000, subprotocol="3gpp-ar-animation"),
        StreamSpec(1002, subprotocol="3gpp-ar-animation"),
    ]
    ue = UeProcess(ice)
    try:
        for _ in range(3):  # warm-up: imports, OpenSSL contexts
            await one_call(factory, ue, streams)
        totals = dict.fromkeys(PHASES, 0.0)
        for _ in range(calls):
            for phase, cpu in (await one_call(factory, ue, streams)).items():
                totals[phase] += cpu
        return {phase: total / calls for phase, total in totals.items()}
    finally:
        ue.stop()


def run(modes: Sequence[str], calls: int) -> dict[str, dict[str, float]]:
    import uvloop

    mark_dtls_connected()
    return {mode: uvloop.run(one_round(mode == "ice", calls)) for mode in modes}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="no-ice,ice")
    parser.add_argument("--baseline-src", type=Path, metavar="DIR")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.child:
        print(json.dumps(run(modes, args.calls)))
        return 0
    builds = {"this": str(Path(__file__).resolve().parents[1] / "src")}
    if args.baseline_src is not None:
        builds = {"baseline": str(args.baseline_src.resolve()), **builds}
    figures: dict[str, list[dict[str, dict[str, float]]]] = {b: [] for b in builds}
    for _ in range(args.rounds):
        for build, src in builds.items():
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--calls", str(args.calls),
                 "--modes", ",".join(modes)],
                env=env, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            figures[build].append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"{args.calls} set-ups per round, {args.rounds} rounds, load average "
        f"{os.getloadavg()[0]:.2f}; MF thread CPU per set-up, us: median of the rounds "
        "(min-max)"
    )
    print("| build | offer | " + " | ".join(PHASES) + " | total |")
    print("|---|---|" + "---:|" * (len(PHASES) + 1))
    for mode in modes:
        for build, rounds in figures.items():
            cells = []
            for phase in (*PHASES, "total"):
                values = [
                    (sum(r[mode].values()) if phase == "total" else r[mode][phase]) * 1e6
                    for r in rounds
                ]
                median = statistics.median(values)
                cells.append(f"{median:.0f} ({min(values):.0f}-{max(values):.0f})")
            offer = "ICE" if mode == "ice" else "no ICE (IMS)"
            print(f"| {build} | {offer} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
