"""CPU per relayed animation unit in the layers above the media, in process.

Usage::

    .venv/bin/python bench/relay_layers.py [--units 30000] [--rounds 5] [--rooms 1]

What one relayed unit costs the MF between the data channel delivering it and the
receiver's channel taking it (issue 16, docs/performance.md): the call's traffic counting
(``calls/call_media.py``), the animation channel service and its unit check
(``avatar_session/adapters.py``, ``arf.check_unit``), the session, its pipeline with the
default stages (the converter handling units inline), and the room's relay queue to the
receiver (``rooms/``). The MF's real objects are built as the node builds them (the default
``AppConfig``'s stages); only the data channel association under each call is a fake that
records what is sent, so no DTLS, SCTP or socket is in the figure. Rooms of two: each unit
of one UE goes to the other.

CPU time (``time.process_time``) per unit, median of ``--rounds``. Run it with another
build's ``src`` first on ``PYTHONPATH`` to compare two builds in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from avatar_mf.arf import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.avatar.validate import validate_container
from avatar_mf.avatar_session.hub import AvatarHub
from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.config import AppConfig
from avatar_mf.media.events import ChannelOpened, MessageReceived
from avatar_mf.media.session import StreamSpec
from avatar_mf.node.stages import build_stages, stage_settings
from avatar_mf.node.video_out import with_render_defaults
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import Hello, dump_message, new_message_id
from avatar_mf.protocol.names import SUBPROTOCOL_ANIMATION, SUBPROTOCOL_METADATA
from avatar_mf.testing.clock import FakeClock
from avatar_mf.ua.media_seam import CallInfo

META, ANIM = 1000, 1002


class Association:
    """The data channel association under a call: counts what is sent, never buffers."""

    def __init__(self) -> None:
        self.streams = {
            META: StreamSpec(META, label="meta", subprotocol=SUBPROTOCOL_METADATA),
            ANIM: StreamSpec(ANIM, label="anim", subprotocol=SUBPROTOCOL_ANIMATION),
        }
        self.remote = None
        self.sent = 0

    def send(self, stream_id: int, data: str | bytes) -> None:
        self.sent += 1

    def buffered_amount(self, stream_id: int) -> int:
        return 0

    async def close(self) -> None:
        pass


def call(factory: CallSessionFactory, room: str, who: str) -> tuple[CallMediaSession, Association]:
    info = CallInfo(
        call_id=f"{room}-{who}",
        request_uri=f"sip:{room}@127.0.0.1",
        from_uri=f"sip:{who}@127.0.0.1",
        to_uri=f"sip:{room}@127.0.0.1",
        identity=f"sip:{who}@127.0.0.1",
        contact=f"<sip:{who}@127.0.0.1:5070>",
        source_host="127.0.0.1",
    )
    session = CallMediaSession(factory, info, lambda reason: None)
    dc = Association()
    any_dc: Any = dc
    session.dc = any_dc
    for stream_id in (META, ANIM):
        session._on_event(ChannelOpened(stream_id))
    hello = Hello(id=new_message_id(), role="both")
    session._on_event(MessageReceived(META, dump_message(hello)))
    return session, dc


async def run(args: argparse.Namespace) -> list[float]:
    config = AppConfig()
    hub = AvatarHub(
        clock=FakeClock(),
        executor=StageExecutor(workers=1),
        stages=build_stages(
            with_render_defaults(stage_settings(config.pipeline), config.render),
            validator=validate_container,
        ),
    )
    media: Any = None  # no offer is answered: the calls' associations are set directly
    factory = CallSessionFactory(media, config, hub.services())
    pairs = []
    for r in range(args.rooms):
        a, _ = call(factory, f"room{r}", "a")
        b, b_dc = call(factory, f"room{r}", "b")
        pairs.append((a, b_dc))
    await asyncio.sleep(0.05)  # the sessions' set-up tasks (pipelines, welcome)
    config_unit = encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))
    unit = encode_unit(BlendshapeUnit(33, 0, tuple(range(20)), tuple(0.5 for _ in range(20))))
    for a, _ in pairs:
        a._on_event(MessageReceived(ANIM, config_unit))
    per_round = max(1, args.units // args.rooms)
    figures = []
    event = MessageReceived(ANIM, unit)
    for _ in range(args.rounds):
        before = [dc.sent for _, dc in pairs]
        gc.collect()
        start = time.process_time()
        for _ in range(per_round):
            for a, _ in pairs:
                a._on_event(event)
        spent = time.process_time() - start
        got = sum(dc.sent for _, dc in pairs) - sum(before)
        if got != per_round * len(pairs):
            raise SystemExit(f"{got} units relayed of {per_round * len(pairs)}")
        figures.append(spent / got * 1e6)
        await asyncio.sleep(0)
    await hub.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=30000, help="units relayed per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=1, help="rooms of two, units spread")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"relay layers: {statistics.median(figures):.2f} us CPU per relayed unit "
        f"(median of {len(figures)}: {', '.join(f'{f:.2f}' for f in figures)}), "
        f"{args.rooms} room(s) of two"
    )


if __name__ == "__main__":
    main()
