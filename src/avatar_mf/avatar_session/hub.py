"""The avatar hub of one MF node: rooms, scenes, storage and stages, shared by every call.

It provides the channel services for the avatar subprotocols (``3gpp-ar-metadata``,
``3gpp-ar-animation``, ``avatar-mf-transfer``). The first avatar channel of a call that opens
creates the call's :class:`AvatarSession` and joins the room its Request-URI names; when the
last one closes (BYE, CANCEL, media failure) the session leaves the room, which is announced
to the others, and releases everything it held.

Counters for ``/metrics``: ``stage_errors`` by (stage, kind), ``error_replies`` by error code,
and the relay's :class:`~avatar_mf.rooms.relay.RelayMetrics` (given, or the hub's own).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from avatar_mf.avatar_session.adapters import (
    AnimationService,
    MetadataService,
    TransferChannelService,
)
from avatar_mf.avatar_session.session import AvatarSession, AvatarSettings
from avatar_mf.channels.base import ChannelContext, ChannelService, ServiceFactory
from avatar_mf.clock import Clock
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import (
    Capabilities,
    Hello,
    MetadataError,
    ParticipantJoined,
    ParticipantLeft,
    PatchOperation,
    SceneUpdate,
    SceneUpdated,
    dump_message,
    new_message_id,
)
from avatar_mf.rooms.relay import RelayMetrics
from avatar_mf.rooms.rooms import Participant, RelayLimits, Room, RoomRegistry, room_name
from avatar_mf.stages.animation import AvatarAnimator, ReceiverAnimates
from avatar_mf.stages.animation_data import AnimationDataSource
from avatar_mf.stages.scene import SceneError, SceneManager
from avatar_mf.storage import Authorizer, AvatarCache, AvatarRepository

log = logging.getLogger(__name__)

METADATA = "3gpp-ar-metadata"
ANIMATION = "3gpp-ar-animation"
TRANSFER = "avatar-mf-transfer"

#: Validates a base avatar container (raises ValueError); runs in the stage executor.
AvatarValidator = Callable[[bytes, str], object]


def _no_validation(_data: bytes, _content_type: str) -> object:
    return None


class AvatarHub:
    def __init__(
        self,
        *,
        clock: Clock,
        executor: StageExecutor,
        scene_factory: Callable[[str], SceneManager],
        settings: AvatarSettings | None = None,
        store: AvatarRepository | None = None,
        authorizer: Authorizer | None = None,
        cache: AvatarCache | None = None,
        animation_source: AnimationDataSource | None = None,
        animator: AvatarAnimator | None = None,
        validate_avatar: AvatarValidator = _no_validation,
        relay_limits: RelayLimits | None = None,
        relay_metrics: RelayMetrics | None = None,
    ) -> None:
        self.clock = clock
        self.executor = executor
        self.settings = settings or AvatarSettings()
        self.store = store
        self.authorizer = authorizer
        self.cache = cache
        self.animation_source = animation_source
        self.animator: AvatarAnimator = animator or ReceiverAnimates()
        self.validate_avatar = validate_avatar
        self._scene_factory = scene_factory
        self.rooms = RoomRegistry(clock, limits=relay_limits, announce=self._announce)
        self._sessions: dict[str, AvatarSession] = {}
        self._scenes: dict[str, SceneManager] = {}
        self.relay_metrics = relay_metrics if relay_metrics is not None else RelayMetrics()
        #: Stage failures by (stage, kind): ("animation_data", "busy"), ("scene", "rejected") ...
        self.stage_errors: Counter[tuple[str, str]] = Counter()
        #: ``error`` messages sent to UEs, by code.
        self.error_replies: Counter[str] = Counter()

    # -- services -------------------------------------------------------------------------

    def services(self) -> dict[str, ServiceFactory]:
        return {METADATA: self._metadata, ANIMATION: self._animation, TRANSFER: self._transfer}

    def _metadata(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = MetadataService(session, channel)
        session.attach("metadata", channel)
        return service

    def _animation(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = AnimationService(session, channel)
        session.attach("animation", channel)
        return service

    def _transfer(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = TransferChannelService(session, channel)
        session.attach("transfer", channel)
        return service

    # -- sessions and rooms ---------------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def _session_for(self, channel: ChannelContext) -> AvatarSession:
        info = channel.info
        session = self._sessions.get(info.call_id)
        if session is None:
            name = room_name(info.request_uri)
            participant = self.rooms.join(name, info.identity)
            session = AvatarSession(self, info, participant)
            participant.attrs["session"] = session
            participant.on_overload = self._overloaded
            self._sessions[info.call_id] = session
            scene = self._scene_for(participant.room)
            try:
                patch = scene.add_participant(participant.id, name=info.identity, avatar_id=None)
            except SceneError as exc:  # e.g. room-full: the call goes on without a scene node
                log.warning(
                    "call %s: not placed in the scene of room %s: %s",
                    info.call_id,
                    name,
                    exc,
                    extra=session.log_extra,
                )
            else:
                self._scene_changed(participant.room, patch, scene.version)
            log.info(
                "call %s joined room %s as %s",
                info.call_id,
                name,
                participant.id,
                extra=session.log_extra,
            )
        return session

    def welcome(self, session: AvatarSession) -> None:
        """A session's metadata channel opened: tell it who is already there, and deliver
        the avatars they selected (D.2 for late joiners)."""
        for other in self.others(session):
            session.send(
                ParticipantJoined(
                    id=new_message_id(),
                    participant_id=other.id,
                    display_name=other.identity[:1024],
                    avatar_id=other.avatar_id,
                )
            )
            if other.avatar_id is not None:
                session.offer_avatar(other, other.avatar_id)

    def others(self, session: AvatarSession) -> Iterator[AvatarSession]:
        for participant in session.participant.room.others(session.participant):
            other = participant.attrs.get("session")
            if isinstance(other, AvatarSession):
                yield other

    def release(self, session: AvatarSession) -> None:
        if self._sessions.get(session.call_id) is not session:
            return
        del self._sessions[session.call_id]
        session.close()
        room = session.participant.room
        scene = self._scenes.get(room.name)
        session.participant.leave()
        if scene is not None:
            if len(room) == 0:
                del self._scenes[room.name]
            else:
                try:
                    patch = scene.remove_participant(session.id)
                except SceneError:
                    patch = []  # it never had a node (see _session_for)
                self._scene_changed(room, patch, scene.version)
        log.info("call %s left room %s", session.call_id, room.name, extra=session.log_extra)

    def _announce(self, room: Room, participant: Participant, what: str) -> None:
        message: ParticipantJoined | ParticipantLeft
        if what == "joined":
            message = ParticipantJoined(
                id=new_message_id(),
                participant_id=participant.id,
                display_name=participant.identity[:1024],
            )
        else:
            message = ParticipantLeft(id=new_message_id(), participant_id=participant.id)
        participant.publish_metadata(dump_message(message))

    def _overloaded(self, participant: Participant) -> None:
        session = participant.attrs.get("session")
        call = session.call_id if isinstance(session, AvatarSession) else "?"
        extra = session.log_extra if isinstance(session, AvatarSession) else {"call_id": call}
        log.warning(
            "call %s: metadata receiver overloaded; its queue was dropped", call, extra=extra
        )

    def avatar_selected(self, session: AvatarSession) -> None:
        log.info(
            "call %s selected avatar %s",
            session.call_id,
            session.avatar_id,
            extra={**session.log_extra, "avatar_id": session.avatar_id},
        )

    # -- capabilities ---------------------------------------------------------------------

    def capabilities(self, session: AvatarSession, hello: Hello) -> Capabilities:
        return Capabilities(
            id=new_message_id(),
            in_reply_to=hello.id,
            session_id=session.id,
            base_avatar_generation="ue",
            animation_data="network" if self.animation_source is not None else "ue",
            animation="ue",
            animation_profiles=(self.settings.profile,),
            avatar_formats=("application/vnd.arf+zip", "model/gltf-binary"),
            max_message_size=self.settings.max_metadata_size,
            max_transfer_size=self.settings.max_transfer_size,
        )

    # -- scenes (B, C) --------------------------------------------------------------------

    def _scene_for(self, room: Room) -> SceneManager:
        scene = self._scenes.get(room.name)
        if scene is None:
            scene = self._scene_factory(room.name)
            self._scenes[room.name] = scene
        return scene

    def scene_of(self, session: AvatarSession) -> SceneManager:
        return self._scene_for(session.participant.room)

    def scene_update(self, session: AvatarSession, message: SceneUpdate) -> None:
        scene = self.scene_of(session)
        operations = [op.model_dump(by_alias=True) for op in message.operations]
        try:
            version = scene.apply(operations, base_version=message.base_version, by=session.id)
        except SceneError as exc:
            self.stage_errors["scene", "rejected"] += 1
            session.reply_error(MetadataError(exc.code, str(exc), message.id))
            return
        # Fan out the patch as applied (participant paths resolved to node paths).
        applied = [op for _, patch in scene.history(message.base_version) or [] for op in patch]
        self._scene_changed(session.participant.room, applied, version, in_reply_to=message.id)

    def _scene_changed(
        self,
        room: Room,
        operations: list[dict[str, Any]],
        version: int,
        *,
        in_reply_to: str | None = None,
    ) -> None:
        if not operations:
            return
        update = SceneUpdated(
            id=new_message_id(),
            in_reply_to=in_reply_to,
            version=version,
            operations=tuple(PatchOperation.model_validate(op) for op in operations),
        )
        text = dump_message(update)
        for participant in room:
            if participant.metadata is not None:
                participant.metadata.offer(text)
