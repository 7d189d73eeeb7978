"""The photo generator from the caller's video pictures (``avatar generate`` with ``source:
video``): the sharpest frontal picture of the few the session kept is built from."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.avatar.validate import validate_container
from avatar_mf.codecs.video import Picture as I420
from avatar_mf.face.pictures import Picture, to_rgb
from avatar_mf.stages.base_avatar import AvatarRequest
from avatar_mf.stages.base_avatar.photo.errors import PhotoAvatarError
from avatar_mf.stages.base_avatar.photo.generator import PhotoGenerator
from avatar_mf.stages.base_avatar.photo.video import Candidate, choose, sharpness


def i420(rgb: NDArray[np.uint8]) -> Picture:
    """An RGB picture as the MF's decoder gives it (I420)."""
    picture = I420.from_rgb(np.ascontiguousarray(rgb))
    return Picture("i420", picture.data, picture.width, picture.height)


def blurred(rgb: NDArray[np.uint8], radius: float) -> NDArray[np.uint8]:
    from PIL import Image, ImageFilter

    out = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(out, dtype=np.uint8)


def test_the_sharpest_of_the_most_frontal_is_chosen() -> None:
    candidates = [
        Candidate(0, turn=0.50, sharpness=900.0),  # turned away: not chosen, however sharp
        Candidate(1, turn=0.02, sharpness=40.0),
        Candidate(2, turn=0.06, sharpness=80.0),  # frontal enough, and sharper
        Candidate(3, turn=0.30, sharpness=500.0),
    ]
    assert choose(candidates) == [2]
    assert choose(candidates, 2) == [1, 2]
    assert choose([]) == []


def test_blur_lowers_the_sharpness(generator: PhotoGenerator,
                                   astronaut: NDArray[np.uint8]) -> None:
    (face,) = generator.track([astronaut])
    soft = blurred(astronaut, 2.0)
    assert sharpness(soft, face) < 0.5 * sharpness(astronaut, face)


def test_video_pictures_build_from_the_sharp_front_one(
    head_renderer: object, generator: PhotoGenerator
) -> None:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    assert isinstance(head_renderer, GroundTruthRenderer)
    front = head_renderer.render(Shot())
    video = (
        i420(head_renderer.render(Shot(yaw=30.0))),
        i420(blurred(front, 2.5)),
        i420(front),
        i420(np.full_like(front, 90)),  # the caller out of the picture
        i420(head_renderer.render(Shot(yaw=-25.0, pitch=10.0))),
    )
    (chosen,) = generator.video_pictures(video)
    assert np.array_equal(chosen, to_rgb(video[2]))

    result = generator.generate(AvatarRequest("p1", "sip:alice@example.com", name="alice",
                                              video=video))
    assert validate_container(result.container, result.content_type) is not None


def test_video_without_a_face_gives_the_face_code(generator: PhotoGenerator) -> None:
    grey = i420(np.full((240, 320, 3), 128, dtype=np.uint8))
    with pytest.raises(PhotoAvatarError) as caught:
        generator.generate(AvatarRequest("p1", "sip:alice@example.com", video=(grey, grey)))
    assert caught.value.code == "no-face" and caught.value.rejected
    bad = Picture("i420", b"\x00" * 10, 320, 240)
    with pytest.raises(PhotoAvatarError) as caught:
        generator.generate(AvatarRequest("p1", "sip:alice@example.com", video=(bad,)))
    assert caught.value.code == "unsupported-image"
