"""Conversion benchmark: CPU per converted animation unit and per base avatar conversion.

Usage::

    .venv/bin/python bench/convert.py [--units 20000] [--rounds 5] [--json FILE]

In this process (no MF needed), single thread, CPU time (``time.process_time``):

* **per converted unit**: :class:`~avatar_mf.stages.conversion.animation.StreamConverter` on
  encoded ARF BLENDSHAPE units (decode, map through ARKit-52, filter, encode one dense unit),
  for each conversion the MF makes: visemes -> ARKit, ARKit -> visemes, ARKit -> VRM presets,
  VRM -> ARKit, ARKit -> FACS, ARKit -> ARKit with a filter (clamp, suppress, replace). Input
  units are full frames of the source set (52 ARKit weights, 15 visemes, 18 presets) with
  random weights. Goal: <= 20 us per converted unit.
* **per stage unit**: the converter stage's routing of one source unit in a room of three
  (one receiver as is, one converted to visemes, one filtered), the frames it yields
  included: what the MF spends per unit it receives.
* **per base avatar conversion** (median of ``--rounds``): the test VRM 1.0 file
  (``tests/conversion/vrm_sample.py``) -> common ARF; the default procedural head as a GLB ->
  common ARF (52 targets re-baked); the common ARF -> VRM 1.0. Each conversion is cached per
  (avatar, target format) in the MF, so this is paid once per avatar and format.

Prints a markdown table (and ``--json``). Run it only when no other benchmark runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.conversion.vrm_sample

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit  # noqa: E402
from avatar_mf.avatar import build_glb, write_arf  # noqa: E402
from avatar_mf.avatar.generate import generate_default_head  # noqa: E402
from avatar_mf.avatar.mapping import (  # noqa: E402
    ARKIT_SET,
    FACS_SET,
    VISEME_SET,
    VRM_SET,
    ExpressionSet,
)
from avatar_mf.avatar.vrm import VRM_MEDIA_TYPE, convert_avatar  # noqa: E402
from avatar_mf.pipeline.frames import (  # noqa: E402
    AnimationUnitFrame,
    ExpressionFilterFrame,
    ReceiverFormats,
)
from avatar_mf.pipeline.stage import StageContext  # noqa: E402
from avatar_mf.stages.conversion import StandardConverters  # noqa: E402
from avatar_mf.stages.conversion.animation import StreamConverter  # noqa: E402
from avatar_mf.stages.conversion.filters import parse_filter  # noqa: E402

CALM = {"clamp": 0.4, "suppress": ["browDownLeft"], "replace": {"mouthFrownLeft": "mouthPressLeft"}}


def _units(s: ExpressionSet, n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    frames = rng.random((n, len(s.names))).astype(np.float32)
    return [encode_unit(BlendshapeUnit.dense(33 * k, f.tolist())) for k, f in enumerate(frames)]


def _per_unit(convert: Callable[[bytes], Any], units: list[bytes]) -> float:
    for unit in units[:200]:  # warm up
        convert(unit)
    start = time.process_time()
    for unit in units:
        convert(unit)
    return (time.process_time() - start) / len(units) * 1e6


def unit_figures(n: int) -> list[tuple[str, float]]:
    cases = [
        ("visemes -> ARKit-52", VISEME_SET, ARKIT_SET, None),
        ("ARKit-52 -> visemes", ARKIT_SET, VISEME_SET, None),
        ("ARKit-52 -> VRM presets", ARKIT_SET, VRM_SET, None),
        ("VRM presets -> ARKit-52", VRM_SET, ARKIT_SET, None),
        ("ARKit-52 -> FACS AUs", ARKIT_SET, FACS_SET, None),
        ("ARKit-52 -> ARKit-52, filtered", ARKIT_SET, ARKIT_SET, parse_filter(CALM)),
    ]
    out = []
    for label, source, target, rule in cases:
        conv = StreamConverter(source, target, "x", rule)
        out.append((label, _per_unit(conv.convert, _units(source, n))))
    return out


class _Inline:
    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


async def _stage_figure(n: int) -> float:
    from avatar_mf.clock import LoopClock

    provider = StandardConverters()
    contexts = [
        StageContext(
            call_id=f"c{k}",
            participant=f"p{k}",
            identity=f"sip:u{k}@x",
            room="r",
            clock=LoopClock(),
            executor=_Inline(),
        )
        for k in (1, 2, 3, 4)
    ]
    stages = [provider.open(c) for c in contexts]
    for stage, (profiles, name) in zip(
        stages[1:], [((), "p2"), (("ovr-visemes-15",), "p3"), ((), "p4")], strict=True
    ):
        async for _ in stage.process(ReceiverFormats(name, f"sip:{name}@x", profiles)):
            pass
    owner = stages[0]
    async for _ in owner.process(ExpressionFilterFrame("p1", ("p4",), CALM)):
        pass
    units = [encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)), *_units(ARKIT_SET, n)]
    frames = [AnimationUnitFrame("p1", u, is_config=k == 0) for k, u in enumerate(units)]
    for frame in frames[:200]:
        async for _ in owner.process(frame):
            pass
    start = time.process_time()
    for frame in frames[200:]:
        async for _ in owner.process(frame):
            pass
    return (time.process_time() - start) / (len(frames) - 200) * 1e6


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def avatar_figures(rounds: int) -> list[tuple[str, float, int, int]]:
    from tests.conversion.vrm_sample import build_vrm

    vrm = build_vrm()
    head = generate_default_head()
    glb = build_glb(head)
    arf = write_arf(head, avatar_id="bench", name="bench")
    cases = [
        (
            "test VRM 1.0 (6 vertices) -> common ARF",
            vrm,
            "model/gltf-binary",
            "application/vnd.arf+zip",
        ),
        (
            "default head GLB (7,946 vertices) -> common ARF",
            glb,
            "model/gltf-binary",
            "application/vnd.arf+zip",
        ),
        ("common ARF (default head) -> VRM 1.0", arf, "application/vnd.arf+zip", VRM_MEDIA_TYPE),
    ]
    out = []
    for label, data, content_type, target in cases:

        def run(d: bytes = data, c: str = content_type, t: str = target) -> Any:
            return convert_avatar(d, c, t, avatar_id="bench")

        result = run()
        out.append((label, _median_ms(run, rounds), len(data), len(result.data)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    units = unit_figures(args.units)
    stage = asyncio.run(_stage_figure(args.units))
    avatars = avatar_figures(args.rounds)
    print("| conversion of one unit | CPU per unit |")
    print("|---|---:|")
    for label, us in units:
        print(f"| {label} | {us:.1f} us |")
    print(
        f"| converter stage, one source unit in a room of 3 (as is, visemes, filtered) "
        f"| {stage:.1f} us |"
    )
    print()
    print("| base avatar conversion | CPU (median) | in | out |")
    print("|---|---:|---:|---:|")
    for label, ms, size_in, size_out in avatars:
        print(f"| {label} | {ms:.1f} ms | {size_in:,} B | {size_out:,} B |")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "units_us": dict(units),
                    "stage_unit_us": stage,
                    "avatars_ms": {label: ms for label, ms, _, _ in avatars},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
