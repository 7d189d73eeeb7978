"""The "call ended" log line: written with its extras when INFO is on, and not built at all
(no extras dict, no rounding) when it is off, while the call's end is counted either way."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from avatar_mf.testing.sip import UacDialogState, UaHarness

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()


async def _call_and_bye(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.advance(2.5)
    await mf.deliver(ue.bye())


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
async def test_call_ended_line_only_when_info_is_on(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    mf = UaHarness()
    try:
        with caplog.at_level(level, "avatar_mf.ua.user_agent"):
            await _call_and_bye(mf)
    finally:
        mf.close()
    ended = [r for r in caplog.records if " ended: " in r.getMessage()]
    assert mf.ua.stats.calls_ended == 1 and mf.ua.stats.end_reasons["bye"] == 1
    if level == logging.INFO:
        [line] = ended
        assert line.__dict__["reason"] == "bye"
        assert line.__dict__["duration_s"] == pytest.approx(2.5, abs=0.01)
    else:
        assert ended == []
