"""What every ``avatar-mf`` subcommand is made of: :class:`Command`, :class:`CliContext`.

Also the exit codes. Kept apart from the command modules so that each of them
(``cli/avatar.py``, the test UE's ``ue/cli.py``) can build its commands without importing the
top-level parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

EXIT_OK = 0
EXIT_PROBLEMS = 1
"""``check-config`` found problems."""
EXIT_CONFIG_INVALID = 2
"""``serve`` did not start: the configuration is invalid (argparse also uses 2 for usage)."""
EXIT_USAGE = 2
"""The arguments do not make sense together (as argparse's own usage errors)."""


@dataclass(frozen=True, slots=True)
class CliContext:
    """What a command may touch besides its arguments: the streams and the environment."""

    stdout: TextIO
    stderr: TextIO
    environ: Mapping[str, str]


Runner = Callable[[argparse.Namespace, CliContext], int]
ArgumentAdder = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: a leaf with ``run``, or a group with ``children``."""

    name: str
    help: str
    run: Runner | None = None
    """Called with the parsed arguments; returns the exit code."""
    add_arguments: ArgumentAdder | None = None
    """Adds this command's options to its parser (for a group: options shared by children)."""
    children: tuple[Command, ...] = ()
    description: str | None = None
    """Longer text for ``--help``; defaults to ``help``."""

    def __post_init__(self) -> None:
        if (self.run is None) == (not self.children):
            raise ValueError(f"command {self.name!r} needs exactly one of run and children")
