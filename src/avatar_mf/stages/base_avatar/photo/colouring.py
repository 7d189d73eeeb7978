"""The fitted head's colours, taken from the photos (vertex colours, linear RGB).

The product's GLB carries colours per vertex (``COLOR_0``), so the photo is "unwrapped" onto
the fitted mesh's vertices: each skin vertex is projected into every photo with that photo's
alignment (:class:`~.alignment.Similarity`, inverted) and the photo sampled there (bilinear,
sRGB decoded), weighted by how squarely the photo sees the vertex (its normal turned into the
photo's frame), by whether it falls inside the face's outline in that photo (the hull of
the tracked landmarks) and by how close it lies to the face the landmarks cover (a vertex
farther than :data:`FACE_REACH` from every landmark takes no photo colour: beyond the face, a
photo shows hair, ears or background as often as skin). The side a photo barely sees takes the
colour of its mirror vertex when that one is better seen (the face's symmetry). Everything
else -- skull, neck, the parts around the face -- is the template's colour shifted by the
difference between the photo's skin (the median of the cheeks and forehead) and the
template's, and the hair cap by the difference between the photo's hair (sampled just above
the forehead) and the template's, so brows and lips keep their own colours but skin and hair
match the photo.
Eyeballs and the mouth interior keep the template's colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.base_avatar.photo.alignment import PhotoFit, pixels, shape_landmarks
from avatar_mf.stages.base_avatar.photo.template import SKIN, TemplateParts

F64 = NDArray[np.float64]

#: Vertices up to FACE_CORE from a landmark take the photo's colour fully, none past
#: FACE_REACH (metres).
FACE_CORE, FACE_REACH = 0.004, 0.012
#: How far the face's outline is pulled towards its middle before it bounds the photo's part.
HULL_SHRINK = 0.07
#: Forehead landmarks below the hairline, and how far above them (a fraction of the face's
#: height in the photo) the hair is sampled.
FOREHEAD_LANDMARKS = (10, 109, 338, 67, 297)
HAIR_ABOVE = 0.08
#: Landmarks on the cheeks and forehead, where the skin colour is read.
SKIN_LANDMARKS = (50, 280, 101, 330, 151, 9, 108, 337)


def srgb_to_linear(c: F64) -> F64:
    out: F64 = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return out


def smoothstep(edge0: float, edge1: float, x: F64) -> F64:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    out: F64 = t * t * (3.0 - 2.0 * t)
    return out


def sample(picture: NDArray[np.uint8], xy: F64) -> F64:
    """Bilinear linear-RGB samples of ``picture`` at (N, 2) pixel positions (x right, y down;
    pixel centres at +0.5), clamped to the picture."""
    height, width = picture.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0.0, width - 1.001)
    y = np.clip(xy[:, 1] - 0.5, 0.0, height - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    p = picture.astype(np.float64) / 255.0
    top = p[y0, x0] * (1 - fx) + p[y0, x0 + 1] * fx
    bottom = p[y0 + 1, x0] * (1 - fx) + p[y0 + 1, x0 + 1] * fx
    return srgb_to_linear(top * (1 - fy) + bottom * fy)


def inside_hull(points: F64, polygon: F64) -> NDArray[np.bool_]:
    """Which (N, 2) ``points`` lie inside the convex hull of (K, 2) ``polygon``."""
    out: NDArray[np.bool_] = hull_depth(points, polygon) >= 0
    return out


def hull_depth(points: F64, polygon: F64) -> F64:
    """How far each (N, 2) point lies inside the convex hull of (K, 2) ``polygon`` (its
    distance to the nearest edge's line; negative outside)."""
    order = np.lexsort((polygon[:, 1], polygon[:, 0]))
    hull: list[F64] = []
    for sweep in (order, order[::-1]):  # Andrew's monotone chain: lower, then upper
        chain: list[F64] = []
        for p in polygon[sweep]:
            while len(chain) >= 2:
                a, b = chain[-2], chain[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        hull += chain[:-1]
    corners = np.array(hull)
    edges = np.roll(corners, -1, axis=0) - corners
    lengths = np.maximum(np.linalg.norm(edges, axis=1), 1e-12)
    out = np.empty(len(points))
    for start in range(0, len(points), 65536):
        rel = points[start : start + 65536, None, :] - corners[None, :, :]
        cross = edges[None, :, 0] * rel[:, :, 1] - edges[None, :, 1] * rel[:, :, 0]
        out[start : start + 65536] = (cross / lengths[None, :]).min(axis=1)
    return out


def _photo_colours(
    positions: F64, normals: F64, fit: PhotoFit, pictures: Sequence[NDArray[np.uint8]]
) -> tuple[F64, F64]:
    """Weighted mean colour over the photos and the summed weight, per vertex."""
    colour = np.zeros_like(positions)
    weight = np.zeros(len(positions))
    for pose, face, picture in zip(fit.poses, fit.faces, pictures, strict=True):
        local = pose.inverse(positions)
        xy = np.stack([local[:, 0], -local[:, 1]], axis=1)
        facing = normals @ pose.rotation[:, 2]
        # Only what lies inside the face's outline (the landmarks' hull, pulled in by
        # HULL_SHRINK): past it a photo shows hair, ears or background.
        tracked = pixels(face)
        middle = tracked.mean(axis=0)
        inside = inside_hull(xy, middle + (tracked - middle) * (1.0 - HULL_SHRINK))
        w = smoothstep(0.45, 0.85, facing) * inside
        colour += sample(picture, xy) * w[:, None]
        weight += w
    colour /= np.maximum(weight, 1e-9)[:, None]
    return colour, np.minimum(weight, 1.0)


def skin_colour(fit: PhotoFit, pictures: Sequence[NDArray[np.uint8]]) -> F64:
    """Median linear-RGB colour of the skin around the cheek and forehead landmarks."""
    samples = []
    for face, picture in zip(fit.faces, pictures, strict=True):
        lm = face.landmarks[list(SKIN_LANDMARKS), :2].astype(np.float64)
        offsets = np.array([(dx, dy) for dx in (-3, 0, 3) for dy in (-3, 0, 3)], dtype=float)
        points = (lm * [face.width, face.height])[:, None, :] + offsets[None, :, :]
        samples.append(sample(picture, points.reshape(-1, 2)))
    out: F64 = np.median(np.vstack(samples), axis=0)
    return out


def hair_colour(fit: PhotoFit, pictures: Sequence[NDArray[np.uint8]]) -> F64:
    """Median linear-RGB colour just above the forehead's landmarks (hair, or the skin of a
    bald head) in the photo that sees the face most squarely."""
    best = int(np.argmax([abs(pose.rotation[2, 2]) for pose in fit.poses]))
    face, picture = fit.faces[best], pictures[best]
    xy = pixels(face)
    height = float(xy[:, 1].max() - xy[:, 1].min())
    top = xy[list(FOREHEAD_LANDMARKS)] - np.array([0.0, HAIR_ABOVE * height])
    offsets = np.array([(dx, dy) for dx in (-4, 0, 4) for dy in (-4, 0, 4)], dtype=float)
    out: F64 = np.median(sample(picture, (top[:, None, :] + offsets).reshape(-1, 2)), axis=0)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class HeadColours:
    """The parts of the fitted head's colouring, per vertex (linear RGB).

    ``base``: the template's colours shifted to the photo's skin and hair; ``seen``: how much
    of the photo a vertex takes (how squarely a photo sees it, inside the face's outline, near
    the landmarks; 0 off the skin); ``colours``: the final vertex colours (the photo, or its
    mirror image where that is better seen, over ``base``); ``near_face``: the landmark
    nearness factor alone (skin only)."""

    base: F64
    seen: F64
    near_face: F64
    colours: F64


def colour_head(
    positions: F64,
    normals: F64,
    template_colours: F64,
    anchors: F64,
    parts: TemplateParts,
    fit: PhotoFit,
    pictures: Sequence[NDArray[np.uint8]],
) -> HeadColours:
    """The colours of the fitted head (see the module docstring)."""
    skin = parts.part == SKIN
    near_face = face_nearness(positions, anchors) * skin
    photo, seen = _photo_colours(positions, normals, fit, pictures)
    seen = seen * near_face
    mirrored_seen = seen[parts.mirror]
    best = np.maximum(seen, mirrored_seen)
    extra = np.maximum(mirrored_seen - seen, 0.0)
    photo = (photo * seen[:, None] + photo[parts.mirror] * extra[:, None]) / np.maximum(
        best, 1e-9
    )[:, None]
    # The template's skin is its most common skin colour.
    rounded = np.round(template_colours[skin], 3)
    values, counts = np.unique(rounded, axis=0, return_counts=True)
    template_skin = values[np.argmax(counts)]
    closeness = np.exp(-((template_colours - template_skin) ** 2).sum(axis=1) / 0.002)
    base = template_colours + closeness[:, None] * (skin_colour(fit, pictures) - template_skin)
    # The hair cap: the template's crown colour, and what is close to it, becomes the photo's.
    template_hair = template_colours[int(np.argmax(positions[:, 1] * skin))]
    near_hair = np.exp(-((template_colours - template_hair) ** 2).sum(axis=1) / 0.002)
    base += near_hair[:, None] * (hair_colour(fit, pictures) - template_hair)
    base = np.where(skin[:, None], base, template_colours)
    out = np.where(skin[:, None], base * (1.0 - best[:, None]) + photo * best[:, None],
                   template_colours)
    return HeadColours(
        base=np.clip(base, 0.0, 1.0),
        seen=seen,
        near_face=near_face,
        colours=np.clip(out, 0.0, 1.0),
    )


def face_nearness(positions: F64, anchors: F64) -> F64:
    """1 within FACE_CORE of a shape landmark's anchor, 0 past FACE_REACH, per vertex."""
    landmarks = anchors[shape_landmarks()]
    nearest = np.full(len(positions), np.inf)
    for start in range(0, len(positions), 4096):
        chunk = positions[start : start + 4096]
        d = ((chunk[:, None, :] - landmarks[None, :, :]) ** 2).sum(axis=2)
        nearest[start : start + 4096] = np.sqrt(d.min(axis=1))
    return 1.0 - smoothstep(FACE_CORE, FACE_REACH, nearest)
