"""A pinned ONNX model of the voice stage, one onnxruntime session per thread.

Both of the stage's shipped models (the acoustic scorer, :mod:`.acoustic_model`, and the viseme
classifier, :mod:`.onnx_model`) are checked against their sha256 pin before use: a file that
does not match is refused (no other model is loaded silently). Sessions are made lazily, one
per thread that runs the model (the event loop's, or a worker's), each with
``intra_op_num_threads = inter_op_num_threads = 1`` and sequential execution: a stream's
decisions never fan out over cores, and threads never contend for one session.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import onnxruntime as ort


class ModelMismatch(ValueError):
    """The model file is not the one the code pins."""


class PinnedSession:
    """``data`` (an ONNX model), checked against ``sha256`` when given (``what`` names it in
    the refusal); :meth:`session` is the calling thread's onnxruntime session."""

    def __init__(self, data: bytes, *, sha256: str | None, what: str) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and digest != sha256:
            raise ModelMismatch(f"{what} sha256 {digest} is not the pinned {sha256}")
        self.sha256 = digest
        self._data = data
        self._local = threading.local()

    def session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(
                self._data, sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._local.session = session
        return session
