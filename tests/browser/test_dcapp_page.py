"""The data channel application in real Chromium, with this test playing the MF.

The shipped app (src/avatar_mf/dcapp, built from web/src/dcapp) is loaded in a page and handed
two RTCDataChannel-shaped objects (metadata 1000, animation 1002), as a UE host does. The test
answers as the MF would, with the MF's own message models and transfer code, and reads every
message the app sends with the MF's own parser (avatar_mf.protocol.parse_message): hello first
with the right members; scene get once capabilities came; the transfer offer answered by an
accept, the chunks (made by avatar_mf.protocol.transfer) checked against the SHA-256 and
answered by transfer complete; the avatar (an ARF container of the default head) drawn on the
canvas; BLENDSHAPE units opening the jaw change the pixels of the mouth region and nothing is
drawn while no unit comes; the page's controls send valid animation text, avatar select and
avatar generate messages; a digest mismatch is answered transfer failed digest-mismatch.
The full path (JsSIP, ICE/DTLS/SCTP, bootstrap download, the MF) is test_browser_call.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.avatar.container import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.protocol import (
    AnimationText,
    AvatarGenerate,
    AvatarSelect,
    Capabilities,
    Hello,
    Message,
    ParticipantJoined,
    Scene,
    SceneGet,
    TransferAccept,
    TransferComplete,
    TransferFailed,
    dump_message,
    parse_message,
)
from avatar_mf.protocol.transfer import TransferSender

from .pages import png_pixels, wait_for

pytestmark = pytest.mark.timeout(60)

ORIGIN = "http://dcapp.test"
STEP = 10.0

HARNESS = """() => {
  window.__sent = [];
  class FakeChannel extends EventTarget {
    constructor(id, label, protocol) {
      super();
      Object.assign(this, { id, label, protocol, readyState: "open" });
      Object.assign(this, { binaryType: "blob", bufferedAmount: 0 });
    }
    send(data) {
      if (typeof data === "string") window.__sent.push([this.id, "text", data]);
      else {
        const bytes = ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data);
        let text = ""; for (const b of bytes) text += String.fromCharCode(b);
        window.__sent.push([this.id, "binary", btoa(text)]);
      }
    }
  }
  window.__channels = {
    1000: new FakeChannel(1000, "avatar-meta", "3gpp-ar-metadata"),
    1002: new FakeChannel(1002, "avatar-anim-1", "3gpp-ar-animation"),
  };
  window.__deliver = (id, kind, payload) => {
    const data = kind === "text"
      ? payload
      : Uint8Array.from(atob(payload), (c) => c.charCodeAt(0)).buffer;
    window.__channels[id].dispatchEvent(new MessageEvent("message", { data }));
  };
  for (const channel of Object.values(window.__channels)) window.avatarApp.attach(channel);
}"""


class FakeMf:
    """The MF side of the page's channels: what the app sent, and delivery to it."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen = 0
        self.messages: list[Message] = []

    async def sent(self) -> list[tuple[int, str, str]]:
        return [tuple(x) for x in await self.page.evaluate("window.__sent")]

    async def next_message(self, kind: type[Message]) -> Any:
        async def probe() -> Any:
            for stream, how, data in (await self.sent())[self.seen :]:
                self.seen += 1
                assert (stream, how) == (1000, "text"), (stream, how)
                message = parse_message(data)  # the MF's own parser: raises if the app erred
                self.messages.append(message)
                if isinstance(message, kind):
                    return message
            return None

        return await wait_for(probe, STEP, f"a {kind.__name__} from the app")

    async def send(self, message: Message) -> None:
        text = dump_message(message)
        await self.page.evaluate("([d]) => window.__deliver(1000, 'text', d)", [text])

    async def send_binary(self, stream: int, data: bytes) -> None:
        payload = base64.b64encode(data).decode()
        await self.page.evaluate("([s, d]) => window.__deliver(s, 'binary', d)", [stream, payload])

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate("window.avatarApp.state()")
        return result


async def serve_package_app(route: Any) -> None:
    folder = resources.files("avatar_mf").joinpath("dcapp")
    name = route.request.url.removeprefix(ORIGIN + "/") or "index.html"
    entry = folder.joinpath(name)
    if not entry.is_file():
        await route.fulfill(status=404, body="")
        return
    types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
    await route.fulfill(
        status=200, body=entry.read_bytes(), content_type=types[name.rsplit(".", 1)[-1]]
    )


def capabilities(hello: Hello) -> Capabilities:
    return Capabilities(
        id="mf-1",
        in_reply_to=hello.id,
        session_id="p1",
        base_avatar_generation="ue",
        animation_data="network",
        animation="ue",
        animation_inputs=("text",),
        animation_profiles=("arf-face-v1",),
        avatar_formats=("application/vnd.arf+zip", "model/gltf-binary"),
        max_message_size=65536,
        max_transfer_size=64 * 1024 * 1024,
    )


def jaw(tick: int, weight: float) -> bytes:
    index = ARKIT_INDEX["jawOpen"]
    return encode_unit(BlendshapeUnit(tick, 0, (index,), (weight,)))


