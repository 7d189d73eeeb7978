"""``avatar-mf avatar check FILE``: does a base avatar container conform to the common format?

::

    avatar-mf avatar check FILE [--json]

Prints ``conforming`` or ``not conforming`` and one line per problem (``code: reason``), then
the warnings; ``--json`` prints ``{"file", "conforming", "problems", "warnings"}``. Exit codes:
0 conforming, 1 not conforming (or the file cannot be read). The rules are those of
:func:`avatar_mf.avatar.check.check_common` (docs/avatar-format.md, *The common format*).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from avatar_mf.avatar.check import check_common
from avatar_mf.cli.base import CliContext, Command

__all__ = ["check_command"]

EXIT_CONFORMING = 0
EXIT_NOT_CONFORMING = 1


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="base avatar container")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _run(args: argparse.Namespace, context: CliContext) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"avatar-mf avatar check: {exc}", file=context.stderr)
        return EXIT_NOT_CONFORMING
    verdict = check_common(data)
    if args.json:
        view = {
            "file": str(path),
            "conforming": verdict.conforming,
            "problems": [{"code": p.code, "message": p.message} for p in verdict.problems],
            "warnings": [{"code": w.code, "message": w.message} for w in verdict.warnings],
        }
        context.stdout.write(json.dumps(view, indent=2) + "\n")
    else:
        out = context.stdout
        print(f"{path}: {'conforming' if verdict.conforming else 'not conforming'}", file=out)
        for problem in verdict.problems:
            print(f"  problem {problem.code}: {problem.message}", file=out)
        for warning in verdict.warnings:
            print(f"  warning {warning.code}: {warning.message}", file=out)
    return EXIT_CONFORMING if verdict.conforming else EXIT_NOT_CONFORMING


def check_command() -> Command:
    """The ``check`` leaf of the ``avatar`` group."""
    return Command(
        name="check",
        help="say whether a container conforms to the common avatar format, and why not",
        description="Check a base avatar container against the common fallback format "
        "(docs/avatar-format.md): an ARF container with the ARKit-52 blendshape set and a "
        "neck/head/jaw/eyes skeleton. Exit 0 when it conforms, 1 when not.",
        run=_run,
        add_arguments=_arguments,
    )
