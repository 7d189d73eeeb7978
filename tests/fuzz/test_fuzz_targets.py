"""The fuzz targets (fuzz/): every parser has one, its seeds pass, a short run finds no crash,
and a crash fails the run (docs/fuzzing.md)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.corpus import REGRESSIONS, seeds
from fuzz.run import ROOT, run_target
from fuzz.targets import TARGETS, split_messages

#: Seconds each target is fuzzed by the make-test run (two targets at a time).
SHORT_RUN_SECONDS = 3

#: The parsers issue 9 names, each with the module that must be fuzzed.
PARSERS = {
    "sip": "sip/parser.py",
    "sdp": "sdp/model.py",
    "dcmap": "sdp/datachannel.py",
    "http": "http/parser.py",
    "metadata": "protocol/metadata.py",
    "arf_units": "arf/units.py",
    "transfer": "protocol/transfer.py",
    "arf_container": "avatar/container.py",
    "glb": "avatar/glb.py",
}


def test_every_parser_has_a_target() -> None:
    assert set(TARGETS) == set(PARSERS)
    for name, module in PARSERS.items():
        assert module in TARGETS[name]
        assert callable(importlib.import_module(f"fuzz.targets.{name}").fuzz_one)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_pass_their_target(target: str) -> None:
    items = seeds(target)
    assert len(items) >= 2
    fuzz_one = importlib.import_module(f"fuzz.targets.{target}").fuzz_one
    for data in items.values():
        fuzz_one(data)


def test_regressions_are_seeds() -> None:
    for target, inputs in REGRESSIONS.items():
        assert target in TARGETS
        names = set(seeds(target))
        assert {f"regression-{name}" for name in inputs} <= names


def test_split_messages_is_deterministic_and_keeps_every_byte() -> None:
    data = bytes([3, 64, 128, 200]) + bytes(range(100))
    pieces = split_messages(data)
    assert pieces == split_messages(data)
    assert len(pieces) == 4
    assert b"".join(pieces) == bytes(range(100))
    assert split_messages(b"") == [b""]


def test_a_target_that_raises_is_reported_as_a_crash(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    (tmp_path / "always_crashes.py").write_text(
        "def fuzz_one(data: bytes) -> None:\n    raise KeyError('not a documented error')\n"
    )
    result = run_target(
        "always_crashes", 5, tmp_path / "out", max_crashes=1, extra_paths=[tmp_path]
    )
    assert len(result.crashes) == 1
    assert result.crashes[0].startswith("crash-")
    assert "KeyError" in result.log


def test_short_run_of_every_target_finds_no_crash(tmp_path: Path) -> None:
    """What ``make test`` fuzzes: every target for a few seconds (``make fuzz`` runs longer)."""
    pytest.importorskip("atheris")
    out = tmp_path / "fuzz"
    command = [sys.executable, "-m", "fuzz.run", "--seconds", str(SHORT_RUN_SECONDS)]
    proc = subprocess.run(
        [*command, "--jobs", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = {row["target"]: row for row in json.loads((out / "summary.json").read_text())}
    assert set(summary) == set(TARGETS)
    for target, row in summary.items():
        assert row["crashes"] == [], target
        assert row["inputs_tried"] > row["seeds"], target  # it fuzzed, not only replayed seeds
