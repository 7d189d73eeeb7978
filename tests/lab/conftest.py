"""The IMS lab topology for tests: MF nodes behind a real Kamailio, SIPp as the UE.

* ``lab(settings=..., nodes=2, ...)`` (fixture, a factory): starts MF subprocesses
  (:class:`avatar_mf.testing.process.MfProcess`, free loopback ports, started in parallel) and a
  Kamailio in front of them (:class:`avatar_mf.testing.kamailio.KamailioProxy`, the config of
  ``docker/kamailio/kamailio.cfg``); returns a :class:`Lab`. Everything is stopped at the end of
  the test, and any ERROR line or traceback in a node's log fails the test.
* :meth:`Lab.sipp` / :meth:`Lab.start_sipp`: SIPp against the proxy (``-nostdin``, bounded by
  ``-m`` and ``-timeout`` with ``-timeout_error``), statistics, errors and messages traced into
  the test's directory.

Kamailio (Debian package ``kamailio``) and SIPp (``sip-tester``) are installed by ``make
sysdeps``, which ``make test`` runs first. When the tests run on their own and a tool is
missing, they try to install it (as root, or with passwordless sudo) and are skipped, with the
reason, only when that fails.

MF timers: T1 is 50 ms, so transactions linger 64*T1 = 3.2 s after a call and the 2xx is
retransmitted quickly if an ACK is lost. SIPp cannot do DTLS, so every call's data channel
fails after ``media.setup_timeout`` (3 s here, longer than any call these tests hold), and the
MF then ends the call with its own BYE.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.testing.kamailio import KamailioProxy, find_kamailio, find_kamcmd
from avatar_mf.testing.lab import two_leg_settings
from avatar_mf.testing.process import MfProcess, free_port

HOST = "127.0.0.1"
LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parents[1]
DOCKER_DIR = REPO / "docker"

LAB_SETTINGS: Mapping[str, str] = {
    "SIP__T1": "0.05",
    "MEDIA__SETUP_TIMEOUT": "3",
    "LIFECYCLE__DRAIN_TIMEOUT": "5",
    "LOG__LEVEL": "INFO",
}
"""Settings of every MF node of the lab (a test adds its own)."""


# --------------------------------------------------------------------------- system packages

_install_attempted: dict[str, str | None] = {}


def _apt_install(package: str) -> str | None:
    """Install a Debian package; return None on success, else why it failed."""
    if package in _install_attempted:
        return _install_attempted[package]
    apt = shutil.which("apt-get")
    if apt is None:
        reason: str | None = "no apt-get on this system"
    else:
        prefix: list[str] = []
        if os.geteuid() != 0:
            sudo = shutil.which("sudo")
            ok = sudo is not None and subprocess.run(
                [sudo, "-n", "true"], capture_output=True, check=False
            ).returncode == 0
            prefix = [sudo] if ok and sudo is not None else []
        if os.geteuid() != 0 and not prefix:
            reason = "not root and no passwordless sudo"
        else:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install = [*prefix, apt, "install", "-y", "-qq", package]
            try:
                done = subprocess.run(install, capture_output=True, env=env, timeout=600)
                if done.returncode != 0:  # stale or missing package lists: update once, retry
                    subprocess.run(
                        [*prefix, apt, "update", "-qq"], capture_output=True, timeout=600
                    )
                    done = subprocess.run(install, capture_output=True, env=env, timeout=600)
                reason = (
                    None
                    if done.returncode == 0
                    else f"apt-get install {package} failed: "
                    + done.stderr.decode(errors="replace")[-500:]
                )
            except subprocess.TimeoutExpired:
                reason = f"apt-get install {package} timed out"
    _install_attempted[package] = reason
    return reason


def _require(find: Callable[[], str | None], command: str, package: str) -> str:
    path = find()
    if path is None:
        reason = _apt_install(package)
        path = find()
        if path is None:
            pytest.skip(
                f"{command} is not installed and could not be installed ({reason}); "
                f"install the Debian package {package} (make sysdeps does)"
            )
    return path


def _find_sipp() -> str | None:
    return shutil.which("sipp")


@pytest.fixture(scope="session")
def lab_tools() -> dict[str, str]:
    """Paths of kamailio, kamcmd and sipp; installs missing packages or skips."""
    return {
        "kamailio": _require(find_kamailio, "kamailio", "kamailio"),
        "kamcmd": _require(find_kamcmd, "kamcmd", "kamailio"),
        "sipp": _require(_find_sipp, "sipp", "sip-tester"),
    }


# --------------------------------------------------------------------------- SIPp


@dataclass(frozen=True)
class Message:
    """One message of SIPp's -trace_msg log."""

    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def headers(self, name: str) -> list[str]:
        """Values of every header line called ``name``, in order (no compact forms)."""
        prefix = name.lower() + ":"
        values = []
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                break
            if line.lower().startswith(prefix):
                values.append(line[len(prefix) :].strip())
        return values


