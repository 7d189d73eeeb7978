"""Base avatar transfer: chunking within max-message-size, resume, duplicates, digest, limits."""

from __future__ import annotations

import hashlib
import random
import struct
import tracemalloc

import pytest

from avatar_mf.protocol import (
    CHUNK_HEADER_SIZE,
    Chunk,
    ChunkError,
    ChunkGap,
    ChunkIgnored,
    ChunkStored,
    ReceiverEvent,
    ReceiverState,
    TransferAborted,
    TransferAccept,
    TransferComplete,
    TransferDone,
    TransferError,
    TransferFailed,
    TransferOffer,
    TransferReceiver,
    TransferSender,
    dump_message,
    encode_chunk,
    parse_chunk,
    parse_message,
    transfer_tag,
)
from avatar_mf.testing.channels import RecordingChannel, channel_info

MB = 1024 * 1024


def payload_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def sender_for(payload: bytes, max_message_size: int = 1024, **kwargs: object) -> TransferSender:
    return TransferSender(
        payload,
        transfer_id="tx-42",
        max_message_size=max_message_size,
        avatar_id="bar:7d3c1e2a",
        stream_id=1002,
        **kwargs,  # type: ignore[arg-type]
    )


def over_the_wire(offer: TransferOffer) -> TransferOffer:
    """The offer as the receiving side parses it."""
    parsed = parse_message(dump_message(offer))
    assert isinstance(parsed, TransferOffer)
    return parsed


def deliver(receiver: TransferReceiver, messages: list[bytes]) -> list[ReceiverEvent]:
    return [receiver.receive(message) for message in messages]


