"""Finding stage implementations by name: built-ins and entry points.

Each stage kind has an entry point group ``avatar_mf.stages.<kind>`` whose entries name a
factory (a class or function taking no required arguments besides keyword options) that gives
a :class:`~avatar_mf.pipeline.stage.StageProvider`. The product declares its own defaults in
``pyproject.toml``; a lab package declares its own in its ``pyproject.toml`` and selects it in
``[pipeline.<kind>]`` by name, with an ``options`` table (docs/operations.md has an example).

The entry point scan is cached per process (the one process-wide cache of this layer, kept
because a scan reads every installed package's metadata); :func:`refresh` forgets it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from avatar_mf.pipeline.stage import StageKind, StageProvider

KINDS: tuple[str, ...] = tuple(kind.value for kind in StageKind)


class StageNotFound(LookupError):
    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        super().__init__(
            f"no {kind} stage named {name!r}; available: {', '.join(available) or 'none'}"
        )
        self.kind = kind
        self.name = name
        self.available = available


def group(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r} (one of {', '.join(KINDS)})")
    return f"avatar_mf.stages.{kind}"


@functools.cache
def _entries(kind: str) -> dict[str, EntryPoint]:
    # Scanning entry points reads every installed package's metadata (milliseconds): once per
    # process and kind. Call refresh() after installing a stage package at run time.
    return {ep.name: ep for ep in entry_points(group=group(kind))}


def refresh() -> None:
    """Forget what was found, so the next lookup scans the installed packages again."""
    _entries.cache_clear()
    _load.cache_clear()


def available(kind: str) -> dict[str, str]:
    """Names of the implementations of ``kind`` and the object each entry point names."""
    return {name: ep.value for name, ep in _entries(kind).items()}


@functools.cache
def _load(kind: str, name: str) -> Callable[..., Any]:
    ep = _entries(kind).get(name)
    if ep is None:
        raise StageNotFound(kind, name, sorted(available(kind)))
    factory = ep.load()
    if not callable(factory):
        raise TypeError(f"{kind} stage {name!r} ({ep.value}) is not callable")
    return factory  # type: ignore[no-any-return]


def load_factory(kind: str, name: str) -> Callable[..., Any]:
    """The factory of the ``name`` implementation of ``kind`` (resolved once per process)."""
    return _load(kind, name)


class NotAStage(TypeError):
    """An entry point's factory gave something that is not a stage provider."""


def create(kind: str, name: str, options: Mapping[str, Any] | None = None) -> StageProvider:
    """The provider of the ``name`` implementation of ``kind``, built with ``options``.

    Raises :class:`StageNotFound`, :class:`NotAStage`, or what the factory raises for bad
    options (TypeError, ValueError): the node reports it at start-up.
    """
    provider = load_factory(kind, name)(**dict(options or {}))
    if not isinstance(provider, StageProvider):
        raise NotAStage(
            f"{kind} stage {name!r} gave a {type(provider).__name__}, which has no open(context)"
        )
    return provider
