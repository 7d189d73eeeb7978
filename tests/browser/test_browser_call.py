"""Two browser pages in one room of a real MF, over SIP/WebSocket (ws and wss), in Chromium.

One MF subprocess on loopback listens on ws and wss (a certificate made by ``avatar-mf tls
generate-cert``; Chromium trusts exactly that certificate's key through
``--ignore-certificate-errors-spki-list``) and serves the browser avatar client at /client/
(admin.web_client), with only the client's origin allowed to open SIP WebSockets
(sip.ws_origins). Each page: JsSIP calls the room over the MF's own ws or wss listener (the
URL built from the MF's config.json), the browser offers the IMS data channels (ICE + DTLS +
SCTP with a=dcmap), the page downloads the data channel application over the bootstrap channel
(stream 0) and runs it. Page A asks the network for the default avatar (`avatar generate`) and
says a sentence (`animation text`); page B receives the avatar (transfer, digest checked),
draws it (the canvas is not blank) and its mouth region changes while the sentence plays,
within 10 s. The applications' exchange is checked (hello first, capabilities, no error or
refusal from the MF, every unit decoded), the MF logs no error, and both calls end cleanly.

``AVATAR_MF_SCREENSHOT=docs/browser-client.png`` makes the ws test write page B, taken while
the avatar speaks: the screenshot of docs/browser.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from avatar_mf.testing.process import MfProcess, free_port

from .conftest import CHROMIUM_FLAGS
from .pages import png_pixels, region_changes, wait_for, watch_region

pytestmark = pytest.mark.timeout(90)

SENTENCE = "Bob met Pam by the map, and the moon was bright over the bay."
STEP = 15.0
SPEAKS_WITHIN = 10.0
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Node:
    mf: MfProcess
    ws_port: int
    wss_port: int
    certificate: Path

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.mf.admin_port}"


def spki_hash(certificate: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): how Chromium names a key it should trust."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("browser-mf")
    certs = folder / "certs"
    subprocess.run(
        [sys.executable, "-m", "avatar_mf", "tls", "generate-cert", "--out", str(certs)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ports: set[int] = set()
    while len(ports) < 3:
        ports = {free_port(), free_port(), free_port()}
    admin_port, ws_port, wss_port = sorted(ports)
    settings = {
        "ADMIN__WEB_CLIENT": "true",
        "ADMIN__PORT": str(admin_port),
        "MEDIA__HOST": HOST,
        "LOG__LEVEL": "INFO",
        "SIP__TRANSPORTS": "udp,ws,wss",
        "SIP__WS_PORT": str(ws_port),
        "SIP__WSS_PORT": str(wss_port),
        "SIP__TLS_CERTIFICATE": str(certs / "cert.pem"),
        "SIP__TLS_PRIVATE_KEY": str(certs / "key.pem"),
        "SIP__WS_ORIGINS": f"http://{HOST}:{admin_port}",
    }
    mf = MfProcess.start(folder / "mf", settings=settings)
    try:
        yield Node(mf, ws_port, wss_port, certs / "cert.pem")
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]


@pytest.fixture
def chromium_args(node: Node) -> list[str]:
    return [*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={spki_hash(node.certificate)}"]


def client_url(node: Node, transport: str, room: str, user: str) -> str:
    return f"{node.origin}/client/?room={room}&user={user}&transport={transport}&call=1"


async def open_client(context: Any, url: str, errors: list[str]) -> Any:
    """A page that called the room, once its application has the MF's capabilities."""
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    await page.goto(url)

    async def app_ready() -> bool:
        return bool(
            await page.evaluate(
                "() => { const app = window.avatarClient && window.avatarClient.app();"
                " return !!(app && app.state().capabilities); }"
            )
        )

    try:
        await wait_for(app_ready, STEP, "the data channel application's capabilities")
    except AssertionError:
        state = await page.evaluate("window.avatarClient && window.avatarClient.state()")
        raise AssertionError(f"client state: {state}") from None
    return page


async def app_frame(page: Any) -> Any:
    """The frame the client runs the data channel application in."""
    element = await page.query_selector("#app")
    frame = await element.content_frame() if element is not None else None
    assert frame is not None, "the client has no application frame"
    return frame


async def app_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("window.avatarClient.app().state()")
    return state


