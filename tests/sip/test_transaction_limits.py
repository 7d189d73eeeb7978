"""Memory bounds of the transaction layer (issue 9): what a server transaction keeps after its
final response, and the caps on live transactions and the bytes they hold (503 past them)."""

from __future__ import annotations

from avatar_mf.sip.build import make_response
from avatar_mf.sip.message import Request, Response, serialize
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.transaction_layer import TransactionLayer, TransactionLimits, message_size
from avatar_mf.testing.clock import FakeClock

from .test_transaction_layer import Recorder, RecordingTU, T, req

UDP = Peer("udp", "10.0.0.1", 5060)
OTHER = Peer("udp", "10.0.0.9", 5060)
BIG = 60_000


def big(method: str, n: int, peer: Peer = UDP) -> Request:
    request = req(method, branch=f"z9hG4bK{n}", sent_by=f"{peer.host}:{peer.port}")
    return Request(
        request.method,
        request.uri,
        request.headers.add("X-Padding", "p" * 1000),
        b"b" * BIG,
    )


def make(
    limits: TransactionLimits | None = None, auto_status: int | None = 200
) -> tuple[TransactionLayer, FakeClock, Recorder, RecordingTU]:
    clock = FakeClock()
    send = Recorder(clock)
    tu = RecordingTU(auto_status=auto_status)
    return TransactionLayer(clock, T, send, tu, limits), clock, send, tu


def test_message_size_is_the_wire_size_within_a_few_bytes() -> None:
    for message in (big("OPTIONS", 1), make_response(big("OPTIONS", 1), 200, to_tag="x")):
        assert abs(message_size(message) - len(serialize(message))) < 64


def test_after_the_final_response_only_matching_headers_are_kept() -> None:
    layer, clock, send, tu = make()
    layer.receive(big("OPTIONS", 1), UDP)
    (tx,) = layer.server_transactions()
    assert tu.requests[0][1].body == b"b" * BIG  # the TU got the whole request
    # Kept over UDP for Timer J (64*T1), but without the body and the padding.
    assert tx.alive and tx.request.body == b"" and "X-Padding" not in tx.request.headers
    assert [n for n, _ in tx.request.headers.items] == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert layer.held_bytes < 2000 and layer.held_bytes_of(UDP.host) == layer.held_bytes
    # A retransmission still gets the cached 200.
    layer.receive(big("OPTIONS", 1), UDP)
    assert send.statuses() == [200, 200]
    clock.advance(T.timer_j(False))
    assert len(layer) == 0 and layer.held_bytes == 0 and layer.held_bytes_of(UDP.host) == 0


def test_an_unanswered_request_is_held_whole_and_counted() -> None:
    layer, _clock, _send, tu = make(auto_status=None)
    layer.receive(big("INVITE", 1), UDP)
    assert layer.held_bytes >= BIG
    (tx, _request), = tu.requests
    tx.respond(make_response(tx.request, 486, to_tag="t"))
    assert layer.held_bytes < 2000


def test_bytes_per_source_cap_answers_503_without_a_transaction() -> None:
    limits = TransactionLimits(max_bytes_per_source=3 * (BIG + 2000), retry_after=7)
    layer, _clock, send, tu = make(limits, auto_status=None)  # nothing answered: held whole
    for n in range(5):
        layer.receive(big("OPTIONS", n), UDP)
    assert len(layer) == 3 and layer.stats.overloaded == 2
    refusals = [m for _, m, _ in send.sent if isinstance(m, Response)]
    assert [r.status for r in refusals] == [503, 503]
    assert refusals[0].headers.get("Retry-After") == "7"
    assert len(tu.requests) == 3
    # Another source still has its own budget.
    layer.receive(big("OPTIONS", 9, OTHER), OTHER)
    assert len(layer) == 4
    # ACKs never create transactions: they pass whatever the budget.
    layer.receive(req("ACK", branch="z9hG4bKack", to_tag="x"), UDP)
    assert len(tu.acks) == 1


def test_node_bytes_and_transaction_caps() -> None:
    layer, _clock, send, _tu = make(TransactionLimits(max_bytes=2 * (BIG + 2000)), auto_status=None)
    layer.receive(big("OPTIONS", 1), UDP)
    layer.receive(big("OPTIONS", 2, OTHER), OTHER)
    layer.receive(big("OPTIONS", 3, OTHER), OTHER)
    assert len(layer) == 2 and send.statuses() == [503]
    layer, _clock, send, _tu = make(TransactionLimits(max_transactions=10))
    for n in range(12):
        layer.receive(req("OPTIONS", branch=f"z9hG4bKn{n}"), UDP)
    assert len(layer) == 10 and send.statuses() == [200] * 10 + [503] * 2


def test_a_retransmission_of_a_live_transaction_passes_the_caps() -> None:
    layer, _clock, send, _tu = make(TransactionLimits(max_transactions=1))
    layer.receive(req("OPTIONS", branch="z9hG4bKr"), UDP)
    layer.receive(req("OPTIONS", branch="z9hG4bKr"), UDP)
    assert send.statuses() == [200, 200] and layer.stats.overloaded == 0


def test_memory_stays_flat_under_a_flood_of_answered_requests() -> None:
    # The live finding: 60 KB requests answered at once, each kept 32 s over UDP.
    layer, clock, _send, _tu = make(TransactionLimits(max_bytes=64 * 1024 * 1024))
    for n in range(500):
        layer.receive(big("OPTIONS", n), UDP)
        clock.advance(0.01)
    assert len(layer) == 500  # all still in Completed (Timer J)
    assert layer.held_bytes < 500 * 2000  # ~1 MB, not 30 MB
    assert layer.stats.overloaded == 0
