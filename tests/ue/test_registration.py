"""The test UE's registration state machine (RFC 3261 section 10) with the fake clock: the
REGISTER it builds, the refresh before the granted expiry, 423 with Min-Expires, retry after a
failure, removal with Expires: 0."""

from __future__ import annotations

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.headers import parse_cseq
from avatar_mf.sip.message import Request
from avatar_mf.testing.clock import FakeClock
from avatar_mf.ue.registration import Registration, RegistrationStatus, granted_expires

AOR = "sip:ue2@127.0.0.1:5070"
CONTACT_URI = "sip:ue2@127.0.0.1:40000;transport=udp"


def _machine(
    clock: FakeClock,
    sent: list[Request],
    seen: list[RegistrationStatus] | None = None,
    **kw: object,
) -> Registration:
    return Registration(
        aor=AOR,
        registrar="sip:127.0.0.1:5070",
        contact=f"<{CONTACT_URI}>",
        clock=clock,
        send=sent.append,
        on_change=None if seen is None else seen.append,
        **kw,  # type: ignore[arg-type]
    )


def _ok(request: Request, expires: int) -> object:
    return make_response(
        request, 200, to_tag="reg", headers=[("Contact", f"<{CONTACT_URI}>;expires={expires}")]
    )


def test_register_request_follows_10_2() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent, expires=120)
    reg.start()
    (request,) = sent
    assert request.method == "REGISTER" and request.uri == "sip:127.0.0.1:5070"
    assert request.headers.get("To") == f"<{AOR}>"
    assert request.headers.get("From", "").startswith(f"<{AOR}>;tag=")
    assert request.headers.get("Contact") == f"<{CONTACT_URI}>;expires=120"
    assert request.headers.get("Expires") == "120"
    assert reg.state == "registering"


def test_refreshes_before_the_granted_expiry_with_same_call_id_and_next_cseq() -> None:
    clock, sent, seen = FakeClock(), [], []
    reg = _machine(clock, sent, seen, expires=600, refresh_margin=30)
    reg.start()
    # the registrar grants less than asked: the UE goes by what was granted
    status = reg.on_response(_ok(sent[0], 100))  # type: ignore[arg-type]
    assert (status.state, status.granted) == ("registered", 100)
    assert reg.expires_at == 100 and reg.refresh_at == 70
    clock.advance(69.9)
    assert len(sent) == 1
    clock.advance(0.1)
    assert len(sent) == 2  # the refresh, 30 s before the expiry
    first, refresh = sent
    assert refresh.headers.get("Call-ID") == first.headers.get("Call-ID")  # 10.2.4
    assert (
        parse_cseq(refresh.headers.get("CSeq") or "").seq
        == parse_cseq(first.headers.get("CSeq") or "").seq + 1
    )
    assert refresh.headers.get("Expires") == "600"
    reg.on_response(_ok(refresh, 100))  # type: ignore[arg-type]
    assert reg.expires_at == 170 and reg.registrations == 2
    assert [s.state for s in seen] == ["registered", "registered"]


def test_short_grant_refreshes_at_half_of_it() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent, refresh_margin=30)
    reg.start()
    reg.on_response(_ok(sent[0], 20))  # type: ignore[arg-type]
    assert reg.refresh_at == 10


def test_423_asks_again_with_min_expires() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent, expires=5)
    reg.start()
    too_brief = make_response(sent[0], 423, to_tag="reg", headers=[("Min-Expires", "60")])
    status = reg.on_response(too_brief)
    assert status.state == "registering" and len(sent) == 2
    assert sent[1].headers.get("Expires") == "60"
    reg.on_response(_ok(sent[1], 60))  # type: ignore[arg-type]
    assert reg.state == "registered"


def test_failure_retries_after_retry_after() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent, retry_after=30)
    reg.start()
    status = reg.on_response(
        make_response(sent[0], 503, to_tag="x", headers=[("Retry-After", "7")])
    )
    assert (status.state, status.status) == ("failed", 503)
    clock.advance(6.9)
    assert len(sent) == 1
    clock.advance(0.1)
    assert len(sent) == 2
    status = reg.on_failure("timeout")
    assert status.state == "failed"
    clock.advance(30)
    assert len(sent) == 3


def test_failed_refresh_retries_before_the_binding_lapses() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent, retry_after=300, refresh_margin=30)
    reg.start()
    reg.on_response(_ok(sent[0], 100))  # type: ignore[arg-type]
    clock.advance(70)
    status = reg.on_failure("timeout")
    assert status.state == "registered"  # the binding still holds for 30 s
    clock.advance(15)
    assert len(sent) == 3  # retried at half of what was left, not after 300 s


def test_unregister_sends_expires_zero_and_stops_refreshing() -> None:
    clock, sent = FakeClock(), []
    reg = _machine(clock, sent)
    reg.start()
    reg.on_response(_ok(sent[0], 100))  # type: ignore[arg-type]
    removal = reg.unregister()
    assert removal is not None and removal.headers.get("Expires") == "0"
    assert removal.headers.get("Contact") == f"<{CONTACT_URI}>;expires=0"
    assert reg.on_response(make_response(removal, 200, to_tag="reg")).state == "unregistered"
    clock.advance(1000)
    assert len(sent) == 1 and clock.pending == 0


def test_granted_expires_reads_our_contact_then_the_header() -> None:
    request = Request("REGISTER", "sip:x")
    other = make_response(
        request,
        200,
        headers=[
            ("Contact", "<sip:other@10.0.0.1>;expires=999"),
            ("Contact", f"<{CONTACT_URI}>;expires=42"),
        ],
    )
    assert granted_expires(other, CONTACT_URI, 600) == 42
    header = make_response(request, 200, headers=[("Expires", "77")])
    assert granted_expires(header, CONTACT_URI, 600) == 77
    assert granted_expires(make_response(request, 200), CONTACT_URI, 600) == 600
    missing = make_response(request, 200, headers=[("Contact", "<sip:other@10.0.0.1>;expires=9")])
    assert granted_expires(missing, CONTACT_URI, 600) == 0


def test_expires_must_be_positive() -> None:
    with pytest.raises(ValueError):
        _machine(FakeClock(), [], expires=0)
