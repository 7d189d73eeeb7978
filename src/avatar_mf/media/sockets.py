"""Bookkeeping of the UDP sockets the media layer opens, so leaks can be asserted."""

from __future__ import annotations

import asyncio


class SocketLedger:
    """Remembers every datagram transport opened for data channels; counts those still open.

    A socket counts as open until its transport is closing, whoever closed it; so the count stays
    right even if a lower layer (aioice) closes a socket on its own.
    """

    def __init__(self) -> None:
        self._transports: set[asyncio.BaseTransport] = set()

    def track(self, transport: asyncio.BaseTransport) -> None:
        self._transports.add(transport)

    @property
    def open_count(self) -> int:
        self._transports = {t for t in self._transports if not t.is_closing()}
        return len(self._transports)
