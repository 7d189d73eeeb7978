"""hello asks and capabilities agreement/refusals on the wire (docs/protocol.md section 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from avatar_mf.protocol.metadata import (
    Capabilities,
    Hello,
    MetadataError,
    Refused,
    dump_message,
    parse_message,
)
from avatar_mf.protocol.names import AnimationInput, ErrorCode, NegotiatedFunction

HELLO = "urn:3gpp:avatar:v1:session:hello"
CAPS = "urn:3gpp:avatar:v1:session:capabilities"


def caps_dict(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": CAPS,
        "id": "mf-1",
        "sessionId": "s",
        "baseAvatarGeneration": "ue",
        "animationData": "ue",
        "animation": "ue",
    }
    base.update(changes)
    return base


def test_a_first_version_hello_is_still_valid_and_asks_nothing_new() -> None:
    hello = parse_message(json.dumps({"type": HELLO, "id": "h", "role": "both", "animation": "ue"}))
    assert isinstance(hello, Hello)
    assert (hello.animation, hello.base_avatar_generation, hello.animation_data) == (
        "ue",
        None,
        None,
    )
    assert hello.animation_inputs == ()


def test_a_hello_may_leave_every_placement_to_the_mf() -> None:
    hello = parse_message(json.dumps({"type": HELLO, "id": "h", "role": "receiver"}))
    assert isinstance(hello, Hello) and hello.animation is None
    # Absent asks are left out when the hello is written.
    assert "animation" not in json.loads(dump_message(hello))


def test_hello_asks_round_trip_in_camel_case() -> None:
    hello = Hello(
        id="h",
        role="sender",
        animation="network",
        base_avatar_generation="network",
        animation_data="network",
        animation_inputs=(AnimationInput.TEXT, AnimationInput.VOICE),
    )
    wire = json.loads(dump_message(hello))
    assert wire["baseAvatarGeneration"] == "network"
    assert wire["animationData"] == "network"
    assert wire["animationInputs"] == ["text", "voice"]
    assert parse_message(dump_message(hello)) == hello


@pytest.mark.parametrize(
    "members",
    [
        {"baseAvatarGeneration": "cloud"},
        {"animationData": "both"},
        {"animation": None, "animationData": 1},
        {"animationInputs": "text"},  # a list, not a string
        {"animationInputs": ["Text"]},  # lower case names
        {"animationInputs": [""]},
        {"animationInputs": ["text"] * 17},  # at most 16
        {"animation_data": "ue"},  # snake_case is not a wire name
    ],
)
def test_bad_hello_asks_are_bad_message(members: dict[str, Any]) -> None:
    data = {"type": HELLO, "id": "h", "role": "both", **members}
    with pytest.raises(MetadataError) as info:
        parse_message(json.dumps(data))
    assert info.value.code == ErrorCode.BAD_MESSAGE and info.value.in_reply_to == "h"


def test_an_unknown_input_name_is_valid_on_the_wire() -> None:
    # The negotiation refuses it with a reason; the parser does not.
    hello = parse_message(
        json.dumps({"type": HELLO, "id": "h", "role": "both", "animationInputs": ["eeg"]})
    )
    assert isinstance(hello, Hello) and hello.animation_inputs == ("eeg",)


def test_capabilities_with_refusals_round_trip() -> None:
    message = Capabilities(
        id="mf-1",
        session_id="s",
        base_avatar_generation="ue",
        animation_data="network",
        animation="network",
        rendering="network",
        animation_inputs=("text",),
        refused=(
            Refused(
                function=NegotiatedFunction.AVATAR_FORMATS,
                requested="model/x-vendor-avatar",
                code=ErrorCode.NO_COMMON_FORMAT,
                reason="no common avatar format",
            ),
            Refused(function="animation", code="conflict", reason="tag says assisted"),
        ),
    )
    wire = json.loads(dump_message(message))
    assert wire["rendering"] == "network"
    assert wire["animationInputs"] == ["text"]
    assert wire["refused"] == [
        {
            "function": "avatarFormats",
            "requested": "model/x-vendor-avatar",
            "code": "no-common-format",
            "reason": "no common avatar format",
        },
        # requested is optional and left out when absent
        {"function": "animation", "code": "conflict", "reason": "tag says assisted"},
    ]
    assert parse_message(dump_message(message)) == message


def test_capabilities_of_an_older_mf_mean_rendering_ue_and_nothing_refused() -> None:
    message = parse_message(json.dumps(caps_dict()))
    assert isinstance(message, Capabilities)
    assert (message.rendering, message.refused, message.animation_inputs) == ("ue", (), ())


@pytest.mark.parametrize(
    "refused",
    [
        [{"function": "animation", "code": "conflict"}],  # no reason
        [{"function": "animation", "reason": "r"}],  # no code
        [{"code": "conflict", "reason": "r"}],  # no function
        [{"function": "animation", "code": "Bad Code", "reason": "r"}],
        [{"function": "animation", "code": "conflict", "reason": "r", "extra": 1}],
        [{"function": "Animation", "code": "conflict", "reason": "r"}],
        [{"function": "animation", "code": "conflict", "reason": "r"}] * 33,  # at most 32
        {"function": "animation", "code": "conflict", "reason": "r"},  # a list, not an object
    ],
)
def test_bad_refused_entries_are_bad_message(refused: Any) -> None:
    with pytest.raises(MetadataError) as info:
        parse_message(json.dumps(caps_dict(refused=refused)))
    assert info.value.code == ErrorCode.BAD_MESSAGE


def test_new_error_codes_are_wire_safe() -> None:
    for code in (ErrorCode.CONFLICT, ErrorCode.NO_COMMON_PROFILE, ErrorCode.NO_COMMON_FORMAT):
        entry = Refused(function="animation", code=code, reason="r")
        assert entry.code == code.value