@pytest.mark.parametrize("max_message_size", [1024, 65536])
def test_5mb_round_trip(max_message_size: int) -> None:
    payload = payload_of(5 * MB)
    sender = sender_for(payload, max_message_size)
    offer = over_the_wire(sender.offer(message_id="mf-4"))
    assert offer.total_size == 5 * MB
    assert offer.sha256 == hashlib.sha256(payload).hexdigest()
    assert offer.chunk_size == max_message_size - CHUNK_HEADER_SIZE
    receiver = TransferReceiver(offer, max_size=8 * MB)
    accept = receiver.accept(message_id="ue2-1")
    assert (accept.resume_from, accept.in_reply_to, accept.transfer_id) == (0, "mf-4", "tx-42")

    channel = RecordingChannel(info=channel_info(max_message_size=max_message_size))
    for message in sender.resume(accept):
        channel.send(message)  # fails if a message exceeds max-message-size
    assert len(channel.sent) == sender.chunk_count == -(-5 * MB // offer.chunk_size)

    events = deliver(receiver, [bytes(m) for m in channel.sent])  # type: ignore[arg-type]
    assert all(isinstance(e, ChunkStored) for e in events[:-1])
    done = events[-1]
    assert isinstance(done, TransferDone)
    assert done.payload == payload
    assert done.reply == TransferComplete(
        id=done.reply.id, transfer_id="tx-42", sha256=offer.sha256
    )
    assert receiver.state is ReceiverState.COMPLETE
    assert receiver.received == receiver.resume_offset == 5 * MB
    # Anything after the end is ignored.
    assert receiver.receive(channel.sent[0]) == ChunkIgnored(0, "finished")  # type: ignore[arg-type]


def test_default_chunk_size_caps_messages_at_64k() -> None:
    for limit in (0, 262144):
        sender = sender_for(b"x" * 200000, limit)
        assert sender.chunk_size == 65536 - CHUNK_HEADER_SIZE
        assert max(len(m) for m in sender.chunks()) == 65536
    sender = sender_for(b"x" * 100, 1024, chunk_size=7)
    assert [len(m) for m in sender.chunks()] == [19] * 14 + [CHUNK_HEADER_SIZE + 2]


def test_chunk_format_is_magic_tag_offset_data() -> None:
    assert (
        transfer_tag("tx-42") == hashlib.sha256(b"tx-42").digest()[:4] == bytes.fromhex("b2bac722")
    )
    sender = sender_for(bytes(range(256)) * 8, 1024)
    messages = list(sender.chunks())
    assert messages[1][:12] == bytes.fromhex("41565431 b2bac722 000003f4")
    assert messages[1][12:] == sender_for(bytes(range(256)) * 8).chunks(1012).__next__()[12:]
    chunk = parse_chunk(messages[1])
    assert chunk == Chunk(bytes.fromhex("b2bac722"), 1012, (bytes(range(256)) * 8)[1012:2024])
    assert encode_chunk(chunk.tag, chunk.offset, chunk.data) == messages[1]


def test_corrupted_chunk_fails_the_digest() -> None:
    payload = payload_of(100_000)
    sender = sender_for(payload)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    messages = list(sender.chunks())
    bad = bytearray(messages[40])
    bad[100] ^= 0x01
    messages[40] = bytes(bad)
    events = deliver(receiver, messages)
    aborted = events[-1]
    assert isinstance(aborted, TransferAborted)
    assert aborted.code == "digest-mismatch"
    assert aborted.reply.code == "digest-mismatch"
    assert aborted.reply.transfer_id == "tx-42"
    assert receiver.state is ReceiverState.FAILED
    assert receiver.receive(messages[0]) == ChunkIgnored(0, "finished")


def test_resume_after_losing_the_connection_at_40_percent() -> None:
    payload = payload_of(1 * MB)
    sender = sender_for(payload)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    messages = list(sender.chunks(receiver.accept().resume_from))
    cut = int(len(messages) * 0.4)
    deliver(receiver, messages[:cut])  # then the channel goes away
    assert receiver.state is ReceiverState.RECEIVING
    assert receiver.resume_offset == cut * sender.chunk_size

    # On the new connection the sender offers the same transfer again.
    offer_again = over_the_wire(sender_for(payload).offer())
    assert receiver.matches(offer_again)
    assert not receiver.matches(over_the_wire(sender_for(payload[:-1]).offer()))
    accept = receiver.accept()
    assert accept.resume_from == cut * sender.chunk_size
    rest = list(sender_for(payload).resume(accept))
    assert len(rest) == len(messages) - cut
    done = deliver(receiver, rest)[-1]
    assert isinstance(done, TransferDone)
    assert done.payload == payload


def test_resume_from_an_unaligned_offset_overlaps() -> None:
    payload = payload_of(10_000)
    sender = sender_for(payload, 1024)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    deliver(receiver, list(sender.chunks())[:3])
    assert receiver.received == 3036
    # A sender that resumes 500 bytes early: the first chunk overlaps what is stored.
    events = deliver(receiver, list(sender.chunks(2536)))
    assert events[0] == ChunkStored(2536, 512, 3548, 10_000)
    done = events[-1]
    assert isinstance(done, TransferDone)
    assert done.payload == payload


def test_duplicates_are_ignored() -> None:
    payload = payload_of(50_000)
    sender = sender_for(payload)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    messages = list(sender.chunks())
    for i, message in enumerate(messages[:-1]):
        assert isinstance(receiver.receive(message), ChunkStored)
        assert receiver.receive(message) == ChunkIgnored(i * 1012, "duplicate")
        assert receiver.receive(messages[0]) == ChunkIgnored(0, "duplicate")
    done = receiver.receive(messages[-1])
    assert isinstance(done, TransferDone)
    assert done.payload == payload


def test_out_of_order_chunks_are_gaps_answered_once() -> None:
    payload = payload_of(20_000)
    sender = sender_for(payload)
    receiver = TransferReceiver(over_the_wire(sender.offer(message_id="o1")))
    messages = list(sender.chunks())
    assert isinstance(receiver.receive(messages[0]), ChunkStored)
    # Chunk 1 is lost: chunks 2 and 3 arrive first.
    gap = receiver.receive(messages[2])
    assert isinstance(gap, ChunkGap)
    assert (gap.expected, gap.offset) == (1012, 2024)
    assert isinstance(gap.reply, TransferAccept)
    assert (gap.reply.resume_from, gap.reply.in_reply_to) == (1012, "o1")
    assert receiver.receive(messages[3]) == ChunkGap(1012, 3036, None)  # asked once already
    # The sender resumes from the accept.
    events = deliver(receiver, list(sender.resume(gap.reply)))
    done = events[-1]
    assert isinstance(done, TransferDone)
    assert done.payload == payload


def test_a_new_gap_position_is_answered_again() -> None:
    sender = sender_for(payload_of(10_000))
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    messages = list(sender.chunks())

    def reply(index: int) -> TransferAccept | None:
        event = receiver.receive(messages[index])
        assert isinstance(event, ChunkGap)
        return event.reply

    assert isinstance(receiver.receive(messages[0]), ChunkStored)
    first = reply(2)
    assert first is not None and first.resume_from == 1012
    assert reply(3) is None
    assert isinstance(receiver.receive(messages[1]), ChunkStored)
    again = reply(3)
    assert again is not None and again.resume_from == 2024


def test_oversized_declared_size_is_refused_before_buffering() -> None:
    offer = TransferOffer(
        id="o",
        transfer_id="tx-9",
        avatar_id="a",
        content_type="model/gltf-binary",
        total_size=2**32 - 1,
        sha256="0" * 64,
        chunk_size=1012,
        stream_id=1002,
    )
    with pytest.raises(TransferError) as info:
        TransferReceiver(offer, max_size=64 * MB)
    assert info.value.code == "too-large"
    reply = info.value.reply(message_id="f1")
    assert reply == TransferFailed(
        id="f1", transfer_id="tx-9", code="too-large", reason=info.value.message
    )
    assert parse_message(dump_message(reply)) == reply


def test_an_offer_and_one_byte_hold_one_byte_not_the_declared_size() -> None:
    """Issue 9: ten 64 MiB offers with a 1-byte chunk each cost 640 MiB before; now the
    receivers hold what arrived, measured by their own accounting and by tracemalloc."""
    receivers = []
    tracemalloc.start()
    try:
        for n in range(10):
            offer = TransferOffer(
                id=f"o{n}",
                transfer_id=f"tx-{n}",
                avatar_id="a",
                content_type="model/gltf-binary",
                total_size=64 * MB,
                sha256="0" * 64,
                chunk_size=65524,
                stream_id=1002,
            )
            receiver = TransferReceiver(offer, max_size=64 * MB)
            event = receiver.receive(encode_chunk(receiver.tag, 0, b"x"))
            assert isinstance(event, ChunkStored) and event.received == 1
            receivers.append(receiver)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.held for r in receivers] == [1] * 10
    assert peak < 1 * MB, f"peak {peak} bytes for ten 1-byte chunks"


