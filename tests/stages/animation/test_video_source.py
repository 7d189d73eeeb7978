"""The rendered frames' hand-over (stages/animation/video.py): each reader newest-wins with its
own skip count, so one slow receiver never costs another one frames; closing wakes readers."""

from __future__ import annotations

import asyncio

import numpy as np

from avatar_mf.stages.animation.video import VideoFrameOut, VideoSource


def frame(index: int) -> VideoFrameOut:
    return VideoFrameOut("p", index=index, time=index / 25,
                         rgba=np.zeros((2, 2, 4), np.uint8))


async def test_each_reader_takes_the_newest_frame_and_counts_its_own_skips() -> None:
    source = VideoSource()
    fast, slow = source.reader(), source.reader()
    assert source.readers == 2
    got: list[int] = []
    for i in range(5):
        source.offer(frame(i))
        taken = await fast.next()
        assert taken is not None
        got.append(taken.index)
    assert got == [0, 1, 2, 3, 4] and fast.skipped == 0
    late = await slow.next()  # the slow one gets only the newest
    assert late is not None and late.index == 4 and slow.skipped == 4
    assert fast.offered == slow.offered == 5


async def test_a_reader_waits_for_the_next_frame_and_closing_wakes_it() -> None:
    source = VideoSource()
    reader = source.reader()
    waiting = asyncio.create_task(reader.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    source.offer(frame(7))
    assert (await waiting) is not None
    waiting = asyncio.create_task(reader.next())
    await asyncio.sleep(0)
    source.close()
    assert await waiting is None and reader.closed and source.readers == 0
    assert source.reader().closed  # a reader of a closed source is closed from the start


async def test_a_closed_reader_is_forgotten() -> None:
    source = VideoSource()
    reader = source.reader()
    reader.close()
    assert source.readers == 0 and await reader.next() is None
    source.offer(frame(1))
    assert reader.offered == 0
