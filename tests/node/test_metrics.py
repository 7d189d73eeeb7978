"""``GET /metrics``: the Prometheus exposition of a node, read before, during and after calls.

The end-to-end tests drive a real MF subprocess (:class:`MfProcess`, loopback) with SIPp, with
hand-written SIP over a UDP socket (for the failure paths: a rejected offer, a 2xx never
ACKed) and with the product's test UE (real data channels), and parse ``/metrics`` with
prometheus-client's own parser. The in-process tests cover what is hard to provoke from
outside: relay latency under back-pressure and stage failures.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from avatar_mf.avatar_session.hub import METADATA, ConfiguredStage
from avatar_mf.config import AppConfig
from avatar_mf.node.app import MediaFunction
from avatar_mf.node.metrics import METRICS
from avatar_mf.pipeline.executor import StageBusy
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.protocol.metadata import AnimationText, dump_message, new_message_id
from avatar_mf.rooms.relay import (
    AnimationQueue,
    FixedHistogram,
    MessageQueue,
    Outlet,
    RelayMetrics,
)
from avatar_mf.stages.animation_data.speech_stage import TextSpeechStage
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.transport.endpoint import EndpointStats
from avatar_mf.ua.end_reason import CallEnd, EndReason, is_failure
from tests.integration.conftest import FIXTURE_SDP, sipp_run

HOST = "127.0.0.1"
STEP = 5.0
"""Upper bound, in seconds, of any single wait here (they take milliseconds)."""

#: Short SIP timers (64*T1 = 1.6 s) so that transactions end soon after a call; a long
#: media setup timeout so that a SIPp call (no DTLS) stays up until its BYE.
NODE_SETTINGS: Mapping[str, str] = {
    "SIP__T1": "0.025",
    "SIP__T4": "0.5",
    "MEDIA__SETUP_TIMEOUT": "20",
    "ADMIN__TOKEN": "metrics-test-token",
}

# The SIPp offer: the fixture's, data channel port moved out of the ephemeral range.
OFFER = FIXTURE_SDP.read_text().replace("49180", "29180").replace("\n", "\r\n")
#: Audio only, in a codec the MF cannot serve (EVS): nothing acceptable, 488.
AUDIO_ONLY = OFFER.split("m=application")[0].replace("AMR-WB", "EVS")


# --------------------------------------------------------------------------- helpers


class Scrape:
    """One parsed ``/metrics`` answer."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a series not exposed (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def scrape(mf: MfProcess) -> Scrape:
    status, body = mf.http_get("/metrics")
    assert status == 200, body
    return Scrape(body.decode())


def wait_for(mf: MfProcess, check: Callable[[Scrape], bool], timeout: float = STEP) -> Scrape:
    """Scrape until ``check`` holds; fail with the last scrape's avatar_mf lines."""
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(mf)
        if check(current):
            return current
        if time.monotonic() > deadline:
            lines = [line for line in current.text.splitlines() if line.startswith("avatar_mf")]
            pytest.fail("metrics never got there:\n" + "\n".join(lines))
        time.sleep(0.05)


def idle(s: Scrape) -> bool:
    return all(
        s.value(name) == 0
        for name in (
            "avatar_mf_dialogs_active",
            "avatar_mf_invites_pending",
            "avatar_mf_sip_transactions_active",
            "avatar_mf_call_sessions_active",
            "avatar_mf_datachannel_sessions_active",
            "avatar_mf_media_sockets_open",
        )
    )


def log_problems(mf: MfProcess) -> list[str]:
    return [
        line
        for line in mf.log_text().splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "Traceback" in line
    ]


@pytest.fixture(scope="module")
def mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    node = MfProcess.start(tmp_path_factory.mktemp("mf"), settings=NODE_SETTINGS)
    try:
        yield node
    finally:
        code = node.stop()
    assert code == 0, node.log_text()[-3000:]
    assert not log_problems(node), "\n".join(log_problems(node))


