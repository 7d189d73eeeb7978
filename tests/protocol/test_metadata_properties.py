"""Property tests: hostile text raises only MetadataError; generated messages round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.protocol import (
    MESSAGE_CLASSES,
    AnimationText,
    ErrorMessage,
    Hello,
    MessageType,
    MetadataError,
    PatchOperation,
    Scene,
    SceneUpdate,
    TransferOffer,
    dump_message,
    error_for,
    parse_message,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Examples that draw nested JSON are slower: fewer of them.
FEW = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
any_text = st.text(st.characters(codec="utf-8"), max_size=60)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=8,
)
member_names = st.sampled_from(
    ["id", "type", "role", "animation", "transferId", "avatarId", "totalSize", "sha256",
     "chunkSize", "streamId", "code", "message", "version", "document", "operations", "text",
     "language", "inReplyTo", "resumeFrom", "participantId"]
) | any_text  # fmt: skip


def must_be_metadata_error(data: str | bytes) -> None:
    try:
        message = parse_message(data)
    except MetadataError as exc:
        reply = error_for(exc, message_id="e")
        assert parse_message(dump_message(reply)) == reply
    else:
        assert parse_message(dump_message(message)) == message


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_metadata_error(text: str) -> None:
    must_be_metadata_error(text)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_metadata_error(data: bytes) -> None:
    must_be_metadata_error(data)


@FEW
@given(json_values)
def test_arbitrary_json_raises_only_metadata_error(value: Any) -> None:
    must_be_metadata_error(json.dumps(value))


@FEW
@given(
    st.sampled_from(sorted(MessageType)),
    st.dictionaries(member_names, json_values, max_size=6),
)
def test_objects_of_every_type_with_random_members(
    message_type: MessageType, members: dict[str, Any]
) -> None:
    members["type"] = message_type.value
    must_be_metadata_error(json.dumps(members))


@FEW
@given(st.sampled_from(list(MESSAGE_CLASSES.values())), st.data())
def test_valid_samples_with_one_member_replaced(cls: type, data: st.DataObject) -> None:
    from tests.protocol.samples import SAMPLES

    sample = next(m for m in SAMPLES if type(m) is cls)
    members = json.loads(dump_message(sample))
    name = data.draw(st.sampled_from(sorted(members)))
    members[name] = data.draw(json_values)
    must_be_metadata_error(json.dumps(members))


pointers = st.lists(any_text, max_size=3).map(lambda parts: "".join("/" + p for p in parts))


@st.composite
def patch_operations(draw: st.DrawFn) -> PatchOperation:
    op = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))
    members: dict[str, Any] = {"op": op, "path": draw(pointers)}
    if op in ("add", "replace", "test"):
        members["value"] = draw(json_values)
    if op in ("move", "copy"):
        members["from_"] = draw(pointers)
    return PatchOperation(**members)


def model(cls: Any, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


messages = st.one_of(
    model(
        Hello,
        id=ids,
        role=st.sampled_from(["sender", "receiver", "both"]),
        animation=st.sampled_from(["ue", "network"]),
        animation_profiles=st.lists(ids, max_size=3).map(tuple),
        max_message_size=st.integers(0, 2**32 - 1),
        user_agent=st.none() | any_text,
    ),
    model(
        TransferOffer,
        id=ids,
        transfer_id=ids,
        avatar_id=ids,
        content_type=st.sampled_from(["model/gltf-binary", "application/vnd.arf+zip"]),
        total_size=st.integers(1, 2**32 - 1),
        sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
        chunk_size=st.integers(1, 2**32 - 1),
        stream_id=st.integers(0, 65534),
    ),
    model(AnimationText, id=ids, text=any_text.filter(bool), language=st.just("en-GB")),
    model(
        Scene,
        id=ids,
        version=st.integers(0, 2**53 - 1),
        document=st.dictionaries(any_text, json_values, max_size=4),
    ),
    model(
        SceneUpdate,
        id=ids,
        base_version=st.integers(0, 2**53 - 1),
        operations=st.lists(patch_operations(), min_size=1, max_size=4).map(tuple),
    ),
    model(
        ErrorMessage,
        id=ids,
        code=st.sampled_from(["bad-json", "internal", "x-1"]),
        message=any_text,
        in_reply_to=st.none() | ids,
    ),
)


@FEW
@given(messages)
def test_generated_messages_round_trip(message: Any) -> None:
    text = dump_message(message)
    assert parse_message(text) == message
    assert parse_message(text.encode("utf-8")) == message
