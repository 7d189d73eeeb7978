"""``[calls]``: the room pattern must compile, the outbound proxy be a SIP URI or host[:port];
the embedded default makes every Request-URI a room."""

from __future__ import annotations

import pytest

from avatar_mf.config import CallsConfig, ConfigError, load_config


def test_default_every_request_uri_is_a_room_and_no_proxy() -> None:
    calls = load_config(None, env={}).calls
    assert calls.room_pattern == ".*"
    assert calls.outbound_proxy is None and calls.outbound_proxy_uri == ""


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        ("sip:127.0.0.1:5070;lr", "sip:127.0.0.1:5070;lr"),
        ("sip:kamailio.lab;transport=tcp", "sip:kamailio.lab;transport=tcp"),
        ("127.0.0.1:5070", "sip:127.0.0.1:5070"),
        ("kamailio", "sip:kamailio"),
    ],
)
def test_outbound_proxy_forms(value: str, uri: str) -> None:
    assert CallsConfig(outbound_proxy=value).outbound_proxy_uri == uri


@pytest.mark.parametrize("value", ["sip:", "<sip:p>", "sip:a b", "sip:u@host"])
def test_outbound_proxy_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="calls.outbound_proxy"):
        load_config(None, env={"AVATAR_MF_CALLS__OUTBOUND_PROXY": value})


def test_room_pattern_must_compile() -> None:
    with pytest.raises(ConfigError, match="calls.room_pattern: not a regular expression"):
        load_config(None, env={"AVATAR_MF_CALLS__ROOM_PATTERN": "room(["})
