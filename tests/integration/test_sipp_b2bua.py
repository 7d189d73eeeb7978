"""Two-leg calls with SIPp on both sides of a real MF process, over UDP and TCP (loopback).

SIPp plays UE1 (``tests/sipp/b2bua_ue1.xml``, a UAC calling ``sip:ue2``, which the MF's
``calls.room_pattern`` does not take for a room) and UE2 (``b2bua_ue2.xml``, a UAS the MF's
``calls.outbound_proxy`` points at). The scenarios check the messages themselves (UE1: 180
relayed, 200 with the MF's answer; UE2: the MF's INVITE with its own offer, ACK, BYE); the
tests check that the legs are separate dialogs, the MF's counters, and that the MF holds
nothing afterwards (no dialog, transaction, pair, outgoing INVITE, media socket).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from avatar_mf.testing.process import MfProcess, free_port

from .conftest import (
    HOST,
    IDLE_TIMEOUT,
    SIPP_DIR,
    TRANSPORTS,
    MfPool,
    SippResult,
    TracedMessage,
    _last_stats_row,
    assert_calls_ok,
    assert_idle,
    parse_message_trace,
    stats_delta,
)

RunSipp = Callable[..., SippResult]


@dataclass
class Ue2:
    """The SIPp UAS playing UE2, running in the background."""

    proc: subprocess.Popen[str]
    port: int
    workdir: Path
    transport: str

    @property
    def proxy_uri(self) -> str:
        suffix = ";transport=tcp" if self.transport.startswith("t") else ""
        return f"sip:{HOST}:{self.port};lr{suffix}"

    def finish(self, timeout: float) -> tuple[int, int, int, list[TracedMessage], str]:
        """Wait for SIPp to exit: (exit code, successful, failed, messages, error log)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        stats = _last_stats_row(self.workdir / "stats.csv")
        messages_log = self.workdir / "messages.log"
        errors_log = self.workdir / "errors.log"
        messages = parse_message_trace(messages_log.read_text()) if messages_log.exists() else []
        errors = errors_log.read_text(errors="replace") if errors_log.exists() else ""
        return (
            self.proc.returncode,
            int(stats.get("SuccessfulCall(C)") or 0),
            int(stats.get("FailedCall(C)") or 0),
            messages,
            errors[-3000:] + out[-1500:],
        )


def start_ue2(
    workdir: Path, transport: str, calls: int, timeout: float, scenario: str = "b2bua_ue2.xml"
) -> Ue2:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("sipp not found: install the Debian package sip-tester (make sysdeps)")
    workdir.mkdir(parents=True)
    port = free_port(HOST)
    command = [
        sipp,
        "-sf", str(SIPP_DIR / scenario),
        "-t", transport,
        "-i", HOST,
        "-p", str(port),
        "-m", str(calls),
        "-nostdin",
        "-timeout", f"{timeout:g}s",
        "-timeout_error",
        "-trace_stat", "-stf", "stats.csv", "-fd", "1",
        "-trace_err", "-error_file", "errors.log",
    ]  # fmt: skip
    if calls <= 20:
        command += ["-trace_msg", "-message_file", "messages.log"]
    proc = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(0.5)  # SIPp binds its socket before the MF sends the first INVITE
    if proc.poll() is not None:
        pytest.fail(f"the UE2 SIPp exited at once: {proc.communicate()[0][-2000:]}")
    return Ue2(proc, port, workdir, transport)


@pytest.fixture
def two_leg(
    tmp_path: Path, mf_pool: MfPool
) -> Iterator[Callable[[str, int, float], tuple[MfProcess, Ue2]]]:
    """``two_leg(transport, calls, timeout[, scenario])``: UE2's SIPp listening, and an MF
    whose outbound proxy is that SIPp (a node of its own: the proxy's port is new every time)."""
    started: list[tuple[MfProcess, Ue2]] = []

    def make(
        transport: str, calls: int, timeout: float, scenario: str = "b2bua_ue2.xml"
    ) -> tuple[MfProcess, Ue2]:
        ue2 = start_ue2(tmp_path / f"ue2-{len(started)}", transport, calls, timeout, scenario)
        node = mf_pool.get(
            {"CALLS__ROOM_PATTERN": "room.*", "CALLS__OUTBOUND_PROXY": ue2.proxy_uri}
        )
        started.append((node, ue2))
        return node, ue2

    yield make
    for node, ue2 in started:
        if ue2.proc.poll() is None:
            ue2.proc.kill()
            ue2.proc.communicate()
        log = node.log_text()
        problems = [line for line in log.splitlines() if '"level": "ERROR"' in line]
        assert "Traceback" not in log and not problems, "\n".join(problems[:20])


