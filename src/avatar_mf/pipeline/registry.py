"""Finding stage implementations by name: built-ins and entry points.

Each stage kind has an entry point group ``avatar_mf.stages.<kind>`` whose entries name a
factory (a class or function taking no required arguments besides keyword options). The
product declares its own defaults in ``pyproject.toml``; a lab package declares its own in
its ``pyproject.toml`` and selects it in ``[pipeline]`` by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

KINDS = ("base_avatar", "animation_data", "animation", "scene")


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


def create(kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
    """An instance of the ``name`` implementation of ``kind``, built with ``options``."""
    return load_factory(kind, name)(**dict(options or {}))
