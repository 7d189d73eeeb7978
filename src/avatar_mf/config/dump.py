"""Writing a configuration back out: JSON, and TOML that :func:`load_config` reads back to an
equal configuration (written with tomlkit, which quotes and escapes keys and strings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.items import Table

from avatar_mf.config.sections import AppConfig, StageSettings

__all__ = ["dump_json", "dump_toml"]


def dump_json(config: AppConfig) -> str:
    """The configuration as indented JSON (unset optional settings as null)."""
    return config.model_dump_json(indent=2) + "\n"


def dump_toml(config: AppConfig) -> str:
    """The configuration as TOML that :func:`load_config` reads back to an equal config.

    Unset optional settings are written as comments (TOML has no null). Nested tables (stage
    tables, their options) follow their section's plain keys, as ``[section.key]`` tables.
    """
    document = tomlkit.document()
    for name, section in config:
        # A stage's options keep their TOML types (dates stay dates): not the JSON form.
        raw = {key: value.options for key, value in section if isinstance(value, StageSettings)}
        document.add(name, _table(section.model_dump(mode="json"), raw))
    return document.as_string()


def _table(values: Mapping[str, Any], options: Mapping[str, Mapping[str, Any]]) -> Table:
    table = tomlkit.table()
    nested = {key: value for key, value in values.items() if isinstance(value, dict)}
    for key, value in values.items():  # plain keys first: a [header] would take them
        if value is None:
            table.add(tomlkit.comment(f"{key} is unset"))
        elif key not in nested:
            table.add(key, value)
    for key, value in nested.items():
        if key in options:
            value = {**value, "options": dict(options[key])}
        table.add(key, value)
    return table
