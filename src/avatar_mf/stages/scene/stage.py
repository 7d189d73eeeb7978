"""The scene stage: one scene per room, shared by the sessions of its participants (B, C).

:class:`GltfScenes` (entry point ``gltf``) is the node's provider: it keeps a
:class:`~.gltf_scene.GltfSceneManager` per room while some session of the room is open, and
drops it with the last one. Each session's :class:`SceneStage` turns the session's frames into
scene changes: its participant joining and leaving add and remove its node, a UE's JSON Patch
is applied against its base version, and a query returns the document. Every change comes out
as a :class:`~avatar_mf.pipeline.frames.SceneFrame` (the patch as applied, participant paths
resolved to node paths), which the session fans out to the whole room.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from avatar_mf.pipeline.frames import (
    AvatarInUse,
    Frame,
    ParticipantJoined,
    ParticipantLeft,
    SceneFrame,
    ScenePatchFrame,
    SceneQuery,
    SceneSnapshot,
)
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.scene import SceneError, SceneManager
from avatar_mf.stages.scene.gltf_scene import GltfSceneManager

log = logging.getLogger(__name__)


class RoomScenes:
    """A provider of scene stages: the scene of each room that has open sessions."""

    def __init__(self, factory: Callable[[str], SceneManager]) -> None:
        self._factory = factory
        self._scenes: dict[str, SceneManager] = {}
        self._open: dict[str, int] = {}

    def open(self, context: StageContext) -> SceneStage:
        self._open[context.room] = self._open.get(context.room, 0) + 1
        return SceneStage(self, context)

    def scene(self, room: str) -> SceneManager:
        scene = self._scenes.get(room)
        if scene is None:
            scene = self._factory(room)
            self._scenes[room] = scene
        return scene

    def release(self, room: str) -> None:
        left = self._open.get(room, 0) - 1
        if left > 0:
            self._open[room] = left
        else:
            self._open.pop(room, None)
            self._scenes.pop(room, None)

    @property
    def rooms(self) -> int:
        """Rooms with a scene now."""
        return len(self._scenes)


class GltfScenes(RoomScenes):
    """The default (entry point ``gltf``): a glTF-based scene per room.

    Options (``[pipeline.scene.options]``) go to each room's :class:`GltfSceneManager`
    (``max_participants``, ``history_limit``); they are checked at start-up.
    """

    def __init__(self, **options: Any) -> None:
        GltfSceneManager(room="", **options)
        super().__init__(lambda room: GltfSceneManager(room=room, **options))


class SceneStage(StageBase):
    accepts = (ParticipantJoined, ParticipantLeft, AvatarInUse, ScenePatchFrame, SceneQuery)

    def __init__(self, scenes: RoomScenes, context: StageContext) -> None:
        self._scenes = scenes
        self._context = context
        self._released = False

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        scene = self._scenes.scene(self._context.room)
        if isinstance(frame, SceneQuery):
            yield SceneSnapshot(
                frame.participant, scene.version, scene.document(), message_id=frame.message_id
            )
        elif isinstance(frame, ScenePatchFrame):
            try:
                version = scene.apply(
                    list(frame.operations), base_version=frame.base_version, by=frame.participant
                )
            except SceneError as exc:
                raise StageFailure(exc.code, str(exc), rejected=True) from exc
            # The patch as applied (participant paths resolved to node paths).
            history = scene.history(frame.base_version) or []
            applied = tuple(op for _, patch in history for op in patch)
            yield SceneFrame(frame.participant, version, applied, message_id=frame.message_id)
        elif isinstance(frame, ParticipantJoined):
            try:
                patch = scene.add_participant(
                    frame.participant, name=frame.display_name, avatar_id=frame.avatar_id
                )
            except SceneError as exc:  # e.g. room-full: the call goes on without a scene node
                log.warning(
                    "not placed in the scene of room %s: %s",
                    self._context.room,
                    exc,
                    extra=dict(self._context.log_extra),
                )
                return
            yield SceneFrame(frame.participant, scene.version, tuple(patch), reason="joined")
        elif isinstance(frame, AvatarInUse):
            try:
                patch = scene.set_avatar(frame.participant, frame.avatar_id)
            except SceneError:
                return  # no node (room full when it joined)
            if patch:
                yield SceneFrame(frame.participant, scene.version, tuple(patch), reason="avatar")
        elif isinstance(frame, ParticipantLeft):
            try:
                patch = scene.remove_participant(frame.participant)
            except SceneError:
                return  # it never had a node (room full when it joined)
            yield SceneFrame(frame.participant, scene.version, tuple(patch), reason="left")

    async def teardown(self) -> None:
        if not self._released:
            self._released = True
            self._scenes.release(self._context.room)
