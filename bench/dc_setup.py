"""Data channel setup benchmark: INVITE -> every data channel open, against one MF process.

Usage::

    .venv/bin/python bench/dc_setup.py [--concurrency 100] [--rounds 5] [--single 20]
                                       [--workers N] [--modes ice,no-ice] [--json FILE]
                                       [--baseline-src OTHER/src] [--profile FILE]
                                       [--profile-clock wall|cpu]

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

A/B in one run: ``--baseline-src DIR`` starts a second MF from another checkout's ``src``
(``mkdir /tmp/base && git archive main src | tar -x -C /tmp/base``, then
``--baseline-src /tmp/base/src``) next to this one;
every batch runs against both in turn, so both see the same machine load.

Prints figures only (no assertions); exits 1 if a call failed or the MF did not go idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    CALL_RESOURCES,
    HOST,
    SETUP_LIMIT,
    Fleet,
    baseline_python,
    cpu_profiling_python,
    cpu_seconds,
    default_workers,
    describe_machine,
    markdown_table,
    mf_python,
    percentile,
    start_mf,
    wait_released,
)

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


class _Worker:
    """The UEs of one worker process: a batch of calls, kept until ``teardown``."""

    def __init__(self) -> None:
        from avatar_mf.media.certificate import CertificateStore

        self.certificate = CertificateStore.generate(validity_days=2)
        self.calls: list[Any] = []

    async def batch(
        self, rooms: Sequence[str], ice: bool, port: int, start_at: float
    ) -> tuple[list[dict[str, Any]], float]:
        self.calls, results, cpu = await _run_batch(rooms, ice, port, start_at, self.certificate)
        return results, cpu

    async def teardown(self) -> None:
        calls, self.calls = self.calls, []
        await _hangup(calls)


class UeFleet:
    """Where the UEs run: worker processes, or this process (``workers == 0``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._fleet = Fleet(workers, _Worker) if workers else None
        self._certificate: Any = None
        if not workers:
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
        assert self._fleet is not None
        shares = [list(rooms[i :: self.workers]) for i in range(self.workers)]
        answers = self._fleet.ask(
            [("batch", share, ice, port, start_at) if share else None for share in shares]
        )
        results = [result for part, _ in answers for result in part]
        cpu = sum(part_cpu for _, part_cpu in answers)
        self._fleet.ask([("teardown",) if share else None for share in shares])
        return results, cpu

    async def _local_batch(
        self, rooms: Sequence[str], ice: bool, port: int, start_at: float
    ) -> tuple[list[dict[str, Any]], float]:
        calls, results, cpu = await _run_batch(rooms, ice, port, start_at, self._certificate)
        await _hangup(calls)
        return results, cpu

    def close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()


# --------------------------------------------------------------------------- figures


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
    build: str = "this"

    def row(self) -> dict[str, Any]:
        s = self.setups
        return {
            "build": self.build,
            "scenario": self.name,
            "ice": self.ice,
            "concurrency": self.concurrency,
            "room_size": self.room_size,
            "calls": self.calls,
            "failed": len(self.failures),
            "median_ms": round(statistics.median(s) * 1000, 1) if s else None,
            "p90_ms": round(percentile(s, 0.9) * 1000, 1) if s else None,
            "max_ms": round(max(s) * 1000, 1) if s else None,
            "answer_median_ms": (
                round(statistics.median(self.answers) * 1000, 1) if self.answers else None
            ),
            # Two decimals: the MF's CPU comes in 10 ms ticks, ~0.07 ms over 150 calls.
            "mf_cpu_ms_per_call": round(self.mf_cpu / self.calls * 1000, 2) if self.calls else None,
            "ue_cpu_ms_per_call": round(self.ue_cpu / self.calls * 1000, 2) if self.calls else None,
            "mf_idle_after": self.idle_after,
            "round_medians_ms": [round(m * 1000, 1) for m in self.round_medians],
        }


def run_batch(mf: Any, fleet: UeFleet, scenario: Scenario, batch: int) -> None:
    """One batch of ``scenario.concurrency`` calls against ``mf``, added to ``scenario``."""
    size = scenario.room_size
    rooms = [
        f"bench-{scenario.build}-{scenario.name}-{batch}-{i // size}"
        for i in range(scenario.concurrency)
    ]
    pid = mf.proc.pid
    cpu0 = cpu_seconds(pid)
    results, ue_cpu = fleet.batch(rooms, scenario.ice, mf.sip_port)
    scenario.mf_cpu += cpu_seconds(pid) - cpu0
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
    held = wait_released(mf, 30.0)
    if held:
        scenario.idle_after = False
        scenario.failures.append(f"MF still holds {held} after the batch")


def run_scenarios(
    mfs: dict[str, Any],
    fleet: UeFleet,
    name: str,
    ice: bool,
    concurrency: int,
    repeats: int,
    room_size: int,
) -> list[Scenario]:
    """``repeats`` batches against each MF of ``mfs`` (by build name), interleaved: batch 1 on
    each, then batch 2 on each, ..., so that a change in the machine's load hits every build
    alike."""
    scenarios = {b: Scenario(name, ice, concurrency, room_size, build=b) for b in mfs}
    for batch in range(repeats):
        for build, mf in mfs.items():
            run_batch(mf, fleet, scenarios[build], batch)
    return list(scenarios.values())


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "build", "offer", "UEs at once", "calls", "failed", "median", "p90", "max",
        "medians per round", "200 OK median", "MF CPU/call", "UE CPU/call",
    )  # fmt: skip
    lines = []
    for r in rows:
        rounds = r["round_medians_ms"]
        lines.append(
            (
                r.get("build", "this"),
                "ICE" if r["ice"] else "no ICE (IMS)",
                r["concurrency"],
                r["calls"],
                r["failed"],
                f"{r['median_ms']} ms",
                f"{r['p90_ms']} ms",
                f"{r['max_ms']} ms",
                f"{min(rounds)}-{max(rounds)} ms" if len(rounds) > 1 else "-",
                f"{r['answer_median_ms']} ms",
                f"{r['mf_cpu_ms_per_call']} ms",
                f"{r['ue_cpu_ms_per_call']} ms",
            )
        )
    return markdown_table(header, "llrrrrrrlrrr", lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100, help="UEs calling at once")
    parser.add_argument("--rounds", type=int, default=5, help="concurrent batches per mode")
    parser.add_argument("--single", type=int, default=20, help="sequential single-UE calls")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
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
    parser.add_argument(
        "--profile", type=Path, help="run the MF under cProfile (slower), stats written here"
    )
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time the profile by the wall clock or by the MF's CPU time (read it as shares)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        metavar="DIR",
        help="A/B: also run an MF from another checkout's src folder (e.g. a git worktree of "
        "main), side by side; every batch runs against both, interleaved (rows 'baseline' "
        "and 'this')",
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    load_before = os.getloadavg()
    fleet = UeFleet(args.workers)  # first: a failure here must not leave an MF behind
    with tempfile.TemporaryDirectory(prefix="dc-setup-") as tmp:
        mfs: dict[str, Any] = {}
        try:
            if args.baseline_src is not None:
                workdir = Path(tmp) / "baseline"
                workdir.mkdir()
                mfs["baseline"] = start_mf(
                    workdir,
                    python=baseline_python(args.baseline_src.resolve(), workdir),
                    on_failure=fleet.close,
                )
            workdir = Path(tmp) / "this"
            workdir.mkdir()
            if args.profile is not None and args.profile_clock == "cpu":
                python = cpu_profiling_python(args.profile.resolve(), workdir)
            else:
                python = mf_python(workdir, profile=args.profile)
            mfs["this"] = start_mf(workdir, python=python, on_failure=fleet.close)
            for mode in modes:
                ice = mode == "ice"
                if args.warmup > 0:
                    for warmup in run_scenarios(
                        mfs, fleet, "warmup", ice, args.concurrency, args.warmup, args.room_size
                    ):
                        failures.extend(warmup.failures)  # a warm-up call must not fail either
                for name, concurrency, repeats in (
                    ("single", 1, args.single),
                    ("concurrent", args.concurrency, args.rounds),
                ):
                    if repeats <= 0 or concurrency <= 0:
                        continue
                    for scenario in run_scenarios(
                        mfs, fleet, name, ice, concurrency, repeats, args.room_size
                    ):
                        rows.append(scenario.row())
                        failures.extend(scenario.failures)
                        print(json.dumps(scenario.row()), file=sys.stderr, flush=True)
            # Every transaction ends within 64*T1 (+ T4) of the last call.
            for build, mf in mfs.items():
                held = wait_released(mf, 45.0, ("transactions", *CALL_RESOURCES))
                if held:
                    failures.append(f"MF ({build}) still holds {held} 45 s after the last call")
        finally:
            fleet.close()
            for build, mf in mfs.items():
                code = mf.stop(timeout=120 if args.profile is not None else 15)
                if code != 0:
                    failures.append(f"MF ({build}) exited with {code}")
    load_after = os.getloadavg()
    print(
        f"\n{describe_machine()}, UE workers: {args.workers or 'none (UEs in the bench process)'}, "
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
