"""The converter stage works out its receivers' assignment once per change of the room or of
the filters, not once per unit (issue 16: CPU per relayed unit), and still sees every change
at the next unit."""

from __future__ import annotations

from avatar_mf.arf.units import ConfigUnit, decode_unit, encode_unit
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.frames import AnimationUnitFrame, ExpressionFilterFrame
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.conversion.stage import ConversionStage, Receiver, RoomTable
from avatar_mf.testing.clock import FakeClock

FACE = "arf-face-v1"
VIS = "ovr-visemes-15"


def make_stage(table: RoomTable) -> ConversionStage:
    context = StageContext(
        call_id="c1",
        participant="p1",
        identity="sip:a@example.com",
        room="r",
        clock=FakeClock(),
        executor=StageExecutor(workers=1),
    )
    return ConversionStage(context, table, groups={}, policy={})


def unit(stage: ConversionStage, data: bytes, *, config: bool = False) -> list[AnimationUnitFrame]:
    out = stage.process_inline(AnimationUnitFrame("p1", data, is_config=config))
    assert out is not None
    return out


async def test_the_assignment_is_kept_until_the_room_or_the_filters_change() -> None:
    table = RoomTable()
    table.put("r", Receiver("p1", "sip:a@example.com"))
    table.put("r", Receiver("p2", "sip:b@example.com"))
    stage = make_stage(table)
    config = encode_unit(ConfigUnit(0, FACE, 1000.0))
    first = unit(stage, config, config=True)
    assert [f.unit for f in first] == [config]
    plan = stage._plan
    for _ in range(3):
        frame = AnimationUnitFrame("p1", config, is_config=True)
        assert stage.process_inline(frame) == [frame]  # passed on as it is
        assert stage._plan is plan  # not worked out again per unit

    # A receiver joining with a profile of its own: the next unit has a converted copy for it.
    table.put("r", Receiver("p3", "sip:c@example.com", profiles=(VIS,)))
    out = unit(stage, config, config=True)
    assert stage._plan is not plan
    assert [(f.receivers, f.excluded) for f in out] == [
        (None, frozenset({"p3"})),
        (("p3",), frozenset()),
    ]
    assert decode_unit(out[1].unit) == ConfigUnit(0, VIS, 1000.0)
    plan = stage._plan

    # The owner's filter for p2: the next unit is filtered for p2.
    async for _ in stage.process(
        ExpressionFilterFrame("p1", ("p2",), {"clamp": 0.3}, message_id="m1")
    ):
        pass
    out = unit(stage, config, config=True)
    assert stage._plan is not plan
    assert {r for f in out for r in (f.receivers or ())} == {"p2", "p3"}

    # p3 leaves: its copy stops at the next unit.
    table.drop("r", "p3")
    out = unit(stage, config, config=True)
    assert {r for f in out for r in (f.receivers or ())} == {"p2"}