_TRACE_SPLIT = re.compile(r"^-{20,} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\n", re.MULTILINE)


def parse_messages(text: str) -> list[Message]:
    messages = []
    for chunk in _TRACE_SPLIT.split(text)[1:]:
        head, _, body = chunk.partition("\n\n")
        if body.strip():
            messages.append(Message(sent=" sent " in head, text=body.strip("\n")))
    return messages


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    errors: str
    messages: list[Message]
    output: str
    command: list[str]
    elapsed: float
    workdir: Path = field(repr=False)

    def describe(self) -> str:
        return (
            f"sipp exit code {self.returncode}: {self.successful} successful, {self.failed} "
            f"failed calls in {self.elapsed:.1f} s\ncommand: {' '.join(self.command)}\n"
            f"errors ({self.workdir}):\n{self.errors[-3000:]}\noutput:\n{self.output[-1000:]}"
        )

    def received(self, first_line_start: str) -> list[Message]:
        """Messages SIPp received whose first line starts with ``first_line_start``."""
        return [
            m for m in self.messages if not m.sent and m.first_line.startswith(first_line_start)
        ]


def assert_calls_ok(result: SippResult, calls: int) -> None:
    assert (result.returncode, result.successful, result.failed) == (0, calls, 0), (
        result.describe()
    )


def _last_stats_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


