"""Base avatar conversion for receivers (D.2 with a format the receiver accepts).

:class:`AvatarConversions` converts a stored avatar to the format a receiver accepts when the
stored one is not among them (``avatarFormats`` of its hello; none listed = any), in the
node's worker pool (never on the event loop), once per (avatar digest, target format): the
result is kept in a bounded LRU (``cache_entries``, ``cache_bytes``), and receivers asking
for the same conversion while it runs wait for the same job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from avatar_mf.avatar.check import COMMON_CONTENT_TYPE
from avatar_mf.avatar.container import GLB_MEDIA_TYPE
from avatar_mf.avatar.vrm import VRM_MEDIA_TYPE, Converted, accepted_target, convert_avatar
from avatar_mf.pipeline.stage import BlockingRunner

log = logging.getLogger(__name__)

#: The base avatar formats the converters write, the common one first.
WRITABLE_FORMATS: tuple[str, ...] = (COMMON_CONTENT_TYPE, VRM_MEDIA_TYPE, GLB_MEDIA_TYPE)


@dataclass
class ConversionStats:
    conversions: int = 0
    cache_hits: int = 0
    failures: int = 0


class AvatarConversions:
    """Converted avatars, cached per (avatar digest, target format)."""

    def __init__(self, *, cache_entries: int = 32, cache_bytes: int = 256 * 1024 * 1024) -> None:
        self._entries = cache_entries
        self._bytes = cache_bytes
        self._cache: OrderedDict[tuple[str, str], Converted] = OrderedDict()
        self._size = 0
        self._running: dict[tuple[str, str], asyncio.Future[Converted]] = {}
        self.stats = ConversionStats()

    def target_for(self, data: bytes, content_type: str, accepted: Sequence[str]) -> str | None:
        """The format to convert to for a receiver accepting ``accepted`` (None: send as is)."""
        return accepted_target(content_type, data, accepted, WRITABLE_FORMATS)

    async def convert(
        self,
        executor: BlockingRunner,
        key: str,
        data: bytes,
        content_type: str,
        target: str,
        *,
        avatar_id: str,
        name: str = "avatar",
    ) -> Converted:
        """``data`` as ``target`` (from the cache, or converted in ``executor``). Raises what
        the conversion raises (AvatarFormatError, ValueError)."""
        slot = (key, target)
        hit = self._cache.get(slot)
        if hit is not None:
            self._cache.move_to_end(slot)
            self.stats.cache_hits += 1
            return hit
        running = self._running.get(slot)
        if running is not None:
            self.stats.cache_hits += 1
            return await asyncio.shield(running)
        future: asyncio.Future[Converted] = asyncio.get_running_loop().create_future()
        self._running[slot] = future
        try:
            result = await executor.run(
                convert_avatar, data, content_type, target, avatar_id=avatar_id, name=name
            )
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                self.stats.failures += 1
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, none is logged unseen
            raise
        finally:
            self._running.pop(slot, None)
        self.stats.conversions += 1
        future.set_result(result)
        self._keep(slot, result)
        return result

    def _keep(self, slot: tuple[str, str], result: Converted) -> None:
        size = len(result.data)
        if size > self._bytes:
            return
        self._cache[slot] = result
        self._size += size
        while len(self._cache) > self._entries or self._size > self._bytes:
            _, old = self._cache.popitem(last=False)
            self._size -= len(old.data)
