"""Run a real MF node as a subprocess, on loopback, for tests and benchmarks.

    with MfProcess.start(tmp_path) as mf:
        sipp(..., f"127.0.0.1:{mf.sip_port}")
        assert mf.stats()["dialogs"] == 0

Ports are chosen free at start; settings are passed as ``AVATAR_MF_*`` environment
overrides, exactly as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass
class MfProcess:
    proc: subprocess.Popen[bytes]
    sip_port: int
    admin_port: int
    workdir: Path
    log_path: Path
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        settings: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        python: str = sys.executable,
        config: Path | None = None,
    ) -> MfProcess:
        """Start ``avatar-mf serve`` with ``settings`` (``{"SIP__T1": "0.1"}``) and wait
        until its admin listener answers ``/readyz``. ``config``: a file for ``--config``
        (the log level is then the file's, so that a reload can change it)."""
        workdir.mkdir(parents=True, exist_ok=True)
        overrides = {
            "SIP__PORT": str(free_port()),
            "ADMIN__PORT": str(free_port()),
            "STORAGE__PATH": str(workdir / "storage"),
        }
        if config is None:
            overrides["LOG__LEVEL"] = "INFO"
        overrides.update(settings or {})
        # The ports in effect, whether chosen here or given in settings.
        sip_port = int(overrides["SIP__PORT"])
        admin_port = int(overrides["ADMIN__PORT"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
        for key, value in overrides.items():
            env[f"AVATAR_MF_{key}"] = value
        log_path = workdir / "mf.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [python, "-m", "avatar_mf", "serve"]
                + ([] if config is None else ["--config", str(config)]),
                cwd=workdir,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        mf = cls(proc, sip_port, admin_port, workdir, log_path, env=overrides)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"MF exited with {proc.returncode}:\n{mf.log_text()}")
            try:
                if mf.http_get("/readyz")[0] == 200:
                    return mf
            except OSError:
                pass
            time.sleep(0.05)
        mf.kill()
        raise RuntimeError(f"MF not ready within {timeout} s:\n{mf.log_text()}")

    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        url = f"http://{self.host}:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read()

    def metric(self, sample: str) -> float:
        """The value of one ``/metrics`` sample, named with its labels as the exposition
        writes them (``avatar_mf_x_total{outcome="accepted"}``); 0.0 when it is absent."""
        status, body = self.http_get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        prefix = sample + " "
        for line in body.decode().splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix) :].split()[0])
        return 0.0

    def stats(self) -> dict[str, Any]:
        status, body = self.http_get("/stats")
        if status != 200:
            raise RuntimeError(f"/stats answered {status}")
        data: dict[str, Any] = json.loads(body)
        return data

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Poll /stats until the node holds no call, transaction or media resource."""
        deadline = time.monotonic() + timeout
        stats = self.stats()
        while time.monotonic() < deadline:
            stats = self.stats()
            if all(stats["held"][k] == 0 for k in stats["held"]):
                return stats
            time.sleep(0.1)
        return stats

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> MfProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
