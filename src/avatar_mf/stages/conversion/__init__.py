"""Format conversion (TR 26.813 section 4 interoperability): the MF as the gateway.

The ``converter`` stage kind. :class:`StandardConverters` (entry point ``standard`` of
``avatar_mf.stages.converter``) gives every session a :class:`~.stage.ConversionStage`:

* animation streams are converted per receiver through the common format (ARKit-52), between
  the profiles of :mod:`.profiles` (ARKit-52, the 15 visemes, VRM 1.0 presets, FACS AUs), by
  the stateful :class:`~.animation.StreamConverter`;
* per-audience expression filters (:mod:`.filters`) set by the avatar's owner during the call
  or by operator policy (``groups`` and ``policy`` options) are applied on the same path;
* base avatars are converted to a format the receiver accepts (:mod:`.avatars`), in the
  worker pool, cached per (avatar, target format).

Options (``[pipeline.converter.options]``): ``groups`` (name -> identity patterns, fnmatch
style: ``class = ["sip:student-*@school.example"]``), ``policy`` (a list of
``{audience = [...], filter = {...}}``: the operator's filters, under the owner's),
``cache_entries`` and ``cache_bytes`` (converted avatars kept).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from avatar_mf.avatar.check import COMMON_CONTENT_TYPE, COMMON_PROFILE
from avatar_mf.avatar.vrm import Converted
from avatar_mf.pipeline.stage import BlockingRunner, StageContext
from avatar_mf.stages.conversion.avatars import WRITABLE_FORMATS, AvatarConversions
from avatar_mf.stages.conversion.filters import ExpressionFilter, FilterError, parse_filter
from avatar_mf.stages.conversion.profiles import LOSSES, PROFILE_SETS
from avatar_mf.stages.conversion.stage import ConversionStage, RoomTable

__all__ = ["AVATAR_LOSSES", "StandardConverters"]

#: What converting a base avatar from the common format to each format loses.
AVATAR_LOSSES: Mapping[str, str] = {
    "model/vrm": "head-only skeleton (VRM's limb and spine bones absent); expressions limited "
    "to the 18 presets",
    "model/gltf-binary": "arf.json (ids, animation profile) dropped; the GLB inside is kept",
}


class StandardConverters:
    """The node's converters: one room table, one avatar cache, the operator's filters."""

    #: Animation profiles this stage converts between (the common one first).
    profiles: tuple[str, ...] = tuple(PROFILE_SETS)
    #: Base avatar formats it writes (the common one first).
    formats: tuple[str, ...] = WRITABLE_FORMATS

    def __init__(
        self,
        *,
        groups: Mapping[str, Sequence[str]] | None = None,
        policy: Sequence[Mapping[str, Any]] = (),
        cache_entries: int = 32,
        cache_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.groups = {name: tuple(patterns) for name, patterns in (groups or {}).items()}
        rules: dict[str, ExpressionFilter] = {}
        for k, entry in enumerate(policy):
            audience, rule = entry.get("audience"), entry.get("filter")
            if not isinstance(audience, list | tuple) or not isinstance(rule, Mapping):
                raise ValueError(f"policy[{k}]: needs audience (a list) and filter (a table)")
            try:
                parsed = parse_filter(rule)
            except FilterError as exc:
                raise ValueError(f"policy[{k}]: {exc}") from exc
            for key in audience:
                if str(key).startswith("group:") and str(key)[6:] not in self.groups:
                    raise ValueError(f"policy[{k}]: no group {str(key)[6:]!r} in groups")
                rules[str(key)] = parsed
        self.policy = rules
        self.table = RoomTable()
        self.avatars = AvatarConversions(cache_entries=cache_entries, cache_bytes=cache_bytes)

    def open(self, context: StageContext) -> ConversionStage:
        return ConversionStage(context, self.table, groups=self.groups, policy=self.policy)

    async def convert_avatar(
        self,
        executor: BlockingRunner,
        key: str,
        data: bytes,
        content_type: str,
        accepted: Sequence[str],
        *,
        avatar_id: str,
        name: str = "avatar",
    ) -> Converted | None:
        """``data`` in a format a receiver accepting ``accepted`` can use, or None when the
        stored one will do (or none it accepts can be written)."""
        target = self.avatars.target_for(data, content_type, accepted)
        if target is None:
            return None
        return await self.avatars.convert(
            executor, key, data, content_type, target, avatar_id=avatar_id, name=name
        )

    def losses(
        self, profiles: Sequence[str], formats: Sequence[str]
    ) -> list[tuple[str, str, str, str]]:
        """(kind, from, to, what is lost) of the lossy conversions a session that accepts
        ``profiles`` and ``formats`` can get: the common format to each of them."""
        notes = [("animation", COMMON_PROFILE, p, LOSSES[p]) for p in profiles if p in LOSSES]
        notes += [
            ("avatar", COMMON_CONTENT_TYPE, f, AVATAR_LOSSES[f])
            for f in formats
            if f in AVATAR_LOSSES
        ]
        return notes
