"""End to end in a call: UE1 speaks real recorded speech over RTP, the MF's ``voice`` stage
animates it, UE2 receives BLENDSHAPE units whose jawOpen follows UE1's loudness.

With one codec on both UEs (PCMU, AMR-WB) the audio room forwards RTP untouched and decodes
UE1's packets as well because UE1's session takes its voice; with two codecs (PCMU, PCMA)
the room mixes, which decodes anyway.

Without RTP: UE1 (the ``ue call --audio-dc`` code path) sends real recorded speech as raw
audio messages on an ``avatar-mf-audio`` data channel, and UE2's units follow it the same way.

The MF runs as a real process with ``[pipeline.animation_data] name = "voice"``, one for the
module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit, ConfigUnit
from avatar_mf.stages.voice.corpus import Utterance
from avatar_mf.testing.process import MfProcess
from avatar_mf.testing.voice import AUDIO_ACCEPTED, jaw_follows_loudness
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.rtp_audio import UeAudio

pytestmark = [pytest.mark.timeout(90)]

HOST = "127.0.0.1"
SETTINGS = {
    "SIP__T1": "0.005",
    "SIP__T4": "0.05",
    "MEDIA__SETUP_TIMEOUT": "5",
    "PIPELINE__ANIMATION_DATA__NAME": "voice",
}


@pytest.fixture(scope="module")
def voice_mf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MfProcess]:
    """One MF for the module's calls (each test uses its own room)."""
    with MfProcess.start(tmp_path_factory.mktemp("mf"), settings=SETTINGS) as mf:
        yield mf


def dial(mf: MfProcess, user: str, audio: UeAudio | None, room: str = "voiceroom") -> UeCall:
    return UeCall.dial(
        f"sip:{room}@{HOST}",
        HOST,
        mf.sip_port,
        ice=False,
        from_uri=f"sip:{user}@{HOST}",
        rtp_audio=audio,
    )


def _jaw(unit: BlendshapeUnit) -> float:
    return float(unit.weights[unit.indices.index(ARKIT_INDEX["jawOpen"])])


def _mix_ticks(mf: MfProcess) -> dict[str, float]:
    status, body = mf.http_get("/metrics")
    assert status == 200
    ticks: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("avatar_mf_audio_mix_ticks_total{"):
            mode = line.split('mode="', 1)[1].split('"', 1)[0]
            ticks[mode] = float(line.rsplit(" ", 1)[1])
    return ticks


@pytest.mark.parametrize(
    ("codec1", "codec2", "mode"),
    [("PCMU", "PCMU", "forward"), ("AMR-WB", "AMR-WB", "forward"), ("PCMU", "PCMA", "mix")],
)
async def test_ue2_mouth_follows_ue1_voice(
    voice_mf: MfProcess, corpus: list[Utterance], codec1: str, codec2: str, mode: str
) -> None:
    speech = corpus[0].pcm  # 7.1 s of real speech
    # Silence first: the RTP stream starts with the call, the avatar session with the hello.
    sent = np.concatenate([np.zeros(3 * 16000, np.int16), speech, np.zeros(16000, np.int16)])
    speaker = UeAudio(HOST, codecs=(codec1,), pcm=sent.astype("<i2").tobytes())
    listener = UeAudio(HOST, codecs=(codec2,))
    room = f"voiceroom-{codec1}-{codec2}"
    async with (
        dial(voice_mf, "ue1", speaker, room) as call1,
        dial(voice_mf, "ue2", listener, room) as call2,
    ):
        await call1.wait_channels_open(5.0)
        await call2.wait_channels_open(5.0)
        async with (
            AvatarClient(call1, id_prefix="ue1") as ue1,
            AvatarClient(call2, id_prefix="ue2") as ue2,
        ):
            await ue1.hello(animation_inputs=("voice",))
            await ue2.hello(animation_inputs=("voice",))
            # The room's mode from here on (alone, UE 1's first packets may be mixed).
            before = _mix_ticks(voice_mf)
            await ue2.wait_until(
                lambda: sum(isinstance(u.unit, BlendshapeUnit) for u in ue2.units) >= 30 * 8,
                20.0,
                "8 s of units",
            )
            assert ue1.failures == [] and ue2.failures == []
            units = list(ue2.units)
            after = _mix_ticks(voice_mf)
    other = "mix" if mode == "forward" else "forward"
    grown = {m: after.get(m, 0) - before.get(m, 0) for m in ("mix", "forward")}
    assert grown[mode] > 0 and grown[other] == 0, grown
    assert any(isinstance(u.unit, ConfigUnit) for u in units)
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    ticks = np.array([s.timestamp for s in shapes], dtype=np.int64)
    jaw = np.array([_jaw(s) for s in shapes])
    steps = np.diff(ticks) % (1 << 32)
    # 30 per second, in order; animation is newest-wins, so a loaded machine may drop a few.
    assert np.all(steps > 0) and np.mean(steps <= 34) >= 0.95, steps
    # The units' offset in what UE1 sent is found by correlation (the session's stage starts
    # on whatever packet it first gets).
    best = jaw_follows_loudness(jaw, sent)
    print(f"voice call {codec1}/{codec2}: jaw~loudness r", round(best, 3), "units", jaw.size)
    assert best > 0.5, best
    assert jaw.max() > 0.2


async def test_ue2_mouth_follows_ue1_voice_sent_on_a_data_channel(voice_mf: MfProcess) -> None:
    import argparse
    import asyncio
    import io

    from avatar_mf.ue.cli import _call, add_parser
    from avatar_mf.ue.rtp_audio import read_wav

    wav = Path(__file__).parent / "data" / "sense_and_sensibility_01_austen_64kb-0890.wav"
    sent = np.frombuffer(read_wav(wav), dtype="<i2")  # 5.3 s of real speech
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        [
            "call",
            f"sip:dcroom@{HOST}:{voice_mf.sip_port}",
            "--no-ice",
            "--from",
            f"sip:ue1@{HOST}",
            "--audio-dc",
            str(wav),
            "--duration",
            "0",
            "--timeout",
            "5",
        ]
    )
    async with dial(voice_mf, "ue2", None, "dcroom") as call2:
        await call2.wait_channels_open(5.0)
        async with AvatarClient(call2, id_prefix="ue2") as ue2:
            await ue2.hello(animation_inputs=())
            summary = await _call(args, io.StringIO())  # UE1: hello (voice), then the WAV
            await asyncio.sleep(0.3)  # the last units
            assert ue2.failures == []
            units = list(ue2.units)
    assert summary["ok"], summary
    messages = -(-sent.size // 320)
    assert summary["audio_dc"]["messages_sent"] == messages  # type: ignore[index]
    accepted = voice_mf.metric(AUDIO_ACCEPTED)
    assert messages * 0.95 <= accepted <= messages  # max-retr=0: may lose
    assert isinstance(units[0].unit, ConfigUnit)
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    assert len(shapes) >= 30 * 5
    steps = np.diff([s.timestamp for s in shapes]) % (1 << 32)
    assert np.all(steps > 0) and np.mean(steps <= 34) >= 0.95, steps
    jaw = np.array([_jaw(s) for s in shapes])
    best = jaw_follows_loudness(jaw, sent)
    print("voice over the data channel: jaw~loudness r", round(best, 3), "units", jaw.size)
    assert best > 0.5 and jaw.max() > 0.2
