"""tools/build_acoustic_model.py's download: the pinned sdist fetched by URL, kept only when
its sha256 is the pinned one (served here by a loopback HTTP server)."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[3] / "tools" / "build_acoustic_model.py"
BODY = bytes(range(256)) * 1000


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_acoustic_model", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pocketsphinx-5.1.1.tar.gz"
    server.shutdown()
    server.server_close()


def test_download_keeps_the_pinned_bytes(tool: ModuleType, url: str, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "pocketsphinx-5.1.1.tar.gz"
    got = tool.download(url, target, hashlib.sha256(BODY).hexdigest())
    assert got == target and target.read_bytes() == BODY
    assert list(target.parent.iterdir()) == [target]  # no partial file left beside it


def test_download_refuses_other_bytes(tool: ModuleType, url: str, tmp_path: Path) -> None:
    target = tmp_path / "pocketsphinx-5.1.1.tar.gz"
    with pytest.raises(SystemExit, match="pinned"):
        tool.download(url, target, "0" * 64)
    assert list(tmp_path.iterdir()) == []
