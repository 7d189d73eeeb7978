"""The settings catalogue: every setting with its environment variable, type, default and
meaning, read from the section models (the source of docs/operations.md's settings table)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types

from avatar_mf.config.sections import SECTIONS, iter_setting_fields

__all__ = ["ENV_PREFIX", "SettingInfo", "env_var_name", "iter_settings"]

#: Prefix of every environment override.
ENV_PREFIX = "AVATAR_MF_"


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One setting, for generated documentation and tests."""

    section: str
    key: str
    """The key within the section; dotted for a key of a nested table (``scene.name``)."""
    type_label: str
    """Human-readable type with its bounds, e.g. ``integer, 1..65535``."""
    default: object
    """The default as it would appear in JSON (None when unset by default)."""
    description: str

    @property
    def path(self) -> tuple[str, ...]:
        """Section, then key, then the keys of nested tables: ``("pipeline", "scene", "name")``."""
        return (self.section, *self.key.split("."))

    @property
    def key_path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env_var(self) -> str:
        return env_var_name(self.section, self.key)


def env_var_name(section: str, key: str) -> str:
    """The environment variable overriding ``section.key``, e.g. ``AVATAR_MF_SIP__PORT``; a
    double underscore also separates nested keys: ``AVATAR_MF_PIPELINE__SCENE__NAME``."""
    return f"{ENV_PREFIX}{section.upper()}__{key.upper().replace('.', '__')}"


def iter_settings() -> Iterator[SettingInfo]:
    """Every setting, section by section, in declaration order; the keys of a nested table
    (``[pipeline.scene]``) are settings of their own, described after the table's meaning."""
    defaults = {name: model().model_dump(mode="json") for name, model in SECTIONS.items()}
    for path, field in iter_setting_fields():
        default: Any = defaults
        for part in path:
            default = default[part]
        description = field.description or ""
        if len(path) > 2:
            owner = SECTIONS[path[0]]
            for part in path[1:-1]:
                table = owner.model_fields[part]
                owner = typing.cast(Any, table.annotation)
            if path[-1] == next(iter(owner.model_fields)):  # the table's meaning, once
                description = f"{table.description} {description}"
        yield SettingInfo(
            section=path[0],
            key=".".join(path[1:]),
            type_label=_type_label(field.annotation, field.metadata),
            default=default,
            description=" ".join(description.split()),
        )


def _type_label(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type_label(args[0], [*args[1:], *metadata])
    if set(args) == {IPv4Network, IPv6Network}:
        return "CIDR network"
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        label = " or ".join(_type_label(a) for a in inner)
        return f"{label} (optional)" if len(inner) < len(args) else label
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is tuple:
        return f"list of {_type_label(args[0])}"
    if origin in (Mapping, dict):
        return f"table of {_type_label(args[0])} to {_type_label(args[1])}"
    names: dict[Any, str] = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        Path: "path",
        Any: "any value",
    }
    label = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    return f"{label}, {bounds}" if bounds else label


def _bounds(metadata: Sequence[Any]) -> str:
    low: tuple[str, object] | None = None
    high: tuple[str, object] | None = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = (">=", item.ge)
        elif isinstance(item, annotated_types.Gt):
            low = (">", item.gt)
        elif isinstance(item, annotated_types.Le):
            high = ("<=", item.le)
        elif isinstance(item, annotated_types.Lt):
            high = ("<", item.lt)
    if low is not None and high is not None and low[0] == ">=" and high[0] == "<=":
        return f"{low[1]}..{high[1]}"
    return ", ".join(f"{op} {bound}" for op, bound in filter(None, (low, high)))
