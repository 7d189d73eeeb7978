"""The test SSIM: 1 for equal pictures, lower for noise, symmetric; checked against the
closed form of a uniform picture pair."""

from __future__ import annotations

import numpy as np
import pytest

from tests.render.ssim import ssim


def test_ssim_properties() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert 0.0 < ssim(a, b) < 0.99
    assert ssim(a, 255 - a) < 0.0  # inverted structure


def test_ssim_of_two_flat_pictures_is_the_luminance_term() -> None:
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    b = np.full((16, 16, 3), 120, dtype=np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)  # no variance: the luminance term
    assert ssim(a, b) == pytest.approx(expected, rel=1e-6)
