"""Structured logs of a real MF subprocess: every line about a call carries its Call-ID as a
field (``call_id``), in JSON lines (the default) and in the text format of
``serve --log-format text``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.testing.process import MfProcess, free_port
from tests.integration.conftest import sipp_run
from tests.node.test_metrics import STEP, idle, log_problems, wait_for

HOST = "127.0.0.1"
MEDIA_SETUP_TIMEOUT = 1.0
"""SIPp runs no DTLS: the MF gives up on its data channels after this and sends BYE."""

NODE_SETTINGS: Mapping[str, str] = {
    "SIP__T1": "0.025",
    "SIP__T4": "0.5",
    "MEDIA__SETUP_TIMEOUT": str(MEDIA_SETUP_TIMEOUT),
    "LOG__LEVEL": "DEBUG",
    # The MF's own debug lines; aiortc's and aioice's would only add noise here.
    "LOG__MODULES": '{"aiortc": "INFO", "aioice": "INFO"}',
}


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    node = MfProcess.start(tmp_path_factory.mktemp("mf"), settings=NODE_SETTINGS)
    try:
        yield node
    finally:
        code = node.stop()
    assert code == 0, node.log_text()[-3000:]
    assert not log_problems(node), "\n".join(log_problems(node))


def json_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict)
        records.append(record)
    return records


def about(records: list[dict[str, Any]], call_id: str) -> list[dict[str, Any]]:
    """The MF's own records about ``call_id``: naming it in the text or in a field."""
    return [
        r
        for r in records
        if r["logger"].startswith("avatar_mf")
        and (call_id in r["msg"] or r.get("call_id") == call_id)
    ]


def sipp_call_id(result: Any) -> str:
    [invite] = [m for m in result.messages if m.sent and m.first_line.startswith("INVITE ")]
    call_id = invite.header("Call-ID")
    assert call_id
    return str(call_id)


def test_json_lines_about_a_call_carry_its_call_id(mf: MfProcess, tmp_path: Path) -> None:
    wait_for(mf, idle)
    start = len(mf.log_text())
    result = sipp_run(tmp_path / "sipp", "basic_call.xml", mf, trace_messages=True)
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.describe()
    call_id = sipp_call_id(result)
    wait_for(mf, idle)
    records = about(json_records(mf.log_text()[start:]), call_id)
    assert records
    for record in records:
        assert record.get("call_id") == call_id, record
    by_text = {r["msg"].replace(call_id, "<id>"): r for r in records}
    sipp_port = result.command[result.command.index("-p") + 1]
    invite = by_text[
        f"call <id>: INVITE from sip:ue1@{HOST}:{sipp_port} to sip:avatar@{HOST}:{mf.sip_port}"
    ]
    assert invite["level"] == "DEBUG"
    assert invite["source"].startswith(f"{HOST}:") and invite["transport"] == "udp"
    answered = next(r for r in records if "answered in" in r["msg"])
    assert answered["level"] == "INFO" and answered["setup_ms"] >= 0
    ended = by_text["call <id> ended: bye"]
    assert ended["reason"] == "bye" and ended["duration_s"] >= 0


def test_a_media_failure_is_logged_with_the_call_id(mf: MfProcess, tmp_path: Path) -> None:
    start = len(mf.log_text())
    # INVITE, 200, ACK; the MF's data channels time out and it sends BYE.
    result = sipp_run(tmp_path / "sipp", "mf_bye.xml", mf, trace_messages=True)
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.describe()
    call_id = sipp_call_id(result)
    wait_for(mf, idle)
    records = about(json_records(mf.log_text()[start:]), call_id)
    assert all(r.get("call_id") == call_id for r in records), records
    messages = [r["msg"].replace(call_id, "<id>") for r in records]
    # SIPp does no DTLS: the layer still not up when media.setup_timeout ran out is DTLS.
    assert "call <id> media failed: setup timeout in DTLS" in messages
    ended = next(r for r in records if " ended: " in r["msg"])
    assert ended["reason"] == "media_failed"


def test_an_unparsable_message_is_logged_with_its_source(mf: MfProcess) -> None:
    start = len(mf.log_text())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
        garbage = b"INVITE sip:x SIP/2.0\r\nCall-ID: bad@ue\r\nVia: nonsense\r\n\r\n"
        sock.sendto(garbage, (HOST, mf.sip_port))
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline and "unparsable" not in mf.log_text()[start:]:
            time.sleep(0.02)
    [record] = [r for r in json_records(mf.log_text()[start:]) if "unparsable" in r["msg"]]
    assert record["source"] == f"{HOST}:{port}" and record["transport"] == "udp"
    assert record["call_id"] == "bad@ue"


def test_serve_log_format_text_is_for_people(tmp_path: Path) -> None:
    """``serve --log-format text --log-level DEBUG`` wins over the JSON default of log.format
    and the INFO of AVATAR_MF_LOG__LEVEL."""
    overrides = {
        **NODE_SETTINGS,
        "LOG__LEVEL": "INFO",
        "SIP__PORT": str(free_port()),
        "ADMIN__PORT": str(free_port()),
        "STORAGE__PATH": str(tmp_path / "storage"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
    env.update({f"AVATAR_MF_{k}": v for k, v in overrides.items()})
    log_path = tmp_path / "mf.log"
    command = [sys.executable, "-m", "avatar_mf", "serve", "--log-format", "text"]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*command, "--log-level", "debug"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    mf = MfProcess(
        proc, int(overrides["SIP__PORT"]), int(overrides["ADMIN__PORT"]), tmp_path, log_path
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, mf.log_text()
            try:
                if mf.http_get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, mf.log_text()
            time.sleep(0.05)
        result = sipp_run(tmp_path / "sipp", "basic_call.xml", mf, trace_messages=True)
        assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.describe()
        call_id = sipp_call_id(result)
        wait_for(mf, idle)
    finally:
        assert mf.stop() == 0, mf.log_text()
    lines = mf.log_text().splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    [ended] = [line for line in lines if f"call {call_id} ended: bye" in line]
    # 2026-05-09T07:35:25.123Z INFO     avatar_mf.ua.user_agent: call ... call_id=... reason=bye
    stamp, level, logger = ended.split()[:3]
    assert stamp.endswith("Z") and level == "INFO"
    assert logger == "avatar_mf.ua.user_agent:"
    assert f"call_id={call_id}" in ended and "reason=bye" in ended
    assert any(" DEBUG " in line and f"call_id={call_id}" in line for line in lines)


def test_serve_log_flags_override_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import avatar_mf.cli as cli

    seen = []
    monkeypatch.setattr(cli, "_run_server", lambda config, _reload: seen.append(config) or 0)
    env = {"AVATAR_MF_LOG__FORMAT": "json", "AVATAR_MF_LOG__LEVEL": "ERROR"}
    args = ["serve", "--log-format", "text", "--log-level", "warning"]
    assert cli.main(args, stdout=io.StringIO(), stderr=io.StringIO(), environ=env) == 0
    assert cli.main(["serve"], stdout=io.StringIO(), stderr=io.StringIO(), environ=env) == 0
    flagged, plain = seen
    assert (flagged.log.format, flagged.log.level) == ("text", "WARNING")
    assert (plain.log.format, plain.log.level) == ("json", "ERROR")
    assert flagged.sip == plain.sip
