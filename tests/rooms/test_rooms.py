"""Rooms: membership, announcements, relay fan-out and isolation of slow receivers."""

from __future__ import annotations

from avatar_mf.rooms.relay import Outlet
from avatar_mf.rooms.rooms import Participant, Room, RoomRegistry, room_name
from avatar_mf.testing.clock import FakeClock


class Sink:
    def __init__(self) -> None:
        self.got: list[str | bytes] = []
        self.buffer = 0

    def outlet(self) -> Outlet:
        return Outlet(self.got.append, lambda: self.buffer)


def _member(reg: RoomRegistry, room: str, who: str) -> tuple[Participant, Sink, Sink]:
    p = reg.join(room, f"sip:{who}@127.0.0.1", participant_id=who)
    anim, meta = Sink(), Sink()
    p.attach_animation(anim.outlet())
    p.attach_metadata(meta.outlet())
    return p, anim, meta


def test_room_name_from_request_uri() -> None:
    assert room_name("sip:Lobby@127.0.0.1:5060") == "lobby"
    assert room_name("sip:127.0.0.1") == "default"
    assert room_name("tel:+1234") == "default"
    assert room_name("garbage") == "default"


def test_three_ue_room_relays_in_order_to_the_other_two() -> None:
    reg = RoomRegistry(FakeClock())
    a, a_anim, _ = _member(reg, "r", "a")
    b, b_anim, _ = _member(reg, "r", "b")
    c, c_anim, _ = _member(reg, "r", "c")
    a.publish_animation(b"cfg", is_config=True)
    for i in range(10):
        assert a.publish_animation(bytes([i]), is_config=False) == 2
    expected = [b"cfg", *(bytes([i]) for i in range(10))]
    assert b_anim.got == expected
    assert c_anim.got == expected
    assert a_anim.got == []  # never echoed to the sender


def test_slow_receiver_does_not_delay_or_grow() -> None:
    reg = RoomRegistry(FakeClock())
    a, _, _ = _member(reg, "r", "a")
    b, b_anim, _ = _member(reg, "r", "b")
    c, c_anim, _ = _member(reg, "r", "c")
    c_anim.buffer = 10**9  # c stopped reading
    for i in range(1000):
        a.publish_animation(i.to_bytes(2, "big"), is_config=False)
    assert len(b_anim.got) == 1000  # b got everything at once
    assert c.animation is not None and c.animation.pending <= reg.rooms()[0].limits.max_units


def test_rooms_are_separate_and_forgotten_when_empty() -> None:
    events: list[tuple[str, str, str]] = []
    reg = RoomRegistry(FakeClock(), announce=lambda room, p, what: events.append(
        (room.name, p.id, what)))
    a, _, _ = _member(reg, "one", "a")
    b, b_anim, _ = _member(reg, "two", "b")
    a.publish_animation(b"x", is_config=False)
    assert b_anim.got == []
    assert len(reg) == 2
    a.leave()
    a.leave()  # idempotent
    assert len(reg) == 1
    b.leave()
    assert len(reg) == 0
    assert events == [
        ("one", "a", "joined"), ("two", "b", "joined"), ("one", "a", "left"), ("two", "b", "left"),
    ]


def test_leave_closes_queues_and_timers() -> None:
    clock = FakeClock()
    reg = RoomRegistry(clock)
    a, _, _ = _member(reg, "r", "a")
    b, b_anim, _ = _member(reg, "r", "b")
    b_anim.buffer = 10**9
    a.publish_animation(b"u", is_config=False)
    assert clock.pending == 1
    b.leave()
    assert clock.pending == 0
    room: Room = a.room
    assert [p.id for p in room] == ["a"]


def test_receivers_are_resolved_per_room_change_not_per_unit() -> None:
    reg = RoomRegistry(FakeClock())
    a, _, _ = _member(reg, "r", "a")
    b, b_anim, _ = _member(reg, "r", "b")
    assert a.publish_animation(b"1", is_config=False) == 1
    resolved = a._receivers
    assert a.publish_animation(b"2", is_config=False) == 1
    assert a._receivers is resolved  # the same tuple: no look-up per unit
    # A joiner without an animation channel yet gets nothing; once it attaches, the next unit.
    c = reg.join("r", "sip:c@127.0.0.1", participant_id="c")
    assert a.publish_animation(b"3", is_config=False) == 1
    c_anim = Sink()
    c.attach_animation(c_anim.outlet())
    assert a.publish_animation(b"4", is_config=False) == 2
    assert c_anim.got == [b"4"]
    # b leaves: the next unit goes to c only.
    b.leave()
    assert a.publish_animation(b"5", is_config=False) == 1
    assert b_anim.got == [b"1", b"2", b"3", b"4"]
    assert c_anim.got == [b"4", b"5"]
