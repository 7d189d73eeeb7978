"""One call's avatar session: its channels, its room membership, and the call flow of
TR 26.813 as the MF serves it (docs/protocol.md has the messages):

- A.1 / hello: the UE says what it does; the MF answers ``capabilities`` (who does D.1, D.3,
  D.4).
- D.1.3 / D.2: ``avatar select`` is authorised against the avatar storage (TS 22.156: owner or
  grantee, time-bound, allow-listed parties); the avatar is loaded once through the cache and
  offered to every other participant as a chunked transfer with a SHA-256 digest. A UE can also
  upload its own base avatar (a transfer towards the MF): it is validated and stored for it.
- D.3 network-centric: ``text`` becomes animation units through the animation-data stage (in
  the stage executor) and is paced in real time to the other participants. UE-centric: units
  arriving on the UE's animation channel are relayed unchanged.
- B / C: ``scene get`` and ``scene update`` (JSON Patch) against the room's scene.

Every failure becomes an ``error`` (or ``avatar refused`` / ``transfer failed``) message on the
metadata channel; the session and the call go on. The hub counts them for ``/metrics``: every
``error`` reply by code, and stage failures by stage and kind. Log lines carry ``call_id``,
``session_id`` (the participant id) and ``room``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avatar_mf.arf.units import ArfDecodeError, ConfigUnit, decode_unit
from avatar_mf.channels.base import ChannelContext, ChannelInfo
from avatar_mf.clock import TimerHandle
from avatar_mf.pipeline.frames import AnimationUnitFrame
from avatar_mf.protocol.metadata import (
    AnimationResumed,
    AnimationStart,
    AnimationStop,
    AnimationStopped,
    AnimationText,
    AvatarRefused,
    AvatarSelect,
    AvatarSelected,
    ErrorMessage,
    Hello,
    Message,
    MetadataError,
    Scene,
    SceneGet,
    SceneUpdate,
    TransferAccept,
    TransferComplete,
    TransferFailed,
    TransferOffer,
    dump_message,
    error_for,
    new_message_id,
)
from avatar_mf.protocol.names import ErrorCode
from avatar_mf.protocol.transfer import (
    ChunkError,
    ChunkGap,
    TransferAborted,
    TransferDone,
    TransferError,
    TransferReceiver,
    TransferSender,
    parse_chunk,
)
from avatar_mf.rooms.relay import Outlet
from avatar_mf.rooms.rooms import Participant
from avatar_mf.stages.animation_data import AnimationPlan

if TYPE_CHECKING:
    from avatar_mf.avatar_session.hub import AvatarHub

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AvatarSettings:
    #: Animation units per second for network-generated animation.
    rate: float = 30.0
    profile: str = "arf-face-v1"
    max_metadata_size: int = 65536
    max_transfer_size: int = 64 * 1024 * 1024
    #: Chunks are sent while the channel buffers less than this many bytes.
    high_water: int = 256 * 1024
    retry_interval: float = 0.005


@dataclass(eq=False)
class _Outgoing:
    sender: TransferSender
    channel: ChannelContext
    task: asyncio.Task[None] | None = None


class _Speaker:
    """Paces planned animation units in real time on the hub's clock."""

    def __init__(self, session: AvatarSession) -> None:
        self._session = session
        self._clock = session.hub.clock
        self._plans: deque[AnimationPlan] = deque()
        self._plan: AnimationPlan | None = None
        self._index = 0
        self._t0 = 0.0
        self._timer: TimerHandle | None = None
        self.config_sent = False
        self.units_sent = 0

    @property
    def busy(self) -> bool:
        return self._plan is not None or bool(self._plans)

    def enqueue(self, plan: AnimationPlan) -> None:
        self._plans.append(plan)
        if self._plan is None:
            self._next_plan()

    def _next_plan(self) -> None:
        if not self._plans:
            self._plan = None
            return
        self._plan = self._plans.popleft()
        self._index = 0
        self._t0 = self._clock.now()
        self._fire()

    def _fire(self) -> None:
        self._timer = None
        plan = self._plan
        if plan is None:
            return
        elapsed = self._clock.now() - self._t0
        units = plan.units
        while self._index < len(units) and units[self._index].at <= elapsed + 1e-9:
            unit = units[self._index]
            self._index += 1
            if unit.is_config:
                if self.config_sent:
                    continue
                self.config_sent = True
            self._session.publish_generated(unit.unit, is_config=unit.is_config, at=unit.at)
            self.units_sent += 1
        if self._index < len(units):
            delay = units[self._index].at - (self._clock.now() - self._t0)
            self._timer = self._clock.call_later(max(0.0, delay), self._fire)
        else:
            self._next_plan()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._plans.clear()
        self._plan = None


