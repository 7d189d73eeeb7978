"""Renderers in worker processes: posed vertices in, RGBA frames out, never on the event loop.

:class:`RenderPool` runs one :class:`~avatar_mf.render.gl.GlRenderer` per worker process (one
per core by default: ``[render] workers``), each on its own EGL context, with llvmpipe held to
``threads`` rasterizer threads (one by default, so N workers use N cores and no more).

Data paths (measured in docs/performance.md, "Rendering"):

* **Meshes** (triangles, colours, texture; ~0.3 MB for the default head) are registered once
  with :meth:`RenderPool.add_mesh`: pickled into a shared memory block that each worker reads
  the first time it draws that mesh, then keeps on its GPU side (the 32 most recent meshes).
* **Frames** go through *slots*: shared memory blocks holding the posed positions and normals
  (written by the caller) followed by the RGBA picture (read back straight into it by the
  worker with ``glReadPixels``). Only a few small names and numbers cross the process pipe.
  :meth:`RenderPool.render` gives a :class:`RenderedFrame` whose ``rgba`` is a view of the
  slot: no copy on the way out; :meth:`RenderedFrame.release` returns the slot (an encoder
  reads the view first). Slots are reused; a frame never released keeps its slot (a bounded
  number of frames in flight per session is the caller's business).

Errors: :meth:`RenderPool.start` probes every worker; without moderngl or EGL it raises
:class:`~avatar_mf.render.errors.RenderUnavailable` naming the package to install (the
workers are stopped). A worker that dies fails its frames with ``RenderUnavailable`` too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context, shared_memory
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.scene import Framing, MeshData, RenderSettings

#: Meshes a worker keeps uploaded (least recently drawn ones go first).
WORKER_MESH_CACHE = 32


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --- the worker side (module-level: what a spawned process runs) ----------------------------

_renderer: Any = None
_meshes: OrderedDict[str, None] = OrderedDict()
_blocks: dict[str, shared_memory.SharedMemory] = {}


def _worker_init(threads: int) -> None:
    os.environ["LP_NUM_THREADS"] = str(threads)  # llvmpipe rasterizer threads
    global _renderer
    from avatar_mf.render.gl import GlRenderer

    try:
        _renderer = GlRenderer()
    except RenderUnavailable as exc:
        _renderer = exc  # reported by the probe and by every job


def _buffer(block: shared_memory.SharedMemory) -> memoryview:
    buf = block.buf
    assert buf is not None, "shared memory used after close"
    return buf


def _attach(name: str) -> shared_memory.SharedMemory:
    block = _blocks.get(name)
    if block is None:
        block = _blocks[name] = shared_memory.SharedMemory(name=name)
    return block


def _probe() -> str:
    if isinstance(_renderer, Exception):
        raise _renderer
    return str(_renderer.renderer_name)


@dataclass(frozen=True, slots=True)
class _Job:
    mesh_key: str
    mesh_block: str
    mesh_size: int
    slot: str
    vertices: int
    settings: RenderSettings
    framing: Framing | None


def _render_job(job: _Job) -> float:
    """Draw one frame into its slot; the worker's CPU seconds for it."""
    start = _cpu_time()
    renderer = _renderer
    if isinstance(renderer, Exception):
        raise renderer
    if not renderer.has_mesh(job.mesh_key):
        block = _attach(job.mesh_block)
        mesh: MeshData = pickle.loads(bytes(_buffer(block)[: job.mesh_size]))
        renderer.add_mesh(job.mesh_key, mesh)
        block.close()
        del _blocks[job.mesh_block]
        _meshes[job.mesh_key] = None
        while len(_meshes) > WORKER_MESH_CACHE:
            old, _ = _meshes.popitem(last=False)
            renderer.remove_mesh(old)
    _meshes.move_to_end(job.mesh_key)
    slot = _attach(job.slot)
    n = job.vertices
    floats = np.frombuffer(_buffer(slot), dtype=np.float32, count=n * 6).reshape(2, n, 3)
    out = _buffer(slot)[n * 24 : n * 24 + job.settings.frame_bytes]
    try:
        renderer.render(
            job.mesh_key, floats[0], floats[1], job.settings, framing=job.framing, out=out
        )
    finally:
        del floats
        out.release()
    return _cpu_time() - start


def _cpu_time() -> float:
    return time.process_time()


# --- the parent side ------------------------------------------------------------------------


class _Slot:
    __slots__ = ("block", "capacity")

    def __init__(self, capacity: int) -> None:
        self.block = shared_memory.SharedMemory(create=True, size=capacity)
        self.capacity = capacity


