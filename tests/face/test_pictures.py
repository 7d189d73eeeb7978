"""Pictures into RGB for the trackers: decoded video (I420), RGB bytes, JPEG/PNG files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from avatar_mf.codecs.video import Picture as I420
from avatar_mf.face.pictures import Picture, to_rgb
from avatar_mf.face.result import FaceError, FaceTrackingError


def test_i420_comes_back_as_the_rgb_it_was_made_from() -> None:
    rng = np.random.default_rng(3)
    # Smooth colours (chroma is at half resolution): 8x8 blocks of random colours.
    blocks = rng.integers(30, 220, size=(6, 8, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))
    yuv = I420.from_rgb(rgb)  # the product's encoder side (swscale, BT.601)
    back = to_rgb(Picture("i420", yuv.data, yuv.width, yuv.height))
    assert back.shape == (48, 64, 3)
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 4.0


def test_rgb_and_images() -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :, 0] = 200
    assert (to_rgb(Picture("rgb", rgb.tobytes(), 30, 20)) == rgb).all()
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    assert (to_rgb(Picture("image", png.getvalue())) == rgb).all()


@pytest.mark.parametrize(
    "picture",
    [
        Picture("i420", b"\x00" * 10, 64, 48),
        Picture("i420", b"\x00" * (63 * 48 * 3 // 2), 63, 48),  # odd width
        Picture("rgb", b"\x00" * 10, 64, 48),
        Picture("image", b"GIF89a"),
        Picture("image", b"\x89PNG\r\n\x1a\n broken"),
        Picture("i420", b"\x00" * (8 * 8 * 3 // 2), 8, 8),  # smaller than a face can be
    ],
)
def test_what_is_not_a_picture_is_unsupported(picture: Picture) -> None:
    with pytest.raises(FaceTrackingError) as caught:
        to_rgb(picture)
    assert caught.value.code is FaceError.UNSUPPORTED_IMAGE
