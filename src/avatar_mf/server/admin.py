"""The admin HTTP listener (its own host and port, never the SIP port).

- ``GET /healthz``: 200 while the process runs.
- ``GET /readyz``: 200 while accepting calls, 503 while draining.
- ``GET /stats``: a JSON snapshot of what the node holds (dialogs, transactions, data channel
  sessions, media sockets, TCP connections) and its counters; tests and operators use it to
  check that nothing leaks after a load run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, object]]


class AdminServer:
    def __init__(self, *, snapshot: Snapshot, ready: Callable[[], bool]) -> None:
        self._snapshot = snapshot
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/stats", self._stats)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="draining\n")

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self._snapshot()))

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.port = port
        # aiohttp exposes the bound socket (needed when port is 0) only on the private server.
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
