"""Load runs with SIPp: many basic calls at a steady rate, then nothing may be left behind.

Every call is the full basic call of tests/sipp/basic_call.xml (its SDP answer checked), one
second long, ended by the UE's BYE before the data channel setup timeout. Not a benchmark
(bench/sipp_rate.py is): the rates are well below the MF's capacity, so any failed call is a
bug, not load.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from avatar_mf.testing.process import MfProcess

from .conftest import SippResult, assert_calls_ok, assert_idle, stats_delta

RunSipp = Callable[..., SippResult]


@pytest.mark.parametrize(
    ("transport", "calls"),
    [pytest.param("u1", 1000, id="udp-1000"), pytest.param("t1", 200, id="tcp-200")],
)
def test_load_50_cps(mf: MfProcess, run_sipp: RunSipp, transport: str, calls: int) -> None:
    before = mf.stats()
    result = run_sipp(
        "basic_call.xml",
        mf,
        transport=transport,
        calls=calls,
        rate=50,
        limit=200,
        call_length_ms=1000,
        timeout=calls / 50 + 30,
    )
    assert_calls_ok(result, calls)
    after = assert_idle(mf)
    delta = stats_delta(before, after)
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == calls
    assert delta["calls_failed"] == 0
    assert delta["rx_request_INVITE"] == delta["rx_request_BYE"] == calls
    # The UE ended every call (none reached the media setup timeout or the no-ACK timeout).
    assert delta["tx_request_BYE"] == 0
    assert len(result.response_times_ms) == calls
