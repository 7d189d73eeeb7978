"""A call's video decoder that falls behind: the queue policy (calls/video.py)."""

from __future__ import annotations

import asyncio

from avatar_mf.calls.video import QUEUE_LIMIT, enqueue_for_decoding
from avatar_mf.media.video_stream import EncodedUnit


def unit(n: int, *, keyframe: bool = False) -> EncodedUnit:
    return EncodedUnit(timestamp=n * 3600, data=bytes([n % 256]), keyframe=keyframe)


def drain(queue: asyncio.Queue[EncodedUnit]) -> list[int]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait().timestamp // 3600)
    return out


def test_units_queue_in_order_while_the_decoder_keeps_up() -> None:
    queue: asyncio.Queue[EncodedUnit] = asyncio.Queue(QUEUE_LIMIT)
    assert [enqueue_for_decoding(queue, unit(n)) for n in range(QUEUE_LIMIT)] == [0] * QUEUE_LIMIT
    assert drain(queue) == list(range(QUEUE_LIMIT))


def test_a_full_queue_drops_every_waiting_unit_and_a_delta_frame_with_them() -> None:
    queue: asyncio.Queue[EncodedUnit] = asyncio.Queue(QUEUE_LIMIT)
    for n in range(QUEUE_LIMIT):
        enqueue_for_decoding(queue, unit(n))
    # The delta frame that finds the queue full cannot be decoded without what it drops: it
    # is counted with them (the call's end record adds up: units = decoded + ... + overflow).
    assert enqueue_for_decoding(queue, unit(QUEUE_LIMIT)) == QUEUE_LIMIT + 1
    assert drain(queue) == []


def test_a_key_frame_that_finds_the_queue_full_starts_it_again() -> None:
    queue: asyncio.Queue[EncodedUnit] = asyncio.Queue(QUEUE_LIMIT)
    for n in range(QUEUE_LIMIT):
        enqueue_for_decoding(queue, unit(n))
    assert enqueue_for_decoding(queue, unit(99, keyframe=True)) == QUEUE_LIMIT
    assert drain(queue) == [99]
