"""The pictures of docs/avatars.md: photos beside the photo avatars made from them.

For each photo -- scikit-image's ``astronaut`` (a packaged photograph) and a render of the
product's head with other proportions and skin (seed 7, turned 15 degrees) -- the ``photo``
generator builds an avatar and the product's renderer (moderngl, EGL) draws it from the
front and three-quarter (35 degrees), neutral and with jawOpen 0.5 + mouthSmileLeft/Right
0.8. One PNG per photo under docs/img/, and ``avatar-astronaut-texture.png``: the photo's
face, the front render with vertex colours only (no texture), with the face texture, and the
texture atlas itself::

    PYTHONPATH=$PWD/src .venv/bin/python tools/photo_avatar_pictures.py [--out docs/img]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.avatar.model import AvatarModel
from avatar_mf.render.scene import Framing, RenderSettings

SIZE = 384
EXPRESSION = {"jawOpen": 0.5, "mouthSmileLeft": 0.8, "mouthSmileRight": 0.8}


def photos() -> dict[str, NDArray[np.uint8]]:
    import skimage.data

    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    out = {"astronaut": np.ascontiguousarray(skimage.data.astronaut())}
    for seed, yaw in ((7, 15.0),):
        renderer = GroundTruthRenderer(width=768, height=768, seed=seed)
        out[f"head-seed{seed}"] = renderer.render(Shot(yaw=yaw))
    return out


def renders(model: AvatarModel) -> list[NDArray[np.uint8]]:
    from avatar_mf.render.gl import GlRenderer
    from avatar_mf.stages.animation.avatar_rig import from_model
    from avatar_mf.stages.animation.posing import Pose

    avatar = from_model(model)
    gl = GlRenderer()
    try:
        gl.add_mesh("avatar", avatar.mesh)
        neutral = avatar.rig.neutral()
        smiling = neutral.weights.copy()
        for name, value in EXPRESSION.items():
            smiling[ARKIT_INDEX[name]] = value
        out = []
        for weights in (neutral.weights, smiling):
            positions, normals = avatar.rig.pose(Pose(weights, neutral.locals))
            for yaw in (0.0, 35.0):
                settings = RenderSettings(
                    width=SIZE, height=SIZE, samples=4, framing=Framing(yaw=yaw)
                )
                out.append(np.array(gl.render("avatar", positions, normals, settings)[:, :, :3]))
        return out
    finally:
        gl.release()


def fit_height(picture: NDArray[np.uint8], height: int) -> NDArray[np.uint8]:
    from PIL import Image

    h, w = picture.shape[:2]
    image = Image.fromarray(picture).resize((max(1, round(w * height / h)), height))
    return np.asarray(image, dtype=np.uint8)


def face_crop(photo: NDArray[np.uint8], avatar: object) -> NDArray[np.uint8]:
    """The photo around the tracked face (its landmark box, doubled, squared)."""
    face = avatar.fit.faces[0]  # type: ignore[attr-defined]
    x0, y0, x1, y1 = face.box
    height, width = photo.shape[:2]
    cx, cy = (x0 + x1) / 2 * width, (y0 + y1) / 2 * height
    half = max((x1 - x0) * width, (y1 - y0) * height)
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    return np.ascontiguousarray(photo[top : int(cy + half), left : int(cx + half)])


def main() -> int:
    from PIL import Image

    from avatar_mf.stages.base_avatar.photo.generator import PhotoGenerator

    parser = argparse.ArgumentParser(description="render docs/img/avatar-*.png")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    generator = PhotoGenerator(processes=0)
    vertex_only = PhotoGenerator(processes=0, texture_size=0)
    try:
        for name, photo in photos().items():
            avatar = generator.build([photo])
            row = [fit_height(face_crop(photo, avatar), SIZE), *renders(avatar.model)]
            gap = np.full((SIZE, 6, 3), 255, dtype=np.uint8)
            parts: list[NDArray[np.uint8]] = []
            for picture in row:
                parts += [picture, gap]
            path = args.out / f"avatar-{name}.png"
            Image.fromarray(np.hstack(parts[:-1])).save(path, optimize=True)
            mean, worst = avatar.reprojection[0]
            print(f"{path}: reprojection mean {mean:.2%}, worst {worst:.2%} of the inter-ocular "
                  "distance")
            if name == "astronaut" and avatar.texture is not None:
                flat = vertex_only.build([photo])
                before = renders(flat.model)[0]
                after = renders(avatar.model)[0]
                atlas = fit_height(avatar.texture.atlas, SIZE)
                row = [fit_height(face_crop(photo, avatar), SIZE), before, after, atlas]
                parts = []
                for picture in row:
                    parts += [picture, gap]
                path = args.out / f"avatar-{name}-texture.png"
                Image.fromarray(np.hstack(parts[:-1])).save(path, optimize=True)
                print(path)
    finally:
        generator.close()
        vertex_only.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
