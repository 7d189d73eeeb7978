"""The UE side of the avatar data channel protocols (docs/protocol.md) over a test UE call.

::

    async with UeCall.dial("sip:room1@127.0.0.1", "127.0.0.1", 5060, from_uri=...) as call:
        await call.wait_channels_open(5.0)
        async with AvatarClient(call, recorder=Recorder(path)) as client:
            caps = await client.hello()
            reply = await client.select("bar:7d3c1e2a")        # avatar selected / refused
            await client.say("Bob met Pam by the map")          # text-driven animation
            scene = await client.scene_get()
            transfer = await client.upload(glb, avatar_id="mine") # base avatar to the MF
            await client.wait_units(30, timeout=3.0)             # animation units received

:class:`AvatarClient` takes the call's ``3gpp-ar-metadata`` channel (JSON text messages, and
transfer chunks as binary messages), its ``3gpp-ar-animation`` channel (one ARF unit per binary
message, decoded with :func:`avatar_mf.arf.decode_unit`) and, when negotiated, an
``avatar-mf-transfer`` channel. Messages are handled as they arrive (see
:meth:`UeCall.set_handler`), each stamped with its receive time on the call's clock.

What it does on its own, as docs/protocol.md section 8 asks of a UE:

* every message gets a unique ``id`` (``<prefix>-<n>``); replies are matched by ``inReplyTo``;
* **transfer offer** -> :class:`~avatar_mf.protocol.transfer.TransferReceiver` (size and
  max-message-size checks) -> **transfer accept** (``resumeFrom`` = what it already holds of
  the same transfer, section 6 "Resuming") -> chunks -> SHA-256 check -> **transfer
  complete** or **transfer failed**; a gap in the chunks is answered with one accept naming
  the next byte wanted;
* uploads (:meth:`AvatarClient.upload`): **transfer offer**, then the chunks from each
  **transfer accept**'s ``resumeFrom`` (a new accept restarts the chunks from there), every
  message within the MF's ``a=max-message-size`` and its ``maxMessageSize``, paced by the
  channel's buffered amount;
* participants joined/left, the scene (a copy kept up to date from ``scene updated`` when the
  versions follow), ``error`` messages from the MF, animation units: all kept for the caller,
  and handed to the :class:`~avatar_mf.ue.recorder.Recorder` when there is one.

Fault injection for tests: ``chunk_filter`` drops received chunks (a lossy path), ``skip`` and
``stop_after`` of :meth:`AvatarClient.upload` leave chunks out or stop an upload half way, and
``partial_transfers`` carries unfinished downloads over to a new call (resume after a lost
connection).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

from avatar_mf.arf.units import ArfDecodeError, ConfigUnit, Unit, decode_unit, encode_unit
from avatar_mf.protocol.metadata import (
    AnimationImage,
    AnimationStart,
    AnimationStop,
    AnimationText,
    AvatarRefused,
    AvatarSelect,
    AvatarSelected,
    Capabilities,
    ErrorMessage,
    Hello,
    Message,
    MessageBase,
    MetadataError,
    ParticipantJoined,
    ParticipantLeft,
    PatchOperation,
    Placement,
    Role,
    Scene,
    SceneGet,
    SceneUpdate,
    SceneUpdated,
    TransferAccept,
    TransferComplete,
    TransferFailed,
    TransferOffer,
    dump_message,
    parse_message,
)
from avatar_mf.protocol.names import (
    CONTENT_TYPE_ARF_ZIP,
    CONTENT_TYPE_GLB,
    PROFILE_ARF_FACE,
    SUBPROTOCOL_ANIMATION,
    SUBPROTOCOL_METADATA,
    SUBPROTOCOL_TRANSFER,
    URN_PREFIX,
)
from avatar_mf.protocol.transfer import (
    CHUNK_HEADER_SIZE,
    DEFAULT_MAX_TRANSFER_SIZE,
    Chunk,
    ChunkError,
    ChunkGap,
    ChunkStored,
    ReceiverState,
    TransferAborted,
    TransferDone,
    TransferError,
    TransferReceiver,
    TransferSender,
    parse_chunk,
)
from avatar_mf.stages.scene.patch import JsonPatchError, apply_patch
from avatar_mf.ue.call import UeCall, UeCallError
from avatar_mf.ue.recorder import Recorder, unit_type_name

__all__ = [
    "DEFAULT_HIGH_WATER",
    "AvatarClient",
    "AvatarProtocolError",
    "ReceivedMessage",
    "ReceivedUnit",
    "Transfer",
]

log = logging.getLogger(__name__)

#: Chunks are sent while the channel buffers less than this many bytes.
DEFAULT_HIGH_WATER = 256 * 1024
_PACING_SLEEP = 0.002
#: How long :meth:`AvatarClient.upload` waits for the ``avatar selected`` that names the
#: stored avatar after the MF's ``transfer complete`` (they are sent back to back).
_STORED_WAIT = 2.0

MessageT = TypeVar("MessageT", bound=MessageBase)


class AvatarProtocolError(UeCallError):
    """The MF answered a request with an ``error`` message (kept in :attr:`error`)."""

    def __init__(self, error: ErrorMessage) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error
        self.code = error.code


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A metadata message from the MF and when it arrived (the call's clock)."""

    at: float
    stream_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class ReceivedUnit:
    """An animation unit from the MF, decoded, and when it arrived (the call's clock)."""

    at: float
    data: bytes = field(repr=False)
    unit: Unit

    @property
    def type_name(self) -> str:
        return unit_type_name(self.unit)


