"""The default scene manager: a glTF 2.0 JSON scene description, one node per participant.

TR 26.813 call flows B (the MF shares a scene description with the UEs) and C (a UE or the MF
triggers an update; the MF distributes it), in the spirit of MPEG-I Scene Description
(ISO/IEC 23090-14), whose documents are glTF 2.0 JSON. Updates are JSON Patch (RFC 6902,
:mod:`avatar_mf.stages.scene.patch`, the jsonpatch library with the MF's limits). Pure
state: no I/O, no clock; the MF carries the patches.

The document::

    {
      "asset": {"version": "2.0", "generator": "avatar-mf"},
      "scene": 0,
      "scenes": [{"name": <room>, "nodes": [<node index>, ...]}],
      "nodes": [
        {"name": <display name>, "translation": [x, y, z], "rotation": [x, y, z, w],
         "extras": {"participant": <id>, "avatarId": <id or null>, ...UE's own keys}},
        {"extras": {"vacant": true}},                  # a slot left by a participant
        ...
      ],
      "extras": {"participants": {<participant id>: <node index>, ...}}
    }

Choices:

- **Stable node indices.** glTF addresses nodes by array index, and removing an element would
  shift every later node (and every reference to it). So a participant keeps its node index
  for as long as it is in the room; when it leaves, its node becomes a vacant slot
  (``{"extras": {"vacant": true}}``, referenced by nothing) that the next participant to join
  reuses, lowest first. Vacant slots at the end of ``nodes`` are removed, so ``nodes`` never
  holds more than the most participants present at once. ``/extras/participants`` maps each
  participant id to its node index.
- **Participant-addressed paths.** A patch may write ``/participants/<id>/...`` (``<id>``
  escaped as an RFC 6901 reference token) instead of ``/nodes/<index>/...``: a UE updates
  its own position with ``{"op": "replace", "path": "/participants/<me>/translation",
  "value": [x, y, z]}`` without knowing its index. The MF resolves these paths before
  applying, and the patch it records and fans out (:meth:`GltfSceneManager.history`) holds
  the resolved ``/nodes/<index>`` paths, so every UE can apply it with any RFC 6902 library.
  The document never has a top-level ``participants`` member, so this is unambiguous.
- **No empty arrays.** glTF requires ``nodes`` and ``scene.nodes`` to be non-empty when
  present, so an empty room has neither; the first join adds them, the last leave removes
  them (the patches say so explicitly).
- **Versions, no rebase.** The scene starts at version 1; every patch that changes it adds 1
  (a patch that changes nothing, such as a repeated position, is accepted without a new
  version). A patch must be made against the current version: JSON Patch operations with
  array indices do not commute, so the MF does not rebase. A UE that gets
  ``version-conflict`` catches up with :meth:`~GltfSceneManager.history` (or the full
  document when the history no longer reaches back) and resends. The price: two UEs that
  move at the same moment conflict, one of them resends; continuous motion at frame rate
  belongs in the animation stream (TR 26.813 D.3), not in scene patches.
- **Authorization.** ``by`` is a participant id or ``"mf"``. The MF may change anything but
  membership (joins and leaves go through :meth:`~GltfSceneManager.add_participant` and
  :meth:`~GltfSceneManager.remove_participant`). A UE may ``test`` anything and write only
  its own node's ``translation``, ``rotation`` and ``extras`` members other than
  ``participant``, ``avatarId`` and ``vacant`` (the avatar in use is the MF's to authorize,
  TS 22.156). Anything else is ``forbidden``.
- **Validation after applying.** The patched document must still be a valid scene
  (:func:`validate_scene`): ``asset.version`` "2.0", every ``translation`` 3 finite numbers
  within :data:`MAX_COORDINATE` metres, every ``rotation`` a unit quaternion within
  :data:`ROTATION_TOLERANCE` (rejected, not normalised, so the patch fanned out is exactly
  the patch applied), names strings, references in range, every node at most
  :data:`MAX_NODE_SIZE` (a UE's ``extras`` stay small). Otherwise nothing is applied.
- **Membership in place.** A join, a leave or an avatar change touches one node, one entry of
  ``/scenes/0/nodes`` and one of ``/extras/participants``, and costs that much: the MF's own
  patch is applied to the document in place with only the changed node checked
  (:func:`~avatar_mf.stages.scene.patch.apply_in_place`), not by copying, re-validating and
  comparing the whole document as a UE's patch is. That is exact while the document has
  only the shape this module gives it, which a UE's patch cannot change; after the MF's own
  :meth:`~GltfSceneManager.apply` (which may add references to nodes, scenes, anything) and
  when the room could outgrow :data:`SCENE_LIMITS`, membership changes take the general path.
- **Placement.** A participant's seat depends only on its node index: rings around the
  origin on the floor (Y up, metres), 8 seats at 1.5 m, then 16 at 3 m, 32 at 6 m, ...,
  filled in bit-reversed order so that two participants sit opposite each other and four at
  right angles; each faces the centre (a glTF asset's front is +Z).

SceneError codes, and what the sender does about them:

- ``version-conflict``: the patch was made against another version: catch up, rebase, resend.
- ``forbidden``: ``by`` may not make this change (or is not in the room).
- ``invalid-patch``: not a valid RFC 6902 patch, or it does not apply (the message names the
  operation and the JSON Patch error code).
- ``test-failed``: a ``test`` operation failed: the sender's view is out of date.
- ``too-large``: past :data:`SCENE_LIMITS` (operations, size, depth).
- ``invalid-scene``: the result would not be a valid scene; nothing was applied.
- ``invalid-participant``, ``participant-exists``, ``unknown-participant``, ``room-full``:
  misuse of :meth:`~GltfSceneManager.add_participant` / ``remove_participant``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from avatar_mf.stages.scene import SceneError
from avatar_mf.stages.scene.patch import (
    JsonPatchError,
    Operation,
    PatchLimits,
    apply_in_place,
    apply_operations,
    copy_json,
    format_pointer,
    json_equal,
    json_size,
    parse_operations,
)

if TYPE_CHECKING:
    from avatar_mf.stages.scene import SceneManager

__all__ = [
    "HISTORY_LIMIT",
    "MAX_COORDINATE",
    "MAX_NODE_SIZE",
    "MF",
    "ROTATION_TOLERANCE",
    "SCENE_LIMITS",
    "GltfSceneManager",
    "seat_pose",
    "validate_scene",
]

MF: Final = "mf"
"""The ``by`` of changes the MF makes; no participant may have this id."""

PARTICIPANT_ALIAS: Final = "participants"
"""First reference token of participant-addressed paths: ``/participants/<id>/...``."""

HISTORY_LIMIT: Final = 256
"""How many versions back :meth:`GltfSceneManager.history` reaches by default."""

ROTATION_TOLERANCE: Final = 1e-3
"""How far a rotation's norm may be from 1 (the Khronos validator allows about 0.0077)."""

