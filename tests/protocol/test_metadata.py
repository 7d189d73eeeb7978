"""The 3gpp-ar-metadata message set: round trips, every error code, the documented examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MESSAGE_CLASSES,
    SUBPROTOCOL_ANIMATION,
    SUBPROTOCOL_METADATA,
    URN_PREFIX,
    ErrorCode,
    ErrorMessage,
    Hello,
    Message,
    MessageType,
    MetadataError,
    PatchOperation,
    SceneUpdate,
    TransferOffer,
    dump_message,
    error_for,
    new_message_id,
    parse_message,
)
from tests.protocol.samples import DIGEST, SAMPLES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def wire(message: dict[str, Any]) -> str:
    return json.dumps(message)


def parse_error(data: str | bytes, **kwargs: Any) -> MetadataError:
    with pytest.raises(MetadataError) as info:
        parse_message(data, **kwargs)
    return info.value


def offer_dict(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "urn:3gpp:avatar:v1:avatar:transfer:offer",
        "id": "m1",
        "transferId": "tx-1",
        "avatarId": "a1",
        "contentType": "model/gltf-binary",
        "totalSize": 100,
        "sha256": DIGEST,
        "chunkSize": 50,
        "streamId": 1002,
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


# --- names ---------------------------------------------------------------------------------------


def test_names_from_the_3gpp_change_request() -> None:
    assert SUBPROTOCOL_METADATA == "3gpp-ar-metadata"
    assert SUBPROTOCOL_ANIMATION == "3gpp-ar-animation"
    assert MessageType.ANIMATION_STOPPED.value == "urn:3gpp:avatar:v1:animation:control:stopped"
    assert MessageType.ANIMATION_RESUMED.value == "urn:3gpp:avatar:v1:animation:control:resumed"


def test_every_type_has_a_class_and_a_unique_urn() -> None:
    assert set(MESSAGE_CLASSES) == set(MessageType)
    assert all(t.startswith(URN_PREFIX) for t in MessageType)
    assert len({t.value for t in MessageType}) == len(MessageType)
    assert {type(m) for m in SAMPLES} == set(MESSAGE_CLASSES.values())


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    text = dump_message(message)
    assert parse_message(text) == message
    assert parse_message(text.encode()) == message
    compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert text == compact
    assert json.loads(text)["type"] == message.type
    assert list(json.loads(text))[:2] == ["type", "id"]


def test_absent_optional_members_are_left_out_and_null_is_accepted() -> None:
    hello = Hello(id="h", role="receiver", animation="network")
    assert "userAgent" not in dump_message(hello)
    data = json.loads(dump_message(hello))
    data["userAgent"] = None
    assert parse_message(wire(data)) == hello
    data["animationProfiles"] = None  # optional lists are never null
    assert parse_error(wire(data)).code == "bad-message"


def test_non_ascii_text_is_kept_as_utf8() -> None:
    text = dump_message(SAMPLES[0].model_copy(update={"user_agent": "ue/ü 中文"}))
    assert "ü 中文" in text
    assert parse_message(text.encode("utf-8")) == parse_message(text)


def test_digest_is_kept_in_lower_case() -> None:
    message = parse_message(wire(offer_dict(sha256=DIGEST.upper())))
    assert isinstance(message, TransferOffer)
    assert message.sha256 == DIGEST


def test_null_inside_json_values_is_kept() -> None:
    update = SceneUpdate(
        id="u", base_version=0, operations=(PatchOperation(op="add", path="", value=None),)
    )
    assert '"value":null' in dump_message(update)
    assert parse_message(dump_message(update)) == update


def test_messages_are_frozen() -> None:
    with pytest.raises(ValueError):
        SAMPLES[0].id = "other"


def test_new_message_ids_are_unique_and_valid() -> None:
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


# --- errors --------------------------------------------------------------------------------------


def test_oversized_messages() -> None:
    big = wire({"type": "urn:3gpp:avatar:v1:scene:get", "id": "x", "pad": "a" * 70000})
    for data in (big, big.encode()):
        error = parse_error(data)
        assert (error.code, error.in_reply_to) == (ErrorCode.TOO_LARGE, None)
    small = wire({"type": "urn:3gpp:avatar:v1:scene:get", "id": "x"})
    assert parse_error(small, max_size=10).code == "too-large"
    # The limit counts UTF-8 bytes, not characters.
    text = '{"type":"urn:3gpp:avatar:v1:animation:text","id":"t","text":"%s","language":"fr"}'
    text %= "é" * 40
    assert parse_message(text, max_size=len(text) + 40).type == "urn:3gpp:avatar:v1:animation:text"
    assert parse_error(text, max_size=len(text) + 39).code == "too-large"
    padded = '{"type":"urn:3gpp:avatar:v1:scene:get","id":"x"}'.ljust(DEFAULT_MAX_MESSAGE_SIZE)
    assert parse_message(padded).type == "urn:3gpp:avatar:v1:scene:get"
    assert parse_error(padded + " ").code == "too-large"


@pytest.mark.parametrize("data", [b"\xff", b'{"id": "\xc3"}', '{"id": "\ud800"}'])
def test_bad_encoding(data: str | bytes) -> None:
    assert parse_error(data).code == "bad-encoding"


@pytest.mark.parametrize(
    "data",
    [
        "",
        "{",
        "{'type': 1}",
        '{"a":1}x',
        "\ufeff{}",
        "[" * 300 + "]" * 300,
        "NaN",
        '{"type":"urn:3gpp:avatar:v1:scene:description","id":"h","version":1,'
        '"document":{"x":[1,NaN]}}',
        '{"type":"urn:3gpp:avatar:v1:scene:update","id":"h","baseVersion":1,'
        '"operations":[{"op":"add","path":"/a","value":-Infinity}]}',
    ],
)
def test_bad_json(data: str) -> None:
    error = parse_error(data)
    assert (error.code, error.in_reply_to) == ("bad-json", None)


@pytest.mark.parametrize("data", ["[]", "1", '"x"', "null", "true", '[{"id": "a"}]'])
def test_not_an_object(data: str) -> None:
    assert parse_error(data).code == "not-an-object"


@pytest.mark.parametrize(
    ("data", "in_reply_to"),
    [('{"id": "m7"}', "m7"), ('{"id": "m7", "type": 5}', "m7"), ("{}", None)],
)
def test_missing_type(data: str, in_reply_to: str | None) -> None:
    error = parse_error(data)
    assert (error.code, error.in_reply_to) == ("missing-type", in_reply_to)


def test_unknown_type_keeps_the_id() -> None:
    error = parse_error(wire({"type": "urn:3gpp:avatar:v2:hello", "id": "m8"}))
    assert (error.code, error.in_reply_to) == ("unknown-type", "m8")
    assert "urn:3gpp:avatar:v2:hello" in error.message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"extra": 1}, "extra"),  # unknown member
        ({"total_size": 100, "totalSize": ...}, "total_size"),  # snake_case on the wire
        ({"totalSize": "100"}, "totalSize"),  # string for an integer
        ({"totalSize": 100.0}, "totalSize"),  # float for an integer
        ({"totalSize": True}, "totalSize"),
        ({"totalSize": 0}, "totalSize"),  # out of range
        ({"totalSize": 2**32}, "totalSize"),
        ({"streamId": 65535}, "streamId"),
        ({"sha256": "abc"}, "sha256"),
        ({"contentType": "gltf"}, "contentType"),
        ({"avatarId": ""}, "avatarId"),
        ({"avatarId": "a b"}, "avatarId"),
        ({"chunkSize": ...}, "chunkSize"),  # missing
        ({"transferId": None}, "transferId"),  # null for a required member
    ],
)
def test_schema_violations_are_bad_message_with_the_id(
    changes: dict[str, Any], fragment: str
) -> None:
    error = parse_error(wire(offer_dict(**changes)))
    assert (error.code, error.in_reply_to) == ("bad-message", "m1")
    assert fragment in error.message
    assert error.message.startswith("avatar:transfer:offer: ")


@pytest.mark.parametrize("message_id", ["", "a b", "x" * 129, 7, None, "é"])
def test_an_unusable_id_is_not_echoed(message_id: object) -> None:
    error = parse_error(wire(offer_dict(id=message_id)))
    assert (error.code, error.in_reply_to) == ("bad-message", None)


@pytest.mark.parametrize(
    "data",
    [
        '{"type":"urn:3gpp:avatar:v1:session:hello","id":"h","role":"x","animation":"ue"}',
        '{"type":"urn:3gpp:avatar:v1:session:hello","id":"h","role":"both","animation":"ue",'
        '"animationProfiles":"arf-face-v1"}',
        '{"type":"urn:3gpp:avatar:v1:animation:text","id":"h","text":"","language":"en"}',
        '{"type":"urn:3gpp:avatar:v1:animation:text","id":"h","text":"hi","language":"e n"}',
        '{"type":"urn:3gpp:avatar:v1:scene:description","id":"h","version":1,"document":[]}',
        '{"type":"urn:3gpp:avatar:v1:scene:description","id":"h","version":-1,"document":{}}',
        '{"type":"urn:3gpp:avatar:v1:scene:update","id":"h","baseVersion":1,"operations":[]}',
        '{"type":"urn:3gpp:avatar:v1:error","id":"h","code":"Bad Code","message":"m"}',
    ],
)
def test_other_schema_violations(data: str) -> None:
    error = parse_error(data)
    assert (error.code, error.in_reply_to) == ("bad-message", "h")


PATCH = '{{"type":"urn:3gpp:avatar:v1:scene:update","id":"p","baseVersion":1,"operations":[{}]}}'


@pytest.mark.parametrize(
    "operation",
    [
        '{"op":"add","path":"/a"}',  # add needs value
        '{"op":"replace","path":"/a","from":"/b","value":1}',  # replace takes no from
        '{"op":"remove","path":"/a","value":1}',  # remove takes no value
        '{"op":"move","path":"/a"}',  # move needs from
        '{"op":"copy","path":"/a","from":"/b","value":1}',
        '{"op":"test","path":"a","value":1}',  # not a JSON pointer
        '{"op":"merge","path":"/a","value":1}',  # not an RFC 6902 op
        '{"op":"add","path":"/a","value":1,"comment":"x"}',  # unknown member
        '{"op":"move","path":"/a","from_":"/b"}',  # Python name on the wire
    ],
)
def test_bad_patch_operations(operation: str) -> None:
    error = parse_error(PATCH.format(operation))
    assert (error.code, error.in_reply_to) == ("bad-message", "p")


@pytest.mark.parametrize(
    "operation",
    [
        '{"op":"add","path":"","value":{}}',
        '{"op":"add","path":"/a","value":null}',
        '{"op":"remove","path":"/a~1b/0"}',
        '{"op":"copy","path":"/a","from":""}',
        '{"op":"test","path":"/a","value":[1,"x",{"y":null}]}',
    ],
)
def test_good_patch_operations(operation: str) -> None:
    message = parse_message(PATCH.format(operation))
    assert parse_message(dump_message(message)) == message
    assert json.loads(dump_message(message))["operations"] == [json.loads(operation)]


def test_error_for_builds_the_reply() -> None:
    error = parse_error(wire({"type": "urn:3gpp:avatar:v1:nope", "id": "q1"}))
    reply = error_for(error, message_id="mf-1")
    assert reply == ErrorMessage(
        id="mf-1", code="unknown-type", message=error.message, in_reply_to="q1"
    )
    assert json.loads(dump_message(reply)) == {
        "type": "urn:3gpp:avatar:v1:error",
        "id": "mf-1",
        "code": "unknown-type",
        "message": error.message,
        "inReplyTo": "q1",
    }
    # Without an id to answer, inReplyTo is left out; a fresh id is made.
    reply = error_for(parse_error("[]"))
    assert "inReplyTo" not in dump_message(reply)
    assert reply.id


def test_services_raise_metadata_error_for_valid_but_unusable_messages() -> None:
    exc = MetadataError(ErrorCode.UNEXPECTED_MESSAGE, "hello first", in_reply_to="x")
    assert str(exc) == "unexpected-message: hello first"
    assert isinstance(exc, ValueError)
    assert error_for(exc, message_id="e").code == "unexpected-message"
    long = error_for(MetadataError("internal", "x" * 5000), message_id="e")
    assert len(long.message) == 1024


# --- docs/protocol.md ----------------------------------------------------------------------------


def test_docs_show_one_valid_example_per_message_matching_the_samples() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    documented = [parse_message(block) for block in blocks]
    assert [m.type for m in documented] == [m.type for m in SAMPLES]
    assert documented == SAMPLES


def test_docs_list_every_type_urn_and_error_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for message_type in MessageType:
        assert f"`{message_type.value}`" in text
    for code in ErrorCode:
        assert f"| `{code.value}` |" in text


def test_generate_from_video_takes_no_photos() -> None:
    from avatar_mf.protocol.metadata import AvatarGenerate

    data = json.loads(dump_message(AvatarGenerate(id="g", source="video")))
    assert data["source"] == "video" and data["photos"] == []
    data["photos"] = ["tx-1"]
    error = parse_error(wire(data))
    assert (error.code, error.in_reply_to) == ("bad-message", "g")
    data.update(photos=[], source="camera")
    assert parse_error(wire(data)).code == "bad-message"