def _call_ids(messages: list[TracedMessage]) -> set[str]:
    return {m.header("Call-ID") or "" for m in messages}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_leg_call(two_leg: Callable[..., tuple[MfProcess, Ue2]], run_sipp: RunSipp,
                      transport: str) -> None:  # fmt: skip
    """UE1 -> MF -> UE2: 180 relayed, 200 to UE1 only after UE2's, UE1's BYE ends leg 2;
    the two legs are separate dialogs (own Call-IDs); the MF then holds nothing."""
    calls = 2
    mf, ue2 = two_leg(transport, calls, 20.0)
    before = mf.stats()
    result = run_sipp("b2bua_ue1.xml", mf, transport=transport, calls=calls, call_length_ms=200)
    code, ok, failed, ue2_messages, ue2_log = ue2.finish(20.0)
    assert_calls_ok(result, calls)
    assert (code, ok, failed) == (0, calls, 0), ue2_log
    leg1 = _call_ids(result.messages)
    leg2 = _call_ids(ue2_messages)
    assert len(leg1) == len(leg2) == calls and not leg1 & leg2
    # UE2 saw INVITE, ACK and BYE from the MF, and the MF's INVITE came through the proxy
    # route (checked by the scenario) with UE1's identity in From.
    received = [m.first_line.split(" ")[0] for m in ue2_messages if not m.sent]
    assert received.count("INVITE") == received.count("ACK") == received.count("BYE") == calls

    # UE1 got its 200 only after UE2 sent one (RFC 7092 3.2: answered when UE2 answers).
    # SIPp stamps a message it sends once written, so UE2's stamp may trail the MF's relay by
    # a fraction of a millisecond: 5 ms of slack (UE2 holds its 200 for no time at all).
    def first_lines(messages: list[TracedMessage], sent: bool, start: str) -> list[datetime]:
        return sorted(
            m.at
            for m in messages
            if m.sent == sent
            and m.first_line.startswith(start)
            and "INVITE" in (m.header("CSeq") or "")
        )

    ue2_ok = first_lines(ue2_messages, True, "SIP/2.0 200")[:calls]
    ue1_ok = first_lines(result.messages, False, "SIP/2.0 200")[:calls]
    ue1_ringing = first_lines(result.messages, False, "SIP/2.0 180")
    assert len(ue1_ok) == len(ue2_ok) == len(ue1_ringing) == calls
    slack = timedelta(milliseconds=5)
    assert all(a >= b - slack for a, b in zip(ue1_ok, ue2_ok, strict=True)), (ue1_ok, ue2_ok)
    assert all(r < a for r, a in zip(ue1_ringing, ue1_ok, strict=True))
    after = assert_idle(mf)
    delta = stats_delta(before, after)
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == 2 * calls
    assert delta["calls_failed"] == 0
    assert delta["tx_request_INVITE"] == delta["tx_request_BYE"] == calls


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_leg_calls_200_at_20_cps(
    two_leg: Callable[..., tuple[MfProcess, Ue2]], run_sipp: RunSipp, transport: str
) -> None:
    """200 two-leg calls at 20 calls/s, none failed on either side, nothing held after."""
    calls = 200
    timeout = calls / 20 + 30
    mf, ue2 = two_leg(transport, calls, timeout)
    before = mf.stats()
    result = run_sipp(
        "b2bua_ue1.xml",
        mf,
        transport=transport,
        calls=calls,
        rate=20,
        limit=100,
        call_length_ms=200,
        timeout=timeout,
    )
    code, ok, failed, _, ue2_log = ue2.finish(timeout)
    assert_calls_ok(result, calls)
    assert (code, ok, failed) == (0, calls, 0), ue2_log
    after = assert_idle(mf)
    delta = stats_delta(before, after)
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == 2 * calls
    assert delta["calls_failed"] == 0
    assert delta["rx_request_INVITE"] == delta["rx_request_BYE"] == calls
    assert delta["tx_request_INVITE"] == delta["tx_request_BYE"] == calls


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ue2_busy_reaches_ue1(
    two_leg: Callable[..., tuple[MfProcess, Ue2]], run_sipp: RunSipp, transport: str
) -> None:
    """UE2's 486 reaches UE1 as 486; both INVITEs are ACKed; nothing is held afterwards.

    Over UDP the MF's INVITE client transaction stays in Completed for Timer D after UE2's
    486 (RFC 3261 17.1.1.2: at least 32 s, whatever T1), absorbing 486 retransmissions: the
    node is idle only after that."""
    calls = 2
    mf, ue2 = two_leg(transport, calls, 20.0, "b2bua_ue2_busy.xml")
    before = mf.stats()
    result = run_sipp("b2bua_ue1_refused.xml", mf, transport=transport, calls=calls)
    code, ok, failed, _, ue2_log = ue2.finish(20.0)
    assert_calls_ok(result, calls)
    assert (code, ok, failed) == (0, calls, 0), ue2_log
    after = assert_idle(mf, timeout=40.0 if transport.startswith("u") else IDLE_TIMEOUT)
    delta = stats_delta(before, after)
    assert delta["calls_started"] == delta["calls_ended"] == calls
    assert delta["calls_answered"] == delta["calls_failed"] == 0
    assert delta["tx_response_486"] == delta["rx_response_486"] == calls
