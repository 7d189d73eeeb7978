"""Face trackers in worker processes: pictures in, faces out, never on the event loop.

:class:`FacePool` runs one tracker per worker process (``workers``, one by default), built
there by a picklable factory (:class:`MediapipeFactory`: the packaged MediaPipe landmarker,
its model read and hash-checked once per worker). A process, not a thread, because the
landmarker holds ~180 MB and native threads of its own, and a crash in it must take down one
worker, not the MF (the pool is then broken: every later picture fails with
``face-model-unavailable`` and the sessions' faces relax to neutral).

Every worker serves every session, so the trackers run in still-picture mode (each picture
searched anew: MediaPipe's IMAGE mode, ~0.9 ms more than following the face, see
docs/performance.md); what belongs to one session (smoothing, the relax to neutral, the
newest-wins choice of pictures) stays in the session's stage (``stages/camera``). Only a
:class:`~avatar_mf.face.pictures.Picture` (the bytes as they arrived: I420, RGB or
JPEG/PNG) goes to the worker and a :class:`Tracked` comes back; the conversion to RGB is done
in the worker too.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from avatar_mf.face.model import MODEL_SHA256, FaceModelUnavailable
from avatar_mf.face.pictures import Picture, to_rgb
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError
from avatar_mf.face.tracker import FaceTracker

#: Seconds the pool waits for its workers to build their trackers.
START_TIMEOUT = 60.0


class TrackerFactory(Protocol):
    """Builds the tracker of one worker process; must pickle (a module-level class)."""

    def __call__(self) -> FaceTracker: ...


@dataclass(frozen=True, slots=True)
class MediapipeFactory:
    """The packaged MediaPipe landmarker (``model_path``: another copy of the bundle, checked
    against ``model_sha256`` unless that is None)."""

    model_path: str | None = None
    model_sha256: str | None = MODEL_SHA256

    def __call__(self) -> FaceTracker:
        from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker

        path = Path(self.model_path) if self.model_path else None
        return MediapipeFaceTracker(model_path=path, model_sha256=self.model_sha256, max_faces=1)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A worker's answer: the face, or the error code and message; ``cpu``: the worker's
    CPU seconds for the picture (conversion and tracking)."""

    face: FaceResult | None
    error: FaceError | None = None
    message: str = ""
    cpu: float = 0.0

    def result(self) -> FaceResult:
        """The face, or raise the worker's :class:`FaceTrackingError`."""
        if self.face is not None:
            return self.face
        raise FaceTrackingError(self.error or FaceError.NO_FACE, self.message)


# --- the worker side (module level: what a spawned process runs) ----------------------------

_tracker: Any = None


def _worker_init(factory: TrackerFactory) -> None:
    global _tracker
    try:
        _tracker = factory()
    except Exception as exc:  # reported by the probe and by every picture
        _tracker = FaceModelUnavailable(f"the face tracker cannot be built: {exc}")


def _probe() -> str:
    if isinstance(_tracker, Exception):
        raise _tracker
    return type(_tracker).__name__


def _track_job(picture: Picture) -> Tracked:
    start = time.process_time()
    tracker = _tracker
    if isinstance(tracker, Exception):
        raise tracker
    try:
        face = tracker.track(to_rgb(picture))
    except FaceTrackingError as exc:
        return Tracked(None, exc.code, exc.message, time.process_time() - start)
    return Tracked(face, cpu=time.process_time() - start)


# --- the parent side ------------------------------------------------------------------------


class FacePool:
    """Worker processes that track faces (see the module docstring)."""

    def __init__(self, factory: TrackerFactory | None = None, *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.factory: TrackerFactory = factory or MediapipeFactory()
        self.workers = workers
        self.tracker_name = ""
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the workers and wait until each has its tracker (blocking: a second or two;
        run it in an executor). Raises :class:`FaceModelUnavailable`."""
        if self._executor is not None:
            return
        executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.factory,),
        )
        try:
            probes = [executor.submit(_probe) for _ in range(self.workers)]
            names = {probe.result(timeout=START_TIMEOUT) for probe in probes}
        except FaceModelUnavailable:
            executor.shutdown(cancel_futures=True)
            raise
        except (BrokenProcessPool, OSError, TimeoutError) as exc:
            executor.shutdown(cancel_futures=True)
            raise FaceModelUnavailable(f"the face workers did not start: {exc!r}") from exc
        self.tracker_name = ",".join(sorted(names))
        self._executor = executor

    async def track(self, picture: Picture) -> Tracked:
        """Track ``picture`` in a worker. Raises :class:`FaceModelUnavailable` when the pool
        is not started or broken."""
        executor = self._executor
        if executor is None:
            raise FaceModelUnavailable("the face pool is not started")
        try:
            return await asyncio.wrap_future(executor.submit(_track_job, picture))
        except BrokenProcessPool as exc:
            raise FaceModelUnavailable(f"a face worker died: {exc}") from exc

    def track_sync(self, picture: Picture) -> Tracked:
        """:meth:`track` for code outside an event loop (the benchmark)."""
        executor = self._executor
        if executor is None:
            raise FaceModelUnavailable("the face pool is not started")
        return executor.submit(_track_job, picture).result()

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    def __enter__(self) -> FacePool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
