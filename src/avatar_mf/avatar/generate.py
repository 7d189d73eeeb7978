"""The product's default avatar: a procedural head and neck with the 52 ARKit blendshapes.

No permissively licensed template head with ARKit blendshapes exists in any registry the product
can use, so the default base avatar is generated: deterministic numpy code, no assets.

Geometry (glTF conventions: metres, Y up, the face looks along +Z, the subject's left on +X):

* **skin** -- one surface from the crown to the base of the neck, lofted through
  superellipse cross-sections (flatter at the front), with the facial relief added as smooth
  bumps (nose and nostrils, brow ridge, cheekbones, lips, chin, ears). Rings are denser over
  the face and azimuth samples denser at the front. The mouth is a real slit (the lower lip's
  vertices are duplicates of the upper lip's), the eyes are almond shaped openings whose lids
  hug the eyeballs;
* **eyeballs** -- two spheres (sclera, iris and pupil as vertex colours) bound to the
  ``eyeLeft``/``eyeRight`` joints;
* **mouth cavity** -- a dark ellipsoid behind the lips, its lower half moving with the jaw,
  and a tongue on its floor (bound to the jaw; ``tongueOut`` pushes it out between the lips).

Blendshapes are built from compact-support kernels (``(1 - r^2)^3``) so each moves only its own
region: eyelids rotate over the eyeball about the eye centre (blink, squint, wide), eyeballs
rotate (look up/down/in/out), the jaw rotates about the hinge in front of the ears (jawOpen)
or translates (jawForward/Left/Right), the lips, mouth corners, cheeks, nose and brows move as a
face does. Morph target normals are recomputed, so shading follows the deformation.

Skin weights bind the skin to ``root``/``neck``/``head``/``jaw`` (smooth blends at the neck and
along the jaw line) and each eyeball to its eye joint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.avatar.model import (
    DEFAULT_JOINT_NAMES,
    AvatarModel,
    Joint,
    rest_matrices,
)

__all__ = ["RESOLUTIONS", "generate_default_head"]

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Resolution:
    azimuth: int  # samples around each ring
    rings: int  # rings from the crown to the neck base (poles excluded)
    eye_subdivisions: int  # icosphere subdivisions of each eyeball


#: Mesh resolutions accepted by :func:`generate_default_head` (the default has ~15k triangles).
RESOLUTIONS: dict[str, _Resolution] = {
    "low": _Resolution(azimuth=56, rings=40, eye_subdivisions=2),
    "default": _Resolution(azimuth=96, rings=66, eye_subdivisions=3),
    "high": _Resolution(azimuth=128, rings=92, eye_subdivisions=3),
}

# Ring control points of the skin, crown to neck base:
# (y, half width, front depth, back depth, centre z, front superellipse exponent).
_RINGS = np.array(
    [
        (0.292, 0.000, 0.000, 0.000, -0.006, 2.0),
        (0.286, 0.030, 0.034, 0.040, -0.006, 2.0),
        (0.272, 0.050, 0.058, 0.066, -0.006, 2.1),
        (0.250, 0.065, 0.078, 0.087, -0.006, 2.2),
        (0.220, 0.073, 0.091, 0.098, -0.006, 2.4),
        (0.195, 0.076, 0.096, 0.101, -0.006, 2.6),
        (0.170, 0.077, 0.097, 0.099, -0.006, 2.7),
        (0.145, 0.076, 0.097, 0.093, -0.006, 2.7),
        (0.120, 0.070, 0.096, 0.083, -0.006, 2.6),
        (0.097, 0.061, 0.093, 0.071, -0.008, 2.4),
        (0.078, 0.051, 0.090, 0.062, -0.010, 2.2),
        (0.064, 0.043, 0.083, 0.057, -0.012, 2.1),
        (0.056, 0.042, 0.068, 0.056, -0.012, 2.0),
        (0.050, 0.045, 0.052, 0.057, -0.012, 2.0),
        (0.038, 0.048, 0.046, 0.058, -0.012, 2.0),
        (0.015, 0.051, 0.049, 0.060, -0.012, 2.0),
        (-0.005, 0.055, 0.053, 0.063, -0.012, 2.0),
    ]
)

_MOUTH_Y = 0.108  # the mouth slit (snapped to the nearest ring)
_MOUTH_HALF_WIDTH = 0.024
_EYE_X, _EYE_Y = 0.032, 0.177  # eye centres, x mirrored
_EYE_RADIUS = 0.0125
_LID_RADIUS = _EYE_RADIUS + 0.0013
_EYE_HALF_WIDTH, _EYE_HALF_HEIGHT = 0.0135, 0.0056  # the almond opening
_HINGE = np.array([0.0, 0.146, 0.006])  # jaw hinge (temporomandibular joint), on the x axis
_SKIN_SRGB = (0.80, 0.61, 0.50)


# --- small numeric helpers -------------------------------------------------------------------


def _smoothstep(edge0: float, edge1: float, x: F64) -> F64:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _kernel(u: F64, v: F64) -> F64:
    """Compact smooth bump: ``(1 - r^2)^3`` inside the unit circle, exactly 0 outside."""
    r2 = u * u + v * v
    return np.where(r2 < 1.0, (1.0 - np.minimum(r2, 1.0)) ** 3, 0.0)


def _srgb_to_linear(c: F64) -> F64:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _rotate_x(points: F64, centre: F64, angles: F64) -> F64:
    """Rotate each point about the axis through ``centre`` along +X by its own angle (a
    positive angle moves points in front of the axis downwards)."""
    d = points - centre
    c, s = np.cos(angles), np.sin(angles)
    out = points.copy()
    out[:, 1] = centre[1] + d[:, 1] * c - d[:, 2] * s
    out[:, 2] = centre[2] + d[:, 1] * s + d[:, 2] * c
    return out


def _rotate_y(points: F64, centre: F64, angles: F64) -> F64:
    """Rotate each point about the axis through ``centre`` along +Y (positive: front -> +X)."""
    d = points - centre
    c, s = np.cos(angles), np.sin(angles)
    out = points.copy()
    out[:, 0] = centre[0] + d[:, 0] * c + d[:, 2] * s
    out[:, 2] = centre[2] - d[:, 0] * s + d[:, 2] * c
    return out


def _face_normals(positions: F64, triangles: NDArray[np.int64]) -> F64:
    """Area weighted (unnormalised) face normals."""
    p = positions[triangles]
    out: F64 = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return out


def _accumulate(face: F64, triangles: NDArray[np.int64], weld: NDArray[np.int64], n: int) -> F64:
    """Sum face normals onto the (welded) vertices of each face."""
    ids = weld[triangles].reshape(-1)
    return np.stack(
        [np.bincount(ids, weights=np.repeat(face[:, k], 3), minlength=n) for k in range(3)], 1
    )


def _normalise(sums: F64) -> F64:
    length = np.linalg.norm(sums, axis=1, keepdims=True)
    out: F64 = np.where(length > 0, sums / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))
    return out


def _normal_sums(positions: F64, triangles: NDArray[np.int64], weld: NDArray[np.int64]) -> F64:
    return _accumulate(_face_normals(positions, triangles), triangles, weld, len(positions))


def _vertex_normals(positions: F64, triangles: NDArray[np.int64], weld: NDArray[np.int64]) -> F64:
    """Area weighted vertex normals; vertices with the same ``weld`` id share one normal."""
    return _normalise(_normal_sums(positions, triangles, weld)[weld])


def _normal_deltas(
    positions: F64,
    delta: F64,
    triangles: NDArray[np.int64],
    weld: NDArray[np.int64],
    base_sums: F64,
    base_normals: F64,
) -> F64:
    """Normal deltas of a morph target, recomputing only the faces it moves."""
    moved = np.any(delta != 0, axis=1)
    out = np.zeros_like(positions)
    if not moved.any():
        return out
    faces = triangles[np.any(moved[triangles], axis=1)]
    change = _face_normals(positions + delta, faces) - _face_normals(positions, faces)
    sums = base_sums + _accumulate(change, faces, weld, len(positions))
    touched = np.zeros(len(positions), dtype=bool)
    touched[faces.reshape(-1)] = True
    touched |= touched[weld]  # the lower-lip copies share their originals' normals
    touched[weld[touched]] = True
    out[touched] = _normalise(sums[weld[touched]]) - base_normals[touched]
    out[np.abs(out) < 1e-4] = 0.0
    return out


def _taubin_smooth(
    positions: F64, triangles: NDArray[np.int64], mobility: F64, *, iterations: int
) -> F64:
    """Taubin (lambda/mu) smoothing: removes the sampling ripples of the sculpting without
    shrinking the surface; ``mobility`` (0..1 per vertex) pins vertices."""
    n = len(positions)
    edges = np.vstack([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)  # each undirected edge once
    edges = np.vstack([edges, edges[:, ::-1]])
    degree = np.bincount(edges[:, 0], minlength=n).astype(np.float64)[:, None]
    p = positions.copy()
    weight = mobility[:, None]
    for _ in range(iterations):
        for factor in (0.5, -0.53):
            neighbours = np.stack(
                [
                    np.bincount(edges[:, 0], weights=p[edges[:, 1], k], minlength=n)
                    for k in range(3)
                ],
                axis=1,
            )
            p = p + factor * weight * (neighbours / np.maximum(degree, 1.0) - p)
    return np.asarray(p)


# --- the skin surface ------------------------------------------------------------------------


def _catmull_rom(points: F64, samples: int) -> F64:
    """``samples`` points along a uniform Catmull-Rom spline through ``points`` (rows)."""
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, len(points) - 1.0, samples)
    seg = np.minimum(t.astype(np.int64), len(points) - 2)
    u = (t - seg)[:, None]
    p0, p1, p2, p3 = padded[seg], padded[seg + 1], padded[seg + 2], padded[seg + 3]
    out: F64 = 0.5 * (
        2 * p1
        + (-p0 + p2) * u
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3
    )
    return out


def _ring_parameters(rings: F64, count: int) -> F64:
    """``count`` ring parameter rows, spaced by arc length of the front profile, with rings
    about 3.5 times denser over the face (brow to chin)."""
    dense = _catmull_rom(rings, 4000)
    front = np.stack([dense[:, 0], dense[:, 4] + dense[:, 2]], axis=1)
    step = np.linalg.norm(np.diff(front, axis=0), axis=1)
    mid_y = 0.5 * (dense[1:, 0] + dense[:-1, 0])
    density = 1.0 + 2.5 * np.exp(-(((mid_y - 0.14) / 0.06) ** 2))
    arc = np.concatenate([[0.0], np.cumsum(step * density)])
    targets = np.linspace(0.0, arc[-1], count + 2)[1:-1]  # the two poles are separate vertices
    return np.stack([np.interp(targets, arc, dense[:, k]) for k in range(dense.shape[1])], 1)


def _superellipse(phi: F64, exponent: F64) -> tuple[F64, F64]:
    """(sin-like, cos-like) of a superellipse of the given exponent (2 is a circle)."""
    e = 2.0 / exponent
    s, c = np.sin(phi), np.cos(phi)
    return np.sign(s) * np.abs(s) ** e, np.sign(c) * np.abs(c) ** e


@dataclass(frozen=True, slots=True)
class _Shape:
    """Proportions varied by the seed (seed 0 is the canonical head)."""

    width: float = 1.0
    depth: float = 1.0
    nose: float = 1.0
    jaw: float = 1.0
    skin_srgb: tuple[float, float, float] = _SKIN_SRGB

    @staticmethod
    def for_seed(seed: int) -> _Shape:
        if seed == 0:
            return _Shape()
        rng = np.random.default_rng(seed)
        tone = float(rng.uniform(0.35, 1.0))
        base_dark, base_light = np.array([0.45, 0.30, 0.22]), np.array([0.87, 0.70, 0.60])
        skin = base_dark + (base_light - base_dark) * tone
        return _Shape(
            width=float(rng.uniform(0.95, 1.05)),
            depth=float(rng.uniform(0.96, 1.04)),
            nose=float(rng.uniform(0.85, 1.15)),
            jaw=float(rng.uniform(0.92, 1.08)),
            skin_srgb=(float(skin[0]), float(skin[1]), float(skin[2])),
        )


@dataclass(slots=True)
class _Skin:
    positions: F64  # (n, 3)
    triangles: NDArray[np.int64]
    weld: NDArray[np.int64]  # normal sharing id per vertex (lower-lip copies -> originals)
    lower: NDArray[np.bool_]  # vertex belongs to the lower lip side of the mouth slit
    upper: NDArray[np.bool_]  # vertex is on the mouth line (upper lip side or the corners)
    mouth_y: float


def _skin_surface(res: _Resolution, shape: _Shape) -> _Skin:
    rings = _RINGS.copy()
    rings[:, 1] *= shape.width
    rings[:, 2:4] *= shape.depth
    params = _ring_parameters(rings, res.rings)
    # The mouth slit lies on one ring: move the nearest ring onto the mouth height.
    mouth_ring = int(np.argmin(np.abs(params[:, 0] - _MOUTH_Y)))
    mouth_y = float(params[mouth_ring, 0])

    a = res.azimuth
    u = np.linspace(-math.pi, math.pi, a, endpoint=False) + math.pi / a
    phi = u - 0.45 * np.sin(u)  # denser towards the front (phi = 0)
    y, half_w, front, back, cz, expo = (params[:, k][:, None] for k in range(6))
    sx, cz_phi = _superellipse(phi[None, :], np.where(np.cos(phi)[None, :] > 0, expo, 2.2))
    x = half_w * sx
    z = cz + np.where(cz_phi > 0, front, back) * cz_phi
    grid = np.stack([x, np.broadcast_to(y, x.shape), z], axis=-1).reshape(-1, 3)
    top = np.array([[0.0, rings[0, 0], rings[0, 4]]])
    bottom = np.array([[0.0, rings[-1, 0], rings[-1, 4] + 0.004]])
    positions = np.vstack([top, grid, bottom])
    n_grid = len(grid)

    def vid(ring: int, col: NDArray[np.int64] | int) -> NDArray[np.int64]:
        return np.asarray(1 + ring * a + np.mod(col, a), dtype=np.int64)

    # Lower-lip copies of the slit vertices (strictly between the corners).
    mouth_x = positions[vid(mouth_ring, np.arange(a))][:, 0]
    mouth_z = positions[vid(mouth_ring, np.arange(a))][:, 2]
    slit_cols = np.flatnonzero((np.abs(mouth_x) < _MOUTH_HALF_WIDTH) & (mouth_z > 0))
    corner_cols = np.array([slit_cols.min() - 1, slit_cols.max() + 1])
    copies = vid(mouth_ring, slit_cols)
    copy_of = np.full(len(positions), -1, dtype=np.int64)
    copy_of[copies] = len(positions) + np.arange(len(copies))
    positions = np.vstack([positions, positions[copies]])

    cols = np.arange(a)
    faces = [np.stack([np.zeros(a, np.int64), vid(0, cols + 1), vid(0, cols)], axis=1)]
    for ring in range(res.rings - 1):
        p00, p01 = vid(ring, cols), vid(ring, cols + 1)
        p10, p11 = vid(ring + 1, cols), vid(ring + 1, cols + 1)
        if ring == mouth_ring:  # faces below the slit use the lower-lip copies
            p00 = np.where(copy_of[p00] >= 0, copy_of[p00], p00)
            p01 = np.where(copy_of[p01] >= 0, copy_of[p01], p01)
        # Mirror the quad diagonals across the face's midline so shading stays symmetric.
        right = (phi + np.roll(phi, -1) < 0)[:, None]
        faces.append(np.where(right, np.stack([p00, p01, p10], 1), np.stack([p00, p01, p11], 1)))
        faces.append(np.where(right, np.stack([p01, p11, p10], 1), np.stack([p00, p11, p10], 1)))
    last = res.rings - 1
    faces.append(np.stack([vid(last, cols), vid(last, cols + 1), np.full(a, n_grid + 1)], axis=1))
    triangles = np.vstack(faces)[:, ::-1]  # counter-clockwise seen from outside

    weld = np.arange(len(positions), dtype=np.int64)
    weld[copy_of[copy_of >= 0]] = copies
    lower = np.zeros(len(positions), dtype=bool)
    lower[len(positions) - len(copies) :] = True
    upper = np.zeros(len(positions), dtype=bool)
    upper[copies] = True
    upper[vid(mouth_ring, corner_cols)] = True
    return _Skin(positions, triangles, weld, lower, upper, mouth_y)


def _eye_opening_half_height(dx: F64) -> tuple[F64, F64]:
    """Half heights of the almond eye opening above and below the eye centre at ``dx``."""
    t = np.clip(1.0 - (dx / _EYE_HALF_WIDTH) ** 2, 0.0, 1.0) ** 0.8
    # The upper lid arches higher and peaks slightly towards the nose.
    return _EYE_HALF_HEIGHT * 1.15 * t, _EYE_HALF_HEIGHT * 0.85 * t


def _sculpt(skin: _Skin, shape: _Shape) -> tuple[F64, F64]:
    """Add the facial relief to the skin; returns (positions, the two eye centres)."""
    p = skin.positions.copy()
    x, y = p[:, 0], p[:, 1]
    normals = _vertex_normals(p, skin.triangles, skin.weld)
    front = _smoothstep(0.15, 0.45, normals[:, 2])
    my = skin.mouth_y
    dz = np.zeros(len(p))
    # Nose: a ridge from the bridge to the tip, then nostrils.
    t = np.clip((0.186 - y) / 0.05, 0.0, 1.0)
    height = (0.003 + 0.021 * t**1.4) * shape.nose
    below_tip = _smoothstep(0.127, 0.139, y)
    width = 0.006 + 0.008 * t
    dz += height * below_tip * np.exp(-((x / width) ** 2)) * (y < 0.19)
    for side in (1.0, -1.0):
        dz += 0.0075 * shape.nose * _kernel((x - side * 0.0125) / 0.0095, (y - 0.1385) / 0.0085)
        dz += 0.0035 * _kernel((x - side * 0.033) / 0.026, (y - 0.198) / 0.0085)  # brow ridge
        dz += 0.003 * _kernel((x - side * 0.047) / 0.021, (y - 0.15) / 0.017)  # cheekbone
    # Lips and chin.
    dz += 0.0052 * _kernel(x / 0.027, (y - (my + 0.0045)) / 0.0075) * ~skin.lower
    dz += 0.0058 * _kernel(x / 0.025, (y - (my - 0.0045)) / 0.0075) * (skin.lower | (y < my))
    dz += 0.0035 * _kernel(x / 0.028, (y - (my - 0.0135)) / 0.006)  # the fold under the lip
    dz -= 0.0035 * _kernel(x / 0.03, (y - (my - 0.0135)) / 0.005)
    dz += 0.0065 * shape.jaw * _kernel(x / 0.022, (y - 0.074) / 0.014)
    p[:, 2] += dz * front
    # Ears: bumps on the sides.
    side_w = _smoothstep(0.6, 0.85, np.abs(normals[:, 0]))
    p[:, 0] += np.sign(x) * 0.011 * side_w * _kernel((p[:, 2] + 0.012) / 0.017, (y - 0.163) / 0.03)
    # Eyes: centre each eyeball behind the surface, let the skin around it hug a sphere.
    centres = []
    for side in (1.0, -1.0):
        ex = side * _EYE_X
        near = np.flatnonzero((np.abs(x - ex) < 0.01) & (np.abs(y - _EYE_Y) < 0.01) & (p[:, 2] > 0))
        surface_z = float(np.max(p[near, 2]))
        centre = np.array([ex, _EYE_Y, surface_z - 0.0075])
        centres.append(centre)
        dx, dy = p[:, 0] - ex, p[:, 1] - _EYE_Y
        r2 = dx * dx + dy * dy
        hug = (1.0 - _smoothstep(0.009, 0.021, np.hypot(dx / 1.15, dy))) * (p[:, 2] > 0)
        lid_z = centre[2] + np.sqrt(np.maximum(_LID_RADIUS**2 - r2, 0.0))
        p[:, 2] += (lid_z - p[:, 2]) * hug
    return p, np.array(centres)


def _cut_eye_openings(skin: _Skin, positions: F64, eyes: F64) -> tuple[F64, NDArray[np.bool_]]:
    """Remove the faces inside the almond openings (in place on ``skin``), snap the opening's
    rim onto the almond outline over the eyeball; return the new positions and the rim."""
    tri = skin.triangles
    quads_keep = np.ones(len(tri), dtype=bool)
    centroid = positions[tri].mean(axis=1)
    rim = np.zeros(len(positions), dtype=bool)
    for centre in eyes:
        dx = centroid[:, 0] - centre[0]
        dy = centroid[:, 1] - centre[1]
        up, down = _eye_opening_half_height(dx)
        inside = (
            (np.abs(dx) < _EYE_HALF_WIDTH)
            & (dy < up * 0.9)
            & (dy > -down * 0.9)
            & (centroid[:, 2] > centre[2])
        )
        quads_keep &= ~inside
        rim[tri[inside].reshape(-1)] = True
    kept = tri[quads_keep]
    used = np.zeros(len(positions), dtype=bool)
    used[kept.reshape(-1)] = True
    rim &= used
    p = positions.copy()
    for centre in eyes:
        idx = np.flatnonzero(rim & (np.abs(p[:, 0] - centre[0]) < 0.03))
        dx, dy = p[idx, 0] - centre[0], p[idx, 1] - centre[1]
        dx = np.clip(dx, -_EYE_HALF_WIDTH, _EYE_HALF_WIDTH)
        up, down = _eye_opening_half_height(dx)
        dy = np.where(dy >= 0, up, -down)
        dz = np.sqrt(np.maximum(_LID_RADIUS**2 - dx**2 - dy**2, 0.0))
        p[idx] = centre + np.stack([dx, dy, dz], axis=1)
    skin.triangles = kept
    return p, rim


# --- blendshapes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Regions:
    """Per-vertex masks the blendshapes are built from (skin vertices only unless noted)."""

    p: F64
    skin: F64  # 1 on the skin, 0 on eyeballs and the mouth cavity
    front: F64  # 1 on front facing skin
    normals: F64
    mouth_y: float
    upper_side: F64  # on or above the mouth line, not the lower-lip copies
    lower_side: F64
    jaw: F64  # jaw weight: skin below the jaw line, and the lower half of the mouth cavity
    eyeballs: tuple[NDArray[np.bool_], NDArray[np.bool_]]  # left (+X), right
    eyes: F64  # eye centres, left then right
    tongue: NDArray[np.bool_]

    def face(self, cx: float, cy: float, rx: float, ry: float) -> F64:
        """Front-facing skin kernel centred on (cx, cy) with radii (rx, ry)."""
        return _kernel((self.p[:, 0] - cx) / rx, (self.p[:, 1] - cy) / ry) * self.front

    def upper_lip(self) -> F64:
        return self.face(0.0, self.mouth_y + 0.004, 0.031, 0.011) * self.upper_side

    def lower_lip(self) -> F64:
        return self.face(0.0, self.mouth_y - 0.004, 0.029, 0.011) * self.lower_side

    def corner(self, side: float) -> F64:
        return self.face(side * _MOUTH_HALF_WIDTH, self.mouth_y, 0.016, 0.013)

    def half(self, side: float) -> F64:
        """Smooth selector of the subject's left (side=1, +X) or right (side=-1) half."""
        return _smoothstep(-0.006, 0.006, side * self.p[:, 0])

    def lids(self, eye: int) -> tuple[F64, F64, F64, F64]:
        """(upper lid weight, lower lid weight, upper closing angle, lower closing angle)."""
        centre = self.eyes[eye]
        dx = self.p[:, 0] - centre[0]
        dy = self.p[:, 1] - centre[1]
        up, down = _eye_opening_half_height(np.clip(dx, -_EYE_HALF_WIDTH, _EYE_HALF_WIDTH))
        lateral = 1.0 - _smoothstep(_EYE_HALF_WIDTH * 0.8, _EYE_HALF_WIDTH + 0.009, np.abs(dx))
        near = self.skin * (self.p[:, 2] > centre[2] - 0.004) * lateral
        upper = (dy >= -1e-9) * (1.0 - _smoothstep(0.0, 0.013, dy - up)) * near
        lower = (dy < -1e-9) * (1.0 - _smoothstep(0.0, 0.009, -dy - down)) * near
        depth = np.sqrt(np.maximum(_LID_RADIUS**2 - dx**2, 1e-8))
        meet = np.arctan2(-0.25 * down, depth)
        upper_angle = np.arctan2(up, depth) - meet
        lower_angle = meet - np.arctan2(-down, depth)
        return upper, lower, upper_angle, lower_angle