MAX_COORDINATE: Final = 1000.0
"""Largest absolute translation coordinate, metres."""

MAX_NODE_SIZE: Final = 4096
"""Largest node, in :class:`~avatar_mf.stages.scene.patch.PatchLimits` size units (bounds a UE's
``extras``)."""

SCENE_LIMITS: Final = PatchLimits(max_operations=256, max_depth=16, max_size=1_000_000)
"""Bounds on a scene patch and on the scene document."""

FIRST_RING_SEATS: Final = 8
FIRST_RING_RADIUS: Final = 1.5  # metres; each ring doubles both, so seats stay ~1.2 m apart

GENERATOR: Final = "avatar-mf"
VACANT_NODE: Final[dict[str, Any]] = {"extras": {"vacant": True}}
UE_TRANSFORM: Final = frozenset({"translation", "rotation"})
RESERVED_EXTRAS: Final = frozenset({"participant", "avatarId", "vacant"})

HistoryEntry = tuple[int, list[dict[str, Any]]]


def seat_pose(index: int) -> tuple[list[float], list[float]]:
    """(translation, rotation) of the seat for node ``index``: on a ring around the origin,
    facing the centre. Rounded to 6 decimals so that it is the same on every platform."""
    if index < 0:
        raise ValueError(f"no seat {index}")
    ring, first, seats = 0, 0, FIRST_RING_SEATS
    while index >= first + seats:
        first += seats
        seats *= 2
        ring += 1
    bits = seats.bit_length() - 1
    order = int(format(index - first, f"0{bits}b")[::-1], 2)  # bit reversal: spread out
    # Outer rings are turned by half a seat so nobody sits right behind someone.
    angle = 2 * math.pi * (order + (0.5 if ring else 0.0)) / seats
    radius = FIRST_RING_RADIUS * 2**ring
    # +Z (the asset's front) must point at the centre: yaw by angle + pi, kept in (-pi, pi]
    # so that w >= 0.
    yaw = angle + math.pi
    if yaw > math.pi:
        yaw -= 2 * math.pi
    translation = [radius * math.sin(angle), 0.0, radius * math.cos(angle)]
    rotation = [0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2)]
    return _rounded(translation), _rounded(rotation)