async def test_dcapp_protocol_rendering_and_controls(browser_context: Any, tmp_path: Path) -> None:
    page = await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.route(f"{ORIGIN}/**", serve_package_app)
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("window.avatarApp !== undefined")
    mf = FakeMf(page)
    await page.evaluate(HARNESS)

    # hello first, valid for the MF, then scene get once capabilities came.
    hello = await mf.next_message(Hello)
    assert mf.messages == [hello]
    assert hello.role == "both" and hello.animation_inputs == ("text",)
    assert "application/vnd.arf+zip" in hello.avatar_formats
    await mf.send(capabilities(hello))
    scene_get = await mf.next_message(SceneGet)
    document = {
        "asset": {"version": "2.0"},
        "nodes": [
            {"name": "sip:ana@lab", "extras": {"participant": "p2", "avatarId": "av-ana"}},
            {"name": "sip:me@lab", "extras": {"participant": "p1", "avatarId": None}},
        ],
        "extras": {"participants": {"p2": 0, "p1": 1}},
    }
    await mf.send(Scene(id="mf-2", in_reply_to=scene_get.id, version=1, document=document))
    await mf.send(ParticipantJoined(id="mf-3", participant_id="p2", display_name="sip:ana@lab"))

    # A transfer offer: accept, chunks, digest, complete; then the avatar is drawn.
    container = write_arf(generate_default_head(resolution="low"), avatar_id="av-ana", name="ana")
    sender = TransferSender(
        container,
        transfer_id="tx-1",
        max_message_size=65536,
        avatar_id="av-ana",
        stream_id=1000,
        content_type="application/vnd.arf+zip",
    )
    offer = sender.offer(message_id="mf-4")
    await mf.send(offer)
    accept = await mf.next_message(TransferAccept)
    assert (accept.transfer_id, accept.resume_from, accept.in_reply_to) == ("tx-1", 0, "mf-4")
    for chunk in sender.chunks():
        await mf.send_binary(1000, chunk)
    complete = await mf.next_message(TransferComplete)
    assert complete.sha256 == hashlib.sha256(container).hexdigest() == offer.sha256

    async def shown() -> bool:
        return "av-ana" in (await mf.state())["shown"]

    await wait_for(shown, STEP, "the avatar on the stage")
    state = await mf.state()
    participants = {p["participantId"]: p for p in state["participants"]}
    assert participants["p2"]["avatarId"] == "av-ana"
    assert "p1" not in participants  # the app's own node is not another participant

    canvas = page.locator("#stage")
    await page.wait_for_timeout(100)
    still = await png_pixels(page, await canvas.screenshot())
    assert still[..., :3].std() > 10, "the canvas is blank"
    (tmp_path / "dcapp.png").write_bytes(await canvas.screenshot())

    # The mouth: nothing changes without units; the jaw opens with BLENDSHAPE units.
    rect = await page.evaluate("window.avatarApp.mouthRect('av-ana')")
    assert rect is not None and rect["width"] > 4 and rect["height"] > 2, rect
    pad = 6
    box = (
        max(0, int(rect["x"]) - pad),
        max(0, int(rect["y"]) - pad),
        int(rect["width"]) + 2 * pad,
        int(rect["height"]) + 2 * pad,
    )

    async def mouth() -> Any:
        return (await png_pixels(page, await canvas.screenshot(), box)).astype(np.int16)

    closed = await mouth()
    assert np.abs(await mouth() - closed).max() == 0  # idle: the same frame
    await mf.send_binary(1002, encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)))
    for step in range(1, 11):
        await mf.send_binary(1002, jaw(33 * step, step / 10))
    await page.wait_for_timeout(150)
    opened = await mouth()
    changed = np.abs(opened - closed).max(axis=2) > 24
    assert changed.mean() > 0.02, f"{changed.mean():.3f} of the mouth region changed"
    state = await mf.state()
    assert state["units"] == {"CONFIG": 1, "BLENDSHAPE": 10} and state["unitsApplied"] == 10

    # The controls send valid messages.
    await page.fill("#say-text", "Bob met Pam by the map")
    await page.click("#say")
    text = await mf.next_message(AnimationText)
    assert (text.text, text.language) == ("Bob met Pam by the map", "en-US")
    await page.fill("#avatar-id", "bar:7d3c1e2a")
    await page.click("#select")
    select = await mf.next_message(AvatarSelect)
    assert select.avatar_id == "bar:7d3c1e2a"
    await page.click("#generate")
    await mf.next_message(AvatarGenerate)

    # A corrupted transfer is refused with digest-mismatch.
    bad = TransferSender(
        b"x" * 3000, transfer_id="tx-2", max_message_size=1024, avatar_id="av-bad", stream_id=1000
    )
    bad_offer = bad.offer(message_id="mf-5").model_copy(update={"sha256": "0" * 64})
    await mf.send(bad_offer)
    await mf.next_message(TransferAccept)
    for chunk in bad.chunks():
        await mf.send_binary(1000, chunk)
    failed = await mf.next_message(TransferFailed)
    assert (failed.transfer_id, failed.code) == ("tx-2", "digest-mismatch")

    ids = [m.id for m in mf.messages]
    assert len(set(ids)) == len(ids), "message ids are unique"
    assert not any("stopped" in m.type for m in mf.messages)
    final = await mf.state()
    assert final["notes"] == [] and final["unitErrors"] == 0
    assert errors == [], errors
    json.dumps(final)  # the summary is plain JSON
