"""Real-peer tests: SIPp and plain sockets against a real MF subprocess, on loopback only.

Fixtures and helpers:

* ``mf``: a running MF node (:class:`avatar_mf.testing.process.MfProcess`) with short timers.
  Extra settings come from ``mf_settings`` markers (a module's ``pytestmark`` and the test's
  own, merged, the test's winning)::

      @pytest.mark.mf_settings({"SIP__ANSWER_DELAY": "1"})
      def test_cancel(mf, run_sipp): ...

  Nodes are started on first use and shared by the tests of a module that ask for the same
  settings (starting one costs ~1 s). A node is handed out only when it holds nothing, so
  tests compare counter deltas (:func:`stats_delta`), never absolute counters. Any ERROR line or
  traceback the node logs during a test fails that test.
* ``run_sipp(scenario, mf, ...)``: runs SIPp (``-nostdin``, bounded by ``-m`` and ``-timeout``
  with ``-timeout_error``), with its statistics, errors, response times and (for small runs)
  messages traced into the test's tmp_path; returns a :class:`SippResult`.
* :func:`assert_idle`: waits until the node holds no dialog, transaction, call or media
  resource, and fails with what is still held.

Timers: SIP T1 is 25 ms, so every "64*T1" timer (RFC 3261 Timer H, J, L: how long transactions
outlive a call) is 1.6 s and the node is idle soon after the last call. T1 also paces the 2xx
retransmission (13.3.1.4): a 200 is resent after 25 ms without ACK, so every scenario sends its
ACK right after the 200 step (SIPp answers a retransmitted 2xx with the ACK that follows it)
and the node gives up on an unacknowledged 200 after 1.6 s. T4 (Timers I, K) is 0.5 s. SIPp
cannot do DTLS, so ``media.setup_timeout`` is 2 s: longer than every scenario's call (which
ends with the UE's BYE) and short enough for the MF to release the data channel quickly.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.testing.process import MfProcess, free_port

HOST = "127.0.0.1"
SIPP_DIR = Path(__file__).resolve().parents[1] / "sipp"
FIXTURE_SDP = (
    Path(__file__).resolve().parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
)

FAST_SETTINGS: Mapping[str, str] = {
    "SIP__T1": "0.025",
    "SIP__T4": "0.5",
    "MEDIA__SETUP_TIMEOUT": "2",
    "LOG__LEVEL": "INFO",
}
"""Settings of every node these tests start (see the module docstring)."""

IDLE_TIMEOUT = 10.0
"""Seconds a node gets to release everything after the last call (64*T1 = 1.6 s suffices)."""

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]
"""SIPp transport modes: one UDP socket, one TCP connection."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mf_settings(settings): AVATAR_MF_* overrides (without the prefix) for the mf fixture",
    )


# --------------------------------------------------------------------------- MF nodes


def _log_problems(text: str) -> list[str]:
    """Lines of an MF log that show a bug: ERROR/CRITICAL records and tracebacks."""
    return [
        line
        for line in text.splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "Traceback" in line
    ]


class MfPool:
    """MF nodes keyed by their settings, started on demand, stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._nodes: dict[tuple[tuple[str, str], ...], MfProcess] = {}
        self._started = 0

    def get(self, settings: Mapping[str, str]) -> MfProcess:
        key = tuple(sorted({**FAST_SETTINGS, **settings}.items()))
        node = self._nodes.get(key)
        if node is not None:
            alive = node.proc.poll() is None
            if alive and _is_idle(node.wait_idle(IDLE_TIMEOUT)):
                return node
            # A failed test left it busy (or dead): the next test gets a fresh node.
            node.stop()
            del self._nodes[key]
        self._started += 1
        node = MfProcess.start(self._workdir / f"mf{self._started}", settings=dict(key))
        self._nodes[key] = node
        return node

    def close(self) -> list[str]:
        """Stop every node; return what went wrong (non-zero exit codes)."""
        problems = []
        for node in self._nodes.values():
            code = node.stop()
            if code != 0:
                problems.append(f"MF {node.env} exited with {code}:\n{node.log_text()[-3000:]}")
        self._nodes.clear()
        return problems


def _is_idle(stats: Mapping[str, Any]) -> bool:
    return all(v == 0 for v in stats["held"].values())


@pytest.fixture(scope="module")
def mf_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfPool]:
    pool = MfPool(tmp_path_factory.mktemp("mf"))
    yield pool
    problems = pool.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def mf(request: pytest.FixtureRequest, mf_pool: MfPool) -> Iterator[MfProcess]:
    settings: dict[str, str] = {}
    # Module-level markers first, so a test's own marker overrides single settings.
    for marker in reversed(list(request.node.iter_markers("mf_settings"))):
        settings.update(marker.args[0])
    node = mf_pool.get(settings)
    log_start = len(node.log_text())
    yield node
    assert node.proc.poll() is None, f"the MF died:\n{node.log_text()[-3000:]}"
    problems = _log_problems(node.log_text()[log_start:])
    assert not problems, "the MF logged errors:\n" + "\n".join(problems[:20])


def stats_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> Counter[str]:
    """How much each counter of /stats (``calls`` and ``sip``) grew between two snapshots."""
    delta: Counter[str] = Counter()
    for section in ("calls", "sip"):
        for name, value in after[section].items():
            grown = value - before[section].get(name, 0)
            if grown:
                delta[name] = grown
    return delta


def assert_idle(mf: MfProcess, timeout: float = IDLE_TIMEOUT) -> dict[str, Any]:
    """Wait until ``mf`` holds nothing; fail with what it still holds. Returns /stats."""
    stats = mf.wait_idle(timeout)
    held = {name: n for name, n in stats["held"].items() if n}
    assert not held, f"the MF still holds {held} {timeout} s after the calls ended"
    return stats


# --------------------------------------------------------------------------- SIPp


@dataclass(frozen=True)
class TracedMessage:
    """One message of SIPp's -trace_msg log."""

    at: datetime
    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]

    def header(self, name: str) -> str | None:
        prefix = name.lower() + ":"
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                return None
            if line.lower().startswith(prefix):
                return line[len(prefix) :].strip()
        return None


