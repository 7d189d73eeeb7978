"""``make lab`` (``python -m avatar_mf.testing.lab``) on free ports: it starts two MF nodes and
Kamailio, prints the commands of docs/lab.md (each one parses as the CLI's), a test UE
registers with its proxy and calls a room through it, and Ctrl-C stops everything with exit
status 0."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avatar_mf.cli import build_parser
from avatar_mf.testing.process import free_port
from avatar_mf.ue.listener import UeListener

from .conftest import HOST, REPO

pytestmark = pytest.mark.timeout(120)

STEP = 5.0


def _two_free_ports() -> int:
    """A port P with P and P + 1 free (the lab's admin ports are consecutive)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if marker in line:
            return seen
    pytest.fail(f"no {marker!r} from the lab:\n{seen}")


def _start_lab(
    tmp_path: Path, proxy_port: int, sip_ports: tuple[int, int], admin: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "avatar_mf.testing.lab",
            "--proxy-port", str(proxy_port),
            "--ports", ",".join(map(str, sip_ports)),
            "--admin-port", str(admin),
            "--workdir", str(tmp_path / "lab"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        start_new_session=True,
    )  # fmt: skip


async def test_make_lab_runs_the_registrar_lab(tmp_path: Path, lab_tools: dict[str, str]) -> None:
    proxy_port, sip_ports, admin = free_port(), (free_port(), free_port()), _two_free_ports()
    proc = _start_lab(tmp_path, proxy_port, sip_ports, admin)
    try:
        text = await asyncio.to_thread(_read_until, proc, "Ctrl-C stops everything", 60)
        proxy = f"{HOST}:{proxy_port}"
        assert f"Kamailio (registrar and proxy) on {proxy}" in text
        commands = [
            shlex.split(line.strip())
            for line in text.splitlines()
            if line.strip().startswith("avatar-mf ue ")
        ]
        assert {c[2] for c in commands} == {"listen", "call"}, text
        parser = build_parser()
        for command in commands:
            assert callable(parser.parse_args(command[1:]).run), command
            assert proxy in " ".join(command)

        ue = await UeListener.open(HOST, proxy_port, user="ue1", expires=60)
        try:
            await ue.registered(STEP)
            async with ue.dial(f"sip:room1@{proxy}", ice=False) as call:
                await call.wait_channels_open(STEP)
                assert call.final_status == 200
        finally:
            await ue.close()
        log = (tmp_path / "lab" / "kamailio" / "kamailio.log").read_text()
        assert re.search(r"REGISTER sip:ue1@\S+ from", log)
        (node,) = re.findall(r"INVITE sip:room1@\S+ -> sip:127\.0\.0\.1:(\d+)", log)
        assert int(node) in sip_ports
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, out
    assert "stopping the lab" in out
