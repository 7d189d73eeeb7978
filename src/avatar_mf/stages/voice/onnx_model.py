"""The shipped viseme classifier, run by onnxruntime (the product's inference runtime).

``viseme_model.onnx`` ships inside the package (package data) and is checked against
:data:`MODEL_SHA256` before use: a file that does not match is refused (no other model is
loaded silently). ``tools/train_voice_visemes.py`` writes it (graph: :mod:`.onnx_export`) and
updates the pin. Nothing is downloaded.

onnxruntime sessions: one per thread, single-threaded (:mod:`.onnx_session`).
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.onnx_session import ModelMismatch, PinnedSession

__all__ = ["MODEL_SHA256", "ONNX_RESOURCE", "ModelMismatch", "OnnxVisemeModel", "shipped_model"]

#: The model file inside the package.
ONNX_RESOURCE: Final = "viseme_model.onnx"
#: sha256 of the shipped model file (written by tools/train_voice_visemes.py).
MODEL_SHA256: Final = "467ca96ccdc258ed6b9cb47c5585dc3c511da949427ee3cc5755be08d0152a86"


class OnnxVisemeModel:
    """A viseme classifier in ONNX (the :class:`~.model.VisemeClassifier` interface)."""

    def __init__(self, data: bytes, *, sha256: str | None = None) -> None:
        pinned = PinnedSession(data, sha256=sha256, what="viseme model")
        self.sha256 = pinned.sha256
        self._session = pinned.session
        session = self._session()
        meta = session.get_modelmeta().custom_metadata_map
        self.lookahead = int(meta["lookahead"])
        shape = session.get_inputs()[0].shape
        self.input_size = int(shape[1])
        self._input = session.get_inputs()[0].name

    def probabilities(self, inputs: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 15) viseme probabilities of (n, D) stacked inputs."""
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        (out,) = self._session().run(None, {self._input: x})
        result: NDArray[np.float64] = np.asarray(out, dtype=np.float64)
        return result


def shipped_model() -> OnnxVisemeModel:
    """The model that ships in the package, checked against its pin."""
    data = resources.files("avatar_mf.stages.voice").joinpath(ONNX_RESOURCE).read_bytes()
    return OnnxVisemeModel(data, sha256=MODEL_SHA256)
