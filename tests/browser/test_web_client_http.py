"""The browser client on the admin listener (avatar_mf.node.web_client): served only when
admin.web_client is on, from memory, with validators and a content security policy, and with
config.json naming the node's SIP WebSocket ports."""

from __future__ import annotations

import json
from importlib import resources

import aiohttp

from avatar_mf.config import AppConfig
from avatar_mf.config.sections import SipConfig
from avatar_mf.node.admin import AdminServer
from avatar_mf.node.web_client import CLIENT_PATH, WebClientFiles, client_config

CONFIG = b'{"sip": {"ws": 5066, "wss": null}}'


def admin(web_client: WebClientFiles | None) -> AdminServer:
    return AdminServer(snapshot=dict, ready=lambda: True, web_client=web_client)


async def test_client_pages_are_served_when_enabled() -> None:
    shipped = resources.files("avatar_mf").joinpath("webclient")
    server = admin(WebClientFiles.shipped(CONFIG))
    await server.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(base + CLIENT_PATH) as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
                assert await reply.read() == shipped.joinpath("index.html").read_bytes()
                assert "frame-src blob:" in reply.headers["Content-Security-Policy"]
                etag = reply.headers["ETag"]
            async with client.get(base + CLIENT_PATH, headers={"If-None-Match": etag}) as reply:
                assert reply.status == 304
            async with client.get(base + CLIENT_PATH + "client.js") as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
                assert await reply.read() == shipped.joinpath("client.js").read_bytes()
            async with client.get(base + CLIENT_PATH + "config.json") as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"].startswith("application/json")
                assert await reply.read() == CONFIG
            async with client.get(base + "/client", allow_redirects=False) as reply:
                assert reply.status == 301 and reply.headers["Location"] == CLIENT_PATH
            for missing in ("nope.js", "..%2Fadmin.py", ".hidden"):
                async with client.get(base + CLIENT_PATH + missing) as reply:
                    assert reply.status == 404, missing
            async with client.get(base + "/healthz") as reply:
                assert reply.status == 200
    finally:
        await server.close()


async def test_client_is_off_unless_configured() -> None:
    assert AppConfig().admin.web_client is False
    server = admin(None)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{server.port}{CLIENT_PATH}") as reply:
                assert reply.status == 404
    finally:
        await server.close()


def test_config_names_the_websocket_listeners() -> None:
    both = SipConfig.model_validate(
        {
            "transports": ["udp", "ws", "wss"],
            "ws_port": 5999,
            "wss_port": 7999,
            "tls_certificate": __file__,
            "tls_private_key": __file__,
        }
    )
    assert json.loads(client_config(both)) == {"sip": {"ws": 5999, "wss": 7999}}
    assert json.loads(client_config(SipConfig())) == {"sip": {"ws": None, "wss": None}}
    ws_only = SipConfig.model_validate({"transports": ["ws"]})
    assert json.loads(client_config(ws_only)) == {"sip": {"ws": 5066, "wss": None}}