def _rounded(values: list[float]) -> list[float]:
    return [round(value, 6) + 0.0 for value in values]  # + 0.0 turns -0.0 into 0.0


# --- validation ------------------------------------------------------------------------------


def _invalid(message: str) -> SceneError:
    return SceneError("invalid-scene", message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_index(value: Any, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def _is_vacant(node: Any) -> bool:
    extras = node.get("extras") if isinstance(node, dict) else None
    return isinstance(extras, dict) and extras.get("vacant") is True


def _check_node(index: int, node: Any) -> None:
    where = f"/nodes/{index}"
    if not isinstance(node, dict):
        raise _invalid(f"{where} is not an object")
    if "name" in node and not isinstance(node["name"], str):
        raise _invalid(f"{where}/name is not a string")
    translation = node.get("translation")
    if translation is not None and not (
        isinstance(translation, list)
        and len(translation) == 3
        and all(_is_number(c) and abs(c) <= MAX_COORDINATE for c in translation)
    ):
        raise _invalid(f"{where}/translation is not 3 numbers within {MAX_COORDINATE} m")
    rotation = node.get("rotation")
    if rotation is not None:
        if not (
            isinstance(rotation, list) and len(rotation) == 4 and all(map(_is_number, rotation))
        ):
            raise _invalid(f"{where}/rotation is not 4 numbers")
        norm = math.sqrt(sum(c * c for c in rotation))
        if abs(norm - 1.0) > ROTATION_TOLERANCE:
            raise _invalid(f"{where}/rotation is not a unit quaternion (norm {norm:.6g})")
    scale = node.get("scale")
    if scale is not None and not (
        isinstance(scale, list) and len(scale) == 3 and all(map(_is_number, scale))
    ):
        raise _invalid(f"{where}/scale is not 3 numbers")
    if "extras" in node and not isinstance(node["extras"], dict):
        raise _invalid(f"{where}/extras is not an object")
    if json_size(node, SCENE_LIMITS) > MAX_NODE_SIZE:
        raise _invalid(f"{where} is larger than {MAX_NODE_SIZE} size units")


def _check_references(where: str, value: Any, nodes: list[Any]) -> list[int]:
    """A non-empty list of distinct indices of nodes that are not vacant."""
    if not isinstance(value, list) or not value:
        raise _invalid(f"{where} is not a non-empty array")
    for item in value:
        if not _is_index(item, len(nodes)):
            raise _invalid(f"{where}: {item!r} is not a node index")
        if _is_vacant(nodes[item]):
            raise _invalid(f"{where}: node {item} is a vacant slot")
    if len(set(value)) != len(value):
        raise _invalid(f"{where} names a node twice")
    return value


def validate_scene(document: Any) -> dict[str, int]:
    """Check that ``document`` is a scene of the shape this module keeps; the participant
    map (participant id -> node index). Raises SceneError ``invalid-scene``."""
    if not isinstance(document, dict):
        raise _invalid("the scene is not an object")
    if PARTICIPANT_ALIAS in document:
        raise _invalid(f"/{PARTICIPANT_ALIAS} is reserved for participant-addressed paths")
    asset = document.get("asset")
    if not isinstance(asset, dict) or asset.get("version") != "2.0":
        raise _invalid('/asset/version must be "2.0"')
    if "generator" in asset and not isinstance(asset["generator"], str):
        raise _invalid("/asset/generator is not a string")
    nodes = document.get("nodes", [])
    if not isinstance(nodes, list) or ("nodes" in document and not nodes):
        raise _invalid("/nodes is not a non-empty array")
    for index, node in enumerate(nodes):
        _check_node(index, node)
        if "children" in node:
            _check_references(f"/nodes/{index}/children", node["children"], nodes)
    scenes = document.get("scenes")
    if not isinstance(scenes, list) or not scenes:
        raise _invalid("/scenes is not a non-empty array")
    for number, scene in enumerate(scenes):
        if not isinstance(scene, dict):
            raise _invalid(f"/scenes/{number} is not an object")
        if "name" in scene and not isinstance(scene["name"], str):
            raise _invalid(f"/scenes/{number}/name is not a string")
        if "nodes" in scene:
            _check_references(f"/scenes/{number}/nodes", scene["nodes"], nodes)
    default = document.get("scene", 0)
    if not _is_index(default, len(scenes)):
        raise _invalid("/scene is not a scene index")
    visible = set(scenes[default].get("nodes", []))
    extras = document.get("extras", {})
    participants = extras.get("participants") if isinstance(extras, dict) else None
    if not isinstance(participants, dict):
        raise _invalid("/extras/participants is not an object")
    for participant, index in participants.items():
        where = f"/extras/participants/{format_pointer([participant])[1:]}"
        if participant in ("", MF) or not _is_index(index, len(nodes)):
            raise _invalid(f"{where}: not a participant and node index")
        node = nodes[index]
        node_extras = node.get("extras", {})
        if node_extras.get("participant") != participant:
            raise _invalid(f"{where}: node {index} is not that participant's")
        if not isinstance(node.get("name"), str):
            raise _invalid(f"/nodes/{index} has no name")
        if "translation" not in node or "rotation" not in node or "matrix" in node:
            raise _invalid(f"/nodes/{index} must have a translation and rotation, no matrix")
        avatar = node_extras.get("avatarId")
        if avatar is not None and not isinstance(avatar, str):
            raise _invalid(f"/nodes/{index}/extras/avatarId is not a string or null")
        if index not in visible:
            raise _invalid(f"/nodes/{index} is not in the scene")
    for index, node in enumerate(nodes):
        node_extras = node.get("extras", {})
        if "participant" in node_extras and (
            not isinstance(node_extras["participant"], str)
            or participants.get(node_extras["participant"]) != index
        ):
            raise _invalid(f"/nodes/{index}/extras/participant is not in /extras/participants")
    return dict(participants)


# --- the manager -----------------------------------------------------------------------------


def _patch_error(exc: JsonPatchError) -> SceneError:
    code = exc.code if exc.code in ("test-failed", "too-large") else "invalid-patch"
    return SceneError(code, str(exc))


class GltfSceneManager:
    """One room's scene (see the module docstring for the document and the rules).

    ``max_participants`` bounds the room; ``history_limit`` how many versions back
    :meth:`history` reaches."""

    def __init__(
        self, *, room: str = "", max_participants: int = 64, history_limit: int = HISTORY_LIMIT
    ) -> None:
        if max_participants < 1:
            raise ValueError("max_participants must be at least 1")
        if history_limit < 0:
            raise ValueError("history_limit must not be negative")
        self._room = str(room)
        self._max_participants = max_participants
        self._document: dict[str, Any] = {
            "asset": {"version": "2.0", "generator": GENERATOR},
            "scene": 0,
            "scenes": [{"name": self._room}],
            "extras": {"participants": {}},
        }
        self._participants = validate_scene(self._document)
        # Membership changes in place (see the module docstring) while this holds. A full
        # room stays within SCENE_LIMITS' size: each participant adds a node (at most
        # MAX_NODE_SIZE, and holding its id), a map entry (its id again) and a scene entry;
        # there are never more nodes than participants at once. The empty document is its
        # room name and less than 256 units of fixed members.
        bound = len(self._room) + 256 + max_participants * (2 * MAX_NODE_SIZE + 8)
        self._in_place = bound <= SCENE_LIMITS.max_size
        self._version = 1
        self._history: deque[tuple[int, tuple[Operation, ...]]] = deque(maxlen=history_limit)

    # -- reading --

    @property
    def version(self) -> int:
        return self._version

    @property
    def room(self) -> str:
        return self._room

    @property
    def participants(self) -> dict[str, int]:
        """Participant id -> node index (a copy)."""
        return dict(self._participants)

    def node_pointer(self, participant: str) -> str:
        """The JSON Pointer of ``participant``'s node, e.g. ``/nodes/3``."""
        return format_pointer(["nodes", str(self._node_of(participant))])

    def document(self) -> dict[str, Any]:
        """A copy of the current scene (version :attr:`version`)."""
        copy: dict[str, Any] = copy_json(self._document, SCENE_LIMITS)
        return copy

    def history(self, since_version: int) -> list[HistoryEntry] | None:
        """The patches after ``since_version`` as ``[(version, patch), ...]``, oldest first,
        each to be applied to the scene of the version before it; ``[]`` when
        ``since_version`` is current; None when the history no longer reaches back that far
        (send :meth:`document` instead). A version from the future is ``version-conflict``."""
        if since_version > self._version:
            raise SceneError(
                "version-conflict",
                f"version {since_version} is newer than the scene's ({self._version})",
            )
        if since_version == self._version:
            return []
        if not self._history or self._history[0][0] > since_version + 1:
            return None
        return [
            (version, [operation.to_json() for operation in operations])
            for version, operations in self._history
            if version > since_version
        ]

    # -- membership --

    def add_participant(
        self, participant: str, *, name: str, avatar_id: str | None
    ) -> list[dict[str, Any]]:
        """Give ``participant`` a node at its seat; the patch that did it (version + 1)."""
        if not isinstance(participant, str) or participant in ("", MF):
            raise SceneError("invalid-participant", f"{participant!r} cannot be a participant")
        if not isinstance(name, str) or not (avatar_id is None or isinstance(avatar_id, str)):
            raise SceneError("invalid-participant", "name must be a string, avatar_id a string")
        if participant in self._participants:
            raise SceneError("participant-exists", f"{participant!r} is already in the room")
        if len(self._participants) >= self._max_participants:
            raise SceneError(
                "room-full", f"the room holds at most {self._max_participants} participants"
            )
        nodes: list[Any] = self._document.get("nodes", [])
        index = next((i for i, node in enumerate(nodes) if _is_vacant(node)), len(nodes))
        translation, rotation = seat_pose(index)
        node = {
            "name": name,
            "translation": translation,
            "rotation": rotation,
            "extras": {"participant": participant, "avatarId": avatar_id},
        }
        operations = [
            Operation("add", ("nodes",), value=[node])
            if not nodes
            else Operation("add", ("nodes", "-"), value=node)
            if index == len(nodes)
            else Operation("replace", ("nodes", str(index)), value=node),
            Operation("add", ("scenes", "0", "nodes"), value=[index])
            if "nodes" not in self._document["scenes"][0]
            else Operation("add", ("scenes", "0", "nodes", "-"), value=index),
            Operation("add", ("extras", "participants", participant), value=index),
        ]
        if not self._in_place:
            return self._commit(operations, membership=True)
        _check_node(index, node)
        self._participants[participant] = index
        return self._commit_in_place(operations)

    def set_avatar(self, participant: str, avatar_id: str | None) -> list[dict[str, Any]]:
        """Record in ``participant``'s node the avatar it uses (``extras.avatarId``, a path
        only the MF writes); the patch that did it, empty when it was already so."""
        if not (avatar_id is None or isinstance(avatar_id, str)):
            raise SceneError("invalid-participant", "avatar_id must be a string or null")
        index = self._node_of(participant)
        pointer = ("nodes", str(index), "extras", "avatarId")
        operations = [Operation("replace", pointer, value=avatar_id)]
        node = self._document["nodes"][index]
        if not self._in_place or "avatarId" not in node["extras"]:
            return self._commit(operations, membership=True)
        if json_equal(node["extras"]["avatarId"], avatar_id):
            return []
        _check_node(index, {**node, "extras": {**node["extras"], "avatarId": avatar_id}})
        return self._commit_in_place(operations)

    def remove_participant(self, participant: str) -> list[dict[str, Any]]:
        """Free ``participant``'s node; the patch that did it (version + 1)."""
        index = self._node_of(participant)
        visible: list[int] = self._document["scenes"][0]["nodes"]
        nodes: list[Any] = self._document["nodes"]
        operations = [
            Operation("remove", ("scenes", "0", "nodes"))
            if len(visible) == 1
            else Operation("remove", ("scenes", "0", "nodes", str(visible.index(index)))),
            Operation("remove", ("extras", "participants", participant)),
        ]
        if index < len(nodes) - 1:
            operations.append(Operation("replace", ("nodes", str(index)), value=VACANT_NODE))
        else:  # the last node: drop it and the vacant slots before it
            keep = index
            while keep > 0 and _is_vacant(nodes[keep - 1]):
                keep -= 1
            if keep == 0:
                operations.append(Operation("remove", ("nodes",)))
            else:
                operations += [
                    Operation("remove", ("nodes", str(i))) for i in range(index, keep - 1, -1)
                ]
        if not self._in_place:
            return self._commit(operations, membership=True)
        del self._participants[participant]
        return self._commit_in_place(operations)

    # -- updates --

    def apply(self, operations: list[dict[str, Any]], *, base_version: int, by: str) -> int:
        """Apply a JSON Patch made against ``base_version`` by participant ``by`` (or
        ``"mf"``); the new version (unchanged if the patch changed nothing). The resolved
        patch to fan out is ``history(base_version)``. Raises SceneError, nothing applied."""
        if by != MF and by not in self._participants:
            raise SceneError("forbidden", f"{by!r} is not in the room")
        if base_version != self._version:
            raise SceneError(
                "version-conflict",
                f"the patch is against version {base_version}, the scene is at "
                f"{self._version}: catch up and resend",
            )
        try:
            parsed = parse_operations(operations, SCENE_LIMITS)
        except JsonPatchError as exc:
            raise _patch_error(exc) from exc
        resolved = [self._resolve(i, operation) for i, operation in enumerate(parsed)]
        if by != MF:
            own = str(self._participants[by])
            for i, operation in enumerate(resolved):
                self._authorize(i, operation, own)
        self._commit(resolved, membership=False)
        if by == MF:
            self._in_place = False  # it may have added references, scenes: see the docstring
        return self._version

    # -- internals --

    def _node_of(self, participant: str) -> int:
        if participant not in self._participants:
            raise SceneError("unknown-participant", f"{participant!r} is not in the room")
        return self._participants[participant]

    def _resolve(self, op_index: int, operation: Operation) -> Operation:
        """``/participants/<id>/...`` -> ``/nodes/<index>/...`` in path and from."""

        def resolve(tokens: tuple[str, ...]) -> tuple[str, ...]:
            if len(tokens) < 2 or tokens[0] != PARTICIPANT_ALIAS:
                return tokens
            if tokens[1] not in self._participants:
                raise SceneError(
                    "invalid-patch",
                    f"operation {op_index}: path-not-found: no participant {tokens[1]!r}",
                )
            return ("nodes", str(self._participants[tokens[1]]), *tokens[2:])

        source = None if operation.from_ is None else resolve(operation.from_)
        return Operation(operation.op, resolve(operation.path), source, operation.value)

    @staticmethod
    def _authorize(op_index: int, operation: Operation, own: str) -> None:
        def writable(tokens: Sequence[str]) -> bool:
            if len(tokens) < 3 or tokens[0] != "nodes" or tokens[1] != own:
                return False
            if tokens[2] in UE_TRANSFORM:
                return True
            return tokens[2] == "extras" and len(tokens) > 3 and tokens[3] not in RESERVED_EXTRAS

        if operation.op == "test":
            return
        targets = [operation.path]
        if operation.op == "move" and operation.from_ is not None:
            targets.append(operation.from_)
        for tokens in targets:
            if not writable(tokens):
                raise SceneError(
                    "forbidden",
                    f"operation {op_index}: a participant may write only its own node's "
                    f"translation, rotation and extras, not {format_pointer(tokens)!r}",
                )

    def _commit(self, operations: list[Operation], *, membership: bool) -> list[dict[str, Any]]:
        """Apply, validate, record; the patch as JSON. Nothing changes on any error."""
        try:
            document = apply_operations(self._document, operations, SCENE_LIMITS)
        except JsonPatchError as exc:
            raise _patch_error(exc) from exc
        participants = validate_scene(document)
        if not membership and participants != self._participants:
            raise SceneError(
                "forbidden",
                "participants join and leave through add_participant and remove_participant",
            )
        if json_equal(document, self._document):
            return []
        self._document = document
        self._participants = participants
        self._version += 1
        self._history.append((self._version, tuple(operations)))
        return [operation.to_json() for operation in operations]

    def _commit_in_place(self, operations: list[Operation]) -> list[dict[str, Any]]:
        """Apply the MF's own membership patch in place (checked by the caller); record it;
        the patch as JSON."""
        apply_in_place(self._document, operations)
        self._version += 1
        self._history.append((self._version, tuple(operations)))
        return [operation.to_json() for operation in operations]


if TYPE_CHECKING:

    def _implements_the_protocol(manager: GltfSceneManager) -> SceneManager:
        return manager  # mypy checks that GltfSceneManager is a SceneManager
