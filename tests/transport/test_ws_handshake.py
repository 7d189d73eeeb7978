"""The SIP WebSocket handshake policy (RFC 7118 section 4, RFC 6455 10.2): subprotocol ``sip``
required, Origin allow-list, any path."""

from __future__ import annotations

import pytest

from avatar_mf.config import load_config
from avatar_mf.transport.ws_handshake import (
    handshake_refusal,
    normalize_origin,
    offered_subprotocols,
)


def test_offered_subprotocols_across_headers() -> None:
    assert offered_subprotocols(["chat, sip", " foo "]) == ("chat", "sip", "foo")
    assert offered_subprotocols([]) == ()


@pytest.mark.parametrize(
    "offered", [[], ["chat"], ["sips"], ["SIP-x, chat"]], ids=["none", "other", "sips", "near"]
)
def test_a_handshake_without_sip_is_refused_400(offered: list[str]) -> None:
    refusal = handshake_refusal(subprotocols=offered, origin=None, allowed_origins=frozenset())
    assert refusal is not None and refusal.status == 400 and "'sip'" in refusal.reason


def test_any_origin_when_the_list_is_empty() -> None:
    assert (
        handshake_refusal(
            subprotocols=["sip"], origin="https://evil.example", allowed_origins=frozenset()
        )
        is None
    )


def test_origin_allow_list() -> None:
    # The configured values go through the config's own check, as in a node.
    env = {"AVATAR_MF_SIP__WS_ORIGINS": "HTTPS://Lab.Example:443,http://127.0.0.1:8000"}
    allowed = frozenset(load_config(None, env=env).sip.ws_origins)
    assert allowed == {"https://lab.example", "http://127.0.0.1:8000"}

    def refused(origin: str | None) -> int | None:
        refusal = handshake_refusal(subprotocols=["sip"], origin=origin, allowed_origins=allowed)
        return None if refusal is None else refusal.status

    assert refused("https://lab.example") is None
    assert refused("https://LAB.example:443") is None
    assert refused("http://127.0.0.1:8000") is None
    assert refused("http://127.0.0.1:8001") == 403
    assert refused("http://lab.example") == 403
    assert refused("null") == 403
    # Not a browser page: the allow-list does not apply.
    assert refused(None) is None


def test_normalize_origin() -> None:
    assert normalize_origin(" HTTPS://Lab.Example:443 ") == "https://lab.example"
    assert normalize_origin("http://h:80") == "http://h"
    assert normalize_origin("http://h:8080") == "http://h:8080"
    assert normalize_origin("null") == "null"
