"""How much a front render of a photo avatar looks like the photo in the face (test helper).

The render is tracked with the same face landmarker as the photo, warped onto the photo by
the similarity that best takes its landmarks onto the photo's (least squares), and the two
compared inside the photo's face outline (the landmarks' hull, pulled in by 10 %): SSIM of
the grey levels (scikit-image's map over the outline's box, averaged inside the outline) and
the Pearson correlation of the RGB values inside the outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from avatar_mf.stages.base_avatar.photo.alignment import pixels
from avatar_mf.stages.base_avatar.photo.colouring import inside_hull
from avatar_mf.stages.base_avatar.photo.generator import PhotoAvatar, PhotoGenerator

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Likeness:
    ssim: float
    correlation: float


def render_front(
    avatar: PhotoAvatar, size: int = 512, *, expressed: bool = True
) -> NDArray[np.uint8]:
    """The avatar's front render through the call path's loader (ARF bytes), showing the
    photo's expression (``expressed``) or neutral."""
    from avatar_mf.avatar import write_arf
    from avatar_mf.render.gl import GlRenderer
    from avatar_mf.render.scene import RenderSettings
    from avatar_mf.stages.animation.avatar_rig import load_avatar

    animated = load_avatar(write_arf(avatar.model, avatar_id="likeness", name="likeness"))
    gl = GlRenderer()
    try:
        gl.add_mesh("avatar", animated.mesh)
        from avatar_mf.arf.blendshapes import ARKIT_INDEX
        from avatar_mf.stages.animation.posing import Pose

        neutral = animated.rig.neutral()
        weights = neutral.weights.copy()
        for name, value in (avatar.expression if expressed else {}).items():
            weights[ARKIT_INDEX[name]] = value
        positions, normals = animated.rig.pose(Pose(weights, neutral.locals))
        picture = gl.render("avatar", positions, normals, RenderSettings(width=size, height=size))
        return np.ascontiguousarray(picture[:, :, :3])
    finally:
        gl.release()


def _similarity_2d(source: F64, target: F64) -> NDArray[np.float64]:
    """(2, 3) the least-squares similarity x -> [[a, -b], [b, a]] x + t taking source to
    target."""
    rows = []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append(([x, -y, 1.0, 0.0], u))
        rows.append(([y, x, 0.0, 1.0], v))
    design = np.array([r[0] for r in rows])
    values = np.array([r[1] for r in rows])
    a, b, tx, ty = np.linalg.lstsq(design, values, rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def likeness(
    generator: PhotoGenerator,
    photo: NDArray[np.uint8],
    avatar: PhotoAvatar,
    *,
    expressed: bool = True,
) -> Likeness:
    render = render_front(avatar, expressed=expressed)
    (photo_face,) = avatar.fit.faces[:1]
    (render_face,) = generator.track([render])
    return face_likeness(photo, pixels(photo_face), render, pixels(render_face))


def face_likeness(
    photo: NDArray[np.uint8], target: F64, render: NDArray[np.uint8], source: F64
) -> Likeness:
    """SSIM and RGB correlation over the face of ``photo`` (its landmarks' pixels ``target``,
    the outline shrunk by a tenth) of ``render`` (landmarks ``source``) warped onto it by the
    least-squares 2D similarity of the landmarks."""
    from skimage.metrics import structural_similarity

    # PIL's AFFINE maps each output (photo) pixel to an input (render) pixel.
    to_render = _similarity_2d(target, source)
    height, width = photo.shape[:2]
    warped = np.asarray(
        Image.fromarray(render).transform(
            (width, height), Image.Transform.AFFINE, tuple(to_render.reshape(-1)),
            resample=Image.Resampling.BILINEAR,
        ),
        dtype=np.float64,
    )
    middle = target.mean(axis=0)
    outline = middle + (target - middle) * 0.9
    x0, y0 = np.floor(outline.min(axis=0)).astype(int)
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    points = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    mask = inside_hull(points, outline).reshape(ys.shape)
    a = photo[y0:y1, x0:x1].astype(np.float64)
    b = warped[y0:y1, x0:x1]
    correlation = float(np.corrcoef(a[mask].ravel(), b[mask].ravel())[0, 1])
    _, ssim_map = structural_similarity(
        a.mean(axis=2), b.mean(axis=2), data_range=255.0, full=True
    )
    ssim = float(ssim_map[mask].mean())
    return Likeness(ssim=ssim, correlation=correlation)