def test_the_receiver_holds_what_arrived_as_it_arrives() -> None:
    payload = payload_of(10_000)
    sender = sender_for(payload)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    held = []
    for message in sender.chunks():
        event = receiver.receive(message)
        held.append(receiver.held)
    assert held[:-1] == [min(len(payload), 1012 * (i + 1)) for i in range(len(held) - 1)]
    assert isinstance(event, TransferDone) and event.payload == payload
    assert receiver.held == 0  # handed over


def test_chunk_size_over_the_receivers_max_message_size_is_refused() -> None:
    offer = over_the_wire(sender_for(b"x" * 10, 65536).offer())
    with pytest.raises(TransferError) as info:
        TransferReceiver(offer, max_message_size=1024)
    assert info.value.code == "chunk-too-large"
    TransferReceiver(over_the_wire(sender_for(b"x" * 10, 1024).offer()), max_message_size=1024)


def test_chunk_past_the_end_overflows() -> None:
    sender = sender_for(b"x" * 100, 1024, chunk_size=50)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    event = receiver.receive(encode_chunk(sender.tag, 60, b"y" * 50))
    assert isinstance(event, TransferAborted)
    assert (event.code, event.reply.code) == ("overflow", "overflow")
    assert receiver.state is ReceiverState.FAILED


