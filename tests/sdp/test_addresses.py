"""avatar_mf.sdp.addresses: IP literals of connection data, parsed once."""

from __future__ import annotations

import ipaddress

from avatar_mf.sdp import parse_sdp, serialize_sdp
from avatar_mf.sdp.addresses import CACHE_MAX_LENGTH, ip_literal
from avatar_mf.sdp.offer_answer import plan_answer, render_answer
from tests.sdp.samples import IMS_OFFER, dc_params


def test_ip_literals_and_names() -> None:
    assert ip_literal("192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")
    assert ip_literal("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    for text in ("ue.example.org", "1.2.3.999", "", "[2001:db8::1]", "01.2.3.4"):
        assert ip_literal(text) is None


def test_repeated_addresses_are_parsed_once() -> None:
    assert ip_literal("192.0.2.77") is ip_literal("192.0.2.77")
    long_text = "1" * (CACHE_MAX_LENGTH + 1)
    assert ip_literal(long_text) is None


def test_the_answer_follows_a_changed_local_address() -> None:
    # The node's address is a configuration value: a reloaded configuration with another
    # address (another family, even) must be written, not a cached earlier one.
    plan = plan_answer(parse_sdp(IMS_OFFER))
    for address, expected in (
        ("192.0.2.10", "IN IP4 192.0.2.10"),
        ("2001:db8::10", "IN IP6 2001:db8::10"),
        ("192.0.2.11", "IN IP4 192.0.2.11"),
    ):
        sd = render_answer(
            plan, dc_params(), local_address=address, session_id=1, session_version=1
        )
        text = serialize_sdp(sd)
        assert f"c={expected}\r\n" in text
        assert f"o=avatar-mf 1 1 {expected}\r\n" in text
