"""Operations against a real MF subprocess (:class:`MfProcess`, loopback): SIGHUP reloads
while a call goes on, the SIP trace switched on and off through the admin API and the
``avatar-mf trace`` command (log lines, a pcap file, HEP3 to a UDP collector), and one
call-detail record per call; the ready line says what an operator checks first."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avatar_mf import __version__
from avatar_mf.cli import main as cli_main
from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import DEFAULT_STREAMS, UeCall
from tests.node.test_trace_formats import decode_hep3, decode_ipv4_udp, read_pcap

HOST = "127.0.0.1"
STEP = 5.0
TOKEN = "operations-test-token"
ECHO = DcMap(1010, label="diagnostic", subprotocol="x-avatar-mf-echo")


def options(mf_port: int, call_id: str) -> str:
    """An OPTIONS from a fresh UDP socket; the final answer's text."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(STEP)
        port = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:mf@{HOST}:{mf_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"From: <sip:ops@{HOST}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:mf@{HOST}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (HOST, mf_port))
        while True:
            answer = sock.recv(65535).decode()
            if not answer.startswith("SIP/2.0 100 "):
                return answer


def log_entries(mf: MfProcess) -> list[dict[str, Any]]:
    entries = []
    for line in mf.log_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def dial(mf: MfProcess) -> UeCall:
    return UeCall.dial(
        f"sip:avatar@{HOST}:{mf.sip_port}",
        HOST,
        mf.sip_port,
        streams=(*DEFAULT_STREAMS, ECHO),
        ice=False,
        from_uri="sip:alice@ims.example",
    )


async def echo(call: UeCall, text: str) -> None:
    call.send(ECHO.stream_id, text)
    assert await call.receive(ECHO.stream_id, STEP) == text


CONFIG = """\
[sip]
t1 = 0.025
t4 = 0.5
{trusted}
[media]
setup_timeout = 20.0
[log]
level = "{level}"
cdr_file = "{cdr}"
[admin]
token = "{token}"
"""


async def test_sighup_reloads_live_settings_and_a_call_survives(tmp_path: Path) -> None:
    config = tmp_path / "mf.toml"
    cdr = tmp_path / "cdr.jsonl"

    def write(level: str, trusted: str = "", extra: str = "") -> None:
        text = CONFIG.format(level=level, cdr=cdr, token=TOKEN, trusted=trusted) + extra
        config.write_text(text)

    write("WARNING")
    mf = await asyncio.to_thread(MfProcess.start, tmp_path / "mf", config=config)
    try:
        async with dial(mf) as call:
            await call.wait_channels_open(STEP)
            await echo(call, "before")
            assert not [e for e in log_entries(mf) if e["level"] == "INFO"]  # WARNING: quiet

            # Live: the log level and the trusted peers; restart: the message size (kept).
            write("INFO", 'trusted_peers = ["127.0.0.0/8"]\nmax_message_size = 2000')
            mf.proc.send_signal(signal.SIGHUP)
            await asyncio.to_thread(
                wait_until,
                lambda: any("reload: applied" in e["msg"] for e in log_entries(mf)),
                "no reload line",
            )
            entries = log_entries(mf)
            [applied] = [e for e in entries if e["msg"].startswith("reload: applied")]
            assert applied["applied"] == ["sip.trusted_peers", "log.level"]
            assert "log.level: WARNING -> INFO" in applied["msg"]
            [restart] = [e for e in entries if e["msg"].startswith("reload: needs a restart")]
            assert restart["restart_needed"] == ["sip.max_message_size"]
            assert mf.proc.poll() is None
            assert (await asyncio.to_thread(options, mf.sip_port, "after-hup")).startswith(
                "SIP/2.0 200 "
            )
            await echo(call, "after")  # the call in progress goes on

            # A bad file is refused, logged, and the running configuration stays.
            config.write_text(config.read_text().replace("t1 = 0.025", 't1 = "0.5"'))
            mf.proc.send_signal(signal.SIGHUP)
            await asyncio.to_thread(
                wait_until,
                lambda: any("reload refused" in e["msg"] for e in log_entries(mf)),
                "no refusal line",
            )
            [refused] = [e for e in log_entries(mf) if "reload refused" in e["msg"]]
            assert refused["level"] == "ERROR"
            assert 'sip.t1: Input should be a valid number (got "0.5")' in refused["msg"]
            assert mf.proc.poll() is None
            await echo(call, "still")
            # INFO lines now show (the level came from the reloaded file).
            assert any(e["level"] == "INFO" for e in log_entries(mf))
        await asyncio.to_thread(
            wait_until, lambda: cdr.exists() and cdr.read_text().count("\n") >= 1, "no CDR"
        )
        [record] = [json.loads(line) for line in cdr.read_text().splitlines()]
        assert record["type"] == "cdr" and record["end_reason"] == "bye"
        assert record["from"].startswith("sip:alice@ims.example")
        assert {s["subprotocol"] for s in record["streams"]} >= {"x-avatar-mf-echo"}
        # "before", "after" and "still" went each way on the echo channel.
        assert record["bytes_in"] >= 16 and record["bytes_out"] >= 16
        # Answered (setup_s is null for a call never answered); the set-up is read on the loop's
        # clock, which an INVITE answered within one loop turn sees as 0.0 (the clean-clone run
        # saw it once the answer path got fast), so only the call's duration must be positive.
        assert record["setup_s"] is not None and record["setup_s"] >= 0
        assert record["duration_s"] > 0
        assert record["failure"] is False and record["media_layer"] is None
    finally:
        code = await asyncio.to_thread(mf.stop)
    assert code == 0, mf.log_text()[-3000:]


def test_ready_line_names_version_listeners_fingerprint_and_stages(tmp_path: Path) -> None:
    mf = MfProcess.start(tmp_path / "mf")
    try:
        [ready] = [e for e in log_entries(mf) if " ready: " in e["msg"]]
    finally:
        mf.stop()
    assert ready["version"] == __version__
    assert f"udp:{HOST}:{mf.sip_port}" in ready["listeners"]
    assert f"tcp:{HOST}:{mf.sip_port}" in ready["listeners"]
    algorithm, value = ready["dtls_fingerprint"].split(" ")
    assert algorithm == "sha-256" and len(value.split(":")) == 32
    assert "scene=gltf" in ready["stages"]
    assert f"avatar-mf {__version__} ready:" in ready["msg"]


@pytest.fixture
def traced_mf(tmp_path: Path) -> Any:
    mf = MfProcess.start(tmp_path / "mf", settings={"ADMIN__TOKEN": TOKEN})
    try:
        yield mf
    finally:
        mf.stop()


def trace_cli(mf: MfProcess, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(
        ["trace", *args, "--admin", f"http://{HOST}:{mf.admin_port}", "--token", TOKEN],
        stdout=out,
        stderr=err,
        environ={},
    )
    return code, out.getvalue() + err.getvalue()


def test_trace_to_log_pcap_and_hep_switched_at_run_time(
    traced_mf: MfProcess, tmp_path: Path
) -> None:
    mf = traced_mf
    pcap = tmp_path / "sip.pcap"
    assert mf.http_get("/trace")[0] == 401  # whole SIP messages: token only
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind((HOST, 0))
        collector.settimeout(STEP)
        hep = f"{HOST}:{collector.getsockname()[1]}"
        options(mf.sip_port, "untraced@test")  # before the trace: not in it
        code, text = trace_cli(mf, "on", "--pcap", str(pcap), "--hep", hep)
        assert code == 0, text
        assert text.startswith(f"SIP trace on: every message -> log, pcap {pcap}, HEP3 {hep}")
        answer = options(mf.sip_port, "traced@test")
        assert answer.startswith("SIP/2.0 200 ")
        packets = [decode_hep3(collector.recv(65535)) for _ in range(2)]
        code, text = trace_cli(mf, "off")
        assert (code, text) == (0, "SIP trace off (2 messages traced)\n")
        options(mf.sip_port, "after@test")  # after the trace: not in it
    assert [p[17] for p in packets] == [b"traced@test", b"traced@test"]
    assert packets[0][15].startswith(b"OPTIONS sip:mf@")
    assert packets[1][15].decode() == answer
    _, records = read_pcap(pcap)
    assert len(records) == 2
    request, response = (decode_ipv4_udp(packet) for _, packet in records)
    assert request[2:4] == (HOST, mf.sip_port) and response[:2] == (HOST, mf.sip_port)
    assert request[1] == response[3]  # the UE's port, both ways
    assert response[4].decode() == answer
    lines = [e for e in log_entries(mf) if e["logger"] == "avatar_mf.trace"]
    assert [e["call_id"] for e in lines] == ["traced@test", "traced@test"]
    assert lines[1]["sip"] == answer


def test_trace_of_one_call(traced_mf: MfProcess) -> None:
    mf = traced_mf
    assert trace_cli(mf, "on", "--call", "one@test")[0] == 0
    options(mf.sip_port, "other@test")
    options(mf.sip_port, "one@test")
    code, text = trace_cli(mf, "status")
    assert (code, text) == (0, "SIP trace on: calls one@test -> log (2 messages)\n")
    code, text = trace_cli(mf, "off", "--call", "one@test")
    assert code == 0 and text.startswith("SIP trace off")
    traced = {e["call_id"] for e in log_entries(mf) if e["logger"] == "avatar_mf.trace"}
    assert traced == {"one@test"}
    code, text = trace_cli(mf, "on", "--hep", "example.com:9060")
    assert code == 1 and "expected IP:PORT" in text
