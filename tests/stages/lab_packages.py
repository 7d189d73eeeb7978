"""A lab's own stage package installed for one test: a module and a dist-info declaring its
entry points, put on ``sys.path`` and found by the stage registry, then taken away again."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from avatar_mf.pipeline import registry


@contextmanager
def installed_package(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    *,
    module: str | None = None,
) -> Iterator[Path]:
    """Install distribution ``name`` under ``root``: ``entry_points`` by group
    (``{"avatar_mf.stages.converter": {"tag": "labstage:Provider"}}``) and, when given, the
    source of a module of the same name; the registry sees it inside the block only."""
    if module is not None:
        (root / f"{name}.py").write_text(textwrap.dedent(module))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
            for group, entries in entry_points.items()
        )
    )
    sys.path.insert(0, str(root))
    registry.refresh()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(name, None)
        registry.refresh()
