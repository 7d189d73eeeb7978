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
