"""The converter stage of one session: per-receiver animation streams and expression filters.

Runs in the pipeline of the *sending* participant. It learns from every session of the room
what each accepts (:class:`~avatar_mf.pipeline.frames.ReceiverFormats`, pushed by a session at
its hello, kept in the provider's room table), and what filters its own participant set
(:class:`~avatar_mf.pipeline.frames.ExpressionFilterFrame`). For each of its participant's
animation units it works out, per receiver, the profile to send (the source profile when the
receiver accepts it or listed none; else the first profile it accepts that the converters
write) and the filter that applies (the owner's most specific rule, else the operator
policy), and yields:

* the unit unchanged for every receiver that needs neither (``excluded`` names the others);
* one converted copy per (target profile, filter) group, addressed to that group's
  participants (``receivers``), made by a stateful
  :class:`~.animation.StreamConverter` -- converting only when it must.

A receiver whose profile changes (a new hello, a filter that moves it to another group) gets
the stream's CONFIG again, converted, before its next unit. Filters are checked when they are
set: a bad one is answered with an error and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace

from avatar_mf.arf.units import ConfigUnit, UnitType, decode_unit
from avatar_mf.avatar.check import COMMON_PROFILE
from avatar_mf.pipeline.frames import (
    AnimationUnitFrame,
    ExpressionFilterApplied,
    ExpressionFilterFrame,
    Frame,
    ParticipantLeft,
    ReceiverFormats,
)
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.conversion.animation import StreamConverter, retarget_config
from avatar_mf.stages.conversion.filters import (
    Audience,
    ExpressionFilter,
    FilterBook,
    FilterError,
    parse_filter,
)
from avatar_mf.stages.conversion.profiles import PROFILE_SETS

__all__ = ["ConversionStage", "Receiver", "RoomTable"]


@dataclass(frozen=True, slots=True)
class Receiver:
    """A participant as a receiver: who, and the profiles it accepts (empty: any)."""

    participant: str
    identity: str
    profiles: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()


@dataclass
class RoomTable:
    """The receivers of every room of the node (shared by the sessions' stages).

    ``version`` changes with every :meth:`put` and :meth:`drop`: a stage keeps its receivers'
    assignment while it stays the same (change the table through these two only)."""

    rooms: dict[str, dict[str, Receiver]] = field(default_factory=dict)
    version: int = 0

    def put(self, room: str, receiver: Receiver) -> None:
        self.rooms.setdefault(room, {})[receiver.participant] = receiver
        self.version += 1

    def drop(self, room: str, participant: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            self.version += 1
            members.pop(participant, None)
            if not members:
                del self.rooms[room]

    def others(self, room: str, participant: str) -> list[Receiver]:
        return [r for p, r in self.rooms.get(room, {}).items() if p != participant]


@dataclass(slots=True)
class _Plan:
    """Where a sender's units go, per receiver, for one state of its room and filters."""

    #: Each receiver's group: None (the unit as it is) or (target profile, filter id).
    assigned: dict[str, tuple[str, int] | None]
    rules: dict[int, ExpressionFilter | None]
    #: The receivers of each converted stream.
    groups: dict[tuple[str, int], list[str]]
    #: The receivers that get a converted copy (excluded from the unit as it is).
    converted: frozenset[str]
    #: The receivers were told their streams' CONFIG under this plan (``_sent`` is it).
    sent: bool = False


def choose_profile(source: str, accepted: tuple[str, ...]) -> str:
    """The profile a receiver accepting ``accepted`` gets a ``source`` stream in."""
    if not accepted or source in accepted or source not in PROFILE_SETS:
        return source
    return next((p for p in accepted if p in PROFILE_SETS), source)


class ConversionStage(StageBase):
    accepts = (AnimationUnitFrame, ReceiverFormats, ExpressionFilterFrame, ParticipantLeft)

    def __init__(
        self,
        context: StageContext,
        table: RoomTable,
        *,
        groups: Mapping[str, tuple[str, ...]],
        policy: Mapping[str, ExpressionFilter],
    ) -> None:
        self._context = context
        self._table = table
        self._book = FilterBook(groups=groups, policy=policy)
        self._profile = COMMON_PROFILE
        self._config: bytes | None = None
        self._converters: dict[tuple[str, int], StreamConverter] = {}
        #: The stream each receiver was last sent (None: the source's; else its group), to
        #: re-send the CONFIG when it changes.
        self._sent: dict[str, tuple[str, int] | None] = {}
        # The receivers' assignment, kept while the room table, the filters, the source
        # profile and the sender stay as they were (_plan_for): worked out per membership or
        # filter change, not per unit.
        self._plan_key: tuple[int, int, str, str] | None = None
        self._plan: _Plan | None = None
        self._filters = 0  # bumped by every filter change

    async def teardown(self) -> None:
        self._table.drop(self._context.room, self._context.participant)

    def process_inline(self, frame: Frame) -> list[AnimationUnitFrame] | None:
        """Animation units are handled at once (pure arithmetic, microseconds): no task hop
        per unit, so a room that needs no conversion pays only the receiver check."""
        if isinstance(frame, AnimationUnitFrame):
            return self._unit(frame)
        return None

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        if isinstance(frame, AnimationUnitFrame):
            for out in self._unit(frame):
                yield out
        elif isinstance(frame, ReceiverFormats):
            self._table.put(
                self._context.room,
                Receiver(frame.participant, frame.identity, frame.profiles, frame.formats),
            )
        elif isinstance(frame, ExpressionFilterFrame):
            try:
                rule = None if frame.rule is None else parse_filter(frame.rule)
                self._book.set(frame.audience, rule)
                self._filters += 1
            except FilterError as exc:
                raise StageFailure(exc.code, str(exc), rejected=True) from exc
            yield ExpressionFilterApplied(
                frame.participant, audience=frame.audience, message_id=frame.message_id
            )
        elif isinstance(frame, ParticipantLeft):
            self._table.drop(self._context.room, frame.participant)
            yield frame

    def _converter(self, key: tuple[str, int], rule: ExpressionFilter | None) -> StreamConverter:
        conv = self._converters.get(key)
        if conv is None or conv.filter is not rule:
            target = key[0]
            conv = StreamConverter(PROFILE_SETS[self._profile], PROFILE_SETS[target], target, rule)
            if self._config is not None:
                conv.convert(self._config)  # the stream's CONFIG resets its weights
            self._converters[key] = conv
        return conv

    def _unit(self, frame: AnimationUnitFrame) -> list[AnimationUnitFrame]:
        if frame.is_config or (frame.unit and frame.unit[0] >> 1 == UnitType.CONFIG):
            config = decode_unit(frame.unit)
            assert isinstance(config, ConfigUnit)
            if config.profile != self._profile:
                self._converters.clear()
            self._profile = config.profile
            self._config = frame.unit
        plan = self._plan_for(frame.participant)
        out: list[AnimationUnitFrame] = []
        if not plan.sent:
            if self._config is not None and not frame.is_config:
                # A receiver moving to another stream gets that stream's CONFIG first.
                for participant, key in plan.assigned.items():
                    if self._sent.get(participant) != key:
                        profile = self._profile if key is None else key[0]
                        unit = retarget_config(self._config, profile)
                        out.append(self._to(frame, unit, [participant], config=True))
            self._sent = dict(plan.assigned)
            plan.sent = True
        groups = plan.groups
        if not groups:
            out.append(frame)
            return out
        out.append(replace(frame, excluded=plan.converted))
        for key, members in groups.items():
            unit = self._converter(key, plan.rules[key[1]]).convert(frame.unit)
            out.append(self._to(frame, unit, members, config=frame.is_config))
        return out

    def _plan_for(self, participant: str) -> _Plan:
        """The receivers' assignment for a unit of ``participant``'s, worked out again only
        when the room table, the filters or the source profile changed since the last."""
        key = (self._table.version, self._filters, self._profile, participant)
        plan = self._plan
        if plan is not None and key == self._plan_key:
            return plan
        # Each receiver's group: None (the unit as it is) or (target profile, filter id).
        assigned: dict[str, tuple[str, int] | None] = {}
        rules: dict[int, ExpressionFilter | None] = {}
        for receiver in self._table.others(self._context.room, participant):
            target = choose_profile(self._profile, receiver.profiles)
            rule = self._book.for_receiver(Audience(receiver.participant, receiver.identity))
            convertible = self._profile in PROFILE_SETS and target in PROFILE_SETS
            if not convertible or (target == self._profile and rule is None):
                assigned[receiver.participant] = None
            else:
                rules[id(rule)] = rule
                assigned[receiver.participant] = (target, id(rule))
        groups: dict[tuple[str, int], list[str]] = {}
        for member, group in assigned.items():
            if group is not None:
                groups.setdefault(group, []).append(member)
        for group in [k for k in self._converters if k not in groups]:
            del self._converters[group]
        converted = frozenset(p for p, k in assigned.items() if k is not None)
        plan = _Plan(assigned, rules, groups, converted)
        self._plan, self._plan_key = plan, key
        return plan

    @staticmethod
    def _to(
        frame: AnimationUnitFrame, unit: bytes, members: list[str], *, config: bool
    ) -> AnimationUnitFrame:
        return replace(
            frame, unit=unit, is_config=config, receivers=tuple(members), excluded=frozenset()
        )
