"""Shared test helpers for the media tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from avatar_mf.media import (
    ChannelOpened,
    DataChannelSession,
    MessageReceived,
    SessionConnected,
    SessionEventQueue,
    StreamSpec,
)

from .conftest import STEP


def _on_stream(stream_id: int) -> Callable[[ChannelOpened | MessageReceived], bool]:
    def match(event: ChannelOpened | MessageReceived) -> bool:
        return event.stream_id == stream_id

    return match


async def wait_open(queue: SessionEventQueue, stream_ids: list[int]) -> None:
    async with asyncio.timeout(STEP):
        for stream_id in stream_ids:
            await queue.wait_for(ChannelOpened, _on_stream(stream_id))


async def wait_connected(*queues: SessionEventQueue) -> None:
    async with asyncio.timeout(STEP):
        for queue in queues:
            await queue.wait_for(SessionConnected)


async def exchange(
    a: DataChannelSession,
    a_events: SessionEventQueue,
    b: DataChannelSession,
    b_events: SessionEventQueue,
    streams: list[StreamSpec],
) -> None:
    """A text and a binary message each way on every stream, checked on arrival."""
    for spec in streams:
        a.send(spec.stream_id, f"a->b {spec.stream_id}")
        b.send(spec.stream_id, f"b->a {spec.stream_id}".encode())
    async with asyncio.timeout(STEP):
        for spec in streams:
            got_b = await b_events.wait_for(MessageReceived, _on_stream(spec.stream_id))
            got_a = await a_events.wait_for(MessageReceived, _on_stream(spec.stream_id))
            assert got_b.data == f"a->b {spec.stream_id}"
            assert got_a.data == f"b->a {spec.stream_id}".encode()