def test_chunk_over_the_offered_size_fails() -> None:
    sender = sender_for(b"x" * 100, 1024, chunk_size=50)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    event = receiver.receive(encode_chunk(sender.tag, 0, b"y" * 51))
    assert isinstance(event, TransferAborted)
    assert event.code == "chunk-too-large"


def test_fail_gives_the_message_and_ends_the_transfer() -> None:
    sender = sender_for(b"x" * 100)
    receiver = TransferReceiver(over_the_wire(sender.offer()))
    failed = receiver.fail("cancelled", "user hung up")
    assert (failed.code, failed.reason, failed.transfer_id) == (
        "cancelled",
        "user hung up",
        "tx-42",
    )
    assert receiver.state is ReceiverState.FAILED
    assert receiver.receive(next(sender.chunks())) == ChunkIgnored(0, "finished")


@pytest.mark.parametrize(
    "message",
    [b"", b"AVT1", b"AVT1" + b"\x00" * 8, b"XVT1" + b"\x00" * 9, bytearray(b"AVT0" + b"\x00" * 9)],
)
def test_malformed_chunk_messages(message: bytes) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(message)
    assert info.value.code == "bad-chunk"
    receiver = TransferReceiver(over_the_wire(sender_for(b"x").offer()))
    with pytest.raises(ChunkError):
        receiver.receive(message)
    assert receiver.state is ReceiverState.RECEIVING


def test_chunks_of_another_transfer_are_a_routing_error() -> None:
    receiver = TransferReceiver(over_the_wire(sender_for(b"x" * 10).offer()))
    with pytest.raises(ValueError, match="tag"):
        receiver.receive(encode_chunk(transfer_tag("tx-other"), 0, b"x"))
    assert receiver.received == 0


def test_sender_argument_checks() -> None:
    with pytest.raises(ValueError):
        sender_for(b"")
    with pytest.raises(ValueError):
        sender_for(b"x", 12)
    with pytest.raises(ValueError):
        sender_for(b"x", -1)
    with pytest.raises(ValueError):
        sender_for(b"x", 1024, chunk_size=1013)
    with pytest.raises(ValueError):
        sender_for(b"x", 1024, chunk_size=0)
    sender = sender_for(b"abc", 13)
    assert [parse_chunk(m).data for m in sender.chunks()] == [b"a", b"b", b"c"]
    assert list(sender.chunks(3)) == []
    with pytest.raises(ValueError):
        list(sender.chunks(4))


def test_bad_resume_requests_carry_their_answer() -> None:
    sender = sender_for(b"x" * 100)
    for accept in (
        TransferAccept(id="a", transfer_id="tx-42", resume_from=101),
        TransferAccept(id="a", transfer_id="tx-other", resume_from=0),
    ):
        with pytest.raises(TransferError) as info:
            sender.resume(accept)
        assert info.value.code == "bad-resume"
        assert info.value.reply().transfer_id == "tx-42"


def test_offer_describes_the_payload() -> None:
    payload = b"glTF" + bytes(100)
    sender = sender_for(payload, content_type="model/gltf-binary")
    offer = sender.offer(message_id="m")
    assert offer == TransferOffer(
        id="m",
        transfer_id="tx-42",
        avatar_id="bar:7d3c1e2a",
        content_type="model/gltf-binary",
        total_size=104,
        sha256=hashlib.sha256(payload).hexdigest(),
        chunk_size=1012,
        stream_id=1002,
    )
    assert struct.unpack(">I", next(sender.chunks())[8:12]) == (0,)
