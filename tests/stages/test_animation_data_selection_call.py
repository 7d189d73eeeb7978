"""End to end: one real MF node with text, voice and camera animation-data stages
(``[pipeline.animation_data] names = ["text", "voice", "camera"]``); three calls, each in its
own room with a listening UE, each negotiating one input (issue 13).

Every sender's call carries real recorded speech over RTP, so the selection is what decides:

* UE A agrees ``voice``: its listener gets voice-driven units (jawOpen follows A's loudness,
  30 per second); A's ``animation text`` is answered ``unsupported``;
* UE B agrees ``text``: its speech over RTP drives nothing; its sentence does;
* UE C agrees ``video`` and sends a real photograph (scikit-image's astronaut) as H.264 video
  with its speech: its listener gets camera units (one per picture, 25 per second), none
  made from the voice.

``/sessions``, ``/metrics`` and the call records name the stage each session used.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit, ConfigUnit
from avatar_mf.codecs.video import Picture
from avatar_mf.stages.voice.corpus import load_corpus
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.rtp_audio import UeAudio
from avatar_mf.ue.rtp_video import UeVideo

pytestmark = [pytest.mark.timeout(120)]

HOST = "127.0.0.1"
TOKEN = "selection-test-admin-token"
FPS = 25
DATA = Path(__file__).parent / "voice" / "data"


@pytest.fixture
def mf(tmp_path: Path) -> Iterator[MfProcess]:
    settings = {
        "SIP__T1": "0.005",
        "SIP__T4": "0.05",
        "MEDIA__SETUP_TIMEOUT": "5",
        "PIPELINE__ANIMATION_DATA__NAMES": '["text", "voice", "camera"]',
        "ADMIN__TOKEN": TOKEN,
        "LOG__CDR_FILE": str(tmp_path / "cdr.jsonl"),
    }
    with MfProcess.start(tmp_path / "mf", settings=settings) as process:
        yield process


def _speech() -> np.ndarray:
    (utterance,) = [u for u in load_corpus(DATA) if u.name.endswith("0870")]
    silence = np.zeros(16000, np.int16)
    return np.concatenate([silence, utterance.pcm, silence])


def _face() -> Picture:
    from PIL import Image
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))
    return Picture.from_rgb(np.ascontiguousarray(rgb))


def _dial(mf: MfProcess, room: str, user: str, **media: Any) -> UeCall:
    return UeCall.dial(
        f"sip:{room}@{HOST}",
        HOST,
        mf.sip_port,
        ice=False,
        from_uri=f"sip:{user}@{HOST}",
        **media,
    )


def _admin(mf: MfProcess, path: str) -> Any:
    request = urllib.request.Request(
        f"http://{HOST}:{mf.admin_port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return response.read()


def _gauge(metrics: str, stage: str) -> float:
    prefix = f'avatar_mf_animation_data_sessions{{stage="{stage}"}} '
    (line,) = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def _shapes(client: AvatarClient) -> list[BlendshapeUnit]:
    return [u.unit for u in client.units if isinstance(u.unit, BlendshapeUnit)]


async def test_each_call_gets_the_animation_data_stage_it_negotiated(
    mf: MfProcess, tmp_path: Path
) -> None:
    speech = _speech()
    pcm = speech.astype("<i2").tobytes()
    face = _face()
    a_audio = UeAudio(HOST, codecs=("PCMU",), pcm=pcm)
    b_audio = UeAudio(HOST, codecs=("PCMU",), pcm=pcm)
    c_audio = UeAudio(HOST, codecs=("PCMU",), pcm=pcm)
    c_video = UeVideo(
        HOST, width=face.width, height=face.height, fps=FPS, count=FPS * 12, pictures=[face]
    )
    listener_audio = [UeAudio(HOST, codecs=("PCMU",)) for _ in range(3)]
    async with (
        _dial(mf, "voiceroom", "a", rtp_audio=a_audio) as call_a,
        _dial(mf, "textroom", "b", rtp_audio=b_audio) as call_b,
        _dial(mf, "cameraroom", "c", rtp_audio=c_audio, rtp_video=c_video) as call_c,
        _dial(mf, "voiceroom", "la", rtp_audio=listener_audio[0]) as call_la,
        _dial(mf, "textroom", "lb", rtp_audio=listener_audio[1]) as call_lb,
        _dial(mf, "cameraroom", "lc", rtp_audio=listener_audio[2]) as call_lc,
    ):
        calls = (call_a, call_b, call_c, call_la, call_lb, call_lc)
        await asyncio.gather(*(call.wait_channels_open(10.0) for call in calls))
        async with (
            AvatarClient(call_a, id_prefix="a") as a,
            AvatarClient(call_b, id_prefix="b") as b,
            AvatarClient(call_c, id_prefix="c") as c,
            AvatarClient(call_la, id_prefix="la") as la,
            AvatarClient(call_lb, id_prefix="lb") as lb,
            AvatarClient(call_lc, id_prefix="lc") as lc,
        ):
            for listener in (la, lb, lc):
                assert (await listener.hello(animation_inputs=())).animation_data == "ue"
            assert (await a.hello(animation_inputs=("voice",))).animation_inputs == ("voice",)
            assert (await b.hello(animation_inputs=("text",))).animation_inputs == ("text",)
            assert (await c.hello(animation_inputs=("video",))).animation_inputs == ("video",)
            refused = a.say("I only agreed voice.")
            await a.wait_until(lambda: len(a.mf_errors) >= 1, 10.0, "A's text refused")

            await la.wait_until(lambda: len(_shapes(la)) >= 30 * 5, 30.0, "5 s of voice units")
            await lc.wait_until(lambda: len(_shapes(lc)) >= FPS * 3, 30.0, "3 s of camera units")
            # B's speech has been flowing all along: it drives nothing.
            assert lb.units == []
            b.say("Hello, I am an avatar.")
            await lb.wait_until(lambda: len(_shapes(lb)) >= 30, 20.0, "text units")

            sessions = {
                s["from"].split(":")[1].split("@")[0]: s
                for s in json.loads(_admin(mf, "/sessions"))["sessions"]
            }
            metrics = _admin(mf, "/metrics").decode()
            for client in (b, c, la, lb, lc):
                assert client.failures == [], client.failures
            assert len(a.failures) == 1  # the refused text
            voice_units, text_units, camera_units = list(la.units), list(lb.units), list(lc.units)
            errors = list(a.mf_errors)

    assert [(e.code, e.in_reply_to) for e in errors] == [("unsupported", refused.id)]
    assert {user: s["animation_data"] for user, s in sessions.items()} == {
        "a": ["voice"],
        "b": ["text"],
        "c": ["camera"],
        "la": [],
        "lb": [],
        "lc": [],
    }
    assert [_gauge(metrics, stage) for stage in ("text", "voice", "camera")] == [1, 1, 1]

    # A: voice-driven, 30 per second on A's RTP timeline, the jaw following A's loudness.
    shapes = [u.unit for u in voice_units if isinstance(u.unit, BlendshapeUnit)]
    assert isinstance(voice_units[0].unit, ConfigUnit)
    steps = np.diff([s.timestamp for s in shapes]) % (1 << 32)
    assert np.median(steps) in (33, 34)
    jaw = np.array([float(s.weights[s.indices.index(ARKIT_INDEX["jawOpen"])]) for s in shapes])
    hop = 16000 // 30
    x = speech.astype(np.float64)
    rms = np.array([np.sqrt(np.mean(x[i : i + hop] ** 2)) for i in range(0, x.size - hop, hop)])
    best = max(
        float(np.corrcoef(jaw[: min(jaw.size, rms.size - lag)], rms[lag : lag + jaw.size])[0, 1])
        for lag in range(rms.size - 60)
        if rms[lag : lag + jaw.size].std() > 0
    )
    print(f"voice session: jaw~loudness r {best:.3f} over {jaw.size} units")
    assert best > 0.5 and jaw.max() > 0.2

    # B: only text-driven units (the stream starts with the sentence's CONFIG unit).
    assert isinstance(text_units[0].unit, ConfigUnit)
    assert sum(isinstance(u.unit, ConfigUnit) for u in text_units) == 1

    # C: camera units, one per picture of C's 25 fps video; none made from C's voice.
    shapes = [u.unit for u in camera_units if isinstance(u.unit, BlendshapeUnit)]
    steps = np.diff([s.timestamp for s in shapes]) % (1 << 32)
    assert np.median(steps) == 1000 // FPS
    assert sum(isinstance(u.unit, ConfigUnit) for u in camera_units) == 1
    assert len(shapes[0].indices) == 52  # the whole ARKit set, as the camera sends it

    cdr = tmp_path / "cdr.jsonl"
    for _ in range(100):
        if cdr.exists() and cdr.read_text().count("\n") >= 6:
            break
        await asyncio.sleep(0.1)
    records = {
        r["from"].split(":")[1].split("@")[0]: r
        for r in map(json.loads, cdr.read_text().splitlines())
    }
    assert records["a"]["animation_data"] == ["voice"]
    assert records["b"]["animation_data"] == ["text"]
    assert records["c"]["animation_data"] == ["camera"]
