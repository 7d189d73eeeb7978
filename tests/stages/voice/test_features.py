"""The streaming front end: its constant tables are built once per process, not per session."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.stages.voice.features import HOP, FrontEnd


def test_sessions_share_read_only_tables() -> None:
    """A session's front end costs no filterbank build (a node opens one per call): every
    FrontEnd uses the same window, mel filters and DCT rows, which nobody can write."""
    first, second = FrontEnd(), FrontEnd()
    for name in ("_window", "_mel", "_dct"):
        a, b = getattr(first, name), getattr(second, name)
        assert a is b, name
        with pytest.raises(ValueError):
            a[0] = 1.0


def test_shared_tables_give_each_session_its_own_features() -> None:
    """Sharing the tables shares no state: two sessions fed different audio differ, and a
    session fed the same audio as a fresh one computes the same features."""
    rng = np.random.default_rng(5)
    loud = (rng.standard_normal(HOP * 20) * 8000).astype(np.int16)
    quiet = (rng.standard_normal(HOP * 20) * 80).astype(np.int16)
    a, b, c = FrontEnd(), FrontEnd(), FrontEnd()
    fa, fb, fc = a.push(loud), b.push(quiet), c.push(loud)
    assert np.allclose(fa.cepstra, fc.cepstra) and np.allclose(fa.level, fc.level)
    assert fa.level.mean() > fb.level.mean() + 30
