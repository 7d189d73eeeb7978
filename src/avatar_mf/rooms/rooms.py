"""Rooms: the calls that share one avatar session, and the relay between them.

A call joins the room named by the user part of its Request-URI (``sip:<room>@<mf>``); a
one-to-one avatar call is a room of two. What one participant publishes on its animation and
metadata channels is relayed to every other participant through that receiver's own queues
(:mod:`avatar_mf.rooms.relay`), so a slow receiver only ever loses its own stale animation
units. Joining and leaving are announced to the others by the ``announce`` callback.

The receivers of a sender's animation units are resolved once per change of the room (a
participant joining, leaving, or its animation channel opening), not per unit: the relay path
is per unit the hottest code above the media (issue 16).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from avatar_mf.clock import Clock
from avatar_mf.rooms.relay import AnimationQueue, MessageQueue, Outlet
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.uri import SipUri, parse_uri


def room_name(request_uri: str) -> str:
    """The room a Request-URI names: its user part (lower-cased), or "default" without one."""
    try:
        uri = parse_uri(request_uri)
    except SipError:
        return "default"
    if isinstance(uri, SipUri) and uri.user:
        return uri.user.lower()
    return "default"


@dataclass(frozen=True, slots=True)
class RelayLimits:
    max_units: int = 3
    #: Animation units are handed to a receiver's channel only while it buffers less than
    #: this: small, so that a stalled receiver's backlog sits in the relay queue (where stale
    #: units are dropped), not in the SCTP send buffer (where they would all arrive late).
    animation_high_water: int = 1024
    #: Metadata is reliable: a larger send buffer before it waits in the relay queue.
    high_water: int = 65536
    metadata_max_bytes: int = 1 << 20


@dataclass(eq=False)
class Participant:
    """One call in a room, as the relay sees it.

    Set :attr:`animation` through :meth:`attach_animation` (the room's receivers are cached
    per change of the room)."""

    id: str
    identity: str
    room: Room
    animation: AnimationQueue | None = None
    metadata: MessageQueue | None = None
    #: Called when the receiver's metadata queue overflowed (too slow to keep up).
    on_overload: Callable[[Participant], None] | None = None
    # The other participants' animation queues at the room's version _receivers_at.
    _receivers: tuple[AnimationQueue, ...] = field(default=(), init=False, repr=False)
    _receivers_at: int = field(default=-1, init=False, repr=False)

    def attach_animation(self, outlet: Outlet) -> None:
        limits = self.room.limits
        self.animation = AnimationQueue(
            outlet,
            self.room.clock,
            max_units=limits.max_units,
            high_water=limits.animation_high_water,
        )
        self.room.version += 1

    def attach_metadata(self, outlet: Outlet) -> None:
        limits = self.room.limits
        self.metadata = MessageQueue(
            outlet,
            self.room.clock,
            max_bytes=limits.metadata_max_bytes,
            high_water=limits.high_water,
            on_overflow=self._overflowed,
        )

    def _overflowed(self) -> None:
        if self.on_overload is not None:
            self.on_overload(self)

    def publish_animation(self, unit: bytes, *, is_config: bool) -> int:
        """Relay one animation unit to every other participant; returns how many got it."""
        receivers = self._receivers
        if self._receivers_at != self.room.version:
            receivers = self._receivers = tuple(
                other.animation
                for other in self.room.others(self)
                if other.animation is not None
            )
            self._receivers_at = self.room.version
        sender = self.id
        for queue in receivers:
            queue.offer(sender, unit, is_config=is_config)
        return len(receivers)

    def publish_metadata(self, message: str) -> int:
        count = 0
        for other in self.room.others(self):
            if other.metadata is not None:
                other.metadata.offer(message)
                count += 1
        return count

    def leave(self) -> None:
        self.room.leave(self)

    def close_queues(self) -> None:
        if self.animation is not None:
            self.animation.close()
        if self.metadata is not None:
            self.metadata.close()


#: Called with (room, participant, "joined" | "left").
Announcer = Callable[["Room", Participant, str], None]


class Room:
    def __init__(
        self, name: str, clock: Clock, limits: RelayLimits, announce: Announcer | None
    ) -> None:
        self.name = name
        self.clock = clock
        self.limits = limits
        self._announce = announce
        self._members: dict[str, Participant] = {}
        self._registry: RoomRegistry | None = None
        #: Changes whenever a participant joins, leaves or attaches its animation channel.
        self.version = 0

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Participant]:
        return iter(list(self._members.values()))

    def others(self, participant: Participant) -> Iterator[Participant]:
        for member in self._members.values():
            if member is not participant:
                yield member

    def join(self, participant_id: str, identity: str) -> Participant:
        participant = Participant(participant_id, identity, self)
        self._members[participant_id] = participant
        self.version += 1
        if self._announce is not None:
            self._announce(self, participant, "joined")
        return participant

    def leave(self, participant: Participant) -> None:
        if self._members.pop(participant.id, None) is None:
            return
        self.version += 1
        participant.close_queues()
        if self._announce is not None:
            self._announce(self, participant, "left")
        if not self._members and self._registry is not None:
            self._registry.forget(self)


class RoomRegistry:
    """All rooms of one MF node; a room exists while it has participants."""

    def __init__(
        self,
        clock: Clock,
        *,
        limits: RelayLimits | None = None,
        announce: Announcer | None = None,
    ) -> None:
        self._clock = clock
        self._limits = limits or RelayLimits()
        self._announce = announce
        self._rooms: dict[str, Room] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def join(self, name: str, identity: str, participant_id: str | None = None) -> Participant:
        room = self._rooms.get(name)
        if room is None:
            room = Room(name, self._clock, self._limits, self._announce)
            room._registry = self
            self._rooms[name] = room
        return room.join(participant_id or f"p{next(self._ids)}", identity)

    def forget(self, room: Room) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
