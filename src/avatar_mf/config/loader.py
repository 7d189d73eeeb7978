"""Loading: read the TOML file (or the packaged defaults), apply environment overrides and
validate everything at once into an :class:`AppConfig`.

Every problem is reported together, each with its key path and where it came from: the file
and line (from :func:`toml_key_lines`), or the environment variable::

    configs/bad.toml:7: sip.port: Input should be less than or equal to 65535 (got 70000)
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from avatar_mf.config.env import read_env_overrides
from avatar_mf.config.problems import ConfigError, ConfigProblem, KeyPath, format_key_path
from avatar_mf.config.sections import SECTIONS, AppConfig, Section, table_model
from avatar_mf.config.toml_lines import toml_key_lines

__all__ = ["EMBEDDED_DEFAULT_SOURCE", "load_config"]

#: The ``source`` of problems found in the defaults embedded in the package.
EMBEDDED_DEFAULT_SOURCE = "avatar_mf:configs/default.toml"

#: Error types whose input is not echoed: a secret (problem lines end up in logs and
#: terminals), and the old stage form, whose message already quotes it.
_NOT_ECHOED = frozenset({"admin_token", "stage_table"})


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read, merge and validate the configuration.

    ``path`` None reads the defaults embedded in the package. ``env`` None reads
    :data:`os.environ`; pass ``{}`` to ignore the environment. ``AVATAR_MF_*`` variables in
    ``env`` override the file. Raises :class:`ConfigError` listing every problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        source = EMBEDDED_DEFAULT_SOURCE
        text = resources.files("avatar_mf").joinpath("configs/default.toml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                [ConfigProblem("", f"cannot read config file: {reason}", source)]
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                [ConfigProblem("", f"config file is not UTF-8 text: {exc.reason}", source)]
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc, source, text)]) from None
    return _validate(data, source, toml_key_lines(text), environ)


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _syntax_problem(exc: tomllib.TOMLDecodeError, source: str, text: str) -> ConfigProblem:
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        what = f"{match['what']} (column {match['col']})"
        return ConfigProblem("", f"TOML syntax error: {what}", source, int(match["line"]))
    if message.endswith(" (at end of document)"):
        what = message.removesuffix(" (at end of document)")
        line = text.count("\n") + 1
        return ConfigProblem("", f"TOML syntax error: {what} (at end of file)", source, line)
    return ConfigProblem("", f"TOML syntax error: {message}", source)


def _validate(
    data: dict[str, Any], source: str, lines: Mapping[KeyPath, int], environ: Mapping[str, str]
) -> AppConfig:
    overrides, problems = read_env_overrides(environ)
    merged = copy.deepcopy(data)
    env_sources: dict[KeyPath, str] = {}
    for override in overrides:
        table: object = merged
        for part in override.path[:-1]:
            if not isinstance(table, dict):
                break
            table = table.setdefault(part, {})
        if isinstance(table, dict):  # else: the file's own error for that table is reported
            table[override.path[-1]] = override.value
            env_sources[override.path] = override.variable
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(
            _problem_from_error(error, source, lines, env_sources)
            for error in exc.errors(include_url=False)
        )
    if problems:
        problems.sort(key=_problem_order)
        raise ConfigError(problems)
    return config


def _problem_order(problem: ConfigProblem) -> tuple[bool, int, str, str]:
    from_env = problem.source.startswith("env ")
    line = problem.line if problem.line is not None else 1 << 30
    return (from_env, line, problem.source, problem.key_path)


def _render_input(value: object) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except ValueError:  # circular or otherwise unrenderable
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem_from_error(
    error: Mapping[str, Any],
    file_source: str,
    lines: Mapping[KeyPath, int],
    env_sources: Mapping[KeyPath, str],
) -> ConfigProblem:
    loc: KeyPath = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # pydantic's marker for a bad table key: the key is the input
        loc = loc[:-1]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if error["type"] == "extra_forbidden":
        message = "unknown setting" + _did_you_mean(loc)
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if error.get("input") is not None and error["type"] not in _NOT_ECHOED:
            message += f" (got {_render_input(error['input'])})"

    def locate(path: KeyPath) -> tuple[str, int | None] | None:
        for end in range(2, len(path) + 1):  # a variable sets a setting and all inside it
            env_name = env_sources.get(path[:end])
            if env_name is not None:
                return f"env {env_name}", None
        if path in lines:
            return file_source, lines[path]
        return None

    related = ctx.get("related")
    candidates = [loc]
    if isinstance(related, str) and loc:
        candidates.append((*loc[:-1], related))
    candidates.extend(loc[:i] for i in range(len(loc) - 1, 0, -1))
    for candidate in candidates:
        found = locate(candidate)
        if found is not None:
            source, line = found
            break
    else:
        source, line = file_source, None
    return ConfigProblem(format_key_path(loc), message, source, line)


def _did_you_mean(loc: KeyPath) -> str:
    """A close setting name for an unknown key at ``loc``, in a section or a nested table."""
    choices: list[str] = list(SECTIONS)
    model: type[Section] | None = None
    for depth, part in enumerate(loc[:-1]):
        if depth == 0:
            model = SECTIONS.get(str(part))
        elif model is not None and part in model.model_fields:
            model = table_model(model.model_fields[str(part)])
        else:
            model = None
        if model is None:
            return ""
        choices = list(model.model_fields)
    if not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {format_key_path((*loc[:-1], close[0]))}?)"
