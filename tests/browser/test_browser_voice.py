"""The browser client sends its microphone on the audio data channel, end to end, in Chromium.

A real MF (subprocess) with the ``voice`` animation-data stage serves the browser client
(admin.web_client) and SIP over WebSocket. UE2, a Python test UE, joins a room and says hello;
then the browser page (UE1) calls the same room with ``?voice=dc``: the client offers the
``avatar-mf-audio`` channel (stream 1006, unordered, max-retr=0), the data channel application
asks ``voice`` in its hello, captures the microphone (Chromium's fake device playing a WAV of
real recorded speech, ``--use-file-for-fake-audio-capture``), resamples it to 16 kHz and sends
20 ms raw audio messages. The MF's voice stage animates them: UE2's BLENDSHAPE units' jawOpen
follows the loudness of the speech (best-lag correlation, as tests/stages/voice computes it),
and the MF counted the messages accepted.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.testing.voice import AUDIO_ACCEPTED, jaw_follows_loudness
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.rtp_audio import read_wav

from .conftest import CHROMIUM_FLAGS, REPO
from .pages import wait_for

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
VOICE_DATA = REPO / "tests" / "stages" / "voice" / "data"
SPEECH = VOICE_DATA / "sense_and_sensibility_01_austen_64kb-0890.wav"  # 5.3 s of real speech
RATE = 16000
#: Units UE2 collects: 8 s at 30 a second.
UNITS = 30 * 8
FLOOR = 0.5


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The WAV Chromium's fake microphone plays (in a loop): silence, the speech, silence."""
    speech = np.frombuffer(read_wav(SPEECH), dtype="<i2")
    loop = np.concatenate([np.zeros(RATE // 2, np.int16), speech, np.zeros(RATE, np.int16)]).astype(
        "<i2"
    )
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(loop.tobytes())
    return path, loop


@pytest.fixture(scope="module")
def voice_mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    ports: set[int] = set()
    while len(ports) < 2:
        ports = {free_port(), free_port()}
    admin_port, ws_port = sorted(ports)
    settings = {
        "ADMIN__WEB_CLIENT": "true",
        "ADMIN__PORT": str(admin_port),
        "MEDIA__HOST": HOST,
        "SIP__T1": "0.005",
        "SIP__T4": "0.05",
        "MEDIA__SETUP_TIMEOUT": "5",
        "SIP__TRANSPORTS": "udp,ws",
        "SIP__WS_PORT": str(ws_port),
        "SIP__WS_ORIGINS": f"http://{HOST}:{admin_port}",
        "PIPELINE__ANIMATION_DATA__NAME": "voice",
    }
    mf = MfProcess.start(tmp_path_factory.mktemp("voice-mf"), settings=settings)
    try:
        yield mf
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]


@pytest.fixture
def chromium_args(microphone: tuple[Path, np.ndarray]) -> list[str]:
    return [
        *CHROMIUM_FLAGS,
        f"--use-file-for-fake-audio-capture={microphone[0]}",
    ]


async def app_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate(
        "(() => { const app = window.avatarClient && window.avatarClient.app();"
        " return app ? app.state() : null; })()"
    )
    return state


async def test_browser_microphone_drives_ue2_jaw(
    browser_context: Any, voice_mf: MfProcess, microphone: tuple[Path, np.ndarray]
) -> None:
    mf = voice_mf
    room = "browser-voice"
    accepted_before = mf.metric(AUDIO_ACCEPTED)
    errors: list[str] = []
    ue2_call = UeCall.dial(
        f"sip:{room}@{HOST}", HOST, mf.sip_port, ice=False, from_uri=f"sip:ue2@{HOST}"
    )
    async with ue2_call as call2:
        await call2.wait_channels_open(5.0)
        async with AvatarClient(call2, id_prefix="ue2") as ue2:
            await ue2.hello(animation_inputs=())
            page = await browser_context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            url = f"http://{HOST}:{mf.admin_port}/client/?room={room}&user=ue1&voice=dc&call=1"
            await page.goto(url)

            async def sending() -> Any:
                state = await app_state(page)
                return state if state and state["voice"]["sent"] >= 10 else None

            try:
                state = await wait_for(sending, 15.0, "the page sends its microphone")
            except AssertionError:
                client = await page.evaluate("window.avatarClient.state()")
                raise AssertionError(f"{client} {await app_state(page)}") from None
            start = len(ue2.units)

            def enough() -> bool:
                shapes = [u for u in list(ue2.units)[start:] if isinstance(u.unit, BlendshapeUnit)]
                return len(shapes) >= UNITS

            await ue2.wait_until(enough, 15.0, f"{UNITS} units")
            units = list(ue2.units)[start:]
            state = await app_state(page)
            assert ue2.failures == []
            await page.evaluate("window.avatarClient.hangUp()")

            async def ended() -> bool:
                return bool((await app_state(page))["voice"]["state"] == "ended")

            await wait_for(ended, 5.0, "the capture ends with the call")
            sent = (await app_state(page))["voice"]["sent"]  # every message, the last ones too
    accepted = mf.metric(AUDIO_ACCEPTED) - accepted_before
    voice = state["voice"]
    # The capture path and what the page sent.
    assert voice["state"] == "on" and voice["capture"] in ("audioworklet", "scriptprocessor")
    assert voice["refusals"] == [] and state["errors"] == [], state
    assert "session:hello" in state["sent"] and errors == [], errors
    # Every message the MF took came from the page (max-retr=0 on loopback: few lost).
    assert 0.9 * sent <= accepted <= sent, (accepted, sent)
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    jaw = np.array([float(s.weights[s.indices.index(ARKIT_INDEX["jawOpen"])]) for s in shapes])
    _, loop = microphone
    played = np.tile(loop, 4)  # the fake microphone loops the file
    best = jaw_follows_loudness(jaw, played)
    print(
        f"browser microphone ({voice['capture']}, {voice['inputRate']} Hz -> 16 kHz): "
        f"jaw~loudness r {best:.3f}, units {jaw.size}, messages sent {sent}, "
        f"accepted {accepted:.0f}"
    )
    assert best > FLOOR and jaw.max() > 0.2, (best, jaw.max())
