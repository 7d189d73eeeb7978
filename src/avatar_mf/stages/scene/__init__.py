"""Scene management (TR 26.813 B, C): one scene description per room, versioned.

The scene is glTF-based JSON in the spirit of MPEG-I scene description: one node per
participant avatar with its position and orientation. Updates are JSON Patch (RFC 6902)
documents against a version; they are validated, applied in order, and fanned out.
"""

from __future__ import annotations

from typing import Any, Protocol


class SceneError(ValueError):
    """A scene update that cannot be applied; ``code`` goes into the error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SceneManager(Protocol):
    @property
    def version(self) -> int: ...

    def document(self) -> dict[str, Any]:
        """A copy of the current scene."""
        ...

    def add_participant(
        self, participant: str, *, name: str, avatar_id: str | None
    ) -> list[dict[str, Any]]:
        """Add a node for a participant; returns the patch that did it."""
        ...

    def remove_participant(self, participant: str) -> list[dict[str, Any]]: ...

    def set_avatar(self, participant: str, avatar_id: str | None) -> list[dict[str, Any]]:
        """Record the avatar ``participant`` uses in its node; the patch (empty: no change)."""
        ...

    def apply(self, operations: list[dict[str, Any]], *, base_version: int, by: str) -> int:
        """Apply a JSON Patch made against ``base_version``; returns the new version.
        Raises SceneError (conflict, invalid patch, forbidden path)."""
        ...

    def history(self, since_version: int) -> list[tuple[int, list[dict[str, Any]]]] | None:
        """The patches applied after ``since_version`` (``[(version, patch)]``, as applied:
        what to fan out), ``[]`` when current, None when no longer kept."""
        ...
