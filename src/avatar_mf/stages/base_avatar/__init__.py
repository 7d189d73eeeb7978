"""Base avatars in the network (TR 26.813 D.1): validated uploads and generated avatars.

Two stages of this kind run in every session's pipeline:

- :class:`~.validation.UploadValidation` (built in, always first) checks a base avatar the UE
  uploaded (D.1 alternative 2) before it is stored: it turns an
  :class:`~avatar_mf.pipeline.frames.AvatarUpload` into a
  :class:`~avatar_mf.pipeline.frames.BaseAvatarFrame`, or an error ``bad-avatar``.
- the configured generator (``[pipeline.base_avatar]``; default ``procedural``) builds one when
  the UE asks the network to (D.1 alternative 1): a
  :class:`~avatar_mf.pipeline.frames.GenerateAvatar` becomes a ``BaseAvatarFrame``.

Both are CPU-heavy and run in the session's worker pool, never on the event loop. A generator
also serves ``avatar-mf avatar generate`` through :meth:`BaseAvatarGenerator.generate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from avatar_mf.face.pictures import Picture


@dataclass(frozen=True, slots=True)
class AvatarRequest:
    """What a UE supplies for network-centric generation (images may be empty)."""

    participant: str
    identity: str
    name: str = "avatar"
    images: tuple[bytes, ...] = field(default=(), repr=False)
    seed: int = 0
    #: Per image, its depth image (16-bit greyscale PNG, millimetres) or None; empty: none.
    depths: tuple[bytes | None, ...] = field(default=(), repr=False)
    #: Decoded pictures of the participant's RTP video (``i420``) to build from (``avatar
    #: generate`` with ``source: video``), oldest first; empty for photos.
    video: tuple[Picture, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class GeneratedAvatar:
    container: bytes = field(repr=False)
    content_type: str = "application/vnd.arf+zip"
    name: str = "avatar"


@runtime_checkable
class BaseAvatarGenerator(Protocol):
    """Creates an ARF base avatar container. Raises ValueError on unusable input."""

    def generate(self, request: AvatarRequest) -> GeneratedAvatar: ...


#: Progress of a generation: percent done (0..100) and the step's name.
Progress = Callable[[int, str], None]


@runtime_checkable
class ReportingGenerator(Protocol):
    """A generator that reports its progress (it takes seconds); ``progress`` may be called
    from the worker thread that runs it."""

    def generate_reporting(self, request: AvatarRequest, progress: Progress) -> GeneratedAvatar: ...
