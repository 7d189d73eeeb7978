"""SIP call rate benchmark: SIPp basic calls against one MF process, at a ramp of call rates.

Usage::

    .venv/bin/python bench/sipp_rate.py [--rates 50,100,150,200,250,300,400] [--seconds 10]
                                        [--call-ms 500] [--transport u1|t1] [--t1 0.5]
                                        [--keep-rate-limit] [--gc on|off|freeze]
                                        [--json FILE] [--profile FILE] [--profile-clock wall|cpu]
                                        [--baseline-src OTHER/src]

One MF subprocess (``MfProcess``: loopback, ``LOG__LEVEL=WARNING``, default SIP timers,
``MEDIA__SETUP_TIMEOUT=60`` so every call ends with SIPp's BYE, and the per-source rate limit
off, since SIPp is a single source like a P-CSCF; ``--keep-rate-limit`` keeps the default
500 requests/s). For each rate, SIPp runs ``tests/sipp/basic_call.xml`` (INVITE with the IMS
avatar offer, 200 with the checked SDP answer, ACK, ``--call-ms`` of call, BYE, 200) for
``--seconds`` worth of calls. Per step it records successful and failed calls, SIPp's
retransmissions, the INVITE-to-200 response time of every call (SIPp ``-trace_rtt``,
millisecond resolution; p50/p90/p99/max computed here), the MF's CPU seconds per call
(utime+stime from /proc/<pid>/stat) and SIPp's own CPU. The ramp stops at the first step with
a failed call. Then it waits until the MF holds nothing (up to 64*T1 + 10 s, + 60 s after a
failed step: calls SIPp abandoned end by the MF's own timers).

``--gc off|freeze`` runs the MF with Python's cyclic garbage collector disabled, or with every
object that exists after the imports frozen (``gc.freeze()``), to show what the collector costs
(an experiment, not a configuration). ``--profile FILE`` runs the MF under cProfile
(``python -m cProfile -o FILE -m avatar_mf serve``; the file is written when the MF exits); read
it with
``python -c "import pstats; pstats.Stats('FILE').sort_stats('cumtime').print_stats(30)"``.
``--profile-clock cpu`` times the profile by the MF's CPU time instead of the wall clock (on a
loaded machine the wall clock charges whatever function was running with the time the MF
waited for a core).

A/B in one run: ``--baseline-src DIR`` starts a second MF from another checkout's ``src``
(e.g. ``git worktree add /tmp/base main`` and ``--baseline-src /tmp/base/src``), and every rate
runs against the baseline first, then against this tree (rows ``baseline`` and ``this``), so
both see the same machine load. The ramp stops when either build fails a step.

Target: 200 calls/s sustained with p99 INVITE-to-200 under 50 ms. Prints figures only (no
assertions); exits 1 if a step failed or the MF did not go idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    baseline_python,
    cpu_profiling_python,
    cpu_seconds,
    markdown_table,
    mf_python,
    percentile,
    sipp_last_stats,
    sipp_load_command,
    start_mf,
)
from avatar_mf.testing.process import MfProcess

TARGET_RATE = 200
TARGET_P99_MS = 50.0


@dataclass
class Step:
    build: str
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    wall_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mf_cpu_s: float
    sipp_cpu_s: float
    exit_code: int
    errors: str

    @property
    def mf_cpu_ms_per_call(self) -> float:
        return 1000 * self.mf_cpu_s / max(self.calls, 1)

    @property
    def mf_cpu_share(self) -> float:
        """Share of one core the MF used during the step."""
        return self.mf_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def meets_target(self) -> bool:
        return self.failed == 0 and self.p99_ms < TARGET_P99_MS


def response_times(workdir: Path) -> list[float]:
    times = []
    for path in workdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines():
            fields = line.split(";")
            if len(fields) >= 2 and not line.startswith("Date"):
                times.append(float(fields[1]))
    return sorted(times)


def run_step(
    mf: MfProcess,
    build: str,
    rate: int,
    seconds: float,
    call_ms: int,
    transport: str,
    workdir: Path,
) -> Step:
    workdir.mkdir(parents=True)
    calls = int(rate * seconds)
    timeout = seconds + call_ms / 1000 + 60
    command = sipp_load_command(
        mf.sip_port,
        calls,
        rate,
        call_ms,
        transport,
        timeout,
        extra=("-trace_rtt", "-rtt_freq", "100"),
    )
    cpu_before = cpu_seconds(mf.proc.pid)
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    # The calls have ended (SIPp saw every BYE answered); count the MF's CPU up to here.
    mf_cpu = cpu_seconds(mf.proc.pid) - cpu_before
    stats = sipp_last_stats(workdir / "stats.csv")
    times = response_times(workdir)
    errors = workdir / "errors.log"
    return Step(
        build=build,
        rate=rate,
        calls=calls,
        successful=int(stats.get("SuccessfulCall(C)") or 0),
        failed=int(stats.get("FailedCall(C)") or 0) or (calls if not stats else 0),
        retransmissions=int(stats.get("Retransmissions(C)") or 0),
        wall_s=wall,
        p50_ms=percentile(times, 0.50),
        p90_ms=percentile(times, 0.90),
        p99_ms=percentile(times, 0.99),
        max_ms=times[-1] if times else float("nan"),
        mf_cpu_s=mf_cpu,
        sipp_cpu_s=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
        errors=errors.read_text(errors="replace")[:2000] if errors.exists() else "",
    )


def table(steps: Sequence[Step]) -> str:
    header = (
        "build", "calls/s", "calls", "ok", "failed", "SIPp retrans", "p50 ms", "p90 ms", "p99 ms",
        "max ms", "MF CPU ms/call", "MF CPU (1 core)", "SIPp CPU (1 core)",
    )  # fmt: skip
    rows = [
        (
            s.build,
            s.rate,
            s.calls,
            s.successful,
            s.failed,
            s.retransmissions,
            f"{s.p50_ms:.0f}",
            f"{s.p90_ms:.0f}",
            f"{s.p99_ms:.0f}",
            f"{s.max_ms:.0f}",
            f"{s.mf_cpu_ms_per_call:.2f}",
            f"{100 * s.mf_cpu_share:.0f}%",
            f"{100 * s.sipp_cpu_s / s.wall_s:.0f}%",
        )
        for s in steps
    ]
    return markdown_table(header, "l" + "r" * (len(header) - 1), rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,150,200,250,300,400")
    parser.add_argument("--seconds", type=float, default=10.0, help="calls per step = rate * s")
    parser.add_argument("--call-ms", type=int, default=500, help="time between ACK and BYE")
    parser.add_argument("--transport", default="u1", choices=["u1", "t1"])
    parser.add_argument("--t1", default="0.5", help="SIP T1 of the MF (seconds)")
    parser.add_argument("--keep-rate-limit", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=Path, help="run the MF under cProfile, stats here")
    parser.add_argument(
        "--profile-clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cProfile's timer: wall clock (its default) or the MF's CPU time",
    )
    parser.add_argument("--gc", default="on", choices=["on", "off", "freeze"])
    parser.add_argument(
        "--baseline-src", type=Path, help="another checkout's src: its MF runs each rate first"
    )
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp not found: install the Debian package sip-tester", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    settings = {
        "LOG__LEVEL": "WARNING",
        "MEDIA__SETUP_TIMEOUT": "60",
        "SIP__T1": args.t1,
    }
    if not args.keep_rate_limit:
        settings["SIP__RATE_LIMIT_PER_SOURCE"] = "0"
    workdir = Path(tempfile.mkdtemp(prefix="sipp-rate-"))
    if args.profile is not None and args.profile_clock == "cpu":
        python = cpu_profiling_python(args.profile.resolve(), workdir)
    else:
        python = mf_python(workdir, profile=args.profile, gc=args.gc)
    print(
        f"# SIPp call rate: {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, transport {args.transport}, {args.seconds:g} s per step, "
        f"{args.call_ms} ms calls, MF settings {settings}, gc {args.gc}, work dir {workdir}",
        flush=True,
    )
    steps: list[Step] = []
    mfs: dict[str, MfProcess] = {}
    codes: dict[str, int] = {}
    helds: dict[str, dict[str, int]] = {}
    idles: dict[str, dict[str, Any]] = {}
    try:
        if args.baseline_src is not None:
            base_dir = workdir / "baseline"
            base_dir.mkdir()
            mfs["baseline"] = start_mf(
                workdir / "mf-baseline",
                settings=settings,
                python=baseline_python(args.baseline_src.resolve(), base_dir),
            )
        mfs["this"] = start_mf(workdir / "mf", settings=settings, python=python)
        for rate in rates:
            failed_step = False
            for build, mf in mfs.items():
                step = run_step(
                    mf,
                    build,
                    rate,
                    args.seconds,
                    args.call_ms,
                    args.transport,
                    workdir / f"{build}-r{rate}",
                )
                steps.append(step)
                print(
                    f"{build} {rate} calls/s: {step.successful}/{step.calls} ok, "
                    f"{step.failed} failed, p50 {step.p50_ms:.0f} ms, p99 {step.p99_ms:.0f} ms, "
                    f"MF {step.mf_cpu_ms_per_call:.2f} ms CPU/call "
                    f"({100 * step.mf_cpu_share:.0f}% of a core), sipp exit {step.exit_code}",
                    flush=True,
                )
                if step.failed or step.exit_code != 0:
                    print(f"stopping the ramp: errors:\n{step.errors}", flush=True)
                    failed_step = True
                # Let the calls' dialogs and media go before the next step (transactions may
                # stay for 64*T1; their timers are part of the steady-state cost anyway).
                deadline = time.monotonic() + 30
                while mf.stats()["held"]["dialogs"] and time.monotonic() < deadline:
                    time.sleep(0.2)
            if failed_step:
                break
        # Calls SIPp gave up on end by the MF's timers: no ACK (64*T1) or no DTLS (60 s).
        for build, mf in mfs.items():
            wait = 64 * float(args.t1) + (70 if any(s.failed for s in steps) else 10)
            idles[build] = mf.wait_idle(wait)
            helds[build] = {k: v for k, v in idles[build]["held"].items() if v}
    finally:
        # Under cProfile the MF needs longer to end its calls and write the profile.
        for build, mf in mfs.items():
            codes[build] = mf.stop(timeout=120 if args.profile is not None else 15)
    print()
    print(table(steps))
    for build in mfs:
        mine = [s for s in steps if s.build == build]
        clean = [s for s in mine if s.failed == 0 and s.exit_code == 0]
        on_target = [s for s in clean if s.meets_target]
        print()
        print(
            f"{build}: highest rate with zero failed calls: "
            f"{max((s.rate for s in clean), default=0)} cps"
        )
        print(
            f"{build}: highest rate with zero failures and p99 < {TARGET_P99_MS:g} ms: "
            f"{max((s.rate for s in on_target), default=0)} cps (target {TARGET_RATE})"
        )
        print(
            f"{build}: MF after the ramp: held {helds.get(build) or 'nothing'}, exit code "
            f"{codes.get(build)}, calls {idles.get(build, {}).get('calls')}"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "settings": settings,
                    "transport": args.transport,
                    "seconds": args.seconds,
                    "call_ms": args.call_ms,
                    "steps": [
                        {**asdict(s), "mf_cpu_ms_per_call": s.mf_cpu_ms_per_call} for s in steps
                    ],
                    "held_after": helds,
                },
                indent=2,
            )
        )
    failed = any(s.failed or s.exit_code for s in steps)
    return 1 if failed or any(helds.values()) or any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
