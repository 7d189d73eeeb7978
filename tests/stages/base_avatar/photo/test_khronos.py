"""The photo avatar's GLB passes the Khronos glTF validator (no error, no warning)."""

from __future__ import annotations

from pathlib import Path

from avatar_mf.avatar import build_glb
from avatar_mf.stages.base_avatar.photo.generator import PhotoAvatar
from tests.avatar.test_validator import validate

__all__ = ["validate"]  # the validator fixture (node, tests/avatar/validator)


def test_khronos_validator_accepts_the_photo_avatar(
    validate: object, astronaut_avatar: PhotoAvatar, tmp_path: Path
) -> None:
    path = tmp_path / "astronaut.glb"
    path.write_bytes(build_glb(astronaut_avatar.model))
    (report,) = validate(path)  # type: ignore[operator]
    assert report["numErrors"] == 0, report
    assert report["numWarnings"] == 0, report
