"""Issue 9: ``make run`` installs the runtime dependencies only, exactly as requirements.lock
pins them (no pytest, mypy or ruff on a node), and ``make test`` adds the dev tools. Read from
make's own plan (``make -n`` into a virtualenv that does not exist, so every install step
shows); nothing is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def plan(goal: str, venv: Path) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [make, "-n", "-C", str(REPO), goal, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def installs(text: str) -> list[str]:
    return [line for line in text.splitlines() if " -m pip install " in line]


def test_make_run_installs_the_locked_runtime_dependencies_only(tmp_path: Path) -> None:
    steps = installs(plan("run", tmp_path / "venv"))
    assert any("--require-hashes -r requirements.lock" in step for step in steps), steps
    assert any("--no-deps -e ." in step for step in steps), steps
    for step in steps:
        assert "[dev]" not in step and not {"pytest", "mypy", "ruff"} & set(step.split()), step


def test_make_test_adds_the_dev_tools(tmp_path: Path) -> None:
    steps = installs(plan("test", tmp_path / "venv"))
    assert any("--require-hashes -r requirements.lock" in step for step in steps), steps
    assert any("'.[dev]'" in step or ".[dev]" in step for step in steps), steps
