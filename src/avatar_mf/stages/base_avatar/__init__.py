"""Base-avatar generation (TR 26.813 D.1 alternative 1): build a base avatar for a participant.

A generator is CPU-heavy and synchronous: the session runs it in the bounded stage executor,
never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AvatarRequest:
    """What a UE supplies for network-centric generation (images may be empty)."""

    participant: str
    identity: str
    name: str = "avatar"
    images: tuple[bytes, ...] = field(default=(), repr=False)
    seed: int = 0


@dataclass(frozen=True, slots=True)
class GeneratedAvatar:
    container: bytes = field(repr=False)
    content_type: str = "application/vnd.arf+zip"
    name: str = "avatar"


class BaseAvatarGenerator(Protocol):
    """Creates an ARF base avatar container. Raises ValueError on unusable input."""

    def generate(self, request: AvatarRequest) -> GeneratedAvatar: ...
