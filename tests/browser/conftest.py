"""Shared set-up of the browser tests: the npm packages of web/ and a real Chromium.

The browser side (web/: the browser avatar client and the data channel application) is built
with esbuild from npm packages pinned in web/package-lock.json; `make test` installs them
(`npm ci`) and Debian's chromium (`make sysdeps`). Chromium is driven by Playwright for Python
through ``executable_path``: Playwright never downloads a browser here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
PACKAGE = REPO / "src" / "avatar_mf"
CHROMIUM = Path("/usr/bin/chromium")

#: What Chromium needs to run headless here and to do WebRTC on loopback: loopback ICE
#: candidates, no mDNS names for host candidates, and a granted (fake) microphone/camera
#: (Chromium gathers host candidates of every interface only for a page with media access).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is needed by the browser tests: install the Debian package {package}")
    return path


@pytest.fixture(scope="session")
def node() -> str:
    return tool("node", "nodejs")


@pytest.fixture(scope="session")
def web_modules(node: str) -> Path:
    """web/node_modules, installed from the lock file when missing (as `make web` does)."""
    npm = tool("npm", "npm")
    needed = ("esbuild", "three", "jssip")
    if not all((WEB / "node_modules" / name).is_dir() for name in needed):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=WEB,
            check=True,
            timeout=300,
        )
    return WEB / "node_modules"


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make sysdeps` installs Debian's chromium")
    return CHROMIUM


@pytest.fixture
def user_data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="avatar-mf-chromium-") as folder:
        yield Path(folder)


@pytest.fixture
def chromium_args() -> list[str]:
    """Chromium's command line flags (a test module may add some by overriding this)."""
    return list(CHROMIUM_FLAGS)


@pytest.fixture
async def browser_context(
    chromium_path: Path, user_data_dir: Path, chromium_args: list[str]
) -> AsyncIterator[object]:
    """A fresh persistent Chromium context (its own profile folder), media permission granted."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(chromium_path),
            headless=True,
            args=chromium_args,
            viewport={"width": 1100, "height": 760},
            device_scale_factor=1,
            permissions=["microphone", "camera"],
        )
        try:
            yield context
        finally:
            await context.close()
