"""Bookkeeping of the UDP sockets the media layer opens, so leaks can be asserted."""

from __future__ import annotations

import asyncio
import weakref


class SocketLedger:
    """Remembers every datagram transport opened for data channels; counts those still open.

    A socket counts as open until its transport is closing, whoever closed it; so the count stays
    right even if a lower layer (aioice) closes a socket on its own. The transports are held
    weakly: an open one is kept alive by its event loop anyway, and a closed one must not be
    kept (with its protocol and buffers) until somebody next reads :attr:`open_count`.
    """

    def __init__(self) -> None:
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def track(self, transport: asyncio.BaseTransport) -> None:
        self._transports.add(transport)

    @property
    def open_count(self) -> int:
        return sum(1 for t in list(self._transports) if not t.is_closing())