def _regions(
    positions: F64,
    normals: F64,
    skin_count: int,
    lower: NDArray[np.bool_],
    upper: NDArray[np.bool_],
    mouth_y: float,
    eyeballs: tuple[NDArray[np.bool_], NDArray[np.bool_]],
    cavity: NDArray[np.bool_],
    tongue: NDArray[np.bool_],
    eyes: F64,
) -> _Regions:
    n = len(positions)
    x, y, z = positions[:, 0], positions[:, 1], positions[:, 2]
    skin = np.zeros(n)
    skin[:skin_count] = 1.0
    front = _smoothstep(0.15, 0.45, normals[:, 2]) * skin
    lower_side = np.where(lower | (y < mouth_y - 1e-6), 1.0, 0.0) * skin
    upper_side = skin - lower_side
    # Jaw: below a line from the mouth corners up to the hinge in front of the ear; the
    # transition is sharp at the lips (the slit) and wide over the cheeks.
    mouth_z = float(np.max(z[:skin_count][np.abs(y[:skin_count] - mouth_y) < 1e-6]))
    t = np.clip((z - _HINGE[2]) / (mouth_z - 0.012 - _HINGE[2]), 0.0, 1.0)
    line_y = _HINGE[1] + (mouth_y - _HINGE[1]) * t
    # The opening is lens shaped: the jaw's pull tapers towards the mouth corners.
    spread = np.clip(np.abs(x) / (_MOUTH_HALF_WIDTH + 0.02), 0.0, 1.0) ** 1.5
    width = 0.0025 + 0.018 * spread
    jaw = _smoothstep(0.0, 1.0, (line_y - y) / width) * _smoothstep(_HINGE[2] - 0.02, _HINGE[2], z)
    jaw *= _smoothstep(0.035, 0.06, y + 0.25 * np.maximum(z, 0.0))  # not the neck
    lens = np.sqrt(np.clip(1.0 - (x / (_MOUTH_HALF_WIDTH + 0.002)) ** 2, 0.0, 1.0))
    jaw = np.where(lower, np.maximum(lens, jaw), np.where(upper, 0.0, jaw)) * skin
    jaw = jaw + np.where(cavity, _smoothstep(mouth_y - 0.001, mouth_y - 0.006, y), 0.0)
    jaw = jaw + tongue
    return _Regions(
        p=positions,
        skin=skin,
        front=front,
        normals=normals,
        mouth_y=mouth_y,
        upper_side=upper_side,
        lower_side=lower_side,
        jaw=jaw,
        eyeballs=eyeballs,
        eyes=eyes,
        tongue=tongue,
    )


