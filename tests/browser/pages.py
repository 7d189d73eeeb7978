"""Helpers of the browser tests: reading pixels back through Chromium, and page polling.

Screenshots are PNG; rather than carry a PNG decoder, the test hands the bytes back to the
browser (an ``<img>`` drawn on a 2D canvas) and reads the RGBA pixels out as numpy arrays.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

_DECODE = """async ([data, rect]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + data;
  await image.decode();
  const [x, y, w, h] = rect || [0, 0, image.naturalWidth, image.naturalHeight];
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d");
  g.drawImage(image, x, y, w, h, 0, 0, w, h);
  const pixels = g.getImageData(0, 0, w, h).data;
  let text = "";
  for (let i = 0; i < pixels.length; i += 8192) {
    text += String.fromCharCode(...pixels.subarray(i, i + 8192));
  }
  return [w, h, btoa(text)];
}"""


async def png_pixels(page: Any, png: bytes, rect: tuple[int, int, int, int] | None = None) -> Any:
    """The RGBA pixels (H x W x 4, uint8) of ``png``, or of ``rect`` (x, y, w, h) of it."""
    width, height, data = await page.evaluate(
        _DECODE, [base64.b64encode(png).decode(), list(rect) if rect else None]
    )
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, 4)


async def wait_for(
    probe: Callable[[], Awaitable[Any]], seconds: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``probe`` until it returns something truthy (returned), or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what}: not within {seconds} s (last: {last!r})")


#: In the application's frame: keep comparing a region of the stage canvas with what it shows
#: now (every 40 ms), and record the largest share of pixels that changed by more than
#: ``threshold`` in some channel. Reading the canvas in the page (drawn into a 2D canvas)
#: takes a few milliseconds, where a Playwright screenshot round trip can take a second while
#: WebGL renders in software: the watch sees every frame the sentence moves.
_WATCH = """([x, y, w, h, threshold]) => {
  const stage = document.getElementById("stage");
  const copy = document.createElement("canvas");
  copy.width = w; copy.height = h;
  const g = copy.getContext("2d", { willReadFrequently: true });
  const grab = () => {
    g.clearRect(0, 0, w, h);
    g.drawImage(stage, x, y, w, h, 0, 0, w, h);
    return g.getImageData(0, 0, w, h).data;
  };
  const reference = grab();
  const watch = { max: 0, samples: 0, firstAt: null, started: performance.now() };
  watch.timer = setInterval(() => {
    const now = grab();
    let changed = 0;
    for (let i = 0; i < now.length; i += 4) {
      if (Math.abs(now[i] - reference[i]) > threshold
          || Math.abs(now[i + 1] - reference[i + 1]) > threshold
          || Math.abs(now[i + 2] - reference[i + 2]) > threshold) changed += 1;
    }
    const share = changed / (w * h);
    watch.samples += 1;
    if (share > watch.max) watch.max = share;
    if (share > 0.02 && watch.firstAt === null) watch.firstAt = performance.now() - watch.started;
  }, 40);
  window.__regionWatch = watch;
  return watch.samples;
}"""


async def watch_region(frame: Any, rect: tuple[int, int, int, int], threshold: int = 24) -> None:
    """Start watching ``rect`` (x, y, w, h, CSS pixels) of the ``#stage`` canvas of ``frame``
    against what it shows now (:func:`region_changes` reads the result)."""
    await frame.evaluate(_WATCH, [*rect, threshold])


async def region_changes(frame: Any) -> dict[str, Any]:
    """``{"max": share of pixels changed at most, "samples": n, "firstAt": ms or None}``."""
    watch: dict[str, Any] = await frame.evaluate(
        "(() => { const w = window.__regionWatch;"
        " return { max: w.max, samples: w.samples, firstAt: w.firstAt }; })()"
    )
    return watch
