"""Call flows with SIPp as the UE (or P-CSCF) against a real MF process, over UDP and TCP.

Each test runs a scenario of tests/sipp/ (see its README), checks SIPp's verdict (the scenarios
check the MF's answers themselves: status codes, SDP answer, headers), then the MF's /stats
counters and that the node released everything (RFC 3261 transactions, dialogs, data channel
sessions and their UDP sockets).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from avatar_mf.testing.process import MfProcess

from .conftest import (
    FIXTURE_SDP,
    SIPP_DIR,
    TRANSPORTS,
    SippResult,
    TracedMessage,
    assert_calls_ok,
    assert_idle,
    stats_delta,
)

RunSipp = Callable[..., SippResult]


def _calls(result: SippResult) -> dict[str, list[TracedMessage]]:
    """SIPp's traced messages grouped by Call-ID, in order."""
    calls: dict[str, list[TracedMessage]] = {}
    for message in result.messages:
        calls.setdefault(message.header("Call-ID") or "", []).append(message)
    return calls


def _tag(value: str | None) -> str | None:
    match = re.search(r";\s*tag=([^;>\s]+)", value or "")
    return match.group(1) if match else None


SCENARIOS_WITH_INVITE = [
    "basic_call.xml",
    "cancel.xml",
    "dialog_cap.xml",
    "mf_bye.xml",
    "retransmission.xml",
]


@pytest.mark.parametrize("scenario", SCENARIOS_WITH_INVITE)
def test_scenario_offer_is_the_fixture_sdp(scenario: str) -> None:
    """The scenarios send tests/fixtures/sdp/ims-avatar-offer-no-ice.sdp line for line, but for
    the data channel port (29180 for 49180: outside the ephemeral port range, README)."""
    text = (SIPP_DIR / scenario).read_text()
    invites = re.findall(r"<!\[CDATA\[\s*INVITE .*?\n\s*\n(.*?)\]\]>", text, re.DOTALL)
    assert invites
    fixture = FIXTURE_SDP.read_text().replace("\r\n", "\n").strip().split("\n")
    expected = [line.replace("m=application 49180 ", "m=application 29180 ") for line in fixture]
    assert expected != fixture
    for body in invites:
        assert [line.strip() for line in body.strip().splitlines()] == expected


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_basic_call(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """INVITE with the IMS avatar offer, 200 with an SDP answer that accepts the data channel
    (checked by the scenario's regexps), ACK, BYE, 200; then nothing is held."""
    before = mf.stats()
    calls = 2
    result = run_sipp("basic_call.xml", mf, transport=transport, calls=calls, call_length_ms=200)
    assert_calls_ok(result, calls)
    after = assert_idle(mf)
    delta = stats_delta(before, after)
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == calls
    assert delta["calls_failed"] == 0
    assert delta["rx_request_BYE"] == calls
    # The UE ended every call: the MF sent no BYE of its own.
    assert delta["tx_request_BYE"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """OPTIONS: 200 with Allow (INVITE, BYE, CANCEL, OPTIONS, UPDATE), Accept application/sdp,
    Supported timer (checked by the scenario); no call is created."""
    before = mf.stats()
    result = run_sipp("options.xml", mf, transport=transport, calls=2)
    assert_calls_ok(result, 2)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["rx_request_OPTIONS"] == delta["tx_response_200"] == 2
    assert delta["calls_started"] == 0


@pytest.mark.mf_settings({"SIP__ANSWER_DELAY": "1"})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_before_answer(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """INVITE, 100, CANCEL: 200 for the CANCEL, 487 for the INVITE (RFC 3261 9.2), ACK; the
    call never gets a 200 and its media is released."""
    before = mf.stats()
    calls = 2
    result = run_sipp("cancel.xml", mf, transport=transport, calls=calls)
    assert_calls_ok(result, calls)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["rx_request_CANCEL"] == delta["tx_response_487"] == calls
    assert delta["calls_started"] == delta["calls_ended"] == calls
    assert delta["calls_answered"] == 0
    # 200 for each CANCEL only: no INVITE was answered 200.
    assert delta["tx_response_200"] == calls


@pytest.mark.mf_settings({"SIP__ANSWER_DELAY": "1"})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retransmitted_invite_and_bye(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """The same INVITE twice (one branch) gets the cached 100 and makes one call; the same BYE
    twice gets 200 twice over UDP (Timer J keeps the transaction) and 200 then 481 over TCP
    (Timer J is 0 on reliable transports, RFC 3261 17.2.2, so the copy names no dialog)."""
    before = mf.stats()
    calls = 2
    copy_status = "200" if transport == "u1" else "481"
    result = run_sipp(
        "retransmission.xml",
        mf,
        transport=transport,
        calls=calls,
        set_vars={"bye_copy_status": copy_status},
        # The scenario retransmits by hand; SIPp's own retransmission detection would answer
        # the second (identical) 100 by resending the INVITE, forever.
        extra=["-nr"] if transport == "u1" else [],
    )
    assert_calls_ok(result, calls)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["rx_request_INVITE"] == 2 * calls
    assert delta["tx_response_100"] == 2 * calls
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == calls
    assert delta["rx_request_BYE"] == 2 * calls
    assert delta["tx_response_481"] == (calls if copy_status == "481" else 0)
    for call_id, messages in _calls(result).items():
        tags = {
            _tag(m.header("To"))
            for m in messages
            if not m.sent and m.first_line.startswith("SIP/2.0 ")
        }
        tags.discard(None)  # the 100 Trying carries no To tag
        assert len(tags) == 1, f"{call_id}: responses with To tags {tags}"


@pytest.mark.mf_settings({"MEDIA__SETUP_TIMEOUT": "1"})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mf_ends_call_without_dtls(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """SIPp never starts DTLS: after media.setup_timeout the MF ends the call with its own BYE
    (which SIPp answers 200) and releases the data channel resources."""
    before = mf.stats()
    calls = 2
    result = run_sipp("mf_bye.xml", mf, transport=transport, calls=calls)
    assert_calls_ok(result, calls)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == calls
    assert delta["tx_request_BYE"] >= calls  # UDP may retransmit a BYE
    assert delta["rx_response_200"] >= calls
    assert delta["rx_request_BYE"] == 0
    for call_id, messages in _calls(result).items():
        ok = next(m for m in messages if m.first_line.startswith("SIP/2.0 200"))
        bye = next(m for m in messages if m.first_line.startswith("BYE "))
        waited = (bye.at - ok.at).total_seconds()
        assert 0.9 <= waited <= 5.0, f"{call_id}: BYE {waited:.2f} s after the 200"
        assert "setup timeout" in (bye.header("Reason") or ""), bye.text


@pytest.mark.mf_settings({"SIP__MAX_DIALOGS": "2"})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dialog_cap_answers_503(mf: MfProcess, run_sipp: RunSipp, transport: str) -> None:
    """With max_dialogs = 2, three concurrent INVITEs: two calls, one 503 with Retry-After
    (checked by the scenario), which makes no call."""
    before = mf.stats()
    result = run_sipp(
        "dialog_cap.xml", mf, transport=transport, calls=3, rate=100, call_length_ms=1000
    )
    assert_calls_ok(result, 3)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["tx_response_503"] == 1
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == 2
    refused = [m for m in result.messages if m.first_line.startswith("SIP/2.0 503")]
    assert len(refused) >= 1 and refused[0].header("Retry-After"), refused
