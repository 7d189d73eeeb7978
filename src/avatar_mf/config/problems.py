"""What is wrong with a configuration: problems with the key path, file and line they come from."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem", "KeyPath", "format_key_path"]

#: A position in the settings tree: section, key, then list indexes or table keys.
KeyPath = tuple[str | int, ...]

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""A TOML bare key: written without quotes."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration."""

    key_path: str
    """Dotted setting path, e.g. ``sip.port`` or ``sip.transports[1]``; empty for file-level
    problems (unreadable file, TOML syntax error, malformed variable name)."""
    message: str
    """What is wrong, including the offending value where there is one."""
    source: str
    """The config file path as given, or ``env AVATAR_MF_SIP__PORT``."""
    line: int | None = None
    """1-based line in ``source`` where the setting is defined, when known."""

    def __str__(self) -> str:
        parts = [self.source if self.line is None else f"{self.source}:{self.line}"]
        if self.key_path:
            parts.append(self.key_path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(Exception):
    """The configuration is unusable; :attr:`problems` lists every reason, in file order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_key_path(path: Sequence[str | int]) -> str:
    """``("sip", "transports", 1)`` -> ``sip.transports[1]``; keys that are not bare TOML keys
    are quoted: ``log.modules."avatar_mf.sip"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{name}" if out else name
    return out
