"""RFC 3325 9.1: P-Asserted-Identity is believed only from the peers configured as asserting
it (``sip.asserted_identity_peers``: the P-CSCF); from others the caller is its From URI.
Through the real transaction layer and user agent (sans-IO, fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from avatar_mf.testing.sip import DEFAULT_UA_CONFIG, UacDialogState, UaHarness
from avatar_mf.ua.user_agent import UserAgentConfig

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()
PAI = ("P-Asserted-Identity", "<sip:+15550001@ims.example.net>")


@pytest.fixture
async def harnesses() -> AsyncIterator[list[UaHarness]]:
    made: list[UaHarness] = []
    try:
        yield made
        for harness in made:
            await harness.assert_idle()
    finally:
        for harness in reversed(made):
            harness.close()


def make(
    made: list[UaHarness], config: UserAgentConfig = DEFAULT_UA_CONFIG, **kw: object
) -> UaHarness:
    harness = UaHarness(config, **kw)  # type: ignore[arg-type]
    made.append(harness)
    return harness


def lab_config(*networks: str) -> UserAgentConfig:
    return replace(
        DEFAULT_UA_CONFIG, asserted_identity_peers=tuple(IPv4Network(n) for n in networks)
    )


@pytest.mark.parametrize(
    ("networks", "believed"),
    [(("10.0.0.0/24",), True), (("127.0.0.0/8",), False), ((), False)],
)
async def test_p_asserted_identity_is_believed_only_from_asserting_peers(
    harnesses: list[UaHarness], networks: tuple[str, ...], believed: bool
) -> None:
    mf = make(harnesses, lab_config(*networks))
    ue = UacDialogState()  # sends from 10.0.0.1
    await mf.deliver(ue.invite(OFFER, headers=(PAI,)))
    info = mf.sessions.calls[0]
    expected = "sip:+15550001@ims.example.net" if believed else ue.local_uri
    assert info.identity == expected
    ok = mf.wire.final("INVITE")
    ue.learn(ok)
    await mf.deliver(ue.ack())
    await mf.deliver(ue.bye())


def test_asserting_peers_are_matched_by_address_ipv4_mapped_as_ipv4() -> None:
    config = lab_config("10.0.0.0/24")
    assert config.asserts_identity("10.0.0.7")
    assert config.asserts_identity("::ffff:10.0.0.7")
    assert not config.asserts_identity("10.0.1.7")
    assert not config.asserts_identity("ims.example.net")  # never a name
    assert DEFAULT_UA_CONFIG.asserts_identity("127.0.0.1")  # the lab default: loopback
