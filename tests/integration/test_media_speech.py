"""A text "say" in a call is heard: the MF's espeak speech reaches the other UE as RTP audio
whose onset matches the first mouth-open animation unit (within 45 ms, the audio-lead
threshold of ITU-R BT.1359 the standards notes cite)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX, BlendshapeUnit
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.rtp_audio import UeAudio

from .conftest import assert_idle

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mf_settings({"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "5"}),
]

HOST = "127.0.0.1"
STEP = 5.0
SENTENCE = "Good morning, how are you today"
#: A mouth counts as open from this jawOpen weight on.
JAW_OPEN = 0.1
#: A 20 ms frame counts as sound from this peak level on (the UE sends digital silence).
SOUND = 500


def jaw(unit: BlendshapeUnit) -> float:
    index = ARKIT_INDEX["jawOpen"]
    for i, w in zip(unit.indices, unit.weights, strict=True):
        if i == index:
            return float(w)
    return 0.0


def dial(mf: MfProcess, room: str, user: str, audio: UeAudio) -> UeCall:
    return UeCall.dial(
        f"sip:{room}@{HOST}",
        HOST,
        mf.sip_port,
        ice=False,
        from_uri=f"sip:{user}@{HOST}",
        rtp_audio=audio,
    )


async def test_say_is_heard_in_step_with_the_mouth(mf: MfProcess) -> None:
    pytest.importorskip("avatar_mf.stages.animation_data.espeak")
    speaker_audio = UeAudio(HOST, codecs=("PCMU",))
    listener_audio = UeAudio(HOST, codecs=("PCMU",))
    async with (
        dial(mf, "sayroom", "ue1", speaker_audio) as call1,
        dial(mf, "sayroom", "ue2", listener_audio) as call2,
    ):
        await call1.wait_channels_open(STEP)
        await call2.wait_channels_open(STEP)
        async with (
            AvatarClient(call1, id_prefix="ue1") as ue1,
            AvatarClient(call2, id_prefix="ue2") as ue2,
        ):
            await ue1.hello(timeout=STEP)
            await ue2.hello(timeout=STEP)
            await asyncio.sleep(0.3)  # the room's audio is flowing (silence both ways)
            ue1.say(SENTENCE, "en-US")
            await ue2.wait_until(
                lambda: any(
                    isinstance(u.unit, BlendshapeUnit) and jaw(u.unit) > 0.3 for u in ue2.units
                ),
                STEP,
                "mouth-open units",
            )
            await asyncio.sleep(3.0)
            assert ue1.failures == [] and ue2.failures == []
            units = list(ue2.units)
    arrivals = listener_audio.arrivals
    mouth = next(
        u.at for u in units if isinstance(u.unit, BlendshapeUnit) and jaw(u.unit) >= JAW_OPEN
    )
    onset = None
    for at, pcm in arrivals:
        samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
        loud = np.nonzero(samples > SOUND)[0]
        if len(loud):
            # The MF sends each 20 ms frame at the time its first sample is due (as it sends
            # each unit at its media time): the onset is the arrival plus the sample offset.
            onset = at + loud[0] / 16000
            break
    assert onset is not None, "no speech reached the listener"
    skew = onset - mouth
    print(f"speech onset - first mouth-open unit: {skew * 1000:+.1f} ms")
    assert abs(skew) <= 0.045
    assert_idle(mf)
