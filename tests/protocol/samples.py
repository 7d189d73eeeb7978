"""One sample of every metadata message (docs/protocol.md shows the same ones as JSON)."""

from __future__ import annotations

from avatar_mf.protocol import (
    AnimationImage,
    AnimationResumed,
    AnimationStart,
    AnimationStop,
    AnimationStopped,
    AnimationText,
    AvatarGenerate,
    AvatarGenerateProgress,
    AvatarRefused,
    AvatarSelect,
    AvatarSelected,
    Capabilities,
    ErrorMessage,
    Hello,
    Message,
    ParticipantJoined,
    ParticipantLeft,
    PatchOperation,
    Scene,
    SceneGet,
    SceneUpdate,
    SceneUpdated,
    TransferAccept,
    TransferComplete,
    TransferFailed,
    TransferOffer,
)
from avatar_mf.protocol.metadata import ExpressionFilter, ExpressionFilterApplied, Refused

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

SCENE_OPS = (
    PatchOperation(
        op="add", path="/nodes/-", value={"name": "ue2-avatar", "translation": [1, 0, 0]}
    ),
    PatchOperation(op="replace", path="/nodes/0/translation", value=[0, 0, -1.5]),
    PatchOperation(op="remove", path="/nodes/3"),
    PatchOperation(op="move", path="/nodes/1", **{"from": "/nodes/2"}),
    PatchOperation(op="test", path="/asset/version", value="2.0"),
)

SAMPLES: list[Message] = [
    Hello(
        id="ue1-1",
        role="sender",
        animation_profiles=("arf-face-v1",),
        avatar_formats=("model/gltf-binary", "application/vnd.arf+zip"),
        max_message_size=1024,
        animation="ue",
        base_avatar_generation="ue",
        animation_data="network",
        animation_inputs=("text", "voice"),
        user_agent="lab-ue/0.3",
    ),
    Capabilities(
        id="mf-1",
        in_reply_to="ue1-1",
        session_id="c0ffee-42",
        base_avatar_generation="ue",
        animation_data="network",
        animation="ue",
        rendering="ue",
        animation_inputs=("text",),
        animation_profiles=("arf-face-v1",),
        avatar_formats=("model/gltf-binary",),
        max_message_size=65536,
        max_transfer_size=67108864,
        refused=(
            Refused(
                function="animationInputs",
                requested="voice",
                code="unsupported",
                reason="this MF has no stage deriving animation data from voice (it takes: text)",
            ),
        ),
    ),
    AvatarGenerate(id="ue1-3", name="me", seed=7),
    AvatarGenerate(id="ue1-5", name="me", photos=("ue1-4-tx",)),
    AvatarGenerate(id="ue1-6", name="me", source="video"),
    AvatarGenerateProgress(id="mf-3", in_reply_to="ue1-5", percent=45, stage="shape"),
    AvatarSelect(id="ue1-2", avatar_id="bar:7d3c1e2a"),
    AvatarSelected(id="mf-2", in_reply_to="ue1-2", avatar_id="bar:7d3c1e2a", transfer_id="tx-42"),
    AvatarRefused(
        id="mf-3",
        in_reply_to="ue1-2",
        avatar_id="bar:0000",
        code="unknown-avatar",
        reason="no such avatar in the repository",
    ),
    TransferOffer(
        id="mf-4",
        transfer_id="tx-42",
        avatar_id="bar:7d3c1e2a",
        content_type="model/gltf-binary",
        total_size=5242880,
        sha256=DIGEST,
        chunk_size=1012,
        stream_id=1002,
    ),
    TransferAccept(id="ue2-1", in_reply_to="mf-4", transfer_id="tx-42", resume_from=0),
    TransferComplete(id="ue2-2", transfer_id="tx-42", sha256=DIGEST),
    TransferFailed(
        id="ue2-3", transfer_id="tx-42", code="digest-mismatch", reason="SHA-256 differs"
    ),
    AnimationStart(id="ue1-3", profile="arf-face-v1", stream_id=1004),
    AnimationStop(id="ue1-4", stream_id=1004, reason="user muted the camera"),
    AnimationStopped(id="mf-5", stream_id=1004, participant_id="p1", reason="sender stopped"),
    AnimationResumed(id="mf-6", stream_id=1004, participant_id="p1"),
    AnimationText(id="ue1-5", text="Hello, can you hear me?", language="en-US"),
    AnimationImage(
        id="ue1-9", content_type="image/jpeg", data=b"/9j/4AAQSkZJRgA=", media_time=12.48
    ),
    SceneGet(id="ue2-4"),
    Scene(
        id="mf-7",
        in_reply_to="ue2-4",
        version=3,
        document={"asset": {"version": "2.0"}, "nodes": [{"name": "ue1-avatar"}], "extras": None},
    ),
    SceneUpdate(id="ue2-5", base_version=3, operations=SCENE_OPS),
    SceneUpdated(id="mf-8", in_reply_to="ue2-5", version=4, operations=SCENE_OPS),
    ParticipantJoined(id="mf-9", participant_id="p2", display_name="Ana", avatar_id="bar:7d3c1e2a"),
    ParticipantLeft(id="mf-10", participant_id="p2", reason="bye"),
    ErrorMessage(
        id="mf-11",
        code="bad-message",
        message="avatar:transfer:accept: resumeFrom: Input should be greater than or equal to 0",
        in_reply_to="ue2-6",
    ),
    ExpressionFilter(
        id="ue1-9",
        audience=("p3", "group:class"),
        filter={
            "clamp": 0.4,
            "suppress": ["browDownLeft", "browDownRight"],
            "replace": {"mouthFrownLeft": "mouthPressLeft"},
        },
    ),
    ExpressionFilterApplied(id="mf-12", in_reply_to="ue1-9", audience=("p3", "group:class")),
]
