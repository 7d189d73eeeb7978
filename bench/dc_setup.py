"""Data channel setup benchmark: INVITE -> every data channel open, against one MF process.

Usage::

    .venv/bin/python bench/dc_setup.py [--concurrency 100] [--rounds 5] [--single 20]
                                       [--workers N] [--modes ice,no-ice] [--json FILE]

One MF subprocess (``MfProcess``, ``LOG__LEVEL=WARNING``, default SIP timers) on loopback. Test
UEs (``avatar_mf.ue.UeCall``, SIP over UDP, the four default streams 0, 10, 1000, 1002) measure,
per call, the time from the INVITE leaving to the last of their channels opening. Each UE calls
its own user part (``sip:bench-...@MF``): the MF puts the calls to one user part in one room
and announces every join to everyone in it, so ``--room-size 100`` measures a 100-party room
rather than the data channel setup. Scenarios, for ICE and no-ICE (IMS style) offers:

* ``1 UE``: ``--single`` calls one after the other (set up, then hung up);
* ``N concurrent``: ``--rounds`` times, ``--concurrency`` UEs send their INVITE at the same
  instant; every UE hangs up only after all of them have finished setting up, so teardown never
  overlaps the measured setups. ``--warmup`` unmeasured batches come first: the first calls of
  a fresh MF (and of fresh UE workers) pay one-off costs (lazy imports, OpenSSL contexts) that
  double their setup time.

The UEs are not free: each one runs ICE, DTLS and SCTP in Python, about as much work as the MF
does for it, on the same cores as the MF. With ``--workers 0`` they all run in this process (one
uvloop); otherwise they are spread over worker processes (one uvloop each). The MF is one
asyncio process, so the default is one worker per core but one: on 2 cores, one UE process and
the MF each get a core (more UE processes than free cores only add context switches). The
MF's and the UEs' CPU milliseconds per call are reported (/proc/<pid>/stat, process_time), and
after each scenario the MF must hold nothing (``/stats`` held counts).

Prints figures only (no assertions); exits 1 if a call failed or the MF did not go idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SETUP_LIMIT = 30.0
"""Seconds a UE waits for its answer and for its channels before counting a failure."""


# --------------------------------------------------------------------------- UE side


async def _setup(call: Any) -> dict[str, Any]:
    try:
        await call.connect()
        await call.wait_channels_open(SETUP_LIMIT)
    except Exception as exc:  # a failed call is a data point, not a crash
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    timing = call.timing
    return {
        "ok": True,
        "setup": timing.setup_seconds,
        "answer": timing.answer_seconds,
        "invite_sent": timing.invite_sent,
    }


async def _run_batch(
    rooms: Sequence[str], ice: bool, port: int, start_at: float, certificate: Any
) -> tuple[list[Any], list[dict[str, Any]], float]:
    """One UE per entry of ``rooms``, calling ``sip:<room>@MF``, all at ``start_at``."""
    from avatar_mf.ue import UeCall

    calls = [
        UeCall.dial(
            f"sip:{room}@{HOST}:{port}",
            HOST,
            port,
            ice=ice,
            certificate=certificate,
            setup_timeout=SETUP_LIMIT,
            answer_timeout=SETUP_LIMIT,
        )
        for room in rooms
    ]
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu = time.process_time()
    results = await asyncio.gather(*(_setup(call) for call in calls))
    return calls, list(results), time.process_time() - cpu


async def _hangup(calls: Sequence[Any]) -> None:
    await asyncio.gather(*(call.hangup() for call in calls), return_exceptions=True)


async def _worker_main(conn: Connection) -> None:
    from avatar_mf.media.certificate import CertificateStore

    loop = asyncio.get_running_loop()
    certificate = CertificateStore.generate(validity_days=2)
    conn.send(("ready",))
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "stop":
            return
        _, rooms, ice, port, start_at = message
        calls, results, cpu = await _run_batch(rooms, ice, port, start_at, certificate)
        conn.send(("results", results, cpu))
        await loop.run_in_executor(None, conn.recv)  # "teardown"
        await _hangup(calls)
        conn.send(("done",))


def _worker(conn: Connection) -> None:
    import uvloop

    uvloop.run(_worker_main(conn))


class UeFleet:
    """Where the UEs run: worker processes, or this process (``workers == 0``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._certificate: Any = None
        if workers:
            ctx = multiprocessing.get_context("spawn")
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child,), daemon=True)
                proc.start()
                self._conns.append(parent)
                self._procs.append(proc)
            for conn in self._conns:
                assert conn.recv() == ("ready",)
        else:
            from avatar_mf.media.certificate import CertificateStore

            self._certificate = CertificateStore.generate(validity_days=2)

    def batch(
        self, rooms: Sequence[str], ice: bool, port: int
    ) -> tuple[list[dict[str, Any]], float]:
        """One UE per entry of ``rooms`` calls at once (``sip:<room>@MF``: the MF puts calls
        to the same user part in one room); returns their results and the UE side's CPU
        seconds."""
        start_at = time.monotonic() + 0.3
        if not self.workers:
            import uvloop

            return uvloop.run(self._local_batch(rooms, ice, port, start_at))
        shares = [list(rooms[i :: self.workers]) for i in range(self.workers)]
        busy = [(c, share) for c, share in zip(self._conns, shares, strict=True) if share]
        for conn, share in busy:
            conn.send(("batch", share, ice, port, start_at))
        results: list[dict[str, Any]] = []
        cpu = 0.0
        for conn, _ in busy:
            _, part, part_cpu = conn.recv()
            results.extend(part)
            cpu += part_cpu
        for conn, _ in busy:
            conn.send(("teardown",))
        for conn, _ in busy:
            assert conn.recv() == ("done",)
        return results, cpu

    async def _local_batch(
        self, rooms: Sequence[str], ice: bool, port: int, start_at: float
    ) -> tuple[list[dict[str, Any]], float]:
        calls, results, cpu = await _run_batch(rooms, ice, port, start_at, self._certificate)
        await _hangup(calls)
        return results, cpu

    def close(self) -> None:
        for conn in self._conns:
            conn.send(("stop",))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


