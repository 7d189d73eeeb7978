"""The avatar cache: single-flight loads, LRU by bytes and entries, TTL, failures, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from avatar_mf.storage import AvatarCache, AvatarNotFoundError, MemoryStore, StorageError
from avatar_mf.storage.errors import StorageUnavailableError
from avatar_mf.testing.clock import FakeClock

from .conftest import ALICE


class CountingSource:
    """A BlobSource that counts reads and holds every read until :attr:`gate` is set."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.errors: list[StorageError] = []

    async def get_blob(self, avatar_id: str) -> bytes:
        self.reads.append(avatar_id)
        data = self.blobs.get(avatar_id)  # what the store holds when the read starts
        await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        if data is None:
            raise AvatarNotFoundError(avatar_id)
        return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({k: k.encode() * 10 for k in "abcdefgh"})  # 10 bytes each


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fifty_concurrent_getters_make_one_store_read(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    getters = [asyncio.create_task(cache.get_blob("a")) for _ in range(50)]
    await settle()
    assert source.reads == ["a"]
    source.gate.set()
    results = await asyncio.gather(*getters)
    assert source.reads == ["a"]
    assert all(r is results[0] for r in results) and results[0] == b"a" * 10
    stats = cache.stats()
    assert (stats.loads, stats.coalesced, stats.misses, stats.hits) == (1, 49, 50, 0)
    assert await cache.get_blob("a") is results[0]
    assert cache.stats().hits == 1 and source.reads == ["a"]


async def test_single_flight_with_the_real_store(wall: FakeClock) -> None:
    store = MemoryStore(clock=wall)
    record = await store.put(b"PK container", owner=ALICE)
    cache = AvatarCache(store, FakeClock())
    results = await asyncio.gather(*(cache.get_blob(record.avatar_id) for _ in range(50)))
    assert store.blob_reads == 1
    assert set(results) == {b"PK container"}


async def test_lru_eviction_by_bytes(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock, max_bytes=30, max_entries=100)
    for key in "abc":
        await cache.get_blob(key)
    assert (len(cache), cache.size) == (3, 30)
    await cache.get_blob("a")  # a is now the most recently used
    await cache.get_blob("d")  # evicts b, the least recently used
    assert ["a" in cache, "b" in cache, "c" in cache, "d" in cache] == [True, False, True, True]
    assert cache.size == 30 and cache.stats().evictions == 1
    await cache.get_blob("b")
    assert source.reads == ["a", "b", "c", "d", "b"]


async def test_lru_eviction_by_entries(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock, max_entries=2)
    for key in "abc":
        await cache.get_blob(key)
    assert ("a" in cache, len(cache), cache.stats().evictions) == (False, 2, 1)


async def test_a_container_larger_than_the_cache_is_served_not_kept(clock: FakeClock) -> None:
    source = CountingSource({"big": b"x" * 100})
    cache = AvatarCache(source, clock, max_bytes=50)
    assert await cache.get_blob("big") == b"x" * 100
    assert (len(cache), cache.size) == (0, 0)


async def test_ttl(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock, ttl=60)
    await cache.get_blob("a")
    clock.advance(59.9)
    await cache.get_blob("a")
    assert source.reads == ["a"]
    clock.advance(0.1)
    assert "a" not in cache
    await cache.get_blob("a")
    assert source.reads == ["a", "a"]
    assert cache.stats().expirations == 1


async def test_expired_entries_make_room_before_fresh_ones_are_evicted(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = AvatarCache(source, clock, max_bytes=30, ttl=60)
    await cache.get_blob("a")
    clock.advance(30)
    await cache.get_blob("b")
    await cache.get_blob("a")  # hit: a is the most recently used, but loaded earlier
    clock.advance(40)  # a has expired, b has not
    await cache.get_blob("c")
    await cache.get_blob("d")  # full: the expired a goes, not b
    assert "b" in cache
    assert cache.stats().evictions == 0


async def test_failures_are_not_cached(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    source.errors.append(StorageUnavailableError("disk on fire"))
    getters = [asyncio.create_task(cache.get_blob("a")) for _ in range(5)]
    await settle()
    source.gate.set()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, StorageUnavailableError) for r in results)
    assert source.reads == ["a"]  # one read for the five
    assert await cache.get_blob("a") == b"a" * 10  # the next call tries again
    assert source.reads == ["a", "a"]
    assert cache.stats().failures == 1
    with pytest.raises(AvatarNotFoundError):
        await cache.get_blob("zzz")
    with pytest.raises(AvatarNotFoundError):
        await cache.get_blob("zzz")
    assert source.reads.count("zzz") == 2


async def test_a_cancelled_waiter_does_not_break_the_others(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    first, second, third = (asyncio.create_task(cache.get_blob("a")) for _ in range(3))
    await settle()
    first.cancel()  # e.g. the first UE to ask hung up
    await settle()
    assert first.cancelled()
    source.gate.set()
    assert await second == await third == b"a" * 10
    assert source.reads == ["a"] and "a" in cache


async def test_a_load_nobody_waits_for_still_fills_the_cache(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    waiter = asyncio.create_task(cache.get_blob("a"))
    await settle()
    waiter.cancel()
    source.gate.set()
    await settle()
    assert "a" in cache
    await cache.get_blob("a")
    assert source.reads == ["a"]


async def test_invalidate_during_a_load(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    stale = asyncio.create_task(cache.get_blob("a"))
    await settle()
    cache.invalidate("a")  # the avatar was replaced meanwhile
    source.blobs["a"] = b"new"
    fresh = asyncio.create_task(cache.get_blob("a"))  # does not join the stale load
    await settle()
    source.gate.set()
    assert (await stale, await fresh) == (b"a" * 10, b"new")
    assert await cache.get_blob("a") == b"new"
    assert source.reads == ["a", "a"]


async def test_invalidate_and_clear(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock)
    await cache.get_blob("a")
    await cache.get_blob("b")
    cache.invalidate("a")
    assert ("a" in cache, "b" in cache, cache.size) == (False, True, 10)
    cache.clear()
    assert (len(cache), cache.size) == (0, 0)


async def test_aclose_cancels_loads_in_flight(source: CountingSource, clock: FakeClock) -> None:
    cache = AvatarCache(source, clock)
    source.gate.clear()
    waiter = asyncio.create_task(cache.get_blob("a"))
    await settle()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_limits_must_not_be_negative(source: CountingSource, clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        AvatarCache(source, clock, ttl=-1)
