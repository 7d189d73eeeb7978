"""Depth images paired with photos (issue 14): what is accepted, what is refused with
``bad-depth``, how a landmark's depth is read, and what the fit makes of it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from avatar_mf.face.result import FaceResult, HeadPose
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.stages.base_avatar import AvatarRequest
from avatar_mf.stages.base_avatar.photo.alignment import (
    MIN_MEASURED,
    landmark_shape,
    measured_shape,
    shape_landmarks,
)
from avatar_mf.stages.base_avatar.photo.depth import BAD_DEPTH, decode_depth, landmark_depths
from avatar_mf.stages.base_avatar.photo.errors import PhotoAvatarError
from avatar_mf.stages.base_avatar.photo.generator import PhotoGenerator, photos_key
from avatar_mf.stages.base_avatar.photo.images import encode_png
from tests.stages.base_avatar.photo.depthmaps import depth_map, encode_depth, sensor

F64 = NDArray[np.float64]


def _png(array: NDArray[np.generic], mode: str | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(out, format="PNG")
    return out.getvalue()


def _code(data: bytes, size: tuple[int, int]) -> str:
    with pytest.raises(PhotoAvatarError) as caught:
        decode_depth(data, size, photo=1)
    assert caught.value.rejected and not caught.value.retryable
    assert "photo 2" in str(caught.value)
    return caught.value.code


def test_a_16_bit_greyscale_png_of_the_photos_size_is_read_as_millimetres() -> None:
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 17) % 4000
    out = decode_depth(_png(depth), (64, 48))
    assert out.dtype == np.uint16 and np.array_equal(out, depth)


def test_other_pictures_are_refused_as_bad_depth() -> None:
    depth = np.full((48, 64), 700, dtype=np.uint16)
    assert _code(_png(depth), (64, 47)) == BAD_DEPTH  # another size than its photo
    assert _code(_png((depth // 8).astype(np.uint8)), (64, 48)) == BAD_DEPTH  # 8-bit
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    assert _code(_png(rgb), (64, 48)) == BAD_DEPTH  # colour
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    assert _code(jpeg.getvalue(), (64, 48)) == BAD_DEPTH  # not a PNG
    assert _code(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, (64, 48)) == BAD_DEPTH  # broken
    assert _code(b"\0" * (16 * 1024 * 1024 + 1), (64, 48)) == BAD_DEPTH  # too large


def test_a_landmarks_depth_is_the_median_of_the_known_samples_around_it() -> None:
    depth = np.zeros((20, 20), dtype=np.uint16)
    depth[8:13, 8:13] = 600
    depth[10, 10] = 9000  # one spike in the window
    depth[9, 9] = 0
    pixels = np.array([[10.2, 9.8], [1.0, 1.0], [-5.0, 3.0], [30.0, 3.0]])
    out = landmark_depths(depth, pixels)
    assert out[0] == 600.0
    assert np.isnan(out[1:]).all()  # nothing known there; outside the picture


def _face(depth_guess: F64) -> FaceResult:
    rng = np.random.default_rng(3)
    landmarks = np.zeros((478, 3), dtype=np.float32)
    landmarks[:, :2] = rng.uniform(0.3, 0.7, (478, 2))
    landmarks[:, 2] = depth_guess
    return FaceResult(landmarks, {}, HeadPose(0.0, 0.0, 0.0), 1000, 1000)


def test_measured_depths_replace_the_trackers_in_its_units() -> None:
    rng = np.random.default_rng(4)
    true_mm = 600.0 + rng.uniform(0.0, 60.0, 478)  # millimetres from the camera
    # The tracker's guess: the truth flattened a little and off by noise (image fractions).
    guess = 0.8 * (true_mm - 630.0) / 1000.0 + rng.normal(0.0, 0.004, 478)
    face = _face(guess)
    measured = true_mm.copy()
    measured[:40] = np.nan  # holes
    measured[40:45] = 400.0  # a hand in front of five landmarks
    shape, known = measured_shape(face, measured)
    keep = np.zeros(478, dtype=bool)
    keep[shape_landmarks()] = True
    assert not known[:45].any()
    assert known[45:][keep[45:]].mean() > 0.97  # a few tracker outliers dropped too
    assert not known[~keep].any()
    # The measured landmarks' depths are the truth up to an affine map (no tracker noise).
    z = shape[known, 2]
    fit = np.polyfit(-true_mm[known], z, 1)
    assert np.abs(np.polyval(fit, -true_mm[known]) - z).max() < 1e-9
    tracker = landmark_shape(face)
    assert np.array_equal(shape[~known], tracker[~known])
    assert np.array_equal(shape[:, :2], tracker[:, :2])


def test_a_depth_image_that_does_not_follow_the_face_is_not_used() -> None:
    rng = np.random.default_rng(5)
    face = _face(rng.normal(0.0, 0.02, 478))
    for measured in (np.full(478, 650.0), rng.uniform(500.0, 700.0, 478)):
        shape, known = measured_shape(face, measured)
        assert not known.any()
        assert np.array_equal(shape, landmark_shape(face))
    few = np.full(478, np.nan)
    few[: MIN_MEASURED - 1] = 600.0
    assert not measured_shape(face, few)[1].any()


def test_depths_are_part_of_the_cache_key() -> None:
    photo, depth = b"photo", b"depth"
    plain = photos_key([photo], "me")
    assert photos_key([photo], "me", [None]) == plain  # no depth: the key as before
    assert photos_key([photo], "me", [depth]) != plain
    assert photos_key([photo, photo], "me", [depth, None]) != photos_key(
        [photo, photo], "me", [None, depth]
    )


@pytest.fixture(scope="module")
def rgbd() -> Iterator[tuple[NDArray[np.uint8], NDArray[np.uint16]]]:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    try:
        renderer = GroundTruthRenderer(width=512, height=512, seed=2)
    except RenderUnavailable as exc:
        pytest.skip(f"no OpenGL: {exc}")
    yield renderer.render(Shot()), depth_map(renderer, Shot())


def test_a_photo_with_its_depth_image_builds_and_mismatches_are_refused(
    generator: PhotoGenerator, rgbd: tuple[NDArray[np.uint8], NDArray[np.uint16]]
) -> None:
    picture, depth = rgbd
    # The render's depth lies under the render's face: nearer at the nose than the cheeks.
    nose, cheek = (int(depth[256, 256]), int(depth[256, 200]))
    assert 0 < nose < cheek
    photo = encode_png(picture)
    noisy = encode_depth(sensor(depth, noise=2.0, holes=0.1))
    with_depth = AvatarRequest("p1", "sip:alice@example.com", images=(photo,), depths=(noisy,))
    generated = generator.generate(with_depth)
    assert generated.container
    plain = generator.generate(AvatarRequest("p1", "sip:alice@example.com", images=(photo,)))
    assert plain is not generated  # another cache entry
    wrong = encode_depth(depth[:-1])
    for request in (
        AvatarRequest("p1", "sip:alice@example.com", images=(photo,), depths=(wrong,)),
        AvatarRequest("p1", "sip:alice@example.com", images=(photo,), depths=(noisy, noisy)),
    ):
        with pytest.raises(PhotoAvatarError) as caught:
            generator.generate(request)
        assert caught.value.code == BAD_DEPTH


def test_a_frontal_photos_depth_changes_the_fit_and_a_turned_ones_does_not(
    rgbd: tuple[NDArray[np.uint8], NDArray[np.uint16]],
) -> None:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    picture, depth = rgbd
    keep = shape_landmarks()
    plain = PhotoGenerator(processes=0, texture_size=0)
    try:  # off by default (docs/avatars.md): read, checked, not used
        assert np.array_equal(plain.build([picture]).fit.target,
                              plain.build([picture], depths=[depth]).fit.target)
    finally:
        plain.close()
    generator = PhotoGenerator(processes=0, texture_size=0, use_depth=True)
    try:
        plain_fit = generator.build([picture]).fit.target
        measured = generator.build([picture], depths=[depth]).fit.target
        assert np.abs(measured[keep] - plain_fit[keep]).max() > 1e-4  # used
        renderer = GroundTruthRenderer(width=512, height=512, seed=2)
        turned = renderer.render(Shot(yaw=20.0))
        turned_depth = depth_map(renderer, Shot(yaw=20.0))
        assert np.array_equal(
            generator.build([turned]).fit.target,
            generator.build([turned], depths=[turned_depth]).fit.target,
        )  # not used beyond FRONTAL_DEPTH
    finally:
        generator.close()
