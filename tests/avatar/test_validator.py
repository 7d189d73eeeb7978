"""The Khronos glTF validator (npm gltf-validator, pinned in validator/package.json) accepts
the product's GLB files with no error (and, today, no warning)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from avatar_mf.avatar import build_glb
from avatar_mf.avatar.generate import generate_default_head
from tests.avatar.samples import default_glb, default_head, tiny_model
from tests.avatar.test_glb_texture import JPEG, textured

VALIDATOR = Path(__file__).parent / "validator"


def _node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "node and npm are needed to run the Khronos glTF validator: "
            "install the Debian packages nodejs and npm"
        )
    return node, npm


@pytest.fixture(scope="module")
def validate() -> object:
    node, npm = _node_tools()
    if not (VALIDATOR / "node_modules" / "gltf-validator").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=VALIDATOR,
            check=True,
            timeout=300,
        )

    def run(*files: Path) -> list[dict[str, object]]:
        result = subprocess.run(
            [node, str(VALIDATOR / "validate.js"), *map(str, files)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode in (0, 1), result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    return run


def test_khronos_validator_accepts_the_product_glb(validate: object, tmp_path: Path) -> None:
    files = {
        "default.glb": default_glb(),
        "default-dense.glb": build_glb(default_head(), sparse_targets=False),
        "seed7-low.glb": build_glb(generate_default_head(seed=7, resolution="low")),
        "tiny.glb": build_glb(tiny_model()),
        "tiny-textured.glb": build_glb(textured()),
        "tiny-textured-jpeg.glb": build_glb(textured(JPEG)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    reports = validate(*(tmp_path / name for name in files))  # type: ignore[operator]
    assert len(reports) == len(files)
    for report in reports:
        assert report["numErrors"] == 0, report
        assert report["numWarnings"] == 0, report


def test_khronos_validator_reports_errors(validate: object, tmp_path: Path) -> None:
    """The harness does see errors: a GLB with a broken index fails."""
    bad = bytearray(default_glb())
    bad[-4:] = b"\xff\xff\xff\xff"  # the last bytes of BIN: not what the accessors say
    (tmp_path / "bad.glb").write_bytes(b"glTF" + bytes(4) + bytes(bad[8:]))
    (report,) = validate(tmp_path / "bad.glb")  # type: ignore[operator]
    assert report["numErrors"] > 0
