"""Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004), small and numpy only.

Luma (BT.601) of both pictures, local statistics over a 7x7 box window (the variant
scikit-image uses by default), the paper's constants K1 = 0.01, K2 = 0.03 for L = 255; the
mean SSIM over every full window.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_WINDOW = 7
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _luma(image: NDArray[np.uint8]) -> NDArray[np.float64]:
    rgb = image[..., :3].astype(np.float64)
    out: NDArray[np.float64] = rgb @ np.array([0.299, 0.587, 0.114])
    return out


def _box_mean(x: NDArray[np.float64]) -> NDArray[np.float64]:
    s = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), axis=0), axis=1)
    w = _WINDOW
    total = s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]
    out: NDArray[np.float64] = total / (w * w)
    return out


def ssim(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"shapes differ: {a.shape} {b.shape}")
    x, y = _luma(a), _luma(b)
    mx, my = _box_mean(x), _box_mean(y)
    n = _WINDOW * _WINDOW
    correction = n / (n - 1)  # sample (co)variances, as the paper
    vx = (_box_mean(x * x) - mx * mx) * correction
    vy = (_box_mean(y * y) - my * my) * correction
    cxy = (_box_mean(x * y) - mx * my) * correction
    s = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return float(s.mean())