class RawUac:
    """SIP by hand over one UDP socket: for the flows a UE must get wrong on purpose."""

    def __init__(self, mf: MfProcess) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(STEP)
        self.port = self.sock.getsockname()[1]
        self.target = (HOST, mf.sip_port)

    def close(self) -> None:
        self.sock.close()

    def invite(self, sdp: str) -> str:
        call_id = f"{uuid.uuid4().hex}@{HOST}"
        body = sdp.encode()
        head = (
            f"INVITE sip:avatar@{HOST}:{self.target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"From: <sip:raw@{HOST}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:avatar@{HOST}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:raw@{HOST}:{self.port}>\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendto(head.encode() + body, self.target)
        return call_id

    def receive(self) -> str:
        data, _ = self.sock.recvfrom(65535)
        return data.decode()

    def answer_ok(self, request: str) -> None:
        """200 to a request from the MF (its BYE), copying what RFC 3261 8.2.6.2 says."""
        head = request.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [h for h in head[1:] if h.split(":", 1)[0].lower() in
                ("via", "from", "to", "call-id", "cseq")]  # fmt: skip
        response = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
        self.sock.sendto(response.encode(), self.target)


def first_line(message: str) -> str:
    return message.split("\r\n", 1)[0]


def call_id_of(message: str) -> str:
    for line in message.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in ("call-id", "i"):
            return value.strip()
    return ""


# --------------------------------------------------------------------------- exposition


def test_every_catalogued_metric_is_exposed_with_its_help(mf: MfProcess) -> None:
    status, body = mf.http_get("/metrics")
    assert status == 200
    s = Scrape(body.decode())
    for spec in METRICS:
        family = spec.name.removesuffix("_total")
        assert family in s.families, f"{spec.name} missing"
        assert s.families[family].type == spec.kind
        assert s.families[family].documentation == spec.help
        assert f"# HELP {spec.name if spec.kind == 'counter' else family} " in s.text
    # The standard process collector, and the node's identity.
    assert s.value("process_start_time_seconds") > 0
    assert s.value("avatar_mf_build_info", version=__import__("avatar_mf").__version__) == 1
    assert abs(s.value("avatar_mf_start_time_seconds") - time.time()) < 600
    # Known label values start at 0, so rate() has a series from the first scrape on.
    assert ("avatar_mf_sip_requests_received_total", frozenset({("method", "INVITE")})) in (
        s.samples
    )
    assert ("avatar_mf_calls_failed_total", frozenset({("reason", "no_ack")})) in s.samples


def test_openmetrics_when_asked(mf: MfProcess) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"http://{HOST}:{mf.admin_port}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    with urllib.request.urlopen(request, timeout=STEP) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().rstrip().endswith(b"# EOF")
    status, _ = mf.http_get("/metrics")
    assert status == 200


# --------------------------------------------------------------------------- calls


def test_a_sipp_call_moves_the_counters_and_gauges(mf: MfProcess, tmp_path: Path) -> None:
    before = wait_for(mf, idle)
    assert before.value("avatar_mf_draining") == 0
    with ThreadPoolExecutor(1) as pool:
        # INVITE, 200, ACK, 2 s of call, BYE, 200.
        sipp = pool.submit(sipp_run, tmp_path / "sipp", "basic_call.xml", mf, call_length_ms=2000)
        during = wait_for(mf, lambda s: s.value("avatar_mf_dialogs_active") == 1)
        result = sipp.result(timeout=30)
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.describe()

    def grew(name: str, s: Scrape = during, **labels: str) -> float:
        return s.value(name, **labels) - before.value(name, **labels)

    # During the call: answered, held, its data channel association trying (SIPp has no DTLS).
    assert grew("avatar_mf_calls_started_total") == 1
    assert grew("avatar_mf_calls_answered_total") == 1
    assert grew("avatar_mf_sip_requests_received_total", method="INVITE") == 1
    # Answered within the Trying timer (100 ms): no 100 Trying (RFC 3261 17.2.1).
    trying = grew("avatar_mf_sip_responses_sent_total", method="INVITE", code="100")
    assert trying == 0 or grew("avatar_mf_call_setup_seconds_sum") >= 0.09
    assert grew("avatar_mf_sip_responses_sent_total", method="INVITE", code="200") >= 1
    assert grew("avatar_mf_sip_transactions_created_total", side="server", method="INVITE") == 1
    assert grew("avatar_mf_call_setup_seconds_count") == 1
    assert during.value("avatar_mf_call_sessions_active") == 1
    assert during.value("avatar_mf_datachannel_sessions_active") == 1
    assert during.value("avatar_mf_media_sockets_open") >= 1
    assert grew("avatar_mf_calls_ended_total", reason="bye") == 0

    after = wait_for(mf, idle)
    assert grew("avatar_mf_sip_requests_received_total", after, method="BYE") == 1
    assert grew("avatar_mf_sip_responses_sent_total", after, method="BYE", code="200") == 1
    assert grew("avatar_mf_sip_requests_received_total", after, method="ACK") == 1
    assert grew("avatar_mf_calls_ended_total", after, reason="bye") == 1
    assert (
        sum(
            after.value(n, **dict(labels)) - before.value(n, **dict(labels))
            for (n, labels) in after.samples
            if n == "avatar_mf_calls_failed_total"
        )
        == 0
    )
    assert grew("avatar_mf_call_duration_seconds_count", after) == 1
    duration = grew("avatar_mf_call_duration_seconds_sum", after)
    assert 1.9 <= duration < 10, duration
    assert grew("avatar_mf_call_duration_seconds_bucket", after, le="1.0") == 0
    assert grew("avatar_mf_call_duration_seconds_bucket", after, le="5.0") == 1


def test_failures_are_counted_by_reason_with_retransmissions(mf: MfProcess) -> None:
    """A UE that never ACKs its 488 and one that never ACKs its 200: the MF retransmits both
    (Timer G, and the 2xx rule of RFC 3261 13.3.1.4), then gives up on each."""
    before = wait_for(mf, idle)
    rejected, unacked = RawUac(mf), RawUac(mf)
    try:
        rejected.invite(AUDIO_ONLY)  # no data channel m-line, no servable audio: 488
        call_id = unacked.invite(OFFER)
        statuses: list[str] = []
        while not any(s.startswith("SIP/2.0 488") for s in statuses):
            statuses.append(first_line(rejected.receive()))
        while True:  # 100, 200, 200 again ... then the MF's BYE after 64*T1 = 1.6 s
            message = unacked.receive()
            if message.startswith("BYE "):
                assert call_id_of(message) == call_id
                assert 'text="no ACK"' in message
                unacked.answer_ok(message)
                break
    finally:
        rejected.close()
        unacked.close()
    after = wait_for(mf, idle)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("avatar_mf_calls_started_total") == 2
    assert grew("avatar_mf_calls_answered_total") == 1
    assert grew("avatar_mf_calls_failed_total", reason="rejected_488") == 1
    assert grew("avatar_mf_calls_failed_total", reason="no_ack") == 1
    assert grew("avatar_mf_calls_ended_total", reason="rejected_488") == 1
    assert grew("avatar_mf_calls_ended_total", reason="no_ack") == 1
    assert grew("avatar_mf_sip_responses_sent_total", method="INVITE", code="488") >= 2
    assert grew("avatar_mf_sip_retransmissions_sent_total", kind="ok") >= 2
    assert grew("avatar_mf_sip_retransmissions_sent_total", kind="transaction") >= 2
    assert grew("avatar_mf_sip_transaction_timeouts_total") >= 1  # Timer H of the 488
    assert grew("avatar_mf_sip_requests_sent_total", method="BYE") == 1
    assert grew("avatar_mf_sip_responses_received_total", code="200") == 1
    assert grew("avatar_mf_call_duration_seconds_count") == 1


async def test_data_channel_traffic_by_subprotocol(mf: MfProcess) -> None:
    """The product's test UE opens every channel, talks on some, and hangs up."""
    from avatar_mf.sdp.datachannel import DcMap
    from avatar_mf.ue import DEFAULT_STREAMS, UeCall

    echo = DcMap(1010, label="diagnostic", subprotocol="x-avatar-mf-echo")
    before = await asyncio.to_thread(wait_for, mf, idle)
    call = UeCall.dial(
        f"sip:avatar@{HOST}:{mf.sip_port}",
        HOST,
        mf.sip_port,
        streams=(*DEFAULT_STREAMS, echo),
        ice=False,
    )
    async with call:
        await call.wait_channels_open(STEP)
        call.send(1010, "hello")  # echoed back: 5 bytes each way
        call.send(1010, b"\x00" * 300)  # and 300
        assert await call.receive(1010, STEP) == "hello"
        assert await call.receive(1010, STEP) == b"\x00" * 300
        call.send(1000, "not json")  # answered with an error on the metadata channel
        error = json.loads(await call.receive(1000, STEP))
        during = await asyncio.to_thread(scrape, mf)

    def grew(name: str, s: Scrape = during, **labels: str) -> float:
        return s.value(name, **labels) - before.value(name, **labels)

    assert during.value("avatar_mf_datachannels_open", subprotocol="http") == 2
    assert during.value("avatar_mf_datachannels_open", subprotocol=METADATA) == 1
    assert during.value("avatar_mf_datachannels_open", subprotocol="3gpp-ar-animation") == 1
    assert during.value("avatar_mf_datachannels_open", subprotocol="other") == 1
    assert grew("avatar_mf_datachannels_opened_total", subprotocol="http") == 2
    assert grew("avatar_mf_datachannel_setup_seconds_count") == 1
    assert grew("avatar_mf_datachannel_messages_total", subprotocol="other", direction="rx") == 2
    assert grew("avatar_mf_datachannel_messages_total", subprotocol="other", direction="tx") == 2
    assert grew("avatar_mf_datachannel_bytes_total", subprotocol="other", direction="rx") == 305
    assert grew("avatar_mf_datachannel_bytes_total", subprotocol="other", direction="tx") == 305
    assert grew("avatar_mf_datachannel_messages_total", subprotocol=METADATA, direction="rx") == 1
    assert grew("avatar_mf_datachannel_messages_total", subprotocol=METADATA, direction="tx") >= 1
    code = error["code"]
    assert grew("avatar_mf_avatar_error_replies_total", code=code) == 1
    assert during.value("avatar_mf_avatar_sessions_active") == 1
    assert during.value("avatar_mf_rooms_active") == 1
    assert grew("avatar_mf_relay_delivered_total", kind="metadata") >= 1
    assert grew("avatar_mf_relay_latency_seconds_count", kind="metadata") >= 1

    after = await asyncio.to_thread(wait_for, mf, idle)
    for subprotocol in ("http", METADATA, "3gpp-ar-animation", "other"):
        assert after.value("avatar_mf_datachannels_open", subprotocol=subprotocol) == 0
    assert after.value("avatar_mf_avatar_sessions_active") == 0
    assert after.value("avatar_mf_rooms_active") == 0
    assert grew("avatar_mf_calls_ended_total", after, reason="bye") == 1


# --------------------------------------------------------------------------- in process


def test_fixed_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = FixedHistogram((0.001, 0.01, 0.1))
    for value in (0.0, 0.001, 0.002, 0.05, 3.0):
        h.observe(value)
    assert h.cumulative() == [(0.001, 2), (0.01, 3), (0.1, 4), (float("inf"), 5)]
    assert h.count == 5 and h.sum == pytest.approx(3.053)
    with pytest.raises(ValueError):
        FixedHistogram((0.1, 0.01))


def test_relay_latency_is_measured_on_the_injected_clock() -> None:
    clock = FakeClock()
    metrics = RelayMetrics()
    sent: list[str | bytes] = []
    backlog = {"bytes": 0}
    outlet = Outlet(sent.append, lambda: backlog["bytes"], metrics)
    animation = AnimationQueue(outlet, clock, max_units=2, high_water=100)
    metadata = MessageQueue(outlet, clock, max_bytes=10, high_water=100)

    animation.offer("a", b"u0")  # the channel keeps up: sent at once, 0 s
    metadata.offer("m0")
    assert metrics.animation_latency.cumulative()[0] == (0.0005, 1)
    backlog["bytes"] = 100  # the channel backs up: units wait, the oldest go stale
    for i in range(1, 5):
        animation.offer("a", bytes([i]))
    metadata.offer("m1")
    clock.advance(0.02)
    backlog["bytes"] = 0
    clock.advance(0.01)  # the retry timer pumps
    assert sent[:2] == [b"u0", "m0"]
    assert sorted(map(repr, sent[2:])) == sorted(map(repr, [b"\x03", b"\x04", "m1"]))
    assert metrics.animation.delivered == 3 and metrics.animation.dropped_stale == 2
    assert metrics.metadata.delivered == 2
    assert metrics.animation_latency.count == 3
    # The two late units waited 20-30 ms: the 0.025 or 0.05 buckets.
    assert dict(metrics.animation_latency.cumulative())[0.01] == 1
    assert dict(metrics.animation_latency.cumulative())[0.05] == 3
    metadata.offer("x" * 20)  # past max_bytes: the receiver overflowed
    assert metrics.metadata.overflowed == 1


@pytest.mark.parametrize(
    ("end", "text", "label", "failure"),
    [
        (CallEnd(EndReason.BYE), "bye", "bye", False),
        (CallEnd(EndReason.CANCELLED), "cancelled", "cancelled", False),
        (CallEnd(EndReason.NO_ACK), "no ACK", "no_ack", True),
        (CallEnd(EndReason.REJECTED, "488"), "refused 488", "rejected_488", True),
        (
            CallEnd(EndReason.MEDIA_FAILED, "setup timeout"),
            "media failed: setup timeout",
            "media_failed",
            True,
        ),
        (CallEnd(EndReason.MEDIA_SETUP_FAILED), "media setup failed", "media_setup_failed", True),
        (CallEnd(EndReason.SESSION_EXPIRED), "session expired", "session_expired", True),
        (CallEnd(EndReason.REFRESH_FAILED, "408"), "refresh failed (408)", "refresh_failed", True),
        (CallEnd(EndReason.REFRESH_TIMEOUT), "refresh timed out", "refresh_timeout", True),
        (
            CallEnd(EndReason.INVITE_TX_ENDED),
            "INVITE transaction ended",
            "invite_tx_ended",
            True,
        ),
        (CallEnd(EndReason.TRANSPORT_ERROR), "transport error", "transport_error", True),
        (CallEnd(EndReason.OPERATOR), "dropped", "operator", False),
        (
            CallEnd(EndReason.OPERATOR, "dropped by operator"),
            "dropped by operator",
            "operator",
            False,
        ),
        (CallEnd(EndReason.SHUTDOWN, "shutdown"), "shutdown", "shutdown", False),
    ],
)
def test_end_reasons_have_bounded_labels(
    end: CallEnd, text: str, label: str, failure: bool
) -> None:
    """Each end has its metrics label and its log text (the BYE's Reason text too)."""
    assert end.text == text
    assert end.label == label
    assert end.failure is failure
    assert is_failure(label) is failure


class FailingSource:
    """An animation-data stage that fails the way it is told to, one error per utterance."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors

    def plan_text(self, text: str, *, language: str, rate: float, start_tick: int) -> Any:
        raise self.errors.pop(0)

    def open(self, context: StageContext) -> TextSpeechStage:
        return TextSpeechStage(self, context)


async def test_stage_failures_are_counted_by_stage_and_kind(tmp_path: Path) -> None:
    """A real node in this process (its listeners on free loopback ports): the avatar hub's
    stage failures reach its /metrics exposition."""
    config = AppConfig.model_validate(
        {
            "sip": {"port": free_port()},
            "admin": {"enabled": False},
            "storage": {"path": str(tmp_path / "storage")},
            "pipeline": {"animation_data": {"name": ""}},
        }
    )
    node = MediaFunction(config)
    await node.start()
    try:
        hub = node.hub
        assert hub is not None
        errors: list[Exception] = [RuntimeError("engine crashed"), StageBusy("a"), StageBusy("b")]
        hub.stages = (ConfiguredStage("animation_data", "failing", FailingSource(errors)),)
        info = channel_info(stream_id=1000, subprotocol=METADATA, request_uri="sip:r@mf")
        channel = RecordingChannel(info)
        service = hub.services()[METADATA](channel)
        for count in range(1, 4):
            text = AnimationText(id=new_message_id(), text="hi", language="en")
            service.on_message(dump_message(text))
            for _ in range(400):  # the stage runs in the executor: wait for its error reply
                if len(channel.sent) == count:
                    break
                await asyncio.sleep(0.005)
            assert len(channel.sent) == count
        body, content_type = node.metrics.render("")
        assert content_type.startswith("text/plain")
        s = Scrape(body.decode())
        assert s.value("avatar_mf_stage_errors_total", stage="animation_data", kind="failed") == 1
        assert s.value("avatar_mf_stage_errors_total", stage="animation_data", kind="busy") == 2
        assert s.value("avatar_mf_avatar_error_replies_total", code="busy") == 2
        assert s.value("avatar_mf_avatar_error_replies_total", code="stage-failed") == 1
        assert s.value("avatar_mf_avatar_sessions_active") == 1
        service.on_close()
        assert (
            Scrape(node.metrics.render("")[0].decode()).value("avatar_mf_avatar_sessions_active")
            == 0
        )
    finally:
        await node.close()


async def test_two_nodes_in_one_process_have_separate_registries(tmp_path: Path) -> None:
    def node(name: str) -> MediaFunction:
        return MediaFunction(AppConfig.model_validate({"storage": {"path": str(tmp_path / name)}}))

    a, b = node("a"), node("b")
    assert a.metrics.registry is not b.metrics.registry
    a.metrics.call_setup.observe(0.01)
    assert b"avatar_mf_call_setup_seconds_count 1.0" in a.metrics.render("")[0]
    assert b"avatar_mf_call_setup_seconds_count 0.0" in b.metrics.render("")[0]
    a.executor.shutdown()
    b.executor.shutdown()


def test_endpoint_stats_flatten_to_the_stats_shape() -> None:
    """``/stats`` shows the endpoint's counters flat, as ``rx_request_INVITE`` ...: responses
    sent by status over every method, refusals only once they counted."""
    stats = EndpointStats()
    stats.requests_received.update({"INVITE": 2, "ACK": 1})
    stats.responses_received[200] += 1
    stats.requests_sent["BYE"] += 1
    stats.responses_sent.update({("INVITE", 200): 2, ("BYE", 200): 1, ("INVITE", 100): 2})
    stats.untrusted = 3
    assert stats.as_dict() == {
        "rx_request_INVITE": 2,
        "rx_request_ACK": 1,
        "rx_response_200": 1,
        "tx_request_BYE": 1,
        "tx_response_200": 3,
        "tx_response_100": 2,
        "untrusted": 3,
    }
