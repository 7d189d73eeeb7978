"""Property tests: any payload, chunk size, duplication or interruption reassembles exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.protocol import (
    CHUNK_HEADER_SIZE,
    ChunkError,
    ChunkGap,
    ReceiverState,
    TransferDone,
    TransferReceiver,
    TransferSender,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

payloads = st.binary(min_size=1, max_size=4000)


def make_sender(payload: bytes, max_message_size: int, chunk_size: int | None) -> TransferSender:
    return TransferSender(
        payload,
        transfer_id="tx-p",
        max_message_size=max_message_size,
        avatar_id="a",
        stream_id=1000,
        chunk_size=chunk_size,
    )


@FAST
@given(payloads, st.integers(CHUNK_HEADER_SIZE + 1, 2000), st.data())
def test_random_chunk_sizes_reassemble(payload: bytes, limit: int, data: st.DataObject) -> None:
    chunk_size = data.draw(st.none() | st.integers(1, limit - CHUNK_HEADER_SIZE))
    sender = make_sender(payload, limit, chunk_size)
    messages = list(sender.chunks())
    assert all(len(m) <= limit for m in messages)
    receiver = TransferReceiver(sender.offer(), max_message_size=limit)
    events = [receiver.receive(m) for m in messages]
    done = events[-1]
    assert isinstance(done, TransferDone)
    assert done.payload == payload


@FAST
@given(payloads, st.integers(1, 300), st.data())
def test_duplicates_and_interruptions(payload: bytes, chunk_size: int, data: st.DataObject) -> None:
    sender = make_sender(payload, 0, chunk_size)
    receiver = TransferReceiver(sender.offer())
    offset = 0
    result: TransferDone | None = None
    for _round in range(50):
        messages = list(sender.chunks(offset))
        # Deliver a prefix, with each message possibly repeated, then lose the connection.
        cut = data.draw(st.integers(1, len(messages)))
        for message in messages[:cut]:
            for _ in range(data.draw(st.integers(1, 2))):
                event = receiver.receive(message)
                if isinstance(event, TransferDone):
                    result = event
        if receiver.state is not ReceiverState.RECEIVING:
            break
        # The sender may resume a little early (overlap); never late.
        offset = max(0, receiver.accept().resume_from - data.draw(st.integers(0, chunk_size)))
    assert isinstance(result, TransferDone)
    assert result.payload == payload


@FAST
@given(payloads, st.integers(1, 300), st.permutations(range(8)))
def test_any_order_never_corrupts(payload: bytes, chunk_size: int, order: list[int]) -> None:
    sender = make_sender(payload, 0, chunk_size)
    receiver = TransferReceiver(sender.offer())
    messages = list(sender.chunks())
    # Deliver in a shuffled order, retrying from the receiver's resume offset until done.
    pending = [messages[i] for i in order if i < len(messages)] + messages
    for _ in range(len(messages) * 10):
        if receiver.state is not ReceiverState.RECEIVING:
            break
        event = receiver.receive(pending.pop(0)) if pending else None
        if isinstance(event, ChunkGap) or not pending:
            pending = list(sender.chunks(receiver.resume_offset))
    assert receiver.state is ReceiverState.COMPLETE


@FAST
@given(st.binary(max_size=64))
def test_arbitrary_binary_messages(message: bytes) -> None:
    receiver = TransferReceiver(make_sender(b"x" * 100, 0, 10).offer())
    try:
        receiver.receive(message)
    except ChunkError:
        pass
    except ValueError as exc:  # a well-formed chunk of another transfer
        assert "tag" in str(exc)
