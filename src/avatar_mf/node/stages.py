"""The node's pipeline stages, built once at start-up from ``[pipeline.<kind>]``.

Each configured kind names a stage found by entry point (:mod:`avatar_mf.pipeline.registry`)
and its options table; the factory is called once here, so a bad name or bad options stop the
node at start-up with a message naming the setting (never at the first call). The built-in
upload validation runs first in every pipeline; the animation-data stages are optional (a node
without espeak-ng still relays).

``[pipeline.animation_data]`` may name several stages (``names``, each with its options
table): each is built here, one that fails is logged and left out, and two that take the same
animation input (the ``animation_inputs`` their providers declare) stop the node, since a
session's input can go to one stage only. Which of them a session uses is the negotiation's
(:mod:`avatar_mf.avatar_session.selection`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from avatar_mf.avatar_session.hub import ConfiguredStage
from avatar_mf.pipeline import registry
from avatar_mf.pipeline.stage import StageKind, options_repr
from avatar_mf.stages.base_avatar.validation import AvatarValidator, UploadValidation

log = logging.getLogger(__name__)


class StageSetting(Protocol):
    """``[pipeline.<kind>]``: a stage's name (empty: the function is off) and options."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


#: Kinds whose stage may fail to load without stopping the node (an engine not installed).
OPTIONAL = frozenset({StageKind.ANIMATION_DATA.value})


class StageLoadError(ValueError):
    """A configured stage cannot be built; the message names the setting."""


def _entries(setting: StageSetting) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """(name, options) of every stage a table configures: one, or a list (``names``)."""
    entries = getattr(setting, "entries", None)
    if callable(entries):
        return tuple(entries())
    return ((setting.name, setting.options),) if setting.name else ()


def _setting_key(kind: str, setting: StageSetting) -> str:
    return f"pipeline.{kind}.names" if getattr(setting, "names", ()) else f"pipeline.{kind}"


def build_stages(
    settings: Mapping[str, StageSetting], *, validator: AvatarValidator
) -> list[ConfiguredStage]:
    """The stages of every session's pipeline, in pipeline order (``settings`` by kind)."""
    stages = [ConfiguredStage("avatar_validation", "builtin", UploadValidation(validator))]
    for kind in StageKind:
        setting = settings.get(kind.value)
        if setting is None:
            continue
        key = _setting_key(kind.value, setting)
        taken: dict[str, str] = {}  # animation input -> the stage that takes it
        for name, options in _entries(setting):
            try:
                provider = registry.create(kind.value, name, options)
            except Exception as exc:
                if kind.value in OPTIONAL:  # a missing engine degrades to relay-only, loudly
                    log.warning("%s: %s stage %r unavailable, left out: %s", key, kind, name, exc)
                    continue
                raise StageLoadError(f"{key}: {name!r}: {exc}") from exc
            for used in getattr(provider, "animation_inputs", ()):
                if used in taken:
                    raise StageLoadError(
                        f"{key}: {taken[used]!r} and {name!r} both take the {used} input; a "
                        "session's input goes to one stage: list one of them"
                    )
                taken[used] = name
            log.info("pipeline: %s stage %r (%s)", kind, name, options_repr(options))
            stages.append(ConfiguredStage(kind.value, name, provider))
    return stages


def stage_settings(pipeline: Any) -> dict[str, StageSetting]:
    """The ``[pipeline.<kind>]`` settings of a config's ``[pipeline]`` section, by kind."""
    return {kind.value: getattr(pipeline, kind.value) for kind in StageKind}
