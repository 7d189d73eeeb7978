"""Frames: what flows between the channels of a session and its stages.

Frames are frozen, slotted dataclasses; change one with :func:`dataclasses.replace`. Every
frame names the participant it comes from (the call's participant id in its room). Errors
travel as :class:`StageError` frames instead of exceptions, so a failing stage degrades its own
session and never the pipeline or the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TextInput:
    """Text from a UE to be spoken by its avatar (D.3.1 network-centric, text source)."""

    participant: str
    text: str
    language: str = "en"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AnimationUnitFrame:
    """One encoded ARF Avatar Animation Unit (ISO/IEC 23090-39), as sent on the wire."""

    participant: str
    unit: bytes
    is_config: bool = False
    #: Media time of the unit in seconds from the start of its stream.
    media_time: float = 0.0


@dataclass(frozen=True, slots=True)
class BaseAvatarFrame:
    """A base avatar container (ARF zip) for a participant (D.1 / D.2)."""

    participant: str
    avatar_id: str
    content_type: str
    data: bytes = field(repr=False)
    digest: str = ""


@dataclass(frozen=True, slots=True)
class ScenePatchFrame:
    """A JSON Patch (RFC 6902) against a scene version, from a UE or the MF (C)."""

    participant: str
    base_version: int
    operations: tuple[dict[str, Any], ...]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """The scene description after a change (B), with its version."""

    version: int
    document: dict[str, Any] = field(hash=False, compare=False)
    operations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class StageError:
    """A stage failed for one participant; the session degrades and tells the UE."""

    stage: str
    participant: str
    code: str
    message: str
    retryable: bool = False


Frame = TextInput | AnimationUnitFrame | BaseAvatarFrame | ScenePatchFrame | SceneFrame | StageError