@dataclass
class SippRun:
    """A SIPp process started by :meth:`Lab.start_sipp`; :meth:`wait` collects the result."""

    proc: subprocess.Popen[str]
    command: list[str]
    workdir: Path
    timeout: float
    started: float

    def wait(self) -> SippResult:
        try:
            out, _ = self.proc.communicate(timeout=self.timeout + 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            pytest.fail(f"sipp did not exit within {self.timeout + 20} s: {self.command}")
        stats = _last_stats_row(self.workdir / "stats.csv")
        errors = self.workdir / "errors.log"
        messages = self.workdir / "messages.log"
        return SippResult(
            returncode=self.proc.returncode,
            successful=int(stats.get("SuccessfulCall(C)") or 0),
            failed=int(stats.get("FailedCall(C)") or 0),
            errors=errors.read_text(errors="replace") if errors.exists() else "",
            messages=(
                parse_messages(messages.read_text(errors="replace")) if messages.exists() else []
            ),
            output=out,
            command=self.command,
            elapsed=time.monotonic() - self.started,
            workdir=self.workdir,
        )


def _with_sink_port(scenario: Path, media_port: int, workdir: Path) -> Path:
    """A copy of ``scenario`` whose SDP data channel port is SIPp's own media socket.

    The MF sends its DTLS ClientHello to the offer's data channel address, and SIPp answers
    nothing. The scenarios offer 127.0.0.1:49180, a port in Linux's ephemeral range: on a host
    running many MF nodes (these tests, other test runs), it can be another MF's data channel
    socket, which answers, fails the handshake, and the MF ends the call with BYE at once.
    SIPp binds ``-mp`` itself and drops what arrives there.
    """
    text = scenario.read_text()
    assert "m=application 49180 " in text, f"{scenario}: no data channel line on port 49180"
    copy = workdir / scenario.name
    copy.write_text(text.replace("m=application 49180 ", f"m=application {media_port} "))
    return copy


# --------------------------------------------------------------------------- the lab


def _log_problems(text: str) -> list[str]:
    """Lines of an MF log that show a bug: ERROR/CRITICAL records and tracebacks."""
    return [
        line
        for line in text.splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "Traceback" in line
    ]


@dataclass
class Lab:
    """MF nodes behind one Kamailio. ``nodes[i]`` listens on ``ports[i]``."""

    workdir: Path
    tools: dict[str, str]
    settings: dict[str, str]
    nodes: list[MfProcess]
    ports: list[int]
    proxy: KamailioProxy
    _runs: int = 0
    retired: list[MfProcess] = field(default_factory=list)

    def uri(self, index: int) -> str:
        """The dispatcher URI of node ``index``."""
        return f"sip:{HOST}:{self.ports[index]}"

    def answered(self) -> list[int]:
        """calls_answered of every node (from /stats; the node must be running)."""
        return [int(node.stats()["calls"]["calls_answered"]) for node in self.nodes]

    def restart_node(self, index: int) -> MfProcess:
        """Start a fresh MF on node ``index``'s SIP port (after it exited)."""
        port = self.ports[index]
        self.retired.append(self.nodes[index])
        node = MfProcess.start(
            self.workdir / f"mf{index}-restart{len(self.retired)}",
            settings={**self.settings, "SIP__PORT": str(port)},
        )
        # MfProcess.start records the free port it picked, not the SIP__PORT override.
        node.sip_port = port
        self.nodes[index] = node
        return node

    def start_sipp(
        self,
        scenario: Path,
        *,
        calls: int = 1,
        rate: float = 10.0,
        limit: int | None = None,
        transport: str = "u1",
        call_length_ms: int = 100,
        timeout: float | None = None,
        trace_messages: bool = True,
    ) -> SippRun:
        """Start SIPp with ``scenario`` against the proxy; collect with ``.wait()``."""
        self._runs += 1
        workdir = self.workdir / f"sipp{self._runs}"
        workdir.mkdir(parents=True)
        if timeout is None:
            timeout = calls / rate + call_length_ms / 1000 + 20
        media_port = free_port()
        command = [
            self.tools["sipp"],
            "-sf", str(_with_sink_port(scenario, media_port, workdir)),
            "-t", transport,
            "-i", HOST,
            "-p", str(free_port()),
            "-mp", str(media_port),
            "-m", str(calls),
            "-r", f"{rate:g}",
            "-l", str(limit if limit is not None else calls),
            "-d", str(call_length_ms),
            "-nostdin",
            "-timeout", f"{timeout:g}s",
            "-timeout_error",
            "-trace_stat", "-stf", "stats.csv", "-fd", "1",
            "-trace_err", "-error_file", "errors.log",
        ]  # fmt: skip
        if trace_messages:
            command += ["-trace_msg", "-message_file", "messages.log"]
        command.append(self.proxy.address)
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return SippRun(proc, command, workdir, timeout, time.monotonic())

    def sipp(self, scenario: Path, **options: Any) -> SippResult:
        """Run SIPp to the end; see :meth:`start_sipp`."""
        return self.start_sipp(scenario, **options).wait()

    def close(self) -> list[str]:
        """Stop everything; return the problems found in the MF logs."""
        problems = []
        for node in [*self.nodes, *self.retired]:
            if node.proc.poll() is None:
                node.stop(signal.SIGINT)  # the short drain: lifecycle.sigint_drain_timeout
            if node.proc.returncode == -signal.SIGKILL:
                continue
            found = _log_problems(node.log_text())
            if found:
                problems.append(f"MF {node.workdir} logged:\n" + "\n".join(found[:20]))
        self.proxy.stop()
        return problems


@pytest.fixture
def lab(tmp_path: Path, lab_tools: dict[str, str]) -> Iterator[Callable[..., Lab]]:
    """``lab(settings={...}, nodes=2, fr_timer_ms=2000, two_legs=False)``: start the topology
    (see above); ``two_legs`` (True, or the transport of second legs, "udp" or "tcp"): the
    nodes place two-leg calls through the proxy (users matching ``room.*`` are rooms; without
    it every Request-URI is a room, the embedded default)."""
    labs: list[Lab] = []

    def start(
        *,
        settings: Mapping[str, str] | None = None,
        nodes: int = 2,
        fr_timer_ms: int = 2000,
        ping_interval: int = 1,
        two_legs: bool | str = False,
    ) -> Lab:
        proxy_port = free_port()
        transport = two_legs if isinstance(two_legs, str) else "udp"
        legs = two_leg_settings(f"{HOST}:{proxy_port}", transport) if two_legs else {}
        merged = {**LAB_SETTINGS, **legs, **(settings or {})}
        workdir = tmp_path / f"lab{len(labs)}"
        with ThreadPoolExecutor(nodes) as pool:
            started = list(
                pool.map(
                    lambda i: MfProcess.start(workdir / f"mf{i}", settings=merged), range(nodes)
                )
            )
        try:
            proxy = KamailioProxy.start(
                workdir / "kamailio",
                [f"{HOST}:{node.sip_port}" for node in started],
                port=proxy_port,
                fr_timer_ms=fr_timer_ms,
                ping_interval=ping_interval,
                kamailio=lab_tools["kamailio"],
            )
        except Exception:
            for node in started:
                node.kill()
            raise
        the_lab = Lab(
            workdir, lab_tools, merged, started, [n.sip_port for n in started], proxy
        )
        labs.append(the_lab)
        return the_lab

    yield start
    problems = [p for the_lab in labs for p in the_lab.close()]
    assert not problems, "\n".join(problems)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll ``condition`` until it holds; return the seconds it took; fail after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def options_status(port: int, timeout: float = 1.0) -> tuple[int, str] | None:
    """Send OPTIONS straight to a node; return (status, response text) or None."""
    from avatar_mf.testing.kamailio import sip_options_ping

    text = sip_options_ping(HOST, port, timeout=timeout)
    if text is None:
        return None
    return int(text.split(" ", 2)[1]), text


def node_log_lines(lab: Lab, pattern: str) -> list[str]:
    """Kamailio log lines matching ``pattern`` (a regular expression)."""
    rx = re.compile(pattern)
    return [line for line in lab.proxy.log_text().splitlines() if rx.search(line)]

