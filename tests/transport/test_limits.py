"""ConnectionLimits: a cap per node and per source address, released on close."""

from __future__ import annotations

import pytest

from avatar_mf.transport.limits import ConnectionLimits


def test_per_source_cap_leaves_other_sources_alone() -> None:
    limits = ConnectionLimits(max_total=10, max_per_source=2)
    assert limits.acquire("192.0.2.1") is None
    assert limits.acquire("192.0.2.1") is None
    refusal = limits.acquire("192.0.2.1")
    assert refusal is not None and refusal.status == 503 and "per source" in refusal.reason
    assert limits.acquire("192.0.2.2") is None
    assert (limits.total, limits.from_source("192.0.2.1"), limits.refused_source) == (3, 2, 1)
    limits.release("192.0.2.1")
    assert limits.acquire("192.0.2.1") is None


def test_node_cap_counts_every_source() -> None:
    limits = ConnectionLimits(max_total=2, max_per_source=2)
    assert limits.acquire("192.0.2.1") is None
    assert limits.acquire("192.0.2.2") is None
    refusal = limits.acquire("192.0.2.3")
    assert refusal is not None and "(2)" in refusal.reason
    assert limits.refused_node == 1 and limits.from_source("192.0.2.3") == 0
    limits.release("192.0.2.2")
    assert limits.acquire("192.0.2.3") is None
    assert limits.total == 2


def test_release_without_acquire_is_a_bug() -> None:
    limits = ConnectionLimits(max_total=1, max_per_source=1)
    with pytest.raises(ValueError):
        limits.release("192.0.2.1")
    with pytest.raises(ValueError):
        ConnectionLimits(max_total=0, max_per_source=1)