# --------------------------------------------------------------------------- figures


def _cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Scenario:
    name: str
    ice: bool
    concurrency: int
    room_size: int
    setups: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    mf_cpu: float = 0.0
    ue_cpu: float = 0.0
    calls: int = 0
    idle_after: bool = True
    round_medians: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        s = self.setups
        return {
            "scenario": self.name,
            "ice": self.ice,
            "concurrency": self.concurrency,
            "room_size": self.room_size,
            "calls": self.calls,
            "failed": len(self.failures),
            "median_ms": round(statistics.median(s) * 1000, 1) if s else None,
            "p90_ms": round(_percentile(s, 0.9) * 1000, 1) if s else None,
            "max_ms": round(max(s) * 1000, 1) if s else None,
            "answer_median_ms": (
                round(statistics.median(self.answers) * 1000, 1) if self.answers else None
            ),
            "mf_cpu_ms_per_call": round(self.mf_cpu / self.calls * 1000, 1) if self.calls else None,
            "ue_cpu_ms_per_call": round(self.ue_cpu / self.calls * 1000, 1) if self.calls else None,
            "mf_idle_after": self.idle_after,
            "round_medians_ms": [round(m * 1000, 1) for m in self.round_medians],
        }


def run_scenario(
    mf: Any,
    fleet: UeFleet,
    name: str,
    ice: bool,
    concurrency: int,
    repeats: int,
    room_size: int,
) -> Scenario:
    scenario = Scenario(name, ice, concurrency, room_size)
    pid = mf.proc.pid
    for batch in range(repeats):
        rooms = [f"bench-{name}-{batch}-{i // room_size}" for i in range(concurrency)]
        cpu0 = _cpu_seconds(pid)
        results, ue_cpu = fleet.batch(rooms, ice, mf.sip_port)
        scenario.mf_cpu += _cpu_seconds(pid) - cpu0
        scenario.ue_cpu += ue_cpu
        scenario.calls += len(results)
        setups = [r["setup"] for r in results if r["ok"]]
        if setups:
            scenario.round_medians.append(statistics.median(setups))
        for result in results:
            if result["ok"]:
                scenario.setups.append(result["setup"])
                scenario.answers.append(result["answer"])
            else:
                scenario.failures.append(result["error"])
        held = wait_released(mf, CALL_RESOURCES, 30.0)
        if held:
            scenario.idle_after = False
            scenario.failures.append(f"MF still holds {held} after the batch")
    return scenario


