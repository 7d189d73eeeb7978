"""The ``avatar-mf`` command line.

::

    avatar-mf serve [--config FILE]                 run the Media Function
    avatar-mf check-config [FILE] [--print [--format toml|json]]
    avatar-mf --version

Subcommands are :class:`Command` values listed in :data:`COMMANDS`. A command either runs
(``run``) or groups further commands (``children``), so ``avatar-mf ue call`` is a ``ue`` group
holding a ``call`` command. To add one, define a ``Command`` (its module imports heavy
dependencies inside ``run``, so that ``--help`` and ``check-config`` stay fast) and append it to
:data:`COMMANDS`; :func:`build_parser` does the rest.

Exit codes: 0 success; 1 ``check-config`` found problems; 2 usage error, or ``serve`` refused to
start because the configuration is invalid; otherwise what the server returns.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from avatar_mf import __version__
from avatar_mf.config import (
    EMBEDDED_DEFAULT_SOURCE,
    AppConfig,
    ConfigError,
    dump_json,
    dump_toml,
    load_config,
)

__all__ = [
    "COMMANDS",
    "EXIT_CONFIG_INVALID",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "CliContext",
    "Command",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
"""``check-config`` found problems."""
EXIT_CONFIG_INVALID = 2
"""``serve`` did not start: the configuration is invalid (argparse also uses 2 for usage)."""


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


def _print_problems(error: ConfigError, stream: TextIO) -> None:
    for problem in error.problems:
        print(problem, file=stream)


# --------------------------------------------------------------------------- serve


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration file (default: the built-in defaults, as in "
        "configs/default.toml); AVATAR_MF_<SECTION>__<KEY> variables override it",
    )


def _serve(args: argparse.Namespace, context: CliContext) -> int:
    try:
        config = load_config(args.config, context.environ)
    except ConfigError as exc:
        _print_problems(exc, context.stderr)
        count = len(exc.problems)
        print(
            f"avatar-mf: not starting: {count} configuration problem{'s' * (count != 1)}",
            file=context.stderr,
        )
        return EXIT_CONFIG_INVALID
    return _run_server(config)


def _run_server(config: AppConfig) -> int:
    # Imported here: the server pulls in aiortc and uvloop, which check-config does not need.
    # run() sets up logging (avatar_mf.logging_setup) and the event loop itself.
    from avatar_mf.server.app import run

    return run(config)


SERVE = Command(
    name="serve",
    help="run the Media Function",
    description="Load the configuration and run the SIP/media server until SIGINT or SIGTERM. "
    "Exits 2 without starting if the configuration has problems.",
    run=_serve,
    add_arguments=_serve_arguments,
)


# --------------------------------------------------------------------------- check-config


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="TOML configuration file (default: the built-in defaults)",
    )
    parser.add_argument(
        "--print",
        dest="print_config",
        action="store_true",
        help="print the effective configuration (file merged with AVATAR_MF_* variables and "
        "defaults) to stdout; the OK line then goes to stderr",
    )
    parser.add_argument(
        "--format",
        choices=("toml", "json"),
        default="toml",
        help="format for --print (default: %(default)s)",
    )


def _check_config(args: argparse.Namespace, context: CliContext) -> int:
    file: Path | None = args.file
    label = EMBEDDED_DEFAULT_SOURCE if file is None else str(file)
    try:
        config = load_config(file, context.environ)
    except ConfigError as exc:
        _print_problems(exc, context.stdout)
        return EXIT_PROBLEMS
    if args.print_config:
        context.stdout.write(dump_json(config) if args.format == "json" else dump_toml(config))
        print(f"{label}: OK", file=context.stderr)
    else:
        print(f"{label}: OK", file=context.stdout)
    return EXIT_OK


CHECK_CONFIG = Command(
    name="check-config",
    help="validate a configuration file",
    description="Validate a configuration file together with the AVATAR_MF_* environment "
    "variables, as serve would. Prints every problem, one per line as FILE:LINE: KEY: MESSAGE, "
    "and exits 1; prints 'FILE: OK' and exits 0 when there is none.",
    run=_check_config,
    add_arguments=_check_config_arguments,
)


# --------------------------------------------------------------------------- parser

#: The subcommands of ``avatar-mf``, in ``--help`` order.
def _validate_avatar(data: bytes) -> object:
    # Imported lazily: numpy and the mesh libraries are not needed by the other commands.
    from avatar_mf.avatar.validate import validate_container

    return validate_container(data)


def _avatar_commands() -> Command:
    from avatar_mf.storage.cli import build_commands

    return build_commands(validator=_validate_avatar)


COMMANDS: tuple[Command, ...] = (SERVE, CHECK_CONFIG, _avatar_commands())


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser for ``commands``; each leaf stores its runner as ``args.run``."""
    parser = argparse.ArgumentParser(
        prog="avatar-mf",
        description="Media Function for avatar calls over IMS data channels.",
    )
    parser.add_argument("--version", action="version", version=f"avatar-mf {__version__}")
    _add_commands(parser, commands, dest="command")
    return parser


def _add_commands(
    parser: argparse.ArgumentParser, commands: Sequence[Command], *, dest: str
) -> None:
    subparsers = parser.add_subparsers(dest=dest, metavar="COMMAND", required=True)
    for command in commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        if command.add_arguments is not None:
            command.add_arguments(sub)
        if command.children:
            _add_commands(sub, command.children, dest=f"{dest}.{command.name}")
        else:
            sub.set_defaults(run=command.run)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``avatar-mf`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Streams and environment default to the process's own. Usage errors, ``--help`` and
    ``--version`` raise SystemExit from argparse as usual.
    """
    args = build_parser().parse_args(argv)
    context = CliContext(
        stdout=sys.stdout if stdout is None else stdout,
        stderr=sys.stderr if stderr is None else stderr,
        environ=os.environ if environ is None else environ,
    )
    run: Runner = args.run
    return run(args, context)
