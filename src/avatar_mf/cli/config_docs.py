"""The generated parts of ``docs/operations.md``: every setting and every metric.

::

    python -m avatar_mf.cli.config_docs                              # print both tables
    python -m avatar_mf.cli.config_docs --write docs/operations.md   # refresh them in the file
    python -m avatar_mf.cli.config_docs --check docs/operations.md   # exit 1 if they are stale

The settings table comes from :func:`avatar_mf.config.iter_settings` (the models' attribute
docstrings and defaults), the metrics table from :data:`avatar_mf.node.metrics.METRICS`, so
the documentation cannot drift from the code: a test runs ``--check``. Each table sits between
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` lines; the text around
them is written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from avatar_mf import __version__
from avatar_mf.config import iter_settings

__all__ = ["SECTIONS", "main", "metrics_table", "settings_table", "update_document"]


def _cell(text: str) -> str:
    """Markdown table cell text on one line: pipes escaped, and ``<`` outside code spans (so
    that ``<version>`` is not taken for an HTML tag)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(part if i % 2 else part.replace("<", "\\<") for i, part in enumerate(parts))


def _default(value: object) -> str:
    if value is None:
        return "unset"
    text = json.dumps(value, ensure_ascii=False)
    # sip.user_agent: "avatar-mf/<version>", so that a release does not stale the table.
    return f"`{text.replace(__version__, '<version>')}`"


def settings_table() -> str:
    """Every setting: key, environment variable, type, default and meaning."""
    lines = [
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for info in iter_settings():
        lines.append(
            f"| `{info.key_path}` | `{info.env_var}` | {_cell(info.type_label)} "
            f"| {_cell(_default(info.default))} | {_cell(info.description)} |"
        )
    return "\n".join(lines) + "\n"


def metrics_table() -> str:
    """Every ``avatar_mf_*`` metric: name, type, labels and meaning."""
    # Imported here: the settings table needs none of the server modules.
    from avatar_mf.node.metrics import METRICS

    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{spec.name}` | {spec.kind} | {labels} | {_cell(spec.help)} |")
    return "\n".join(lines) + "\n"


#: Generated section name -> what produces it.
SECTIONS: Mapping[str, Callable[[], str]] = {
    "settings": settings_table,
    "metrics": metrics_table,
}


def _markers(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {name} -->\n)(.*?)(<!-- END GENERATED: {name} -->)", re.DOTALL
    )


def update_document(text: str) -> str:
    """``text`` with every generated section replaced by what the code says now. Raises
    ValueError if a section's markers are missing."""
    for name, produce in SECTIONS.items():
        match = _markers(name).search(text)
        if match is None:
            raise ValueError(f"no '<!-- BEGIN GENERATED: {name} -->' ... END section")
        text = text[: match.start(2)] + produce() + text[match.end(2) :]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m avatar_mf.cli.config_docs",
        description="Print, write or check the generated settings and metrics tables of "
        "docs/operations.md.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="refresh the tables in FILE")
    group.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 if FILE's tables are out of date"
    )
    args = parser.parse_args(argv)
    path: Path | None = args.write or args.check
    if path is None:
        for name, produce in SECTIONS.items():
            print(f"<!-- {name} -->\n{produce()}")
        return 0
    text = path.read_text(encoding="utf-8")
    try:
        updated = update_document(text)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if updated != text:
            print(
                f"{path} is out of date: run python -m avatar_mf.cli.config_docs --write {path}",
                file=sys.stderr,
            )
            return 1
        print(f"{path}: up to date")
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        print(f"{path}: updated")
    else:
        print(f"{path}: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