CALL_RESOURCES = ("dialogs", "pending_invites", "call_sessions", "dc_sessions", "media_sockets")
"""What a finished call must have released at once. Transactions are not in the list: with the
default T1 (0.5 s) they rightly outlive the call by up to 64*T1 = 32 s (RFC 3261 Timers J, L)."""


def wait_released(mf: Any, keys: Sequence[str], timeout: float) -> dict[str, int]:
    """Poll /stats until ``keys`` of ``held`` are all 0; return what is still held."""
    deadline = time.monotonic() + timeout
    while True:
        held = {k: v for k, v in mf.stats()["held"].items() if k in keys and v}
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| offer | UEs at once | calls | failed | median | p90 | max | medians per round "
        "| 200 OK median | MF CPU/call | UE CPU/call |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        rounds = r["round_medians_ms"]
        spread = f"{min(rounds)}-{max(rounds)} ms" if len(rounds) > 1 else "-"
        lines.append(
            f"| {'ICE' if r['ice'] else 'no ICE (IMS)'} | {r['concurrency']} | {r['calls']} "
            f"| {r['failed']} | {r['median_ms']} ms | {r['p90_ms']} ms | {r['max_ms']} ms "
            f"| {spread} | {r['answer_median_ms']} ms | {r['mf_cpu_ms_per_call']} ms "
            f"| {r['ue_cpu_ms_per_call']} ms |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100, help="UEs calling at once")
    parser.add_argument("--rounds", type=int, default=5, help="concurrent batches per mode")
    parser.add_argument("--single", type=int, default=20, help="sequential single-UE calls")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="UE worker processes (0: UEs in this process); default: one per core but one, "
        "which leaves a core to the MF (one asyncio process)",
    )
    parser.add_argument("--modes", default="ice,no-ice", help="ice, no-ice or both")
    parser.add_argument(
        "--room-size",
        type=int,
        default=1,
        help="UEs per room: the MF puts calls to the same user part in one room and announces "
        "every join to the room (default 1: each call alone, pure setup cost; 2: 1-to-1 calls)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured concurrent batches per mode first (first-call costs: imports, caches)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    from avatar_mf.testing.process import MfProcess

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    load_before = os.getloadavg()
    fleet = UeFleet(args.workers)  # first: a failure here must not leave an MF behind
    with tempfile.TemporaryDirectory(prefix="dc-setup-") as tmp:
        try:
            mf = MfProcess.start(Path(tmp), settings={"LOG__LEVEL": "WARNING"})
        except BaseException:
            fleet.close()
            raise
        try:
            for mode in modes:
                ice = mode == "ice"
                if args.warmup > 0:
                    warmup = run_scenario(
                        mf, fleet, "warmup", ice, args.concurrency, args.warmup, args.room_size
                    )
                    failures.extend(warmup.failures)  # a warm-up call must not fail either
                for name, concurrency, repeats in (
                    ("single", 1, args.single),
                    ("concurrent", args.concurrency, args.rounds),
                ):
                    if repeats <= 0 or concurrency <= 0:
                        continue
                    scenario = run_scenario(
                        mf, fleet, name, ice, concurrency, repeats, args.room_size
                    )
                    rows.append(scenario.row())
                    failures.extend(scenario.failures)
                    print(json.dumps(scenario.row()), file=sys.stderr, flush=True)
            # Every transaction ends within 64*T1 (+ T4) of the last call.
            held = wait_released(mf, ("transactions", *CALL_RESOURCES), 45.0)
            if held:
                failures.append(f"MF still holds {held} 45 s after the last call")
        finally:
            fleet.close()
            code = mf.stop()
            if code != 0:
                failures.append(f"MF exited with {code}")
    load_after = os.getloadavg()
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, UE workers: {args.workers or 'none (UEs in the bench process)'}, "
        f"{args.room_size} UE(s) per room, "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(markdown(rows))
    for failure in failures[:20]:
        print(f"FAILURE: {failure}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