@pytest.mark.parametrize("transport", ["ws", "wss"])
async def test_two_pages_one_room_avatar_speaks(
    browser_context: Any, node: Node, transport: str
) -> None:
    mf = node.mf
    log_start = len(mf.log_text())
    room = f"room-{uuid.uuid4().hex[:8]}"
    errors: list[str] = []
    page_b = await open_client(browser_context, client_url(node, transport, room, "bob"), errors)
    page_a = await open_client(browser_context, client_url(node, transport, room, "alice"), errors)

    # The call went over the MF's own listener for `transport`, the URL from config.json.
    port = node.ws_port if transport == "ws" else node.wss_port
    for page in (page_a, page_b):
        assert (
            await page.evaluate("window.avatarClient.state().ws") == f"{transport}://{HOST}:{port}"
        )

    client_b = await page_b.evaluate("window.avatarClient.state()")
    # The application came over the bootstrap channel: the page, then the files it names.
    downloads = client_b["bootstrap"]
    assert downloads[0]["path"] == "/" and {e["path"] for e in downloads[1:]} == {
        "/app.js",
        "/style.css",
    }
    assert all(e["status"] == 200 and e["bytes"] > 0 for e in downloads)

    async def knows_alice() -> bool:
        return len((await app_state(page_b))["participants"]) == 1

    await wait_for(knows_alice, STEP, "page B sees page A")

    # A: avatar generate (the network makes the default avatar); B receives it and draws it.
    await page_a.evaluate("window.avatarClient.app().generate('alice', 3)")

    async def selected() -> Any:
        return (await app_state(page_a))["selected"]

    avatar_id = await wait_for(selected, STEP, "avatar selected for page A")

    async def shown() -> bool:
        return avatar_id in (await app_state(page_b))["shown"]

    await wait_for(shown, 20.0, "page B draws page A's avatar")
    canvas = page_b.frame_locator("#app").locator("#stage")
    await page_b.wait_for_timeout(200)
    still = await png_pixels(page_b, await canvas.screenshot())
    assert still[..., :3].std() > 10, "page B's canvas is blank"

    rect = await page_b.evaluate(f"window.avatarClient.app().mouthRect({avatar_id!r})")
    assert rect is not None
    pad = 6
    region = (
        max(0, int(rect["x"]) - pad),
        max(0, int(rect["y"]) - pad),
        int(rect["width"]) + 2 * pad,
        int(rect["height"]) + 2 * pad,
    )

    await page_b.bring_to_front()
    frame_b = await app_frame(page_b)
    await watch_region(frame_b, region)
    await page_b.wait_for_timeout(400)
    quiet = await region_changes(frame_b)
    assert quiet["samples"] > 0 and quiet["max"] < 0.02, f"the mouth moves unasked: {quiet}"

    # A says a sentence: B's mouth region changes while it plays, within 10 s.
    said_at = time.monotonic()
    await page_a.evaluate(f"window.avatarClient.app().say({SENTENCE!r})")

    async def mouth_moved() -> float:
        share = float((await region_changes(frame_b))["max"])
        return share if share > 0.02 else 0.0

    await wait_for(mouth_moved, SPEAKS_WITHIN, "page B's avatar mouth moves", 0.1)
    assert time.monotonic() - said_at < SPEAKS_WITHIN
    screenshot = os.environ.get("AVATAR_MF_SCREENSHOT")
    if screenshot and transport == "ws":
        await page_b.screenshot(path=screenshot)

    # The applications' protocol exchange: hello first, capabilities back, nothing the
    # MF answered with an error or a refusal, every unit decoded and applied to the avatar.
    state_a, state_b = await app_state(page_a), await app_state(page_b)
    assert state_b["units"].get("BLENDSHAPE", 0) > 0 and state_b["unitsApplied"] > 0
    for state in (state_a, state_b):
        assert state["sent"][0] == "session:hello", state["sent"]
        # (the MF may tell of the room before the hello: the client keeps those messages
        # until the application, still downloading then, listens)
        assert state["received"].count("session:capabilities") == 1, state["received"]
        assert state["errors"] == [] and state["refusals"] == [], state
        assert state["notes"] == [] and state["unitErrors"] == 0, state
    assert "animation:text" in state_a["sent"]
    assert {"avatar:transfer:accept", "avatar:transfer:complete"} <= set(state_b["sent"])
    avatars_b = {a["avatarId"]: a for a in state_b["avatars"]}
    assert avatars_b[avatar_id]["state"] == "shown"
    assert errors == [], errors

    for page in (page_a, page_b):
        await page.evaluate("window.avatarClient.hangUp()")

    async def idle() -> bool:
        held = mf.stats()["held"]
        return held.get("dialogs", 0) == 0 and held.get("avatar_sessions", 0) == 0

    await wait_for(idle, STEP, "the MF released both calls")
    for page in (page_a, page_b):
        assert (await page.evaluate("window.avatarClient.state()"))["call"] == "ended"
    log = mf.log_text()[log_start:]
    assert '"level": "ERROR"' not in log and "Traceback" not in log, log[-3000:]
