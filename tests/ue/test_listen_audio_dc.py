"""``ue listen --audio-dc``: the called side sends its voice on the audio data channel.

Options and answer policy without a network; then against a real MF (subprocess, ``voice``
animation-data stage) in a two-leg call: UE1 calls ``sip:ue2``, the MF (no room matches,
``calls.outbound_proxy`` is UE2's socket) offers UE2 its second leg, which has no audio
channel; UE2 (the ``ue listen`` call code, :func:`_take_call`, on a listening test UE that is
not registered) adds stream 1006 with a re-INVITE, says hello agreeing ``voice`` and sends real
recorded speech as raw audio messages. UE1's BLENDSHAPE units follow its loudness, and the MF
counted the messages accepted (the MF's audio service took the added channel: its spec is
known before the channel opens on the live association, media/session.py; and the re-offer
kept the audio m-line UE2 had refused, port 0, ue/call.py: without either this fails).
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.testing.voice import AUDIO_ACCEPTED, jaw_follows_loudness
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.cli import hello_inputs
from avatar_mf.ue.dc_audio import AUDIO_STREAM
from avatar_mf.ue.listen_cli import _take_call, add_arguments, answer_policy
from avatar_mf.ue.listener import UeListener
from avatar_mf.ue.offer import ANSWER_STREAMS
from avatar_mf.ue.rtp_audio import read_wav

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
SPEECH = (
    Path(__file__).parents[1]
    / "stages"
    / "voice"
    / "data"
    / "sense_and_sensibility_01_austen_64kb-0890.wav"
)


def listen_args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="avatar-mf ue listen")
    add_arguments(parser)
    return parser.parse_args(["--registrar", "127.0.0.1:5070", "--user", "ue2", *options])


def test_listen_takes_audio_dc_and_asks_voice() -> None:
    plain = listen_args()
    assert plain.audio_dc is None and hello_inputs(plain) == ("text",)
    assert answer_policy(plain).streams == ANSWER_STREAMS
    args = listen_args("--audio-dc", "speech.wav", "--ring", "0.5")
    assert args.audio_dc == Path("speech.wav") and hello_inputs(args) == ("voice",)
    policy = answer_policy(args)
    assert policy.streams == (*ANSWER_STREAMS, AUDIO_STREAM) and policy.ring_seconds == 0.5


@pytest.fixture
def ue2_port() -> int:
    return free_port()


@pytest.fixture
def two_leg_voice_mf(tmp_path: Path, ue2_port: int) -> Iterator[MfProcess]:
    settings = {
        "SIP__T1": "0.005",
        "SIP__T4": "0.05",
        "MEDIA__SETUP_TIMEOUT": "5",
        "CALLS__ROOM_PATTERN": "room.*",
        "CALLS__OUTBOUND_PROXY": f"sip:{HOST}:{ue2_port};lr",
        "PIPELINE__ANIMATION_DATA__NAME": "voice",
    }
    with MfProcess.start(tmp_path / "mf", settings=settings) as mf:
        yield mf


async def test_called_side_sends_its_voice_on_an_added_audio_channel(
    two_leg_voice_mf: MfProcess, ue2_port: int
) -> None:
    mf = two_leg_voice_mf
    sent = np.frombuffer(read_wav(SPEECH), dtype="<i2")  # 5.3 s of real speech
    args = listen_args("--audio-dc", str(SPEECH), "--duration", "0", "--timeout", "5")
    async with await UeListener.open(
        HOST,
        mf.sip_port,
        user="ue2",
        local_port=ue2_port,
        register=False,
        policy=answer_policy(args),
    ) as listener:
        ue1_call = UeCall.dial(
            f"sip:ue2@{HOST}", HOST, mf.sip_port, ice=False, from_uri=f"sip:ue1@{HOST}"
        )
        async with ue1_call as call1:
            await call1.wait_channels_open(5.0)
            async with AvatarClient(call1, id_prefix="ue1") as ue1:
                await ue1.hello(animation_inputs=())
                leg2 = await listener.next_call(5.0)
                summary = await _take_call(args, leg2, io.StringIO())
                await asyncio.sleep(0.3)  # the last units
                assert ue1.failures == []
                units = list(ue1.units)
    assert summary["ok"], summary.get("errors")
    messages = -(-sent.size // 320)
    assert summary["audio_dc"] == {
        "stream": AUDIO_STREAM.stream_id,
        "messages_sent": messages,
        "seconds_sent": messages * 0.02,
    }
    accepted = mf.metric(AUDIO_ACCEPTED)
    assert messages * 0.95 <= accepted <= messages, accepted  # max-retr=0: may lose a few
    shapes = [u.unit for u in units if isinstance(u.unit, BlendshapeUnit)]
    assert len(shapes) >= 30 * 4, len(shapes)
    jaw = np.array([float(s.weights[s.indices.index(ARKIT_INDEX["jawOpen"])]) for s in shapes])
    best = jaw_follows_loudness(jaw, sent)
    print(f"ue listen --audio-dc: jaw~loudness r {best:.3f}, units {jaw.size}, accepted {accepted}")
    assert best > 0.5 and jaw.max() > 0.2, (best, jaw.max())
