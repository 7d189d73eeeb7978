"""Fixtures for the storage tests: stores on a temporary root, a fake wall clock, leak checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avatar_mf.storage import AvatarRepository, FilesystemStore, MemoryStore
from avatar_mf.testing.clock import FakeClock

#: 2026-01-01T00:00:00Z: the fake wall clock starts here.
T0 = 1_767_225_600.0
ALICE = "sip:alice@ims.example"
BOB = "sip:bob@ims.example"
CAROL = "sip:carol@ims.example"
DAVE = "tel:+15551234"


@pytest.fixture
def wall() -> FakeClock:
    """A wall clock (UNIX seconds) that moves only when told."""
    return FakeClock(start=T0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "avatars"


@pytest.fixture
async def fs_store(root: Path, wall: FakeClock) -> FilesystemStore:
    return await FilesystemStore.open(root, clock=wall, max_avatar_size=1024 * 1024)


@pytest.fixture(params=["filesystem", "memory"])
async def store(request: pytest.FixtureRequest, root: Path, wall: FakeClock) -> AvatarRepository:
    """Each store implementation, for the tests of the contract they share."""
    if request.param == "memory":
        return MemoryStore(clock=wall, max_avatar_size=1024 * 1024)
    return await FilesystemStore.open(root, clock=wall, max_avatar_size=1024 * 1024)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (cache loads must not outlive it)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"
