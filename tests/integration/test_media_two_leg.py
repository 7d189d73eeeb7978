"""Two test UEs in a two-leg call through a real MF hear each other.

The MF takes ``sip:ue2`` for no room (``calls.room_pattern = "room.*"``) and sends the second
leg to its outbound proxy, which here is UE2 itself (a listening test UE, no registrar). The
MF offers leg 2 the codec leg 1 answered first: with the same codec on both legs the audio is
forwarded untouched; when UE2 takes only AMR-WB the MF transcodes (decode, encode in the
media worker pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.ue import UeCall
from avatar_mf.ue.listener import AnswerPolicy, UeListener
from avatar_mf.ue.rtp_audio import UeAudio

from .conftest import MfPool, assert_idle
from .test_media_audio import best_correlation, speech_pcm

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
FAST = {"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "5"}


@pytest.fixture
def ue2_port() -> int:
    return free_port()


@pytest.fixture
def two_leg_mf(mf_pool: MfPool, ue2_port: int) -> Iterator[MfProcess]:
    yield mf_pool.get(
        {
            **FAST,
            "CALLS__ROOM_PATTERN": "room.*",
            "CALLS__OUTBOUND_PROXY": f"sip:{HOST}:{ue2_port};lr",
        }
    )


@pytest.mark.parametrize(
    ("ue2_codecs", "floor"),
    [(("PCMU",), 0.8), (("AMR-WB",), 0.5)],
    ids=["forwarded-pcmu", "transcoded-pcmu-amrwb"],
)
async def test_two_leg_call_legs_hear_each_other(
    two_leg_mf: MfProcess, ue2_port: int, ue2_codecs: tuple[str, ...], floor: float
) -> None:
    mf = two_leg_mf
    speech1 = speech_pcm("One two three four five six seven")
    speech2 = speech_pcm("Hello from the other leg of this call")
    audio1 = UeAudio(HOST, codecs=("PCMU",), pcm=speech1)
    audio2: list[UeAudio] = []

    def make_audio() -> UeAudio:
        # UE2 answers before UE1 has its 200 (and can decode anything): it waits a moment
        # before talking, as a person picking up does.
        audio = UeAudio(HOST, codecs=ue2_codecs, pcm=speech2, send_delay=1.0)
        audio2.append(audio)
        return audio

    policy = AnswerPolicy(audio=make_audio)
    async with await UeListener.open(
        HOST, mf.sip_port, user="ue2", local_port=ue2_port, register=False, policy=policy
    ) as ue2:
        call = UeCall.dial(
            f"sip:ue2@{HOST}",
            HOST,
            mf.sip_port,
            ice=False,
            from_uri=f"sip:alice@{HOST}",
            rtp_audio=audio1,
        )
        async with call:
            leg2 = await ue2.next_call(5.0)
            assert call.answer is not None and call.answer.media[0].port != 0
            assert audio1.codec == "PCMU" and audio2[0].codec == ue2_codecs[0]
            await asyncio.sleep(max(len(speech1), len(speech2)) / 32000 + 1.6)
            assert leg2.state == "confirmed"
    heard_by_2, delay2 = best_correlation(speech1, audio2[0].received_pcm())
    heard_by_1, delay1 = best_correlation(speech2, audio1.received_pcm())
    print(
        f"two-leg {ue2_codecs[0]}: UE2 hears UE1 peak {heard_by_2:.3f} delay "
        f"{delay2 * 1000:.0f} ms; UE1 hears UE2 peak {heard_by_1:.3f} delay {delay1 * 1000:.0f} ms"
    )
    assert heard_by_2 > floor and heard_by_1 > floor
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["rtp_streams"] == 0
