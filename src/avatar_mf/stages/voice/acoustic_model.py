"""The shipped acoustic scorer (pocketsphinx's codebooks in ONNX), run by onnxruntime.

``acoustic_model.onnx`` (graph: :mod:`.acoustic_export`, written from pocketsphinx 5.1.1's
US English model by ``tools/build_acoustic_model.py``) ships inside the package and is
checked against :data:`ACOUSTIC_SHA256` before use. It turns each hop's ``1s_c_d_dd`` row
(:mod:`.sphinx_mfcc`) into 42 normalised phone scores, the speaker-independent features the
viseme classifier decides on (the "tandem" front end, docs/voice-animation.md). One
single-threaded onnxruntime session per thread (:mod:`.onnx_session`).
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.onnx_session import PinnedSession

#: The model file inside the package.
ACOUSTIC_RESOURCE: Final = "acoustic_model.onnx"
#: sha256 of the shipped file (written by tools/build_acoustic_model.py).
ACOUSTIC_SHA256: Final = "acf0fb4da313140fee7f88b0690bf2ab169b59c61f9e6b4d2b87556b290cdfa3"


class AcousticScorer:
    """Hop features (n, 39) -> (n, 42) phone scores, in onnxruntime."""

    def __init__(self, data: bytes, *, sha256: str | None = None) -> None:
        pinned = PinnedSession(data, sha256=sha256, what="acoustic model")
        self.sha256 = pinned.sha256
        self._session = pinned.session
        session = self._session()
        meta = session.get_modelmeta().custom_metadata_map
        #: The base phone of every score, in order.
        self.phones: tuple[str, ...] = tuple(meta["phones"].split(","))
        self.input_size = int(session.get_inputs()[0].shape[1])

    @property
    def size(self) -> int:
        """Scores per hop."""
        return len(self.phones)

    def scores(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 42) scores of (n, 39) feature rows (n may be 0)."""
        if features.shape[0] == 0:
            return np.zeros((0, self.size))
        x = np.ascontiguousarray(features, dtype=np.float32)
        (out,) = self._session().run(None, {"features": x})
        result: NDArray[np.float64] = np.asarray(out, dtype=np.float64)
        return result


def shipped_scorer() -> AcousticScorer:
    """The scorer that ships in the package, checked against its pin."""
    data = resources.files("avatar_mf.stages.voice").joinpath(ACOUSTIC_RESOURCE).read_bytes()
    return AcousticScorer(data, sha256=ACOUSTIC_SHA256)
