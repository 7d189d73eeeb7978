"""Shared helpers for the configuration and command line tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def clean_environ() -> dict[str, str]:
    """The test process environment without any AVATAR_MF_* overrides."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("AVATAR_MF_")}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line (``python -m avatar_mf``) in a child process."""
    environ = clean_environ()
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "avatar_mf", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def write(text: str, name: str = "mf.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