def _offset(r: _Regions, weight: F64, delta: tuple[float, float, float]) -> F64:
    out: F64 = weight[:, None] * np.asarray(delta)[None, :]
    return out



#: How far browInnerUp lifts the heads of the brows (ARKit's inner-brow raise, FACS AU1).
_BROW_INNER_RAISE: Final = 0.0075


def _inner_brows(r: _Regions) -> F64:
    """browInnerUp's weight: the inner half of each painted brow (its head, |x| < ~0.02, fully;
    fading out by the brow's outer third, so the brows slant up towards the middle), the skin
    between the brows and the lower forehead above them (fading out towards the hairline), and
    not the upper lids (the skin between lid and brow stretches)."""
    x, y = np.abs(r.p[:, 0]), r.p[:, 1]
    across = 1.0 - _smoothstep(0.016, 0.046, x)
    up = _smoothstep(0.186, 0.199, y) * (1.0 - _smoothstep(0.207, 0.236, y))
    out: F64 = across * up * r.front
    return out

def _blendshapes(r: _Regions) -> dict[str, F64]:
    """Position deltas of the 52 ARKit blendshapes."""
    p = r.p
    my = r.mouth_y
    zero = np.zeros_like(p)
    out: dict[str, F64] = {}

    def rotated_x(weight: F64, angle: F64 | float, centre: F64) -> F64:
        return _rotate_x(p, centre, weight * angle) - p

    def rotated_y(weight: F64, angle: float, centre: F64) -> F64:
        return _rotate_y(p, centre, weight * angle) - p

    lips = np.maximum(r.upper_lip(), r.lower_lip())
    for side, name in ((1.0, "Left"), (-1.0, "Right")):
        eye = 0 if side > 0 else 1
        centre = r.eyes[eye]
        ball = r.eyeballs[eye].astype(np.float64)
        upper, lower, up_angle, low_angle = r.lids(eye)
        corner = r.corner(side)
        half = r.half(side)
        brow = r.face(side * 0.032, 0.198, 0.026, 0.014)
        out[f"browDown{name}"] = _offset(r, brow, (-side * 0.0015, -0.0055, -0.0012))
        out[f"browOuterUp{name}"] = _offset(
            r, r.face(side * 0.048, 0.197, 0.02, 0.014), (0.0, 0.0065, 0.0)
        )
        out[f"cheekSquint{name}"] = _offset(
            r, r.face(side * 0.043, 0.148, 0.021, 0.015), (0.0, 0.0042, 0.0012)
        )
        out[f"noseSneer{name}"] = _offset(
            r, r.face(side * 0.011, 0.146, 0.013, 0.016), (0.0, 0.0035, -0.0006)
        )
        out[f"eyeBlink{name}"] = rotated_x(upper, up_angle, centre) + rotated_x(
            lower, -low_angle, centre
        )
        out[f"eyeSquint{name}"] = (
            rotated_x(lower, -0.45 * low_angle, centre)
            + _offset(r, r.face(side * 0.036, 0.158, 0.018, 0.008), (0.0, 0.0022, 0.0008))
            * (1.0 - lower)[:, None]
            + rotated_x(upper, 0.12 * up_angle, centre)
        )
        out[f"eyeWide{name}"] = rotated_x(upper, -0.32, centre) + rotated_x(lower, 0.06, centre)
        look = 0.38
        out[f"eyeLookDown{name}"] = rotated_x(ball, look, centre) + rotated_x(upper, 0.15, centre)
        out[f"eyeLookUp{name}"] = rotated_x(ball, -look, centre) + rotated_x(upper, -0.1, centre)
        out[f"eyeLookOut{name}"] = rotated_y(ball, side * 0.45, centre)
        out[f"eyeLookIn{name}"] = rotated_y(ball, -side * 0.45, centre)
        out[f"mouthSmile{name}"] = _offset(r, corner, (side * 0.004, 0.0075, -0.003)) + _offset(
            r, r.face(side * 0.042, 0.128, 0.022, 0.02), (side * 0.001, 0.0022, 0.001)
        )
        out[f"mouthFrown{name}"] = _offset(r, corner, (side * 0.001, -0.0062, -0.001))
        out[f"mouthDimple{name}"] = _offset(r, corner, (side * 0.003, 0.0, -0.0042))
        out[f"mouthStretch{name}"] = _offset(r, corner, (side * 0.0072, -0.0022, -0.0022))
        out[f"mouthPress{name}"] = _offset(r, r.upper_lip() * half, (0.0, -0.0022, -0.0012)) + (
            _offset(r, r.lower_lip() * half, (0.0, 0.0026, -0.0012))
        )
        out[f"mouthLowerDown{name}"] = _offset(r, r.lower_lip() * half, (0.0, -0.0062, 0.001))
        out[f"mouthUpperUp{name}"] = _offset(r, r.upper_lip() * half, (0.0, 0.0052, 0.001))
        out[f"jaw{name}"] = _offset(r, r.jaw, (side * 0.0075, 0.0, 0.0))
        mouth = r.face(0.0, my, 0.045, 0.026)
        out[f"mouth{name}"] = _offset(r, mouth, (side * 0.0085, 0.0, -0.0008))

    out["browInnerUp"] = _offset(r, _inner_brows(r), (0.0, _BROW_INNER_RAISE, 0.0008))
    cheeks = r.face(0.046, 0.116, 0.024, 0.026) + r.face(-0.046, 0.116, 0.024, 0.026)
    out["cheekPuff"] = cheeks[:, None] * r.normals * 0.0085
    out["jawOpen"] = rotated_x(r.jaw, 0.3, _HINGE)
    out["jawForward"] = _offset(r, r.jaw, (0.0, 0.0, 0.0075))
    out["mouthClose"] = _offset(r, r.upper_lip(), (0.0, -0.002, 0.0)) + _offset(
        r, r.lower_lip(), (0.0, 0.0055, 0.0005)
    )
    corners_in = r.corner(1.0) - r.corner(-1.0)
    out["mouthFunnel"] = (
        _offset(r, lips, (0.0, 0.0, 0.0068))
        + _offset(r, r.upper_lip(), (0.0, 0.0022, 0.0))
        + _offset(r, r.lower_lip(), (0.0, -0.0025, 0.0))
        + _offset(r, corners_in, (-0.0045, 0.0, 0.0))
    )
    out["mouthPucker"] = _offset(r, lips, (0.0, 0.0, 0.0088)) + _offset(
        r, corners_in, (-0.0085, 0.0, 0.0)
    )
    out["mouthRollLower"] = _offset(r, r.lower_lip(), (0.0, 0.0022, -0.0042))
    out["mouthRollUpper"] = _offset(r, r.upper_lip(), (0.0, -0.0022, -0.0042))
    chin = r.face(0.0, my - 0.02, 0.03, 0.026) * r.lower_side
    out["mouthShrugLower"] = _offset(r, chin, (0.0, 0.0042, 0.0022))
    tongue = r.tongue.astype(np.float64)
    tip = np.clip((p[:, 2] - p[r.tongue, 2].min()) / np.ptp(p[r.tongue, 2]), 0.0, 1.0)
    out["tongueOut"] = _offset(r, tongue, (0.0, 0.001, 0.024)) + _offset(
        r, tongue * tip, (0.0, -0.002, 0.008)
    )
    out["mouthShrugUpper"] = _offset(r, r.upper_lip(), (0.0, 0.0032, 0.001))
    missing = set(ARKIT_BLENDSHAPES) - set(out)
    assert not missing, missing  # every ARKit shape is defined above
    return {name: out.get(name, zero) for name in ARKIT_BLENDSHAPES}


