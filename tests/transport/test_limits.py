"""Limits of connection-oriented transports: connection table and file-descriptor budget."""

from __future__ import annotations

from avatar_mf.testing.clock import FakeClock
from avatar_mf.transport.limits import (
    ConnectionLimits,
    ConnectionTable,
    FdBudget,
    fd_limit,
    open_fds,
)


def test_connection_table_caps_per_source_then_per_node() -> None:
    table = ConnectionTable(ConnectionLimits(max_connections=3, max_connections_per_source=2))
    assert table.admit("a") is None and table.admit("a") is None
    assert table.admit("a") == "source"
    assert table.admit("b") is None
    assert table.admit("c") == "node"
    assert table.total == 3 and table.of("a") == 2
    table.release("a")
    assert table.admit("c") is None
    assert table.refused == {"source": 1, "node": 1}


def test_connection_table_without_caps() -> None:
    table = ConnectionTable(ConnectionLimits())
    assert all(table.admit("a") is None for _ in range(10_000))
    for _ in range(10_000):
        table.release("a")
    assert table.total == 0 and table.of("a") == 0


def test_fd_budget_counts_free_descriptors_and_caches() -> None:
    clock = FakeClock()
    open_now = [100]
    budget = FdBudget(clock, 50, ttl=1.0, count=lambda: open_now[0], limit=lambda: 200)
    assert budget.free() == 100 and not budget.low()
    open_now[0] = 170
    assert budget.free() == 100  # cached
    clock.advance(1.0)
    assert budget.free() == 30 and budget.low()


def test_fd_budget_trusts_a_high_descriptor_number_at_once() -> None:
    budget = FdBudget(FakeClock(), 50, count=lambda: 10, limit=lambda: 200)
    assert not budget.low(fileno=100)
    assert budget.low(fileno=160)  # descriptors 0..160 are open: 39 free at most


def test_fd_budget_with_another_reserve() -> None:
    budget = FdBudget(FakeClock(), 100, count=lambda: 9_940, limit=lambda: 10_000)
    assert budget.low() and not budget.low(reserve=50)


def test_fd_budget_reserve_zero_is_never_low() -> None:
    assert not FdBudget(FakeClock(), 0, count=lambda: 10**6, limit=lambda: 1).low(5)


def test_the_real_probes_see_this_process() -> None:
    assert fd_limit() > 0
    assert 0 < open_fds() <= fd_limit()
