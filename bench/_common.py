"""Helpers the benchmark scripts share: the MF process, UE worker processes, /proc figures,
percentiles and markdown tables.

Imported as ``_common`` by the scripts beside it (``python bench/<script>.py`` puts this folder
first on ``sys.path``; spawned worker processes inherit that path). Linux only (/proc).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import sys
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SETUP_LIMIT = 30.0
"""Seconds a UE waits for its answer and for its channels before counting a failure."""

CALL_RESOURCES = ("dialogs", "pending_invites", "call_sessions", "dc_sessions", "media_sockets")
"""What a finished call must have released at once. Transactions are not in the list: with the
default T1 (0.5 s) they rightly outlive the call by up to 64*T1 = 32 s (RFC 3261 Timers J, L)."""


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of the sorted values (nearest index); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU of the machine (/proc/stat): other load shows."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def run_queue_wait(pid: int) -> float:
    """Seconds the process's main thread (the MF's event loop) waited for a CPU while runnable
    (/proc/<pid>/schedstat): high when other processes take the cores."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; ``align`` has one character a column: ``l`` left, ``r`` right."""
    assert len(align) == len(header)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine() -> str:
    """``CPython 3.11.2, 2 CPUs``: the first words of every report."""
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"


def default_workers(at_most: int | None = None) -> int:
    """UE worker processes: one per core but one (the MF, one asyncio process, keeps a core to
    itself), at least 1 and at most ``at_most``."""
    workers = max(1, (os.cpu_count() or 2) - 1)
    return workers if at_most is None else min(at_most, workers)


# --------------------------------------------------------------------------- the MF


def profiling_python(path: Path, workdir: Path) -> str:
    """An executable that runs ``python -m cProfile -o path <args>`` (MfProcess's python)."""
    wrapper = workdir / "python-cprofile"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cProfile -o "{path}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


_CPU_PROFILE_RUNNER = """
import cProfile, runpy, sys, time
path = sys.argv[1]
sys.argv = ["avatar_mf", *sys.argv[4:]]  # drop the path and "-m avatar_mf"
profiler = cProfile.Profile(time.process_time)
profiler.enable()
try:
    runpy.run_module("avatar_mf", run_name="__main__", alter_sys=True)
finally:
    profiler.disable()
    profiler.dump_stats(path)
"""


def cpu_profiling_python(path: Path, workdir: Path) -> str:
    """An executable that runs the MF under cProfile timed by the process's CPU time, stats
    written to ``path`` (MfProcess's python): on a loaded machine the wall clock charges a
    function with the time the MF waited for a core (a ``sendto`` that wakes the peer shows as
    tens of microseconds). The CPU clock costs more per call: read its output as call counts
    and shares."""
    runner = workdir / "cpu_profile_runner.py"
    runner.write_text(_CPU_PROFILE_RUNNER)
    wrapper = workdir / "python-cpu-profile"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{runner}" "{path}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


_GC_RUNNER = """
import gc, runpy, sys
import avatar_mf.cli, avatar_mf.node.app  # the imports first: they are what freeze keeps
if sys.argv[1] == "off":
    gc.disable()
else:
    gc.collect()
    gc.freeze()
sys.argv = ["avatar_mf", *sys.argv[4:]]  # drop the mode and "-m avatar_mf"
runpy.run_module("avatar_mf", run_name="__main__", alter_sys=True)
"""


def gc_python(mode: str, workdir: Path) -> str:
    """An executable that runs the MF with the cyclic GC off or after ``gc.freeze()`` (an
    experiment, not a way to run the MF)."""
    runner = workdir / "gc_runner.py"
    runner.write_text(_GC_RUNNER)
    wrapper = workdir / f"python-gc-{mode}"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{runner}" {mode} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def baseline_python(src: Path, workdir: Path) -> str:
    """An executable that runs this interpreter with ``src`` (another checkout's ``src``
    folder) first on the import path: the MF it starts is that build."""
    if not (src / "avatar_mf" / "__init__.py").exists():
        raise SystemExit(f"--baseline-src {src}: no avatar_mf package there")
    wrapper = workdir / "python-baseline"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{src}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def mf_python(workdir: Path, *, profile: Path | None = None, gc: str = "on") -> str:
    """The python the MF runs with: under cProfile (``profile``), with the GC off or frozen
    (``gc``), or this interpreter."""
    if profile is not None:
        return profiling_python(profile.resolve(), workdir)
    if gc != "on":
        return gc_python(gc, workdir)
    return sys.executable


