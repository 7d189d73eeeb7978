"""The admin HTTP listener (its own host and port, never the SIP port).

- ``GET /healthz``: 200 while the process runs.
- ``GET /readyz``: 200 while accepting calls, 503 while draining.
- ``GET /stats``: a JSON snapshot of what the node holds (dialogs, transactions, data channel
  sessions, media sockets, TCP connections) and its counters; tests and operators use it to
  check that nothing leaks after a load run.
- ``GET /metrics``: Prometheus text format (OpenMetrics when the scraper asks for it); see
  :mod:`avatar_mf.node.metrics`.
- ``GET /sessions``: the calls in progress as JSON (Call-ID, identities, source, state, age,
  room, data channels, message counts).
- ``DELETE /sessions/{call_id}``: end that call (BYE; 503 to an INVITE not answered yet).
- ``GET /trace``: the SIP trace's state (:mod:`avatar_mf.node.trace`).
- ``POST /trace`` with a JSON object ``{"call_id": ..., "pcap": FILE, "hep": "IP:PORT"}`` (every
  member optional; no ``call_id``: every message): switch the trace on, adding a pcap file
  (created by the node, never overwritten: 409 if it exists) and a HEP3 collector.
- ``DELETE /trace`` (``?call_id=...``: only that call): switch it off.
- ``GET /client/``: the browser avatar client, when ``admin.web_client`` is on
  (:mod:`avatar_mf.node.web_client`, docs/browser.md).

``/healthz``, ``/readyz``, ``/stats`` and ``/metrics`` need no authentication (keep the listener
on loopback or a management network). ``/sessions`` shows subscriber identities and can end
calls, ``/trace`` shows whole SIP messages and writes files as the node's user: both need
``Authorization: Bearer <admin.token>``, and answer 403 while no token is configured (401 for a
missing or wrong token). The token can change on SIGHUP (:meth:`AdminServer.set_token`).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from aiohttp import web

from avatar_mf.node.trace import SipTrace, TraceError
from avatar_mf.node.web_client import WebClientFiles, add_web_client_routes

log = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, object]]
#: Renders the metrics for an ``Accept`` header: (body, content type).
MetricsRenderer = Callable[[str], tuple[bytes, str]]
SessionLister = Callable[[], Sequence[Mapping[str, object]]]
#: Ends the calls with a Call-ID; returns how many there were.
CallDropper = Callable[[str], int]

TOKEN_NOT_SET = (
    "/sessions and /trace are disabled: no admin token is configured. Set admin.token in the "
    "config file "
    "or AVATAR_MF_ADMIN__TOKEN in the environment, then send 'Authorization: Bearer <token>'."
)


class AdminServer:
    def __init__(
        self,
        *,
        snapshot: Snapshot,
        ready: Callable[[], bool],
        metrics: MetricsRenderer | None = None,
        sessions: SessionLister | None = None,
        drop: CallDropper | None = None,
        token: str | None = None,
        trace: SipTrace | None = None,
        web_client: WebClientFiles | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._ready = ready
        self._metrics = metrics
        self._sessions = sessions
        self._drop = drop
        self._token = token.encode() if token else None
        self._trace = trace
        self._web_client = web_client
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/stats", self._stats)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._metrics_page)
        if self._sessions is not None:
            app.router.add_get("/sessions", self._list_sessions)
        if self._drop is not None:
            # ".+": a Call-ID may contain "/" (RFC 3261 25.1 "word"), sent percent-encoded.
            app.router.add_delete("/sessions/{call_id:.+}", self._drop_session)
        if self._trace is not None:
            app.router.add_get("/trace", self._trace_status)
            app.router.add_post("/trace", self._trace_on)
            app.router.add_delete("/trace", self._trace_off)
        if self._web_client is not None:
            add_web_client_routes(app, self._web_client)
        return app

    def set_token(self, token: str | None) -> None:
        """The bearer token from now on (a configuration reload)."""
        self._token = token.encode() if token else None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="draining\n")

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self._snapshot()))

    async def _metrics_page(self, request: web.Request) -> web.Response:
        assert self._metrics is not None
        body, content_type = self._metrics(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    # -- /sessions --------------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` carries the admin token; otherwise the answer to send."""
        if self._token is None:
            return web.json_response({"error": TOKEN_NOT_SET}, status=403)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        log.warning(
            "admin: %s %s refused: %s bearer token",
            request.method,
            request.path,
            "wrong" if given else "no",
            extra={"source": request.remote or ""},
        )
        return web.json_response(
            {"error": "a valid 'Authorization: Bearer <admin.token>' header is required"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="avatar-mf admin"'},
        )

    async def _list_sessions(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        assert self._sessions is not None
        sessions = [dict(s) for s in self._sessions()]
        return web.json_response({"count": len(sessions), "sessions": sessions})

    async def _drop_session(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        assert self._drop is not None
        call_id = request.match_info["call_id"]
        count = self._drop(call_id)
        if count == 0:
            return web.json_response({"error": f"no call with Call-ID {call_id!r}"}, status=404)
        log.info(
            "admin: call %s ended by %s",
            call_id,
            request.remote or "?",
            extra={"call_id": call_id, "source": request.remote or ""},
        )
        return web.json_response({"call_id": call_id, "ended": count})

    # -- /trace -----------------------------------------------------------------------------

    async def _trace_status(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        assert self._trace is not None
        return web.json_response(self._trace.status())

    async def _trace_on(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        assert self._trace is not None
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str | None) for k in ("call_id", "pcap", "hep")
        ):
            return web.json_response(
                {"error": 'expected {"call_id": str, "pcap": str, "hep": "IP:PORT"}'}, status=400
            )
        unknown = sorted(set(body) - {"call_id", "pcap", "hep"})
        if unknown:
            return web.json_response({"error": f"unknown members: {unknown}"}, status=400)
        pcap = body.get("pcap")
        try:
            self._trace.enable(
                body.get("call_id") or None,
                pcap=Path(pcap) if pcap else None,
                hep=body.get("hep") or None,
            )
        except TraceError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        log.info("admin: SIP trace switched on by %s", request.remote or "?")
        return web.json_response(self._trace.status())

    async def _trace_off(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        assert self._trace is not None
        self._trace.disable(request.query.get("call_id") or None)
        return web.json_response(self._trace.status())

    # -- lifecycle ------------------------------------------------------------------------

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
