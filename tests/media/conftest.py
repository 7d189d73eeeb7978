"""Fixtures for the data channel media tests: loopback only, bounded timeouts, leak checks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avatar_mf.media import CertificateStore, DataChannelEndpointFactory

HOST = "127.0.0.1"
STEP = 5.0
"""Upper bound, in seconds, for any single wait in these tests (they take milliseconds)."""


def udp_socket_count() -> int:
    """UDP sockets this process holds open (Linux /proc), to catch leaks below the ledger."""
    inodes: set[str] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        inodes.update(line.split()[9] for line in lines)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


@pytest.fixture(scope="session")
def mf_certificate() -> CertificateStore:
    return CertificateStore.generate()


@pytest.fixture
def mf_factory(mf_certificate: CertificateStore) -> DataChannelEndpointFactory:
    return DataChannelEndpointFactory(mf_certificate, media_host=HOST, setup_timeout=STEP)


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running or UDP sockets open (sessions must clean up
    after themselves)."""
    before = asyncio.all_tasks()
    sockets = udp_socket_count()
    yield
    for _ in range(5):  # let cancelled aiortc helpers finish
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"
    assert udp_socket_count() == sockets, "leaked UDP sockets"