class RenderedFrame:
    """One rendered picture: ``rgba`` (H, W, 4) uint8, rows top first, a view of shared
    memory until :meth:`release` (use it as a context manager)."""

    __slots__ = ("rgba", "cpu", "_pool", "_slot")

    def __init__(self, rgba: NDArray[np.uint8], cpu: float, pool: RenderPool, slot: _Slot):
        self.rgba = rgba
        #: CPU seconds the worker spent on it.
        self.cpu = cpu
        self._pool = pool
        self._slot: _Slot | None = slot

    def copy(self) -> NDArray[np.uint8]:
        return self.rgba.copy()

    def release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            self.rgba = np.zeros((0, 0, 4), dtype=np.uint8)
            self._pool._give_back(slot)

    def __enter__(self) -> RenderedFrame:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class RenderPool:
    """Worker processes that render (see the module docstring)."""

    def __init__(self, workers: int | None = None, *, threads: int = 1) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be >= 1")
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.workers = workers or default_workers()
        self.threads = threads
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._free: list[_Slot] = []
        self._all: list[_Slot] = []
        self._meshes: dict[str, tuple[shared_memory.SharedMemory, int, int]] = {}
        self._keys = itertools.count(1)
        self.renderer_name = ""

    # --- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and check each can render; RenderUnavailable if not."""
        if self._executor is not None:
            return
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.threads,),
        )
        try:
            names = [executor.submit(_probe) for _ in range(self.workers)]
            self.renderer_name = names[0].result(timeout=120)
            for name in names[1:]:
                name.result(timeout=120)
        except RenderUnavailable:
            executor.shutdown(cancel_futures=True)
            raise
        except (BrokenProcessPool, OSError, TimeoutError) as exc:
            executor.shutdown(cancel_futures=True)
            raise RenderUnavailable(f"render workers failed to start: {exc}") from exc
        self._executor = executor

    def close(self) -> None:
        """Stop the workers and free the shared memory (frames not released become empty)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        with self._lock:
            for slot in self._all:
                _free_block(slot.block)
            self._all.clear()
            self._free.clear()
            for block, _, _ in self._meshes.values():
                _free_block(block)
            self._meshes.clear()

    def __enter__(self) -> RenderPool:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- meshes ---------------------------------------------------------------------------

    def add_mesh(self, mesh: MeshData) -> str:
        """Register a mesh; the key to render it with."""
        payload = pickle.dumps(mesh, protocol=pickle.HIGHEST_PROTOCOL)
        block = shared_memory.SharedMemory(create=True, size=max(1, len(payload)))
        _buffer(block)[: len(payload)] = payload
        key = f"m{os.getpid()}-{next(self._keys)}"
        with self._lock:
            self._meshes[key] = (block, len(payload), mesh.vertex_count)
        return key

    def remove_mesh(self, key: str) -> None:
        """Forget a mesh (workers drop it from their caches in time)."""
        with self._lock:
            entry = self._meshes.pop(key, None)
        if entry is not None:
            _free_block(entry[0])

    # --- frames ---------------------------------------------------------------------------

    def _take(self, capacity: int) -> _Slot:
        with self._lock:
            for index, slot in enumerate(self._free):
                if slot.capacity >= capacity:
                    return self._free.pop(index)
            slot = _Slot(capacity)
            self._all.append(slot)
            return slot

    def _give_back(self, slot: _Slot) -> None:
        with self._lock:
            if slot in self._all:
                self._free.append(slot)

    def _submit(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        framing: Framing | None,
    ) -> tuple[Future[float], _Slot, int]:
        executor = self._executor
        if executor is None:
            raise RuntimeError("the render pool is not started")
        with self._lock:
            block, size, vertices = self._meshes[key]
        if positions.shape != (vertices, 3) or normals.shape != (vertices, 3):
            raise ValueError(f"mesh {key} has {vertices} vertices, got {positions.shape}")
        slot = self._take(vertices * 24 + settings.frame_bytes)
        floats = np.frombuffer(_buffer(slot.block), dtype=np.float32, count=vertices * 6)
        floats[: vertices * 3] = positions.reshape(-1)
        floats[vertices * 3 :] = normals.reshape(-1)
        del floats
        job = _Job(key, block.name, size, slot.block.name, vertices, settings, framing)
        try:
            return executor.submit(_render_job, job), slot, vertices
        except BrokenProcessPool as exc:
            self._give_back(slot)
            raise RenderUnavailable(f"a render worker died: {exc}") from exc

    def _frame(
        self, future: Future[float], slot: _Slot, vertices: int, settings: RenderSettings
    ) -> RenderedFrame:
        try:
            cpu = future.result()
        except BrokenProcessPool as exc:
            self._give_back(slot)
            raise RenderUnavailable(f"a render worker died: {exc}") from exc
        except BaseException:
            self._give_back(slot)
            raise
        rgba = np.frombuffer(
            _buffer(slot.block), dtype=np.uint8, count=settings.frame_bytes, offset=vertices * 24
        ).reshape(settings.height, settings.width, 4)
        return RenderedFrame(rgba, cpu, self, slot)

    def submit(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
    ) -> PendingFrame:
        """Start rendering one frame and return at once (keep several in flight to use
        every worker; take each with :meth:`PendingFrame.result`, in order)."""
        future, slot, vertices = self._submit(key, positions, normals, settings, framing)
        return PendingFrame(self, future, slot, vertices, settings)

    def render_sync(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
    ) -> RenderedFrame:
        """Render one frame, blocking the calling thread (CLI and benchmarks)."""
        future, slot, vertices = self._submit(key, positions, normals, settings, framing)
        return self._frame(future, slot, vertices, settings)

    async def render(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
    ) -> RenderedFrame:
        """Render one frame in a worker; the event loop only waits."""
        future, slot, vertices = self._submit(key, positions, normals, settings, framing)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda _: self._give_back(slot))
            raise
        except BaseException:
            pass  # _frame re-raises it, after giving the slot back
        return self._frame(future, slot, vertices, settings)


class PendingFrame:
    """A frame being rendered (:meth:`RenderPool.submit`)."""

    __slots__ = ("_pool", "_future", "_slot", "_vertices", "_settings")

    def __init__(self, pool: RenderPool, future: Future[float], slot: _Slot, vertices: int,
                 settings: RenderSettings) -> None:
        self._pool = pool
        self._future = future
        self._slot = slot
        self._vertices = vertices
        self._settings = settings

    def result(self) -> RenderedFrame:
        """The rendered frame (blocks until the worker is done)."""
        return self._pool._frame(self._future, self._slot, self._vertices, self._settings)


def _free_block(block: shared_memory.SharedMemory) -> None:
    try:
        block.close()
    except BufferError:  # a frame still holds a view of it: unlink anyway, the OS frees later
        pass
    try:
        block.unlink()
    except FileNotFoundError:
        pass