# --- assembly --------------------------------------------------------------------------------


_PHI: Final = (1.0 + math.sqrt(5.0)) / 2.0
#: The regular icosahedron: its 12 vertices are the cyclic permutations of (+-1, +-phi, 0).
_ICOSAHEDRON_VERTICES: Final = (
    (-1, _PHI, 0), (1, _PHI, 0), (-1, -_PHI, 0), (1, -_PHI, 0),
    (0, -1, _PHI), (0, 1, _PHI), (0, -1, -_PHI), (0, 1, -_PHI),
    (_PHI, 0, -1), (_PHI, 0, 1), (-_PHI, 0, -1), (-_PHI, 0, 1),
)  # fmt: skip
#: Its 20 faces, counter-clockwise seen from outside (so their normals point out).
_ICOSAHEDRON_FACES: Final = (
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
    (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
    (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
    (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
)  # fmt: skip


def _sphere(subdivisions: int) -> tuple[F64, NDArray[np.int64]]:
    """A unit icosphere: the icosahedron with each triangle split ``subdivisions`` times into
    four at its edge midpoints, the new vertices pushed out onto the sphere each time
    (``10 * 4**n + 2`` vertices, ``20 * 4**n`` triangles, outward winding)."""
    vertices = np.array(_ICOSAHEDRON_VERTICES, dtype=np.float64)
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    faces = np.array(_ICOSAHEDRON_FACES, dtype=np.int64)
    for _ in range(subdivisions):
        # The three edges of every face (a-b, b-c, c-a); each edge is shared by two faces and
        # gets one midpoint vertex, numbered after the existing vertices.
        edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        midpoints = vertices[unique].mean(axis=1)
        midpoints /= np.linalg.norm(midpoints, axis=1, keepdims=True)
        ab, bc, ca = (inverse.reshape(-1, 3) + len(vertices)).T
        a, b, c = faces.T
        faces = np.stack(
            [
                np.stack([a, ab, ca], axis=1),
                np.stack([ab, b, bc], axis=1),
                np.stack([ca, bc, c], axis=1),
                np.stack([ab, bc, ca], axis=1),
            ],
            axis=1,
        ).reshape(-1, 3)
        vertices = np.concatenate([vertices, midpoints])
    return vertices, faces


def _skeleton(eyes: F64) -> tuple[Joint, ...]:
    root = (0.0, 0.0, 0.0)
    neck = np.array([0.0, 0.02, -0.012])
    head = np.array([0.0, 0.095, -0.012])
    names = dict(zip(DEFAULT_JOINT_NAMES, range(len(DEFAULT_JOINT_NAMES)), strict=True))

    def rel(a: F64, b: F64) -> tuple[float, float, float]:
        d = np.round(a - b, 6)
        return (float(d[0]), float(d[1]), float(d[2]))

    return (
        Joint("root", None, root),
        Joint("neck", names["root"], rel(neck, np.zeros(3))),
        Joint("head", names["neck"], rel(head, neck)),
        Joint("jaw", names["head"], rel(_HINGE, head)),
        Joint("eyeLeft", names["head"], rel(eyes[0], head)),
        Joint("eyeRight", names["head"], rel(eyes[1], head)),
    )


def _colors(p: F64, r: _Regions, shape: _Shape, eye_masks: list[NDArray[np.bool_]]) -> F64:
    skin = np.asarray(shape.skin_srgb)
    colour = np.broadcast_to(skin, p.shape).copy()
    lips = np.clip(np.maximum(r.upper_lip(), r.lower_lip()) * 1.6, 0.0, 1.0)
    colour += (np.array([0.70, 0.36, 0.36]) - colour) * lips[:, None] * 0.75
    brows = np.zeros(len(p))
    for side in (1.0, -1.0):
        brows += _kernel((p[:, 0] - side * 0.034) / 0.022, (p[:, 1] - 0.203) / 0.004)
    colour += (np.array([0.22, 0.15, 0.11]) - colour) * np.clip(brows * 2.0, 0, 1)[:, None]
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    hairline = 0.232 - 0.112 * _smoothstep(0.04, -0.075, z) + 0.02 * np.abs(x) / 0.08
    hair = _smoothstep(-0.004, 0.004, y - hairline) * r.skin
    colour += (np.array([0.18, 0.12, 0.08]) - colour) * hair[:, None]
    for mask, centre in zip(eye_masks, r.eyes, strict=True):
        d = p[mask] - centre
        angle = np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1.0, 1.0))
        iris = 1.0 - _smoothstep(0.40, 0.46, angle)
        pupil = 1.0 - _smoothstep(0.16, 0.2, angle)
        c = (
            np.array([0.93, 0.91, 0.88])
            + (np.array([0.30, 0.20, 0.11]) - [0.93, 0.91, 0.88]) * (iris[:, None])
        )
        colour[mask] = c + (np.array([0.03, 0.03, 0.03]) - c) * pupil[:, None]
    colour[r.skin == 0] = np.where(
        np.any(np.stack(eye_masks), axis=0)[r.skin == 0][:, None],
        colour[r.skin == 0],
        np.array([0.30, 0.08, 0.08]),
    )
    colour[r.tongue] = (0.72, 0.33, 0.36)
    return _srgb_to_linear(np.clip(colour, 0.0, 1.0))


def _skin_weights(
    p: F64, r: _Regions, eye_masks: list[NDArray[np.bool_]]
) -> tuple[NDArray[np.int64], F64]:
    names = {name: k for k, name in enumerate(DEFAULT_JOINT_NAMES)}
    y = p[:, 1]
    head_share = _smoothstep(0.028, 0.07, y + 0.2 * np.maximum(p[:, 2], 0.0))
    root_share = 1.0 - _smoothstep(-0.005, 0.025, y)
    jaw = np.clip(r.jaw, 0.0, 1.0)
    joints = np.tile(
        np.array([names["head"], names["jaw"], names["neck"], names["root"]]), (len(p), 1)
    )
    weights = np.stack(
        [
            head_share * (1.0 - jaw),
            head_share * jaw,
            (1.0 - head_share) * (1.0 - root_share),
            (1.0 - head_share) * root_share,
        ],
        axis=1,
    )
    for mask, name in zip(eye_masks, ("eyeLeft", "eyeRight"), strict=True):
        joints[mask] = [names[name], 0, 0, 0]
        weights[mask] = [1.0, 0.0, 0.0, 0.0]
    # Unused influences point at joint 0 with weight 0 (glTF 3.7.3.3).
    joints = np.where(weights > 0, joints, 0)
    return joints, weights


def _normalised_weights(weights: F64) -> NDArray[np.float32]:
    """float32 rows that sum to 1 in float32 arithmetic (the largest absorbs the rounding)."""
    w = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    largest = np.argmax(w, axis=1)
    rows = np.arange(len(w))
    w[rows, largest] = 0.0
    w[rows, largest] = np.float32(1.0) - w.sum(axis=1, dtype=np.float32)
    out: NDArray[np.float32] = w
    return out


def generate_default_head(*, seed: int = 0, resolution: str = "default") -> AvatarModel:
    """The product's default base avatar: a procedural head and neck, skinned to
    :data:`~avatar_mf.avatar.model.DEFAULT_JOINT_NAMES` with the 52 ARKit blendshapes.

    Deterministic: the same ``seed`` and ``resolution`` always give the same model (seed 0 is
    the canonical head; other seeds vary proportions and skin tone a little). ``resolution``
    is one of :data:`RESOLUTIONS` (``"default"``: about 7.5k vertices and 15k triangles).
    CPU bound (about 0.1-0.2 s): run it in an executor.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {sorted(RESOLUTIONS)}, not {resolution!r}")
    res = RESOLUTIONS[resolution]
    shape = _Shape.for_seed(seed)

    skin = _skin_surface(res, shape)
    sculpted, eyes = _sculpt(skin, shape)
    sculpted, rim = _cut_eye_openings(skin, sculpted, eyes)
    mobility = np.ones(len(sculpted))
    for centre in eyes:  # keep the lids on their sphere
        mobility *= _smoothstep(0.0095, 0.0135, np.hypot(*(sculpted[:, :2] - centre[:2]).T))
    mobility[rim | skin.lower | skin.upper] = 0.0
    mobility[[0, len(sculpted) - 1 - int(skin.lower.sum())]] = 0.0  # the poles
    sculpted = _taubin_smooth(sculpted, skin.triangles, mobility, iterations=8)
    # Drop vertices no face uses any more (inside the eye openings).
    used = np.zeros(len(sculpted), dtype=bool)
    used[skin.triangles.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    skin_positions = sculpted[used]
    skin_triangles = remap[skin.triangles]
    skin_weld = remap[skin.weld[used]]
    lower, upper = skin.lower[used], skin.upper[used]

    parts_p = [skin_positions]
    parts_t = [skin_triangles]
    offset = len(skin_positions)
    unit, unit_faces = _sphere(res.eye_subdivisions)
    eye_ranges = []
    for centre in eyes:
        parts_p.append(centre + unit * _EYE_RADIUS)
        parts_t.append(unit_faces + offset)
        eye_ranges.append((offset, offset + len(unit)))
        offset += len(unit)
    cavity_unit, cavity_faces = _sphere(2)
    mouth_z = float(np.max(skin_positions[np.abs(skin_positions[:, 1] - skin.mouth_y) < 1e-6, 2]))
    cavity_centre = np.array([0.0, skin.mouth_y - 0.004, mouth_z - 0.026])
    parts_p.append(cavity_centre + cavity_unit * np.array([0.026, 0.015, 0.018]))
    parts_t.append(cavity_faces + offset)
    cavity_range = (offset, offset + len(cavity_unit))
    offset += len(cavity_unit)
    tongue_centre = cavity_centre + np.array([0.0, -0.0045, 0.002])
    parts_p.append(tongue_centre + cavity_unit * np.array([0.0145, 0.0045, 0.015]))
    parts_t.append(cavity_faces + offset)
    tongue_range = (offset, offset + len(cavity_unit))
    offset += len(cavity_unit)

    positions = np.vstack(parts_p)
    triangles = np.vstack(parts_t)
    n = len(positions)
    weld = np.concatenate([skin_weld, np.arange(len(skin_positions), n)])
    masks = []
    for start, stop in eye_ranges:
        mask = np.zeros(n, dtype=bool)
        mask[start:stop] = True
        masks.append(mask)
    cavity = np.zeros(n, dtype=bool)
    cavity[cavity_range[0] : cavity_range[1]] = True
    tongue = np.zeros(n, dtype=bool)
    tongue[tongue_range[0] : tongue_range[1]] = True
    pad = np.zeros(n - len(skin_positions), dtype=bool)
    normals = _vertex_normals(positions, triangles, weld)
    regions = _regions(
        positions,
        normals,
        len(skin_positions),
        np.concatenate([lower, pad]),
        np.concatenate([upper, pad]),
        skin.mouth_y,
        (masks[0], masks[1]),
        cavity,
        tongue,
        eyes,
    )
    deltas = _blendshapes(regions)
    target_positions = np.zeros((len(ARKIT_BLENDSHAPES), n, 3), dtype=np.float32)
    target_normals = np.zeros_like(target_positions)
    base_sums = _normal_sums(positions, triangles, weld)
    for k, name in enumerate(ARKIT_BLENDSHAPES):
        d = np.where(np.abs(deltas[name]) < 1e-7, 0.0, deltas[name])
        target_positions[k] = d
        target_normals[k] = _normal_deltas(positions, d, triangles, weld, base_sums, normals)

    joints = _skeleton(eyes)
    model_joints, model_weights = _skin_weights(positions, regions, masks)
    ibms = np.linalg.inv(rest_matrices(joints))
    ibms[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    return AvatarModel(
        name="default-head",
        positions=positions.astype(np.float32),
        normals=normals.astype(np.float32),
        triangles=triangles.astype(np.uint32),
        joints=joints,
        inverse_bind_matrices=ibms.astype(np.float32),
        skin_joints=model_joints.astype(np.uint16),
        skin_weights=_normalised_weights(model_weights),
        target_names=ARKIT_BLENDSHAPES,
        target_positions=target_positions,
        target_normals=target_normals,
        colors=_colors(positions, regions, shape, masks).astype(np.float32),
    )
