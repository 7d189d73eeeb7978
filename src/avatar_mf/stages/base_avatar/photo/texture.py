"""The photo avatar's face texture: the photo unwrapped into an atlas (glTF
``baseColorTexture``, 3.9.2), the rest of the head in vertex colours (``COLOR_0``).

Vertex colours alone blur the face to the mesh's resolution (a few millimetres: a fringe of
hair over the forehead becomes stripes). Here the face is a texture:

* **region**: the skin triangles near the face's landmarks (:func:`.colouring.face_nearness`
  of the *template*, so the region is the same for every photo) that the template shows the
  front (face normal towards +Z), so the front view is one-to-one there;
* **UVs**: the template's front view (x, y) scaled into the atlas, x = 0 (the face's middle)
  at u = 1/2: the template is left-right symmetric, so a texel's mirror image is the texel at
  1 - u;
* **texels**: each texel of a region triangle (rasterised with Pillow, a triangle's index per
  texel, then barycentric coordinates) takes the fitted head's surface point and normal there
  and samples every photo at that point's projection (the fit's camera: the photo's
  :class:`~.alignment.Similarity`), weighted by how squarely the photo sees it; how much
  photo a texel takes fades in from the face's outline in the photo (feathered over
  :data:`FEATHER` of the face's height, not cut: no stripes where a fringe of hair crosses
  it) and with the vertices' nearness to the landmarks (interpolated), so the photo fades
  into the vertex colours towards the region's edge; where the mirror texel is better seen
  (the far side of a turned face), the mirror texel's photo colour is used, as the vertex
  colours do;
  the rest is the vertices' ``base`` colour (skin and hair shifted to the photo's), so the
  texture meets the vertex colours without a seam;
* **mesh**: a region vertex has a white vertex colour (glTF multiplies the two) and its UV;
  every other vertex keeps its colour and samples a white block in the atlas's corner; the
  region's boundary vertices are duplicated (positions, normals, skin, blendshapes copied), one
  copy for each side.

Texels outside the region are filled from their neighbours (a few texels: mipmaps do not
bleed the background in). The atlas is sRGB, written as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.texture import encode_png
from avatar_mf.stages.base_avatar.photo.alignment import PhotoFit, pixels
from avatar_mf.stages.base_avatar.photo.colouring import (
    HULL_SHRINK,
    HeadColours,
    hull_depth,
    sample,
    smoothstep,
)
from avatar_mf.stages.base_avatar.photo.template import SKIN, TemplateParts

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Atlas width and height in texels.
TEXTURE_SIZE = 512
#: The white block (texels, top left corner) untextured vertices sample.
WHITE_BLOCK = 8
#: Fraction of the atlas kept free around the face region.
MARGIN = 0.04
#: A region triangle's template normal has at least this much +Z (faces the front).
MIN_FRONT = 0.35
#: The photo fades in over this fraction of the face's height inside its outline.
FEATHER = 0.06
#: How many texels the region is grown into its neighbours (against mipmap bleeding).
GUTTER = 4


@dataclass(frozen=True, slots=True, eq=False)
class TexturedHead:
    """The head's mesh data with the face texture.

    ``source`` (N') the template vertex each vertex copies (the first N are the template's own,
    in order; the duplicates follow); ``triangles`` (T, 3) into the N' vertices; ``uvs`` (N', 2);
    ``colours`` (N', 3) linear RGB; ``texture`` the PNG bytes; ``atlas`` (S, S, 3) its sRGB
    pixels; ``region`` (T,) which triangles are textured."""

    source: I64
    triangles: I64
    uvs: F64
    colours: F64
    texture: bytes
    atlas: NDArray[np.uint8]
    region: NDArray[np.bool_]


def linear_to_srgb(c: F64) -> F64:
    c = np.clip(c, 0.0, 1.0)
    out: F64 = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    return out


def face_region(
    template: F64, triangles: I64, template_near_face: F64, parts: TemplateParts
) -> NDArray[np.bool_]:
    """(T,) the triangles textured (see the module docstring)."""
    corners = template[triangles]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    front = normal[:, 2] / np.maximum(np.linalg.norm(normal, axis=1), 1e-12) > MIN_FRONT
    skin = (parts.part[triangles] == SKIN).all(axis=1)
    near = (template_near_face[triangles] > 0).any(axis=1)
    out: NDArray[np.bool_] = front & skin & near
    return out


def _layout(template: F64, used: I64, size: int) -> tuple[float, float]:
    """(scale, y offset) mapping template (x, y) to texel (column, row): column =
    size/2 + scale * x, row = offset - scale * y."""
    xy = template[used, :2]
    half_width = float(np.abs(xy[:, 0]).max())
    y0, y1 = float(xy[:, 1].min()), float(xy[:, 1].max())
    usable = size * (1.0 - 2.0 * MARGIN)
    scale = min(usable / (2.0 * half_width), usable / (y1 - y0))
    offset = size / 2.0 + scale * (y0 + y1) / 2.0
    return scale, offset


def _rasterise(corners: F64, size: int) -> I64:
    """(size, size) index of the triangle covering each texel (-1: none); ``corners`` (T, 3, 2)
    in texel units."""
    from PIL import Image, ImageDraw

    image = Image.new("I", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for index, tri in enumerate(corners):
        draw.polygon([(float(x), float(y)) for x, y in tri], fill=index + 1)
    return np.asarray(image, dtype=np.int64) - 1


def _barycentric(points: F64, corners: F64) -> F64:
    """(K, 3) barycentric coordinates of (K, 2) points in their (K, 3, 2) triangles, clipped
    to the triangle."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    out = np.clip(np.stack([1.0 - w1 - w2, w1, w2], axis=1), 0.0, 1.0)
    out /= np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
    return out


def _grow(values: F64, covered: NDArray[np.bool_], steps: int) -> F64:
    """Fill uncovered texels next to covered ones with their covered neighbours' mean."""
    values = values.copy()
    covered = covered.copy()
    for _ in range(steps):
        total = np.zeros_like(values)
        count = np.zeros(covered.shape)
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            total += np.roll(values * covered[..., None], shift, axis=axis)
            count += np.roll(covered, shift, axis=axis)
        fill = ~covered & (count > 0)
        values[fill] = total[fill] / count[fill, None]
        covered = covered | fill
    return values


def _photo_texels(
    points: F64, normals: F64, fit: PhotoFit, pictures: Sequence[NDArray[np.uint8]]
) -> tuple[F64, F64]:
    """Mean linear-RGB photo colour at 3D ``points`` and how much of it to take (0..1): each
    photo weighted by how squarely it sees the point and how deep inside the face's outline
    the point falls (feathered over :data:`FEATHER` of the face's height, not cut)."""
    colour = np.zeros_like(points)
    weight = np.zeros(len(points))
    for pose, face, picture in zip(fit.poses, fit.faces, pictures, strict=True):
        local = pose.inverse(points)
        xy = np.stack([local[:, 0], -local[:, 1]], axis=1)
        tracked = pixels(face)
        middle = tracked.mean(axis=0)
        depth = hull_depth(xy, middle + (tracked - middle) * (1.0 - HULL_SHRINK))
        height = float(np.ptp(tracked[:, 1]))
        w = smoothstep(0.45, 0.85, normals @ pose.rotation[:, 2]) * smoothstep(
            0.0, FEATHER * height, depth
        )
        colour += sample(picture, xy) * w[:, None]
        weight += w
    colour /= np.maximum(weight, 1e-9)[:, None]
    return colour, np.minimum(weight, 1.0)


def texture_head(
    template: F64,
    template_near_face: F64,
    triangles: I64,
    positions: F64,
    normals: F64,
    colours: HeadColours,
    parts: TemplateParts,
    fit: PhotoFit,
    pictures: Sequence[NDArray[np.uint8]],
    *,
    size: int = TEXTURE_SIZE,
) -> TexturedHead:
    """The face texture and the mesh data that goes with it (see the module docstring).

    ``template`` (N, 3) the template's rest positions (the UV layout); ``positions`` and
    ``normals`` (N, 3) the fitted head as the photo shows it (where the photo is sampled)."""
    region = face_region(template, triangles, template_near_face, parts)
    used = np.unique(triangles[region])
    scale, offset = _layout(template, used, size)
    texel_of = np.stack(
        [size / 2.0 + scale * template[:, 0], offset - scale * template[:, 1]], axis=1
    )
    owner = _rasterise(texel_of[triangles[region]], size)
    covered = owner >= 0
    rows, cols = np.nonzero(covered)
    tri = triangles[region][owner[rows, cols]]
    centres = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
    bary = _barycentric(centres, texel_of[tri])

    def interpolate(values: F64) -> F64:
        out: F64 = np.einsum("kc,kc...->k...", bary, values[tri])
        return out

    point = interpolate(positions)
    normal = interpolate(normals)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    photo = np.zeros((size, size, 3))
    seen = np.zeros((size, size))
    base = np.zeros((size, size, 3))
    photo[rows, cols], taken = _photo_texels(point, normal, fit, pictures)
    seen[rows, cols] = taken * interpolate(colours.near_face)
    base[rows, cols] = interpolate(colours.base)
    # The mirror texel (1 - u) where it is better seen (the template is symmetric).
    mirrored_seen = seen[:, ::-1] * covered[:, ::-1]
    best = np.maximum(seen, mirrored_seen)
    extra = np.maximum(mirrored_seen - seen, 0.0)
    face = (photo * seen[..., None] + photo[:, ::-1] * extra[..., None]) / np.maximum(
        best, 1e-9
    )[..., None]
    linear = base * (1.0 - best[..., None]) + face * best[..., None]
    linear = _grow(linear, covered, GUTTER)
    linear[:WHITE_BLOCK, :WHITE_BLOCK] = 1.0
    atlas = np.round(linear_to_srgb(linear) * 255.0).astype(np.uint8)

    # Vertices: region vertices white with their UVs; the region's boundary duplicated.
    n = len(template)
    in_region = np.zeros(n, dtype=bool)
    in_region[used] = True
    outside_tris = triangles[~region]
    boundary = np.unique(outside_tris[in_region[outside_tris]])
    copy_of = np.full(n, -1, dtype=np.int64)
    copy_of[boundary] = n + np.arange(len(boundary))
    out_triangles = triangles.copy()
    outside = out_triangles[~region]
    out_triangles[~region] = np.where(in_region[outside], copy_of[outside], outside)
    source = np.concatenate([np.arange(n), boundary])
    white_uv = np.array([WHITE_BLOCK / 2.0 / size] * 2)
    uvs = np.tile(white_uv, (len(source), 1))
    uvs[:n][in_region] = texel_of[in_region] / size
    vertex_colours = colours.colours[source].copy()
    vertex_colours[:n][in_region] = 1.0
    return TexturedHead(
        source=source,
        triangles=out_triangles,
        uvs=uvs,
        colours=vertex_colours,
        texture=encode_png(atlas),
        atlas=atlas,
        region=region,
    )