class AvatarSession:
    def __init__(self, hub: AvatarHub, info: ChannelInfo, participant: Participant) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.call_id = info.call_id
        self.identity = info.identity
        self.participant = participant
        self.channels: dict[str, ChannelContext] = {}
        self.avatar_id: str | None = None
        self.hello: Hello | None = None
        self._outgoing: dict[str, _Outgoing] = {}
        self._incoming: dict[bytes, TransferReceiver] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._speaker = _Speaker(self)
        self._next_tick = 0
        self.closed = False
        self.log_extra: dict[str, object] = {
            "call_id": self.call_id,
            "session_id": participant.id,
            "room": participant.room.name,
        }

    @property
    def id(self) -> str:
        return self.participant.id

    # -- channels -------------------------------------------------------------------------

    def attach(self, kind: str, channel: ChannelContext) -> None:
        self.channels[kind] = channel
        outlet = Outlet(channel.send, channel.buffered_amount, self.hub.relay_metrics)
        if kind == "metadata":
            self.participant.attach_metadata(outlet)
            self.hub.welcome(self)
        elif kind == "animation":
            self.participant.attach_animation(outlet)

    def detach(self, kind: str, channel: ChannelContext) -> None:
        if self.channels.get(kind) is channel:
            del self.channels[kind]
        if not self.channels:
            self.hub.release(self)

    def close(self) -> None:
        """Release everything the session holds (the hub calls it once)."""
        if self.closed:
            return
        self.closed = True
        self._speaker.stop()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self._outgoing.clear()
        self._incoming.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "call %s: avatar task failed",
                self.call_id,
                exc_info=task.exception(),
                extra=self.log_extra,
            )
            self.hub.stage_errors["session", "internal"] += 1
            self.reply_error(MetadataError(ErrorCode.INTERNAL, "the MF could not complete that"))

    # -- sending --------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Queue a metadata message to this UE (reliable, bounded: see rooms/relay.py)."""
        queue = self.participant.metadata
        if queue is not None and not self.closed:
            queue.offer(dump_message(message))

    def reply_error(self, exc: MetadataError) -> None:
        log.info(
            "call %s: metadata error %s: %s",
            self.call_id,
            exc.code,
            exc.message,
            extra={**self.log_extra, "code": exc.code},
        )
        self.hub.error_replies[exc.code] += 1
        self.send(error_for(exc))

    # -- metadata -------------------------------------------------------------------------

    def on_metadata(self, message: Message) -> None:
        if isinstance(message, Hello):
            self.hello = message
            self.send(self.hub.capabilities(self, message))
        elif isinstance(message, AvatarSelect):
            self._spawn(self._select(message))
        elif isinstance(message, TransferAccept):
            self._accepted(message)
        elif isinstance(message, TransferComplete | TransferFailed):
            self._outgoing_done(message)
        elif isinstance(message, TransferOffer):
            self._incoming_offer(message)
        elif isinstance(message, AnimationText):
            self._spawn(self._speak(message))
        elif isinstance(message, AnimationStart):
            self._broadcast(AnimationResumed(id=new_message_id(), participant_id=self.id))
        elif isinstance(message, AnimationStop):
            self._broadcast(
                AnimationStopped(id=new_message_id(), participant_id=self.id, reason=message.reason)
            )
        elif isinstance(message, SceneGet):
            scene = self.hub.scene_of(self)
            self.send(
                Scene(
                    id=new_message_id(),
                    in_reply_to=message.id,
                    version=scene.version,
                    document=scene.document(),
                )
            )
        elif isinstance(message, SceneUpdate):
            self.hub.scene_update(self, message)
        elif isinstance(message, ErrorMessage):
            log.info(
                "call %s: UE reported %s: %s",
                self.call_id,
                message.code,
                message.message,
                extra={**self.log_extra, "code": message.code},
            )
        else:
            self.reply_error(
                MetadataError(
                    ErrorCode.UNEXPECTED_MESSAGE,
                    f"{message.type} is not sent to the MF",
                    message.id,
                )
            )

    def _broadcast(self, message: Message) -> None:
        self.participant.publish_metadata(dump_message(message))

    # -- D.1.3 / D.2: avatar selection and delivery ---------------------------------------

    async def _select(self, message: AvatarSelect) -> None:
        avatar_id = message.avatar_id
        if self.hub.authorizer is None or self.hub.store is None:
            self.send(
                AvatarRefused(
                    id=new_message_id(),
                    in_reply_to=message.id,
                    avatar_id=avatar_id,
                    code=ErrorCode.UNSUPPORTED,
                    reason="this MF has no avatar storage",
                )
            )
            return
        parties = frozenset(p.identity for p in self.participant.room.others(self.participant))
        decision = await self.hub.authorizer.authorize_use(
            avatar_id, self.identity, call_parties=parties
        )
        if not decision.allowed:
            log.warning(
                "call %s: %s refused avatar %s: %s (%s)",
                self.call_id,
                self.identity,
                avatar_id,
                decision.reason_code,
                decision.message,
                extra=self.log_extra,
            )
            self.send(
                AvatarRefused(
                    id=new_message_id(),
                    in_reply_to=message.id,
                    avatar_id=avatar_id,
                    code=str(decision.reason_code),
                    reason=decision.message[:1024],
                )
            )
            return
        self.avatar_id = avatar_id
        self.send(AvatarSelected(id=new_message_id(), in_reply_to=message.id, avatar_id=avatar_id))
        self.hub.avatar_selected(self)
        for other in self.hub.others(self):
            other.offer_avatar(self, avatar_id)

    def offer_avatar(self, owner: AvatarSession, avatar_id: str) -> None:
        """D.2: deliver ``owner``'s base avatar to this UE (loaded once for the whole room)."""
        self._spawn(self._offer_avatar(owner, avatar_id))

    async def _offer_avatar(self, owner: AvatarSession, avatar_id: str) -> None:
        channel = self.channels.get("transfer") or self.channels.get("metadata")
        store, cache = self.hub.store, self.hub.cache
        if channel is None or store is None or cache is None:
            return
        record = await store.get_record(avatar_id)
        blob = await cache.get_blob(avatar_id)
        sender = TransferSender(
            blob,
            transfer_id=new_message_id(),
            max_message_size=channel.info.max_message_size,
            avatar_id=avatar_id,
            stream_id=channel.info.stream_id,
            content_type=record.content_type,
        )
        self._outgoing[sender.transfer_id] = _Outgoing(sender, channel)
        self.send(sender.offer())

    def _accepted(self, accept: TransferAccept) -> None:
        out = self._outgoing.get(accept.transfer_id)
        if out is None:
            self.reply_error(
                MetadataError(ErrorCode.UNKNOWN_TRANSFER, "no such transfer", in_reply_to=accept.id)
            )
            return
        if out.task is not None:
            out.task.cancel()
        task = asyncio.get_running_loop().create_task(self._pump(out, accept))
        out.task = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _pump(self, out: _Outgoing, accept: TransferAccept) -> None:
        try:
            chunks = out.sender.resume(accept)
        except TransferError as exc:
            self.send(exc.reply())
            self._outgoing.pop(out.sender.transfer_id, None)
            return
        for chunk in chunks:
            await self._writable(out.channel)
            out.channel.send(chunk)

    async def _writable(self, channel: ChannelContext) -> None:
        while True:
            if channel.buffered_amount() < self.settings.high_water:
                return
            await asyncio.sleep(self.settings.retry_interval)

    def _outgoing_done(self, message: TransferComplete | TransferFailed) -> None:
        out = self._outgoing.pop(message.transfer_id, None)
        if out is None:
            return
        if isinstance(message, TransferFailed):
            log.info(
                "call %s: transfer %s failed at the UE: %s",
                self.call_id,
                message.transfer_id,
                message.code,
                extra=self.log_extra,
            )
            if out.task is not None:
                out.task.cancel()
        elif message.sha256 != out.sender.sha256:
            log.warning(
                "call %s: UE reported a different digest", self.call_id, extra=self.log_extra
            )

    # -- uploads (D.1 alternative 2: the UE provides its base avatar) ---------------------

    def _incoming_offer(self, offer: TransferOffer) -> None:
        if self.hub.store is None:
            self.send(
                TransferFailed(
                    id=new_message_id(),
                    transfer_id=offer.transfer_id,
                    code=ErrorCode.UNSUPPORTED,
                    reason="this MF has no avatar storage",
                )
            )
            return
        try:
            receiver = TransferReceiver(offer, max_size=self.settings.max_transfer_size)
        except TransferError as exc:
            self.send(exc.reply())
            return
        self._incoming[receiver.tag] = receiver
        self.send(receiver.accept())

    def on_chunk(self, data: bytes) -> None:
        try:
            chunk = parse_chunk(data)
        except ChunkError as exc:
            self.reply_error(MetadataError(exc.code, exc.message))
            return
        receiver = self._incoming.get(chunk.tag)
        if receiver is None:
            self.reply_error(MetadataError(ErrorCode.UNKNOWN_TRANSFER, "chunk of no open transfer"))
            return
        event = receiver.receive(chunk)
        if isinstance(event, TransferDone):
            del self._incoming[chunk.tag]
            self._spawn(self._store_upload(receiver.offer, event.payload))
        elif isinstance(event, TransferAborted):
            del self._incoming[chunk.tag]
            self.send(event.reply)
        elif isinstance(event, ChunkGap) and event.reply is not None:
            self.send(event.reply)

    async def _store_upload(self, offer: TransferOffer, payload: bytes) -> None:
        store = self.hub.store
        assert store is not None
        try:
            await self.hub.executor.run(self.hub.validate_avatar, payload, offer.content_type)
        except ValueError as exc:
            self.hub.stage_errors["avatar_validation", "rejected"] += 1
            log.info(
                "call %s: uploaded avatar rejected: %s", self.call_id, exc, extra=self.log_extra
            )
            self.send(
                TransferFailed(
                    id=new_message_id(),
                    transfer_id=offer.transfer_id,
                    code=getattr(exc, "code", ErrorCode.BAD_AVATAR),
                    reason=str(exc)[:1024],
                )
            )
            return
        record = await store.put(
            payload, owner=self.identity, name=offer.avatar_id, content_type=offer.content_type
        )
        log.info(
            "call %s: stored uploaded avatar %s for %s",
            self.call_id,
            record.avatar_id,
            self.identity,
            extra=self.log_extra,
        )
        self.send(
            TransferComplete(
                id=new_message_id(), transfer_id=offer.transfer_id, sha256=record.digest
            )
        )
        self.send(
            AvatarSelected(
                id=new_message_id(), avatar_id=record.avatar_id, transfer_id=offer.transfer_id
            )
        )
        self.avatar_id = record.avatar_id
        self.hub.avatar_selected(self)
        for other in self.hub.others(self):
            other.offer_avatar(self, record.avatar_id)

    # -- D.3: animation data --------------------------------------------------------------

    def on_animation_unit(self, unit: bytes, *, is_config: bool) -> None:
        """UE-centric: the UE's own units go to the animation stage, then to the room."""
        frame = AnimationUnitFrame(self.id, unit, is_config)
        for out in self.hub.animator.animate(frame):
            if isinstance(out, AnimationUnitFrame):
                self.participant.publish_animation(out.unit, is_config=out.is_config)

    async def _speak(self, message: AnimationText) -> None:
        source = self.hub.animation_source
        if source is None:
            self.reply_error(
                MetadataError(
                    ErrorCode.UNSUPPORTED, "no animation-data stage configured", message.id
                )
            )
            return
        start_tick = self._next_tick
        try:
            plan = await self.hub.executor.run(
                source.plan_text,
                message.text,
                language=message.language,
                rate=self.settings.rate,
                start_tick=start_tick,
            )
        except Exception as exc:  # a stage failure degrades this session only
            code = ErrorCode.BUSY if getattr(exc, "retryable", False) else ErrorCode.STAGE_FAILED
            self.hub.stage_errors["animation_data", "busy" if code == "busy" else "failed"] += 1
            log.warning(
                "call %s: animation-data stage failed: %s",
                self.call_id,
                exc,
                extra=self.log_extra,
            )
            self.reply_error(MetadataError(code, f"text animation failed: {exc}", message.id))
            return
        if self.closed or not plan.units:
            return
        timescale = 1000.0
        with contextlib.suppress(ArfDecodeError):
            first = decode_unit(plan.units[0].unit)
            if isinstance(first, ConfigUnit):
                timescale = first.timescale
        self._next_tick = start_tick + round(plan.duration * timescale) + 1
        self._speaker.enqueue(plan)

    def publish_generated(self, unit: bytes, *, is_config: bool, at: float) -> None:
        """A unit the MF generated for this participant, due now: to the room."""
        frame = AnimationUnitFrame(self.id, unit, is_config, media_time=at)
        for out in self.hub.animator.animate(frame):
            if isinstance(out, AnimationUnitFrame):
                self.participant.publish_animation(out.unit, is_config=out.is_config)

    @property
    def speaking(self) -> bool:
        return self._speaker.busy
