"""The node's pipeline stages, built once at start-up from ``[pipeline.<kind>]``.

Each configured kind names a stage found by entry point (:mod:`avatar_mf.pipeline.registry`)
and its options table; the factory is called once here, so a bad name or bad options stop the
node at start-up with a message naming the setting (never at the first call). The built-in
upload validation runs first in every pipeline; the animation-data stage is optional (a node
without espeak-ng still relays).
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


def build_stages(
    settings: Mapping[str, StageSetting], *, validator: AvatarValidator
) -> list[ConfiguredStage]:
    """The stages of every session's pipeline, in pipeline order (``settings`` by kind)."""
    stages = [ConfiguredStage("avatar_validation", "builtin", UploadValidation(validator))]
    for kind in StageKind:
        setting = settings.get(kind.value)
        if setting is None or not setting.name:
            continue
        try:
            provider = registry.create(kind.value, setting.name, setting.options)
        except Exception as exc:
            if kind.value in OPTIONAL:  # a missing engine degrades to relay-only, loudly
                log.warning(
                    "%s stage %r unavailable, that function is off: %s", kind, setting.name, exc
                )
                continue
            raise StageLoadError(f"pipeline.{kind.value}: {setting.name!r}: {exc}") from exc
        log.info("pipeline: %s stage %r (%s)", kind, setting.name, options_repr(setting.options))
        stages.append(ConfiguredStage(kind.value, setting.name, provider))
    return stages


def stage_settings(pipeline: Any) -> dict[str, StageSetting]:
    """The ``[pipeline.<kind>]`` settings of a config's ``[pipeline]`` section, by kind."""
    return {kind.value: getattr(pipeline, kind.value) for kind in StageKind}