def start_mf(
    workdir: Path,
    *,
    settings: dict[str, str] | None = None,
    python: str | None = None,
    on_failure: Callable[[], None] | None = None,
) -> Any:
    """An MF subprocess (``MfProcess``) on loopback, ``LOG__LEVEL=WARNING`` unless
    ``settings`` say otherwise; ``on_failure`` (closing the UE workers) runs if it does not
    start."""
    from avatar_mf.testing.process import MfProcess

    try:
        return MfProcess.start(
            workdir,
            settings={"LOG__LEVEL": "WARNING", **(settings or {})},
            python=python or sys.executable,
        )
    except BaseException:
        if on_failure is not None:
            on_failure()
        raise


#: SIPp's basic call (INVITE with the IMS avatar offer, 200 with the checked answer, ACK, BYE).
BASIC_CALL = Path(__file__).resolve().parents[1] / "tests" / "sipp" / "basic_call.xml"


def sipp_load_command(
    sip_port: int,
    calls: int,
    rate: int,
    call_ms: int,
    transport: str,
    timeout: float,
    extra: Sequence[str] = (),
) -> list[str]:
    """SIPp placing ``calls`` basic calls at ``rate`` per second against the MF at
    ``sip_port``, run in a work directory that receives ``stats.csv`` and ``errors.log``."""
    import shutil

    from avatar_mf.testing.process import free_port

    return [
        shutil.which("sipp") or "sipp",
        "-sf", str(BASIC_CALL),
        "-t", transport,
        "-i", HOST,
        "-p", str(free_port()),
        "-m", str(calls),
        "-r", str(rate),
        "-l", str(max(1000, rate * 20)),
        "-d", str(call_ms),
        "-recv_timeout", "10000",
        "-nostdin",
        "-timeout", f"{timeout:g}s",
        "-timeout_error",
        "-trace_stat", "-stf", "stats.csv", "-fd", "1",
        "-trace_err", "-error_file", "errors.log",
        *extra,
        f"{HOST}:{sip_port}",
    ]  # fmt: skip


def sipp_last_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` file, by column name (empty if none yet)."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


def wait_released(mf: Any, timeout: float, keys: Sequence[str] = CALL_RESOURCES) -> dict[str, int]:
    """Poll /stats until ``keys`` of ``held`` are all 0; return what is still held."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        held = {k: v for k, v in mf.stats()["held"].items() if k in keys and v}
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


# --------------------------------------------------------------------------- UE workers


async def _serve(conn: Connection, make_worker: Callable[[], Any]) -> None:
    """A worker process's loop: each message ``(kind, *args)`` calls ``await
    worker.<kind>(*args)`` and answers ``(kind, result)``; ``("stop",)`` ends it."""
    loop = asyncio.get_running_loop()
    worker = make_worker()
    conn.send(("ready", None))
    while True:
        kind, *args = await loop.run_in_executor(None, conn.recv)
        if kind == "stop":
            return
        conn.send((kind, await getattr(worker, kind)(*args)))


def _worker_process(make_worker: Callable[[], Any], conn: Connection) -> None:
    import uvloop

    uvloop.run(_serve(conn, make_worker))


class Fleet:
    """UE worker processes (spawned, one uvloop each), each running a ``make_worker()`` object
    whose async methods are called by message: ``ask([("setup", ...), None, ...])`` calls
    ``setup`` in the first worker (``None``: that worker sits this one out).

    ``make_worker`` must be importable by name (a class at the top of the script): spawned
    processes import the script again to find it."""

    def __init__(self, workers: int, make_worker: Callable[[], Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_process, args=(make_worker, child), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            assert conn.recv()[0] == "ready"

    def send(self, messages: Sequence[tuple[Any, ...] | None]) -> list[Connection]:
        """Send each worker its message; the workers that got one, to :meth:`receive` from."""
        busy = [c for c, m in zip(self.conns, messages, strict=True) if m is not None]
        for conn, message in zip(self.conns, messages, strict=True):
            if message is not None:
                conn.send(message)
        return busy

    @staticmethod
    def receive(busy: Sequence[Connection]) -> list[Any]:
        """The answers of the workers :meth:`send` returned, in order."""
        return [conn.recv()[1] for conn in busy]

    def ask(self, messages: Sequence[tuple[Any, ...] | None]) -> list[Any]:
        return self.receive(self.send(messages))

    def close(self) -> None:
        for conn in self.conns:
            conn.send(("stop",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
