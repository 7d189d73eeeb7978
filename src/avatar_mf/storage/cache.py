"""An in-MF cache of avatar containers: LRU, bounded in bytes and entries, with a TTL and
single-flight loads.

When a room of UEs asks for the same base avatar at once (TS 26.813 D.2: the MF delivers the base
avatar to every UE in the session), :meth:`AvatarCache.get_blob` reads it from the store once:
the first caller starts a load, later callers wait for that same load, and all get the same
``bytes`` object.

* The load runs in its own task. Cancelling a waiter (its UE hung up) does not cancel the load
  for the others; a load nobody waits for any more still completes and fills the cache.
* Failures are not cached: the next call tries the store again (concurrent callers of a failing
  load all get its error, once).
* Entries expire ``ttl`` seconds after they were loaded (by the injected monotonic clock), which
  bounds how stale a container replaced by another process (the command line) can be; a replace
  or delete through this process should call :meth:`AvatarCache.invalidate`. A load that was in
  flight when its id was invalidated does not fill the cache.
* A container larger than ``max_bytes`` is returned but not kept.

Counters (:class:`CacheStats`) are for metrics: ``hits`` (answered from the cache), ``misses``
(not in the cache: ``loads`` started + ``coalesced`` joins of a load in flight), ``evictions``
(dropped for room), ``expirations``, ``failures`` (loads that raised).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from avatar_mf.clock import Clock

__all__ = ["AvatarCache", "BlobSource", "CacheStats"]

#: Defaults: 256 MiB, 1024 containers, 10 minutes.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 1024
DEFAULT_TTL = 600.0


class BlobSource(Protocol):
    """Where the cache loads from: any :class:`~avatar_mf.storage.store.AvatarStore`."""

    async def get_blob(self, avatar_id: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of the cache's counters and size."""

    hits: int
    misses: int
    loads: int
    coalesced: int
    evictions: int
    expirations: int
    failures: int
    entries: int
    bytes: int


@dataclass(slots=True)
class _Entry:
    data: bytes
    expires: float


class AvatarCache:
    """A :class:`BlobSource` in front of another (module docstring).

    Args:
        source: the store (or anything with ``async get_blob(id) -> bytes``).
        clock: monotonic clock for the TTL (``LoopClock``; ``FakeClock`` in tests).
        max_bytes: total container bytes kept.
        max_entries: containers kept.
        ttl: seconds an entry is served after it was loaded.
    """

    def __init__(
        self,
        source: BlobSource,
        clock: Clock,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        if max_bytes < 0 or max_entries < 0 or ttl < 0:
            raise ValueError("cache limits must not be negative")
        self._source = source
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._loading: dict[str, asyncio.Task[bytes]] = {}
        self._hits = self._misses = self._loads = self._coalesced = 0
        self._evictions = self._expirations = self._failures = 0

    # ------------------------------------------------------------------ API

    async def get_blob(self, avatar_id: str) -> bytes:
        """The container of ``avatar_id``, from the cache or one shared store read. Raises what
        the store raises."""
        entry = self._entries.get(avatar_id)
        if entry is not None:
            if self._clock.now() < entry.expires:
                self._entries.move_to_end(avatar_id)
                self._hits += 1
                return entry.data
            self._drop(avatar_id)
            self._expirations += 1
        self._misses += 1
        task = self._loading.get(avatar_id)
        if task is None:
            self._loads += 1
            task = asyncio.get_running_loop().create_task(
                self._load(avatar_id), name=f"avatar-cache-load {avatar_id}"
            )
            self._loading[avatar_id] = task
            task.add_done_callback(lambda t: self._load_done(avatar_id, t))
        else:
            self._coalesced += 1
        # shield: a cancelled waiter leaves the shared load running for the others.
        return await asyncio.shield(task)

    def invalidate(self, avatar_id: str) -> None:
        """Forget ``avatar_id`` (after it was replaced or deleted). A load in flight still
        answers its waiters but does not fill the cache; the next call loads again."""
        self._drop(avatar_id)
        self._loading.pop(avatar_id, None)

    def clear(self) -> None:
        """Forget every entry (loads in flight no longer fill the cache)."""
        self._entries.clear()
        self._bytes = 0
        self._loading.clear()

    def __contains__(self, avatar_id: object) -> bool:
        entry = self._entries.get(avatar_id) if isinstance(avatar_id, str) else None
        return entry is not None and self._clock.now() < entry.expires

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._bytes

    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            loads=self._loads,
            coalesced=self._coalesced,
            evictions=self._evictions,
            expirations=self._expirations,
            failures=self._failures,
            entries=len(self._entries),
            bytes=self._bytes,
        )

    async def aclose(self) -> None:
        """Cancel the loads in flight and wait for them (at shutdown)."""
        tasks = list(self._loading.values())
        self._loading.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ internals

    async def _load(self, avatar_id: str) -> bytes:
        data = await self._source.get_blob(avatar_id)
        if self._loading.get(avatar_id) is asyncio.current_task():  # not invalidated meanwhile
            self._insert(avatar_id, data)
        return data

    def _load_done(self, avatar_id: str, task: asyncio.Task[bytes]) -> None:
        if self._loading.get(avatar_id) is task:
            del self._loading[avatar_id]
        if task.cancelled():
            return
        if task.exception() is not None:  # also marks the exception retrieved
            self._failures += 1

    def _insert(self, avatar_id: str, data: bytes) -> None:
        self._drop(avatar_id)
        if len(data) > self.max_bytes or self.max_entries == 0:
            return
        self._entries[avatar_id] = _Entry(data, self._clock.now() + self.ttl)
        self._bytes += len(data)
        if len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            now = self._clock.now()
            for stale in [k for k, e in self._entries.items() if e.expires <= now]:
                self._drop(stale)
                self._expirations += 1
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self._evictions += 1

    def _drop(self, avatar_id: str) -> None:
        entry = self._entries.pop(avatar_id, None)
        if entry is not None:
            self._bytes -= len(entry.data)
