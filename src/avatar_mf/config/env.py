"""Environment overrides: ``AVATAR_MF_<SECTION>__<KEY>`` variables, turned into setting values.

A double underscore separates the section from the key, and the keys of a nested table
(``AVATAR_MF_PIPELINE__SCENE__NAME``); names are case-insensitive after the prefix. The
settings' types are strict (a file's ``port = 5060.0`` is an error), so a variable's text is
read here as its setting's type: ``5070`` for an integer, ``0.5`` or ``1`` for a number,
``true``/``false`` for a boolean; other text is left as it is, for the model to reject with
its usual message. Lists are given comma-separated (``udp,tcp``) or as a JSON/TOML array;
tables (``log.modules``, a stage's ``options``) as JSON, a TOML inline table
or ``name=VALUE,...``; an empty value clears an optional setting. A variable with the prefix
that names no setting is a problem: a typo must not be silently ignored.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from avatar_mf.config.catalogue import ENV_PREFIX, env_var_name
from avatar_mf.config.problems import ConfigProblem
from avatar_mf.config.sections import SECTIONS, Section, iter_setting_fields, table_model

__all__ = ["EnvOverride", "read_env_overrides"]


@dataclass(frozen=True, slots=True)
class EnvOverride:
    """One setting given in the environment."""

    path: tuple[str, ...]
    """Where it goes: ``("sip", "port")``, ``("pipeline", "scene", "name")``."""
    value: object
    """The value for the model to validate (lists and tables parsed, scalars as strings)."""
    variable: str
    """The variable's name as written, e.g. ``AVATAR_MF_SIP__PORT``."""


def read_env_overrides(
    environ: Mapping[str, str],
) -> tuple[list[EnvOverride], list[ConfigProblem]]:
    """The ``AVATAR_MF_*`` variables of ``environ`` as overrides, in name order, and the
    problems of those that name no setting or hold a value of the wrong shape."""
    settings = {
        env_var_name(path[0], ".".join(path[1:])): (path, field.annotation)
        for path, field in iter_setting_fields()
    }
    overrides: list[EnvOverride] = []
    problems: list[ConfigProblem] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        target = settings.get(name.upper())
        if target is None:
            problems.append(_unknown_variable(name, list(settings)))
            continue
        path, annotation = target
        try:
            value = _parse_env_value(environ[name], annotation)
        except ValueError as exc:
            problems.append(ConfigProblem(".".join(path), str(exc), f"env {name}"))
            continue
        overrides.append(EnvOverride(path, value, name))
    return overrides, problems


def _unknown_variable(name: str, known: list[str]) -> ConfigProblem:
    message = f"unknown variable: {ENV_PREFIX}* variables must name a setting as "
    message += f"{ENV_PREFIX}<SECTION>__<KEY> (__<KEY> again for a key of a nested table)"
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]}?)"
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    named = all(parts) and (len(parts) == 2 or (len(parts) > 2 and _is_table(parts[:-1])))
    return ConfigProblem(".".join(parts) if named else "", message, f"env {name}")


def _is_table(path: list[str]) -> bool:
    """Whether ``path`` (section, key, ...: two parts or more) names a nested table."""
    model: type[Section] | None = SECTIONS.get(path[0])
    for key in path[1:]:
        if model is None or key not in model.model_fields:
            return False
        model = table_model(model.model_fields[key])
    return model is not None


def _annotation_shape(annotation: Any) -> tuple[Literal["scalar", "list", "table"], bool]:
    """(shape, optional) of a field annotation, looking through Annotated and Optional."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args:
            optional = True
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return "scalar", optional
            annotation = inner[0]
        else:
            break
    if origin in (tuple, list):
        return "list", optional
    if origin in (Mapping, dict):
        return "table", optional
    return "scalar", optional


def _parse_env_value(raw: str, annotation: Any) -> object:
    """Turn an environment string into the value the field's validator expects.

    Scalars are read as the setting's type (:func:`_typed_scalar`); lists and tables are
    parsed here. Raises ValueError with a message for the operator.
    """
    shape, optional = _annotation_shape(annotation)
    text = raw.strip()
    if optional and text == "":
        return None
    if shape == "list":
        if text.startswith("["):
            return _parse_structured(text, list, "a JSON or TOML array")
        if text == "":
            return []
        item_type = _element_type(annotation)
        return [_typed_scalar(item.strip(), item_type) for item in text.split(",")]
    if shape == "table":
        if text.startswith("{"):
            return _parse_structured(text, dict, "a JSON object or TOML inline table")
        table: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"expected name=VALUE pairs, a JSON object or a TOML inline table "
                    f"(got {json.dumps(raw)})"
                )
            table[name.strip()] = value.strip()
        return table
    return _typed_scalar(raw, _base_type(annotation))


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _typed_scalar(raw: str, kind: object) -> object:
    """``raw`` as an int, float or bool when the setting is one and the text spells one;
    anything else unchanged (a strict setting then rejects it, naming the variable)."""
    text = raw.strip()
    if kind is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind is int and _INTEGER.fullmatch(text):
        return int(text)
    if kind is float and _NUMBER.fullmatch(text):
        return float(text)
    return raw


def _base_type(annotation: Any) -> object:
    """The type under Annotated and Optional: ``int`` for ``Annotated[int, ...] | None``."""
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args:
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _element_type(annotation: Any) -> object:
    """The base type of a list setting's elements (``tuple[StreamId, ...]`` -> ``int``)."""
    args = typing.get_args(_base_type(annotation))
    return _base_type(args[0]) if args else None


def _parse_structured(text: str, kind: type, what: str) -> object:
    parsers: list[Callable[[str], object]] = [
        json.loads,
        lambda s: tomllib.loads(f"value = {s}")["value"],
    ]
    for parse in parsers:
        try:
            value = parse(text)
        except ValueError:  # json.JSONDecodeError and tomllib.TOMLDecodeError
            continue
        if isinstance(value, kind):
            return value
    raise ValueError(f"not {what} (got {json.dumps(text)})")
