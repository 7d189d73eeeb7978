"""In-process CPU of the scene stage's work per call set-up: a participant's node added and
removed (issue 16), without sockets or an MF process.

Usage::

    .venv/bin/python bench/scene_membership.py [--calls 5000] [--baseline-src OTHER/src]

Rows: ``stage``, what one call costs the node's ``gltf`` scene provider in a room of one (the
session's stage opened, ``ParticipantJoined`` and ``ParticipantLeft`` processed, the stage torn
down: the room's scene made and dropped), as ``bench/dc_setup.py`` calls it; ``manager``, a
``GltfSceneManager`` with one participant already in the room: another joins, gets an avatar
and leaves. Each figure is the best of 3 rounds of process CPU time (``time.process_time``)
divided by the calls, in microseconds.

``--baseline-src DIR`` runs the same script with another checkout's ``src`` first (e.g. a
worktree of main), rows ``baseline`` and ``this``. Prints figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from avatar_mf.pipeline.frames import ParticipantJoined, ParticipantLeft
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.scene.gltf_scene import GltfSceneManager
from avatar_mf.stages.scene.stage import GltfScenes
from avatar_mf.testing.clock import FakeClock


def best_of_3(run: Callable[[int], None], calls: int) -> float:
    """Microseconds of CPU per call, the best of 3 rounds (after a warm-up round)."""
    run(max(1, calls // 10))
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        run(calls)
        best = min(best, time.process_time() - start)
    return best / calls * 1e6


def stage_calls(calls: int) -> None:
    scenes = GltfScenes()
    clock = FakeClock()
    executor = ThreadPoolExecutor(1)

    async def calls_in_rooms_of_one() -> None:
        for i in range(calls):
            participant = f"sip:ue{i}@127.0.0.1"
            context = StageContext(
                call_id=f"call-{i}",
                participant=participant,
                identity=participant,
                room=f"room-{i}",
                clock=clock,
                executor=executor,  # type: ignore[arg-type]  # the scene stage does not use it
            )
            stage = scenes.open(context)
            async for _ in stage.process(ParticipantJoined(participant, display_name="UE")):
                pass
            async for _ in stage.process(ParticipantLeft(participant)):
                pass
            await stage.teardown()

    asyncio.run(calls_in_rooms_of_one())
    executor.shutdown()


def manager_calls(calls: int) -> None:
    scene = GltfSceneManager(room="bench")
    scene.add_participant("sip:host@127.0.0.1", name="Host", avatar_id="avatar-host")
    for i in range(calls):
        participant = f"sip:ue{i}@127.0.0.1"
        scene.add_participant(participant, name="UE", avatar_id=None)
        scene.set_avatar(participant, "avatar-1")
        scene.remove_participant(participant)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--baseline-src", type=os.path.abspath)
    parser.add_argument("--row", default="this", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_src is not None:
        env = {**os.environ, "PYTHONPATH": args.baseline_src}
        subprocess.run(
            [sys.executable, __file__, "--calls", str(args.calls), "--row", "baseline"],
            env=env,
            check=True,
        )
    else:
        print("| build | stage: open, join, leave, teardown | manager: join, avatar, leave |")
        print("|---|---:|---:|")
    stage = best_of_3(stage_calls, args.calls)
    manager = best_of_3(manager_calls, args.calls)
    print(f"| {args.row} | {stage:.1f} us | {manager:.1f} us |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