TransferState = Literal["offered", "running", "complete", "failed", "interrupted"]


@dataclass(eq=False)
class Transfer:
    """One base avatar transfer, either way, as this UE saw it (mutable; read it)."""

    direction: Literal["download", "upload"]
    offer: TransferOffer
    started: float
    state: TransferState = "offered"
    received: int = 0
    """Download: bytes received in order. Upload: end of the furthest chunk sent."""
    chunk_messages: int = 0
    """Chunk messages received (download) or sent (upload), duplicates and resends included."""
    chunk_bytes: int = 0
    """Data bytes in those chunk messages."""
    largest_message: int = 0
    """The largest chunk message, header included."""
    oversized: int = 0
    """Download: chunk messages larger than this UE's ``a=max-message-size``."""
    lost: int = 0
    """Download: chunks dropped by the ``chunk_filter`` (fault injection)."""
    accepts: list[int] = field(default_factory=list)
    """``resumeFrom`` of every transfer accept sent (download) or received (upload)."""
    digest: str | None = None
    """Download: SHA-256 of the bytes received. Upload: the digest the MF reported."""
    digest_ok: bool | None = None
    code: str | None = None
    reason: str | None = None
    finished: float | None = None
    stored_avatar_id: str | None = None
    """Upload: the id the MF stored the avatar under (its ``avatar selected``)."""
    payload: bytes | None = field(default=None, repr=False)
    """Download: the base avatar, once complete."""
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when the transfer completed, failed or was interrupted."""

    @property
    def transfer_id(self) -> str:
        return self.offer.transfer_id

    @property
    def avatar_id(self) -> str:
        return self.offer.avatar_id

    @property
    def total_size(self) -> int:
        return self.offer.total_size

    @property
    def sha256(self) -> str:
        """The digest the offer announced."""
        return self.offer.sha256

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def _finish(self, state: TransferState, at: float) -> None:
        self.state = state
        self.finished = at
        self.done.set()

    def as_dict(self) -> dict[str, object]:
        seconds = self.seconds
        return {
            "direction": self.direction,
            "transfer_id": self.transfer_id,
            "avatar_id": self.avatar_id,
            "stored_avatar_id": self.stored_avatar_id,
            "content_type": self.offer.content_type,
            "total_size": self.total_size,
            "chunk_size": self.offer.chunk_size,
            "stream_id": self.offer.stream_id,
            "state": self.state,
            "bytes": self.received,
            "chunk_messages": self.chunk_messages,
            "largest_message": self.largest_message,
            "resume_from": list(self.accepts),
            "sha256_offered": self.sha256,
            "sha256": self.digest,
            "digest_ok": self.digest_ok,
            "code": self.code,
            "reason": self.reason,
            "seconds": None if seconds is None else round(seconds, 6),
        }


def _short_type(message_type: str) -> str:
    return message_type.removeprefix(URN_PREFIX)


def _first(streams: Sequence[int]) -> int | None:
    return streams[0] if streams else None


class AvatarClient:
    """The avatar protocols on an established :class:`UeCall` (its channels must be
    accepted; messages are handled once they open).

    Args:
        call: a connected call.
        metadata_stream, animation_stream, transfer_stream: the channels to use (default:
            the first accepted stream of each subprotocol; metadata is required).
        recorder: receives everything that arrives (and the base avatars).
        id_prefix: prefix of this UE's message ids (default ``ue-<random>``).
        max_transfer_size: largest base avatar accepted in a download.
        auto_accept: answer every transfer offer with an accept at once (else
            :meth:`accept`).
        partial_transfers: unfinished downloads of an earlier call (its
            :attr:`partial_transfers`): a re-offer of the same transfer resumes.
        high_water: uploads pause while the channel buffers this many bytes.
        on_message: called with every metadata message received (e.g. to print it).
    """

    def __init__(
        self,
        call: UeCall,
        *,
        metadata_stream: int | None = None,
        animation_stream: int | None = None,
        transfer_stream: int | None = None,
        recorder: Recorder | None = None,
        id_prefix: str | None = None,
        max_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        auto_accept: bool = True,
        partial_transfers: Mapping[str, TransferReceiver] | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        metadata = (
            metadata_stream
            if metadata_stream is not None
            else _first(call.streams_with(SUBPROTOCOL_METADATA))
        )
        if metadata is None:
            raise UeCallError(f"the call has no accepted {SUBPROTOCOL_METADATA} channel")
        self.call = call
        self.metadata_stream = metadata
        self.animation_stream = (
            animation_stream
            if animation_stream is not None
            else _first(call.streams_with(SUBPROTOCOL_ANIMATION))
        )
        self.transfer_stream = (
            transfer_stream
            if transfer_stream is not None
            else _first(call.streams_with(SUBPROTOCOL_TRANSFER))
        )
        self.recorder = recorder
        self.id_prefix = id_prefix or f"ue-{secrets.token_hex(3)}"
        self.max_transfer_size = max_transfer_size
        self.auto_accept = auto_accept
        self.high_water = high_water
        self.on_message = on_message
        self._ids = itertools.count(1)
        self._now = call.now

        self.messages: list[ReceivedMessage] = []
        """Every metadata message received, in order."""
        self.received_types: Counter[str] = Counter()
        """Metadata messages received by type (URN without ``urn:3gpp:avatar:v1:``)."""
        self.units: list[ReceivedUnit] = []
        """Every animation unit received, in order."""
        self.units_sent = 0
        self.sent_messages = 0
        self.capabilities: Capabilities | None = None
        self.participants: dict[str, ParticipantJoined] = {}
        """Participants present (from participant joined, minus participant left)."""
        self.left: list[ParticipantLeft] = []
        self.mf_errors: list[ErrorMessage] = []
        """``error`` messages from the MF."""
        self.problems: list[str] = []
        """What this UE found wrong in what it received (unreadable messages, bad units,
        chunks of no transfer, messages over its max-message-size ...)."""
        self.transfers: dict[str, Transfer] = {}
        """Transfers by transfer id (the latest of each id)."""
        self.transfer_log: list[Transfer] = []
        """Every transfer, in the order they started."""
        self.avatars: dict[str, bytes] = {}
        """Base avatars received, by avatar id."""
        self.scene: Scene | None = None
        """The latest scene description received."""
        self.scene_document: dict[str, Any] | None = None
        """The scene as of :attr:`scene_version`: the last description with every following
        ``scene updated`` applied (None once an update could not be applied: get it again)."""
        self.scene_version: int | None = None
        self.chunk_filter: Callable[[Transfer, Chunk], bool] | None = None
        """Fault injection: a received chunk for which this returns False is dropped."""

        self._receivers: dict[str, TransferReceiver] = dict(partial_transfers or {})
        self._by_tag: dict[bytes, tuple[TransferReceiver, Transfer]] = {}
        self._uploads: dict[str, _Upload] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._closed = False

        call.set_handler(self.metadata_stream, self._on_metadata)
        if self.animation_stream is not None:
            call.set_handler(self.animation_stream, self._on_animation)
        if self.transfer_stream is not None:
            call.set_handler(self.transfer_stream, self._on_transfer_channel)

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> AvatarClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop taking the channels, stop uploads, finish writing the recordings."""
        if self._closed:
            return
        self._closed = True
        for stream in (self.metadata_stream, self.animation_stream, self.transfer_stream):
            if stream is not None:
                self.call.set_handler(stream, None)
        for upload in self._uploads.values():
            if upload.task is not None:
                upload.task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.recorder is not None:
            self.recorder.flush()

    @property
    def partial_transfers(self) -> dict[str, TransferReceiver]:
        """Downloads begun and not finished, by transfer id: pass them to the client of the
        next call to resume (docs/protocol.md section 6 "Resuming")."""
        return {
            tid: r
            for tid, r in self._receivers.items()
            if r.state is ReceiverState.RECEIVING and r.received > 0
        }

    @property
    def session_id(self) -> str | None:
        """This UE's participant id in the room (the capabilities' ``sessionId``)."""
        return self.capabilities.session_id if self.capabilities is not None else None

    # -- sending --------------------------------------------------------------------------

    def next_id(self) -> str:
        """A fresh message id of this UE."""
        return f"{self.id_prefix}-{next(self._ids)}"

    def send(self, message: Message) -> Message:
        """Send one metadata message as a text message; returns it."""
        self.call.send(self.metadata_stream, dump_message(message))
        self.sent_messages += 1
        return message

    def send_raw(self, data: str | bytes) -> None:
        """Send anything on the metadata channel (tests of the MF's error handling)."""
        self.call.send(self.metadata_stream, data)
        self.sent_messages += 1

    def send_unit(self, unit: Unit | bytes, *, stream_id: int | None = None) -> bytes:
        """Send one animation unit (encoded here unless given as bytes); returns its bytes."""
        stream = stream_id if stream_id is not None else self.animation_stream
        if stream is None:
            raise UeCallError(f"the call has no accepted {SUBPROTOCOL_ANIMATION} channel")
        data = unit if isinstance(unit, bytes) else encode_unit(unit)
        self.call.send(stream, data)
        self.units_sent += 1
        return data

    async def request(
        self,
        message: Message,
        replies: tuple[type[MessageBase], ...],
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Message:
        """Send ``message`` and wait for a reply of one of ``replies`` naming it in
        ``inReplyTo``. Raises :class:`AvatarProtocolError` for an ``error`` reply."""
        since = len(self.messages)
        self.send(message)

        def answers(received: MessageBase) -> bool:
            return (
                isinstance(received, (*replies, ErrorMessage))
                and getattr(received, "in_reply_to", None) == message.id
            )

        reply = await self.wait_message(
            MessageBase,
            where=answers,
            since=since,
            timeout=timeout,
            what=f"no reply to {_short_type(message.type)} {message.id}",
        )
        if isinstance(reply, ErrorMessage):
            raise AvatarProtocolError(reply)
        return cast(Message, reply)  # every received message is one of the Message union

    async def hello(
        self,
        *,
        role: Role = "both",
        animation: Placement = "ue",
        profiles: Sequence[str] = (PROFILE_ARF_FACE,),
        formats: Sequence[str] = (CONTENT_TYPE_GLB, CONTENT_TYPE_ARF_ZIP),
        animation_inputs: Sequence[str] = ("text",),
        user_agent: str | None = "avatar-mf-test-ue",
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Capabilities:
        """hello -> capabilities (docs/protocol.md section 3). ``animation_inputs``: what the
        test UE sends for the network to animate (it sends text: ``animation text``)."""
        message = Hello(
            id=self.next_id(),
            role=role,
            animation=animation,
            animation_profiles=tuple(profiles),
            avatar_formats=tuple(formats),
            animation_inputs=tuple(animation_inputs),
            max_message_size=self.call.local_max_message_size,
            user_agent=user_agent,
        )
        reply = await self.request(message, (Capabilities,), timeout)
        assert isinstance(reply, Capabilities)
        return reply

    async def select(
        self,
        avatar_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> AvatarSelected | AvatarRefused:
        """avatar select -> avatar selected or avatar refused."""
        message = AvatarSelect(id=self.next_id(), avatar_id=avatar_id)
        reply = await self.request(message, (AvatarSelected, AvatarRefused), timeout)
        assert isinstance(reply, AvatarSelected | AvatarRefused)
        return reply

    def say(self, text: str, language: str = "en-US") -> AnimationText:
        """text (network-centric animation, TR 26.813 D.3 alternative 1); no reply unless an
        error."""
        message = AnimationText(id=self.next_id(), text=text, language=language)
        self.send(message)
        return message

    def send_image(
        self,
        data: bytes,
        content_type: Literal["image/jpeg", "image/png"] = "image/jpeg",
        media_time: float | None = None,
    ) -> AnimationImage:
        """animation image (a camera picture for network-centric animation, the ``images``
        input); no reply unless an error."""
        message = AnimationImage(
            id=self.next_id(),
            content_type=content_type,
            data=base64.b64encode(data),
            media_time=media_time,
        )
        self.send(message)
        return message

    def animation_start(
        self, profile: str = PROFILE_ARF_FACE, stream_id: int | None = None
    ) -> AnimationStart:
        message = AnimationStart(
            id=self.next_id(),
            profile=profile,
            stream_id=stream_id if stream_id is not None else self.animation_stream,
        )
        self.send(message)
        return message

    def animation_stop(self, reason: str | None = None) -> AnimationStop:
        message = AnimationStop(id=self.next_id(), stream_id=self.animation_stream, reason=reason)
        self.send(message)
        return message

    async def scene_get(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Scene:
        """scene get -> scene (its document is also kept in :attr:`scene_document`)."""
        reply = await self.request(SceneGet(id=self.next_id()), (Scene,), timeout)
        assert isinstance(reply, Scene)
        return reply

    async def scene_update(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        base_version: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> SceneUpdated:
        """scene update (RFC 6902 operations against ``base_version``, default the version
        held) -> scene updated. Raises :class:`AvatarProtocolError` (``version-conflict``,
        ``bad-patch`` ...)."""
        version = base_version if base_version is not None else self.scene_version
        if version is None:
            raise UeCallError("no scene version known: scene_get() first")
        message = SceneUpdate(
            id=self.next_id(),
            base_version=version,
            operations=tuple(PatchOperation.model_validate(op) for op in operations),
        )
        reply = await self.request(message, (SceneUpdated,), timeout)
        assert isinstance(reply, SceneUpdated)
        return reply

    # -- waiting --------------------------------------------------------------------------

    async def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
        what: str = "condition not met",
    ) -> None:
        """Wait until ``ready()`` (checked after every message, unit and transfer step).
        Raises :class:`TimeoutError`, or :class:`UeCallError` when the call ends first."""
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    if self.call.state == "ended" and not ready():
                        raise UeCallError(f"{what}: the call ended ({self.call.end_reason})")
                    self._changed.clear()
                    # The call's own end is not a message: look again now and then.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.1):
                            await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what} within {timeout} s") from None

    async def wait_message(
        self,
        kind: type[MessageT],
        *,
        where: Callable[[MessageT], bool] | None = None,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
        what: str | None = None,
    ) -> MessageT:
        """The first message received (from index ``since`` of :attr:`messages`) that is a
        ``kind`` and satisfies ``where``; waits for it."""
        found: list[MessageT] = []
        position = since

        def ready() -> bool:
            nonlocal position
            while position < len(self.messages):
                message = self.messages[position].message
                position += 1
                if isinstance(message, kind) and (where is None or where(message)):
                    found.append(message)
                    return True
            return False

        await self.wait_until(ready, timeout, what or f"no {kind.__name__} message")
        return found[0]

    async def wait_units(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> list[ReceivedUnit]:
        """Wait until at least ``count`` animation units arrived in total; returns them all."""
        await self.wait_until(
            lambda: len(self.units) >= count,
            timeout,
            f"{len(self.units)} of {count} animation units",
        )
        return list(self.units)

    async def wait_transfer(
        self,
        *,
        avatar_id: str | None = None,
        transfer_id: str | None = None,
        direction: Literal["download", "upload"] = "download",
        since: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Transfer:
        """The first transfer (from index ``since`` of :attr:`transfer_log`) matching the
        arguments, once it is finished (complete, failed or interrupted)."""

        def matching() -> Iterator[Transfer]:
            for transfer in self.transfer_log[since:]:
                if (
                    transfer.direction == direction
                    and (avatar_id is None or transfer.avatar_id == avatar_id)
                    and (transfer_id is None or transfer.transfer_id == transfer_id)
                ):
                    yield transfer

        def ready() -> bool:
            return any(t.done.is_set() for t in matching())

        await self.wait_until(ready, timeout, f"no finished {direction} of {avatar_id}")
        return next(t for t in matching() if t.done.is_set())

    # -- transfers: downloads -------------------------------------------------------------

    def accept(self, transfer_id: str) -> TransferAccept:
        """Accept (or resume) an offered download: chunks from the first byte not held."""
        receiver = self._receivers.get(transfer_id)
        transfer = self.transfers.get(transfer_id)
        if receiver is None or transfer is None:
            raise UeCallError(f"no offered transfer {transfer_id!r}")
        message = receiver.accept(message_id=self.next_id())
        transfer.accepts.append(message.resume_from)
        transfer.state = "running"
        self.send(message)
        return message

    def _incoming_offer(self, offer: TransferOffer, at: float) -> None:
        previous = self._receivers.get(offer.transfer_id)
        transfer = Transfer("download", offer, at)
        self.transfers[offer.transfer_id] = transfer
        self.transfer_log.append(transfer)
        if (
            previous is not None
            and previous.state is ReceiverState.RECEIVING
            and previous.matches(offer)
        ):
            receiver = previous  # the same transfer again: resume where it stopped
        else:
            try:
                receiver = TransferReceiver(
                    offer,
                    max_size=self.max_transfer_size,
                    max_message_size=self.call.local_max_message_size,
                )
            except TransferError as exc:
                reply = exc.reply(message_id=self.next_id())
                transfer.code, transfer.reason = reply.code, reply.reason
                transfer._finish("failed", at)
                self.send(reply)
                return
        transfer.received = receiver.received
        self._receivers[offer.transfer_id] = receiver
        self._by_tag[receiver.tag] = (receiver, transfer)
        if self.auto_accept:
            self.accept(offer.transfer_id)

    def _on_chunk(self, stream_id: int, data: bytes, at: float) -> None:
        try:
            chunk = parse_chunk(data)
        except ChunkError as exc:
            self.problems.append(f"stream {stream_id}: {exc}")
            return
        entry = self._by_tag.get(chunk.tag)
        if entry is None:
            self.problems.append(
                f"stream {stream_id}: chunk at {chunk.offset} of no open transfer "
                f"(tag {chunk.tag.hex()})"
            )
            return
        receiver, transfer = entry
        transfer.chunk_messages += 1
        transfer.chunk_bytes += len(chunk.data)
        transfer.largest_message = max(transfer.largest_message, len(data))
        limit = self.call.local_max_message_size
        if limit and len(data) > limit:
            transfer.oversized += 1
            self.problems.append(
                f"transfer {transfer.transfer_id}: a {len(data)}-byte chunk message, over this "
                f"UE's max-message-size {limit}"
            )
        if self.chunk_filter is not None and not self.chunk_filter(transfer, chunk):
            transfer.lost += 1
            return
        event = receiver.receive(chunk)
        if isinstance(event, ChunkStored):
            transfer.received = event.received
        elif isinstance(event, ChunkGap):
            if event.reply is not None:
                transfer.accepts.append(event.reply.resume_from)
                self.send(event.reply)
        elif isinstance(event, TransferDone):
            self._forget(receiver)
            transfer.received = len(event.payload)
            transfer.payload = event.payload
            transfer.digest = hashlib.sha256(event.payload).hexdigest()
            transfer.digest_ok = transfer.digest == transfer.sha256
            self.avatars[transfer.avatar_id] = event.payload
            self.send(event.reply)
            transfer._finish("complete", at)
            recorder = self.recorder
            if recorder is not None:
                self._spawn(
                    asyncio.to_thread(
                        recorder.avatar,
                        transfer.avatar_id,
                        transfer.offer.content_type,
                        event.payload,
                    )
                )
        elif isinstance(event, TransferAborted):
            self._forget(receiver)
            transfer.code, transfer.reason = event.code, event.reason
            if event.code == "digest-mismatch":
                transfer.digest_ok = False
            self.send(event.reply)
            transfer._finish("failed", at)

    def _forget(self, receiver: TransferReceiver) -> None:
        self._by_tag.pop(receiver.tag, None)
        if self._receivers.get(receiver.offer.transfer_id) is receiver:
            del self._receivers[receiver.offer.transfer_id]

    # -- transfers: uploads ---------------------------------------------------------------

    def peer_max_message_size(self) -> int:
        """The largest message the MF takes on the metadata channel: its SDP
        ``a=max-message-size`` and its capabilities' ``maxMessageSize`` (0: no limit)."""
        limits = [self.call.remote_max_message_size]
        if self.capabilities is not None:
            limits.append(self.capabilities.max_message_size)
        limits = [n for n in limits if n > 0]
        return min(limits) if limits else 0

    async def upload(
        self,
        payload: bytes,
        *,
        avatar_id: str,
        content_type: str = CONTENT_TYPE_GLB,
        transfer_id: str | None = None,
        stream_id: int | None = None,
        chunk_size: int | None = None,
        skip: Callable[[int], bool] | None = None,
        stop_after: int | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> Transfer:
        """Upload a base avatar (TR 26.813 D.1 alternative 2): offer, chunks from each accept's
        ``resumeFrom``, wait for transfer complete (digest compared) or failed, then for the
        ``avatar selected`` naming the stored avatar (:attr:`Transfer.stored_avatar_id`).

        ``skip(offset)`` True leaves that chunk out (the MF should ask for it again);
        ``stop_after`` stops sending once that many bytes went out (the transfer is then
        ``interrupted``: re-offer it with the same ``transfer_id`` to resume). Raises
        :class:`TimeoutError`; a refusal is a ``failed`` transfer, not an exception.
        """
        stream = stream_id
        if stream is None:
            stream = (
                self.transfer_stream if self.transfer_stream is not None else self.metadata_stream
            )
        sender = TransferSender(
            payload,
            transfer_id=transfer_id or self.next_id() + "-tx",
            max_message_size=self.peer_max_message_size(),
            avatar_id=avatar_id,
            stream_id=stream,
            content_type=content_type,
            chunk_size=chunk_size,
        )
        offer = sender.offer(message_id=self.next_id())
        transfer = Transfer("upload", offer, self._now())
        self.transfers[offer.transfer_id] = transfer
        self.transfer_log.append(transfer)
        self._uploads[offer.transfer_id] = _Upload(sender, transfer, stream, skip, stop_after)
        since = len(self.messages)
        self.send(offer)
        try:
            await self.wait_until(
                transfer.done.is_set, timeout, f"upload {offer.transfer_id} not finished"
            )
        finally:
            if transfer.state != "interrupted":
                self._stop_upload(offer.transfer_id)
        if transfer.state == "complete":
            with contextlib.suppress(TimeoutError):
                selected = await self.wait_message(
                    AvatarSelected,
                    where=lambda m: m.transfer_id == offer.transfer_id,
                    since=since,
                    timeout=_STORED_WAIT,
                )
                transfer.stored_avatar_id = selected.avatar_id
        return transfer

    def _stop_upload(self, transfer_id: str) -> None:
        upload = self._uploads.pop(transfer_id, None)
        if upload is not None and upload.task is not None:
            upload.task.cancel()

    def _upload_accept(self, accept: TransferAccept, at: float) -> None:
        upload = self._uploads.get(accept.transfer_id)
        if upload is None:
            self.problems.append(f"accept of no upload: {accept.transfer_id!r}")
            return
        transfer = upload.transfer
        transfer.accepts.append(accept.resume_from)
        try:
            chunks = upload.sender.resume(accept)
        except TransferError as exc:
            reply = exc.reply(message_id=self.next_id())
            transfer.code, transfer.reason = reply.code, reply.reason
            self.send(reply)
            transfer._finish("failed", at)
            return
        if upload.task is not None:
            upload.task.cancel()  # a new accept restarts the chunks from its resumeFrom
        transfer.state = "running"
        upload.task = self._spawn(self._pump(upload, chunks))

    async def _pump(self, upload: _Upload, chunks: Iterator[bytes]) -> None:
        transfer, stream = upload.transfer, upload.stream_id
        for message in chunks:
            offset = int.from_bytes(message[8:CHUNK_HEADER_SIZE], "big")
            if upload.stop_after is not None and offset >= upload.stop_after:
                transfer._finish("interrupted", self._now())
                self._changed.set()
                return
            if upload.skip is not None and upload.skip(offset):
                continue
            # Polled: the channel's buffered amount has no awaitable "low" signal here.
            while self.call.buffered_amount(stream) >= self.high_water:  # noqa: ASYNC110
                await asyncio.sleep(_PACING_SLEEP)
            self.call.send(stream, message)
            transfer.chunk_messages += 1
            transfer.chunk_bytes += len(message) - CHUNK_HEADER_SIZE
            transfer.largest_message = max(transfer.largest_message, len(message))
            transfer.received = max(transfer.received, offset + len(message) - CHUNK_HEADER_SIZE)
            if transfer.chunk_messages % 64 == 0:
                await asyncio.sleep(0)  # let the replies in
        self._changed.set()

    def _transfer_result(self, message: TransferComplete | TransferFailed, at: float) -> None:
        transfer = self.transfers.get(message.transfer_id)
        if transfer is None:
            self.problems.append(
                f"{_short_type(message.type)} for no transfer: {message.transfer_id!r}"
            )
            return
        if isinstance(message, TransferFailed):
            transfer.code, transfer.reason = message.code, message.reason
            if transfer.direction == "download":
                receiver = self._receivers.get(message.transfer_id)
                if receiver is not None:
                    self._forget(receiver)
            else:
                self._stop_upload(message.transfer_id)
            if not transfer.done.is_set():
                transfer._finish("failed", at)
            return
        if transfer.direction != "upload":
            self.problems.append(
                f"transfer complete from the MF for download {message.transfer_id}"
            )
            return
        transfer.digest = message.sha256
        transfer.digest_ok = message.sha256 == transfer.sha256
        self._stop_upload(message.transfer_id)
        transfer._finish("complete", at)

    # -- receiving ------------------------------------------------------------------------

    def _on_metadata(self, data: str | bytes, at: float) -> None:
        if isinstance(data, bytes):
            self._on_chunk(self.metadata_stream, data, at)
            self._changed.set()
            return
        recorder = self.recorder
        limit = self.call.local_max_message_size
        if limit and len(data.encode("utf-8", "surrogatepass")) > limit:
            self.problems.append(f"a metadata message over this UE's max-message-size {limit}")
        try:
            message = parse_message(data)
        except MetadataError as exc:
            self.problems.append(f"unreadable metadata message from the MF: {exc}")
            if recorder is not None:
                recorder.metadata(self.metadata_stream, data, None, at=at, error=str(exc))
            self._changed.set()
            return
        if recorder is not None:
            recorder.metadata(self.metadata_stream, data, json.loads(data), at=at)
        received = ReceivedMessage(at, self.metadata_stream, message)
        self.messages.append(received)
        self.received_types[_short_type(message.type)] += 1
        self._dispatch(message, at)
        if self.on_message is not None:
            self.on_message(received)
        self._changed.set()

    def _dispatch(self, message: Message, at: float) -> None:
        if isinstance(message, Capabilities):
            self.capabilities = message
        elif isinstance(message, TransferOffer):
            self._incoming_offer(message, at)
        elif isinstance(message, TransferAccept):
            self._upload_accept(message, at)
        elif isinstance(message, TransferComplete | TransferFailed):
            self._transfer_result(message, at)
        elif isinstance(message, AvatarSelected):
            if message.transfer_id is not None:
                transfer = self.transfers.get(message.transfer_id)
                if transfer is not None and transfer.direction == "upload":
                    transfer.stored_avatar_id = message.avatar_id
        elif isinstance(message, ParticipantJoined):
            self.participants[message.participant_id] = message
        elif isinstance(message, ParticipantLeft):
            self.participants.pop(message.participant_id, None)
            self.left.append(message)
        elif isinstance(message, Scene):
            self.scene = message
            self.scene_version = message.version
            self.scene_document = dict(message.document)
        elif isinstance(message, SceneUpdated):
            self._scene_updated(message)
        elif isinstance(message, ErrorMessage):
            self.mf_errors.append(message)

    def _scene_updated(self, message: SceneUpdated) -> None:
        document, version = self.scene_document, self.scene_version
        if document is None or version is None or message.version != version + 1:
            self.scene_document = None
            self.scene_version = message.version if version is None else version
            return
        operations = [op.model_dump(by_alias=True) for op in message.operations]
        try:
            self.scene_document = apply_patch(document, operations)
        except JsonPatchError as exc:
            self.problems.append(f"scene updated {message.version} does not apply: {exc}")
            self.scene_document = None
        self.scene_version = message.version

    def _on_animation(self, data: str | bytes, at: float) -> None:
        if isinstance(data, str):
            self.problems.append("a text message on the animation channel")
            return
        try:
            unit = decode_unit(data)
        except ArfDecodeError as exc:
            self.problems.append(f"undecodable animation unit: {exc}")
            if self.recorder is not None:
                self.recorder.unit(data, None, at=at)
            return
        if not self.units and not isinstance(unit, ConfigUnit):
            self.problems.append(f"the first animation unit is {unit_type_name(unit)}, not CONFIG")
        self.units.append(ReceivedUnit(at, data, unit))
        if self.recorder is not None:
            self.recorder.unit(data, unit, at=at)
        self._changed.set()

    def _on_transfer_channel(self, data: str | bytes, at: float) -> None:
        if isinstance(data, str):
            self.problems.append("a text message on the transfer channel")
            return
        stream = self.transfer_stream if self.transfer_stream is not None else -1
        self._on_chunk(stream, data, at)
        self._changed.set()

    # -- tasks ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.problems.append(f"task failed: {task.exception()!r}")
            log.error("avatar client task failed", exc_info=task.exception())
        self._changed.set()

    # -- report ---------------------------------------------------------------------------

    def units_by_type(self) -> dict[str, int]:
        counts = Counter(u.type_name for u in self.units)
        return dict(sorted(counts.items()))

    @property
    def failures(self) -> list[str]:
        """What went wrong for this UE: problems found, error messages from the MF, failed
        or unfinished transfers (empty when all went well)."""
        out = list(self.problems)
        out += [f"MF error {e.code}: {e.message}" for e in self.mf_errors]
        for transfer in self.transfer_log:
            if transfer.state in ("failed", "interrupted"):
                out.append(
                    f"{transfer.direction} {transfer.transfer_id} {transfer.state}: "
                    f"{transfer.code} {transfer.reason or ''}".rstrip()
                )
            elif transfer.digest_ok is False:
                out.append(f"{transfer.direction} {transfer.transfer_id}: digest mismatch")
        return out

    def summary(self) -> dict[str, object]:
        """A JSON-ready report of the avatar protocols on this call."""
        caps = self.capabilities
        return {
            "session_id": self.session_id,
            "streams": {
                "metadata": self.metadata_stream,
                "animation": self.animation_stream,
                "transfer": self.transfer_stream,
            },
            "capabilities": caps.model_dump(mode="json", by_alias=True) if caps else None,
            "messages_sent": self.sent_messages,
            "messages_received": dict(sorted(self.received_types.items())),
            "participants": sorted(self.participants),
            "participants_left": [m.participant_id for m in self.left],
            "scene_version": self.scene_version,
            "transfers": [t.as_dict() for t in self.transfer_log],
            "units_received": self.units_by_type(),
            "units_sent": self.units_sent,
            "errors": self.failures,
        }


@dataclass(eq=False)
class _Upload:
    sender: TransferSender
    transfer: Transfer
    stream_id: int
    skip: Callable[[int], bool] | None
    stop_after: int | None
    task: asyncio.Task[Any] | None = None
