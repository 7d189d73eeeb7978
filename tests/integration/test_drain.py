"""SIGTERM drain with a call in progress, against a real MF process (issue: lifecycle).

The call in progress completes normally (the UE's BYE gets 200), new INVITEs and OPTIONS get
503 with Retry-After while the node drains, the process exits 0 and its last log line says it
holds nothing.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from avatar_mf.testing.process import MfProcess

from .conftest import HOST, sipp_command


def _request(method: str, port: int, mf_port: int, n: int) -> bytes:
    lines = [
        f"{method} sip:mf@{HOST}:{mf_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK-drain-{n};rport",
        f"From: <sip:ue@{HOST}:{port}>;tag=d{n}",
        f"To: <sip:mf@{HOST}:{mf_port}>",
        f"Call-ID: drain-{n}@{HOST}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:ue@{HOST}:{port}>",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _ask(method: str, mf_port: int, n: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(3)
        sock.sendto(_request(method, sock.getsockname()[1], mf_port, n), (HOST, mf_port))
        while True:
            text = sock.recv(65535).decode()
            if not text.startswith("SIP/2.0 100 "):
                return text


def test_sigterm_drains_then_exits_clean(tmp_path: Path) -> None:
    mf = MfProcess.start(
        tmp_path / "mf",
        settings={"LIFECYCLE__DRAIN_TIMEOUT": "20", "MEDIA__SETUP_TIMEOUT": "30"},
    )
    try:
        workdir = tmp_path / "sipp"
        workdir.mkdir()
        command = sipp_command(
            "basic_call.xml", mf.sip_port, transport="u1", calls=1, rate=1, limit=1,
            call_length_ms=3000, timeout=20, trace_messages=False, set_vars={}, extra=(),
        )
        sipp = subprocess.Popen(
            command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while mf.stats()["held"]["dialogs"] == 0:
            assert time.monotonic() < deadline, "the call never got established"
            time.sleep(0.05)
        mf.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        options = _ask("OPTIONS", mf.sip_port, 1)
        invite = _ask("INVITE", mf.sip_port, 2)
        for answer in (options, invite):
            assert answer.startswith("SIP/2.0 503 "), answer
            assert "\r\nRetry-After: " in answer
        assert mf.http_get("/readyz")[0] == 503
        assert mf.stats()["held"]["dialogs"] == 1  # the call in progress continues
        out, _ = sipp.communicate(timeout=30)
        assert sipp.returncode == 0, out.decode(errors="replace")[-2000:]
        assert mf.proc.wait(timeout=20) == 0
    finally:
        mf.kill()
    records = [json.loads(line) for line in mf.log_text().splitlines() if line.startswith("{")]
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    stopped = [r for r in records if r["msg"] == "stopped"]
    assert stopped and all(v == 0 for v in stopped[-1]["held"].values()), stopped
    ended = [r for r in records if r.get("call_id") and "ended" in r["msg"]]
    assert ended and "bye" in json.dumps(ended[-1])
