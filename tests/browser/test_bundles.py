"""The bundles shipped in the package are what esbuild makes of web/ today.

The built files (src/avatar_mf/dcapp/app.js, src/avatar_mf/webclient/client.js) are committed,
so that the package runs without node; this test rebuilds them from web/src and the lock file
into a temporary folder and compares bytes: a source change without `make web` fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import PACKAGE, WEB

pytestmark = pytest.mark.timeout(120)


def test_committed_bundles_match_a_fresh_build(
    node: str, web_modules: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [node, str(WEB / "build.mjs"), "--out", str(tmp_path)],
        check=True,
        timeout=90,
        capture_output=True,
    )
    for name in ("dcapp/app.js", "webclient/client.js"):
        fresh = (tmp_path / name).read_bytes()
        assert fresh == (PACKAGE / name).read_bytes(), f"{name} is stale: run `make web`"


def test_bundles_load_nothing_from_the_network() -> None:
    for page in ("dcapp/index.html", "webclient/index.html"):
        text = (PACKAGE / page).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        assert "<script src=" in text
        for ref in text.split('src="')[1:] + text.split('href="')[1:]:
            target = ref.split('"', 1)[0]
            assert "/" not in target and ":" not in target, target  # a file next to the page
