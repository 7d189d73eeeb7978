"""The data channel application's voice on the audio channel, in real Chromium, with this test
playing the MF (the harness of test_dcapp_page.py, plus an ``avatar-mf-audio`` channel).

Handed an audio channel, the app asks ``voice`` in its hello; once the capabilities agree it,
it captures Chromium's fake microphone (with the AudioWorklet, and with the ScriptProcessor
when the page has no AudioWorkletNode) and sends raw audio messages that the MF's own codec
(avatar_mf.protocol.audio.AudioReceiver) takes: version 1, format 1, 320 samples, sequence +1
and timestamp +320 per message from one start. The MF's refusals are shown in the page's
status, never thrown: ``bad-audio`` (one message) leaves the capture on, ``unsupported`` stops
it. Capabilities that do not agree voice leave the microphone alone. Without an audio channel
the hello asks text only (test_dcapp_page.py).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from avatar_mf.protocol import ErrorMessage, Hello
from avatar_mf.protocol.audio import AudioFormat, AudioReceiver, parse_audio

from .conftest import CHROMIUM_FLAGS
from .pages import wait_for
from .test_dcapp_page import HARNESS, ORIGIN, FakeMf, capabilities, serve_package_app

pytestmark = pytest.mark.timeout(60)

STEP = 10.0
WITH_AUDIO = HARNESS.replace(
    '    1002: new FakeChannel(1002, "avatar-anim-1", "3gpp-ar-animation"),\n',
    '    1002: new FakeChannel(1002, "avatar-anim-1", "3gpp-ar-animation"),\n'
    '    1006: new FakeChannel(1006, "avatar-audio", "avatar-mf-audio"),\n',
)


@pytest.fixture
def chromium_args() -> list[str]:
    # The harness serves the app from a made-up http origin: a secure context only when told
    # (getUserMedia needs one; the browser client's own pages are on https or loopback).
    return [*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={ORIGIN}"]


async def open_app(
    context: Any, errors: list[str], init_script: str | None = None
) -> tuple[Any, FakeMf, Hello]:
    assert WITH_AUDIO != HARNESS
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.route(f"{ORIGIN}/**", serve_package_app)
    if init_script is not None:
        await page.add_init_script(init_script)
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("window.avatarApp !== undefined")
    mf = FakeMf(page)
    await page.evaluate(WITH_AUDIO)
    hello = await mf.next_message(Hello)
    return page, mf, hello


async def audio_sent(page: Any) -> list[bytes]:
    sent = await page.evaluate("window.__sent")
    return [base64.b64decode(data) for stream, kind, data in sent if stream == 1006]


async def status(page: Any) -> str:
    text: str = await page.evaluate("document.getElementById('call-status').textContent")
    return text


@pytest.mark.parametrize("capture", ["audioworklet", "scriptprocessor"])
async def test_the_app_sends_its_microphone_and_shows_refusals(
    browser_context: Any, capture: str
) -> None:
    errors: list[str] = []
    # Headless Chromium runs the AudioWorklet; a browser without one gets the ScriptProcessor.
    without_worklet = "delete window.AudioWorkletNode;" if capture == "scriptprocessor" else None
    page, mf, hello = await open_app(browser_context, errors, without_worklet)
    assert hello.animation_inputs == ("text", "voice")
    agreed = capabilities(hello).model_copy(update={"animation_inputs": ("text", "voice")})
    await mf.send(agreed)

    async def some_audio() -> list[bytes]:
        messages = await audio_sent(page)
        return messages if len(messages) >= 25 else []

    try:
        messages = await wait_for(some_audio, STEP, "half a second of audio messages")
    except AssertionError:
        raise AssertionError(f"{await mf.state()} {await status(page)}") from None
    receiver = AudioReceiver()
    parsed = [parse_audio(m) for m in messages]
    for index, data in enumerate(messages):  # the MF's receiver takes every one
        receiver.receive(data, now=index * 0.02)
    assert receiver.accepted == len(messages) and not receiver.refused
    assert {m.format for m in parsed} == {AudioFormat.S16LE}
    assert {m.samples for m in parsed} == {320}
    first = parsed[0]
    assert [m.sequence for m in parsed] == [
        (first.sequence + i) % 2**16 for i in range(len(parsed))
    ]
    assert [m.timestamp for m in parsed] == [
        (first.timestamp + 320 * i) % 2**32 for i in range(len(parsed))
    ]
    state = await mf.state()
    voice = state["voice"]
    assert voice["state"] == "on" and voice["capture"] == capture
    assert (voice["firstSequence"], voice["firstTimestamp"]) == (first.sequence, first.timestamp)
    print(f"dcapp voice: {voice['capture']} at {voice['inputRate']} Hz")

    # bad-audio: shown, the capture goes on.
    await mf.send(ErrorMessage(id="mf-9", code="bad-audio", message="too-short: 100 samples"))

    async def shown(text: str) -> str:
        now = await status(page)
        return now if text in now else ""

    await wait_for(lambda: shown("voice refused by the MF: bad-audio"), STEP, "the refusal shown")
    count = len(await audio_sent(page))

    async def more_audio() -> bool:
        return len(await audio_sent(page)) > count + 5

    await wait_for(more_audio, STEP, "audio after bad-audio")
    # unsupported: shown, and the capture stops.
    await mf.send(ErrorMessage(id="mf-10", code="unsupported", message="voice not agreed"))
    await wait_for(lambda: shown("unsupported"), STEP, "the second refusal shown")
    state = await mf.state()
    assert state["voice"]["state"] == "refused"
    assert [r["code"] for r in state["voice"]["refusals"]] == ["bad-audio", "unsupported"]
    stopped = len(await audio_sent(page))
    await page.wait_for_timeout(300)
    assert len(await audio_sent(page)) <= stopped + 1  # one block may have been under way
    assert errors == [], errors


async def test_the_microphone_stays_off_unless_voice_is_agreed(browser_context: Any) -> None:
    errors: list[str] = []
    page, mf, hello = await open_app(browser_context, errors)
    assert "voice" in hello.animation_inputs
    await mf.send(capabilities(hello))  # agrees text only
    await wait_for(lambda: _has(page, "did not agree the voice input"), STEP, "the status")
    await page.wait_for_timeout(300)
    assert await audio_sent(page) == []
    state = await mf.state()
    assert state["voice"]["state"] == "refused" and state["voice"]["sent"] == 0
    assert errors == [], errors


async def _has(page: Any, text: str) -> bool:
    return text in await status(page)


async def test_a_microphone_refused_by_the_browser_is_shown_not_thrown(
    browser_context: Any,
) -> None:
    errors: list[str] = []
    page = await browser_context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.route(f"{ORIGIN}/**", serve_package_app)
    # The person says no to the microphone.
    await page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("window.avatarApp !== undefined")
    mf = FakeMf(page)
    await page.evaluate(WITH_AUDIO)
    hello = await mf.next_message(Hello)
    agreed = capabilities(hello).model_copy(update={"animation_inputs": ("text", "voice")})
    await mf.send(agreed)
    await wait_for(lambda: _has(page, "no microphone: Permission denied"), STEP, "the status")
    state = await mf.state()
    assert state["voice"]["state"] == "failed" and await audio_sent(page) == []
    assert errors == [], errors
