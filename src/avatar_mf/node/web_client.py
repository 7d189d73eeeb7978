"""The browser avatar client, served over HTTP under ``/client/`` of the admin listener.

A lab opens ``http://<admin host>:<admin port>/client/`` in a browser: the page (the
``avatar_mf/webclient`` package folder: index.html, its stylesheet and the esbuild bundle of
``web/src/client``, JsSIP included) places a SIP call over WebSocket (RFC 7118) to a room of
this MF, offers the IMS data channels and loads the data channel application over the
bootstrap channel (TS 26.114 6.2.10). See docs/browser.md.

Off unless ``admin.web_client`` is true (the lab config turns it on). Files are read once, at
start-up, into memory, like the bootstrap application; the table is fixed, so no request path
reaches the file system. One more file is made at start-up: ``config.json``, the node's SIP
WebSocket ports (``{"sip": {"ws": 5066, "wss": 7443}}``, null for a transport not listened
on), from which the page builds its ``ws://`` or ``wss://`` URL on the host it was loaded
from. Everything is served with ``Cache-Control: no-cache`` and a strong ETag,
``X-Content-Type-Options: nosniff``, and a Content-Security-Policy that lets the page load
nothing but its own files, blob: frames and scripts (the application it downloads over the
data channel), and WebSocket connections.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Final

from aiohttp import web

from avatar_mf.bootstrap.service import content_type
from avatar_mf.config.sections import SipConfig

__all__ = ["CLIENT_PATH", "WebClientFiles", "add_web_client_routes", "client_config"]

#: Where the client is served on the admin listener.
CLIENT_PATH: Final = "/client/"
#: The package folder holding the built client.
PACKAGE_FOLDER: Final = "webclient"
#: The generated settings file the page reads.
CONFIG_FILE: Final = "config.json"
#: The page loads only its own files; the data channel application it downloads runs from
#: blob: URLs in a frame; SIP goes over ws:/wss:.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self' blob:; style-src 'self' blob:; "
    "frame-src blob:; img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
    "worker-src blob:; object-src 'none'; base-uri 'none'"
)


class WebClientFiles:
    """The client's files by name (``index.html``, ``client.js`` ...), held in memory."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        if "index.html" not in files:
            raise ValueError("the web client has no index.html")
        self.files: Mapping[str, bytes] = MappingProxyType(dict(files))
        self.etags: Mapping[str, str] = MappingProxyType(
            {name: f'"{hashlib.sha256(body).hexdigest()[:32]}"' for name, body in files.items()}
        )

    @classmethod
    def shipped(cls, config: bytes) -> WebClientFiles:
        """The client shipped in the package, with ``config`` (:func:`client_config`) as
        config.json (reads files: call at start-up)."""
        folder = resources.files("avatar_mf").joinpath(PACKAGE_FOLDER)
        files = {
            entry.name: entry.read_bytes()
            for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith((".", "_"))
        }
        files[CONFIG_FILE] = config
        return cls(files)

    def response(self, name: str, if_none_match: str | None) -> web.Response:
        body = self.files.get(name)
        if body is None:
            raise web.HTTPNotFound(text="no such file\n")
        etag = self.etags[name]
        headers = {
            "ETag": etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        }
        if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = content_type(name)
        return web.Response(body=body, headers=headers)


def client_config(sip: SipConfig) -> bytes:
    """config.json: the ports of the node's ws and wss listeners (null when not listened on)."""
    ports = {
        "ws": sip.ws_port if "ws" in sip.transports else None,
        "wss": sip.wss_port if "wss" in sip.transports else None,
    }
    return json.dumps({"sip": ports}, sort_keys=True).encode()


def add_web_client_routes(app: web.Application, files: WebClientFiles) -> None:
    """Serve ``files`` under :data:`CLIENT_PATH` of ``app`` (``/client`` redirects there)."""

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(CLIENT_PATH)

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        return files.response(name, request.headers.get("If-None-Match"))

    app.router.add_get(CLIENT_PATH.rstrip("/"), redirect)
    app.router.add_get(CLIENT_PATH, serve)
    app.router.add_get(CLIENT_PATH + "{name}", serve)
