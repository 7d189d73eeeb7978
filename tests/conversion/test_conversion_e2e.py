"""Across a socket: a real MF subprocess with the converter stage, two test UEs in a room
(SIP, DTLS/SCTP data channels on loopback). UE1 animates with OVR visemes; UE2 accepts only
ARKit-52 and receives ARKit units that follow UE1's visemes; UE1's own view is untouched."""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX, VISEMES
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
STEP = 5.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MfProcess]:
    # The converter entry point as pyproject.toml declares it, on the MF's path (the shared
    # environment may have been installed before it existed).
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
        "avatar_mf.stages.converter"
    ]
    info = tmp_path / "eps" / "convstage-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: convstage\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[avatar_mf.stages.converter]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items())
    )
    path = [str(tmp_path / "eps"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
    node = MfProcess.start(
        tmp_path / "mf",
        settings={
            "PIPELINE__CONVERTER__NAME": "standard",
            "PIPELINE__ANIMATION_DATA__NAME": "",
            "SIP__T1": "0.005",
            "SIP__T4": "0.05",
            "MEDIA__SETUP_TIMEOUT": "5",
        },
    )
    try:
        yield node
    finally:
        node.stop()
    assert "converter stage 'standard'" in node.log_text()


@asynccontextmanager
async def ue(
    mf: MfProcess, room: str, user: str, profiles: tuple[str, ...]
) -> AsyncIterator[AvatarClient]:
    call = UeCall.dial(
        f"sip:{room}@{HOST}:{mf.sip_port}",
        HOST,
        mf.sip_port,
        from_uri=f"sip:{user}@{HOST}",
        ice=False,
    )
    async with call:
        await call.wait_channels_open(STEP)
        async with AvatarClient(call, id_prefix=user) as client:
            await client.hello(profiles=profiles, timeout=STEP)
            yield client


async def test_viseme_sender_and_arkit_only_receiver_over_a_real_mf(mf: MfProcess) -> None:
    room = f"room-{uuid.uuid4().hex[:10]}"
    async with ue(mf, room, "talker", ("ovr-visemes-15",)) as ue1:
        async with ue(mf, room, "listener", ("arf-face-v1",)) as ue2:
            await ue2.wait_until(lambda: len(ue2.participants) == 1, STEP, "talker unknown")
            await ue1.wait_until(lambda: len(ue1.participants) == 1, STEP, "listener unknown")
            aa = VISEMES.index("aa")
            weights = [0.0, 0.4, 1.0, 0.4, 0.0]
            # One at a time: the relay keeps only the newest units of a burst (newest wins).
            ue1.send_unit(ConfigUnit(0, "ovr-visemes-15", 1000.0))
            await ue2.wait_units(1, STEP)
            for k, w in enumerate(weights):
                ue1.send_unit(BlendshapeUnit(33 * (k + 1), 0, (aa,), (w,)))
                await ue2.wait_units(k + 2, STEP)
            received = list(ue2.units)
            config = received[0].unit
            assert isinstance(config, ConfigUnit) and config.profile == "arf-face-v1"
            units = [r.unit for r in received[1:]]
            assert all(isinstance(u, BlendshapeUnit) and len(u.indices) == 52 for u in units)
            jaw = [u.weights[ARKIT_INDEX["jawOpen"]] for u in units]  # type: ignore[union-attr]
            assert jaw[0] == 0.0 and jaw[1] < jaw[2] and jaw[2] > jaw[3] and jaw[4] == 0.0
            assert 0.5 <= jaw[2] <= 0.8
            assert ue2.failures == [] and ue1.units == []