_TRACE_SPLIT = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", re.MULTILINE)


def parse_message_trace(text: str) -> list[TracedMessage]:
    parts = _TRACE_SPLIT.split(text)
    messages = []
    for stamp, chunk in zip(parts[1::2], parts[2::2], strict=True):
        head, _, body = chunk.partition("\n\n")
        messages.append(
            TracedMessage(
                at=datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f"),
                sent=" sent " in head,
                text=body.strip("\n"),
            )
        )
    return messages


@dataclass(frozen=True)
class SippResult:
    returncode: int
    successful: int
    failed: int
    stats: dict[str, str]
    errors: str
    response_times_ms: list[float]
    messages: list[TracedMessage]
    output: str
    command: list[str]
    elapsed: float
    workdir: Path = field(repr=False)

    def describe(self) -> str:
        failures = {
            name[: -len("(C)")]: value
            for name, value in self.stats.items()
            if name.startswith("Failed") and name.endswith("(C)") and value not in ("", "0")
        }
        return (
            f"sipp exit code {self.returncode}, {self.successful} successful, "
            f"{self.failed} failed calls {failures} in {self.elapsed:.1f} s\n"
            f"command: {' '.join(self.command)}\n"
            f"error log ({self.workdir}):\n{self.errors[-4000:]}\n"
            f"output:\n{self.output[-1500:]}"
        )


def assert_calls_ok(result: SippResult, calls: int) -> None:
    """SIPp exited 0 with exactly ``calls`` successful and no failed call."""
    assert (result.returncode, result.successful, result.failed) == (0, calls, 0), result.describe()


def _last_stats_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _response_times(workdir: Path) -> list[float]:
    times = []
    for path in workdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines():
            fields = line.split(";")
            if len(fields) >= 2 and not line.startswith("Date"):
                times.append(float(fields[1]))
    return times


def sipp_command(
    scenario: str,
    port: int,
    *,
    transport: str,
    calls: int,
    rate: float,
    limit: int,
    call_length_ms: int,
    timeout: float,
    trace_messages: bool,
    set_vars: Mapping[str, str],
    extra: Sequence[str],
) -> list[str]:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("sipp not found: install the Debian package sip-tester (make sysdeps)")
    command = [
        sipp,
        "-sf", str(SIPP_DIR / scenario),
        "-t", transport,
        "-i", HOST,
        "-p", str(free_port()),
        "-m", str(calls),
        "-r", f"{rate:g}",
        "-l", str(limit),
        "-d", str(call_length_ms),
        "-nostdin",
        "-timeout", f"{timeout:g}s",
        "-timeout_error",
        "-trace_stat", "-stf", "stats.csv", "-fd", "1",
        "-trace_err", "-error_file", "errors.log",
        "-trace_rtt", "-rtt_freq", "1",
    ]  # fmt: skip
    if trace_messages:
        command += ["-trace_msg", "-message_file", "messages.log"]
    for name, value in set_vars.items():
        command += ["-set", name, value]
    return [*command, *extra, f"{HOST}:{port}"]


def sipp_run(
    workdir: Path,
    scenario: str,
    mf: MfProcess,
    *,
    transport: str = "u1",
    calls: int = 1,
    rate: float = 10.0,
    limit: int | None = None,
    call_length_ms: int = 0,
    timeout: float | None = None,
    trace_messages: bool | None = None,
    set_vars: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> SippResult:
    """Run ``tests/sipp/<scenario>`` against ``mf`` and collect what SIPp recorded."""
    workdir.mkdir(parents=True)
    if timeout is None:
        timeout = calls / rate + call_length_ms / 1000 + 15
    command = sipp_command(
        scenario,
        mf.sip_port,
        transport=transport,
        calls=calls,
        rate=rate,
        limit=limit if limit is not None else max(calls, 1),
        call_length_ms=call_length_ms,
        timeout=timeout,
        trace_messages=calls <= 20 if trace_messages is None else trace_messages,
        set_vars=set_vars or {},
        extra=extra,
    )
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=timeout + 20
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"sipp did not exit within {timeout + 20} s: {' '.join(command)}\n{exc}")
    elapsed = time.monotonic() - started
    stats = _last_stats_row(workdir / "stats.csv")
    errors_log = workdir / "errors.log"
    messages_log = workdir / "messages.log"
    return SippResult(
        returncode=proc.returncode,
        successful=int(stats.get("SuccessfulCall(C)") or 0),
        failed=int(stats.get("FailedCall(C)") or 0),
        stats=stats,
        errors=errors_log.read_text(errors="replace") if errors_log.exists() else "",
        response_times_ms=_response_times(workdir),
        messages=(
            parse_message_trace(messages_log.read_text(errors="replace"))
            if messages_log.exists()
            else []
        ),
        output=proc.stdout + proc.stderr,
        command=command,
        elapsed=elapsed,
        workdir=workdir,
    )


@pytest.fixture
def run_sipp(tmp_path: Path) -> Callable[..., SippResult]:
    """``run_sipp("basic_call.xml", mf, transport="t1", calls=2)``: see :func:`sipp_run`."""
    runs = iter(range(1, 1000))

    def run(scenario: str, mf: MfProcess, **options: Any) -> SippResult:
        return sipp_run(tmp_path / f"sipp{next(runs)}", scenario, mf, **options)

    return run
