"""The MF process's garbage collector policy (``node/app.py`` ``settle_heap``)."""

from __future__ import annotations

import gc

from avatar_mf.node.app import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_the_start_up_objects_and_keeps_the_collector_on() -> None:
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
