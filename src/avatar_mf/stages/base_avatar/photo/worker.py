"""Photo generation in a worker process: photos in, a container (or a coded refusal) out.

A generation is about a second of CPU, much of it Python that holds the GIL (the 52
blendshapes carried one by one), and it runs the face landmarker (~180 MB, native threads of
its own): in the MF it runs in a process of its own, so the event loop never waits for it and
a crash in the native code takes down the worker, not the MF. :class:`GenerationProcess`
(the parent side) keeps one spawned worker (``ProcessPoolExecutor``, started on first use);
the worker builds its generator with the factory it was given (the photo generator in
in-process mode: template, anchors and landmarker) once and serves one request at a time.
Its progress reports come back over a ``multiprocessing`` queue and are passed on, in order,
by the thread waiting for the result.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from avatar_mf.stages.base_avatar import AvatarRequest, GeneratedAvatar, Progress

#: Seconds between looks at the progress queue while a generation runs.
POLL = 0.05


class GenerationUnavailable(RuntimeError):
    """The worker process died or could not start (the MF's fault, not the photo's)."""

    code = "internal"
    retryable = True


# --- the worker side (module level: what a spawned process runs) ----------------------------

_generator: Any = None
_reports: Any = None


def _worker_init(factory: Callable[[], Any], reports: Any) -> None:
    global _generator, _reports
    _generator = factory()
    _reports = reports


def _report(percent: int, stage: str) -> None:
    _reports.put((percent, stage))


def _generate_job(request: AvatarRequest) -> GeneratedAvatar:
    result: GeneratedAvatar = _generator.generate(request, _report)
    return result


# --- the parent side ------------------------------------------------------------------------


class GenerationProcess:
    """One worker process for photo generation (see the module docstring); thread-safe, one
    generation at a time."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        #: Builds the worker's in-process generator (picklable: a class or a partial of one).
        self._factory = factory
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._reports: Any = None

    def generate(self, request: AvatarRequest, progress: Progress) -> GeneratedAvatar:
        """Build in the worker; blocks the calling (executor) thread, never the event loop."""
        with self._lock:
            executor = self._start()
            try:
                future = executor.submit(_generate_job, request)
                while True:
                    try:
                        percent, stage = self._reports.get(timeout=POLL)
                    except queue.Empty:
                        if future.done():
                            break
                        continue
                    progress(percent, stage)
                while True:  # what was reported just before the end
                    try:
                        percent, stage = self._reports.get_nowait()
                    except queue.Empty:
                        break
                    progress(percent, stage)
                return future.result()
            except BrokenProcessPool as exc:
                self._stop()
                raise GenerationUnavailable(f"the photo worker died: {exc}") from exc

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = get_context("spawn")
            self._reports = context.Queue()
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=_worker_init,
                initargs=(self._factory, self._reports),
            )
        return self._executor

    def _stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._stop()
