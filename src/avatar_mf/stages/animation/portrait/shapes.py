"""ARKit blendshapes as 2D displacement fields of a photo's face landmarks.

Each of the 52 ARKit blendshapes is a linear morph target of the 478 landmarks, in pixels of
the portrait: the landmarks at weights ``w`` are ``rest + sum_k w_k * D_k``, as the product's
3D head morphs its vertices (glTF 2.0 morph targets). The fields are the product head's own
blendshape definitions (``avatar_mf.avatar.generate._blendshapes``) carried over to the photo:

* **Units.** The head's offsets and region sizes are in metres on a head whose inter-ocular
  distance (IOD, eye centre to eye centre) is 64 mm; here they are in IOD units of the photo's
  face, along the face's own axes (``u`` from its right eye to its left eye, ``v``
  perpendicular, pointing down the face), so a tilted photo warps along its face.
* **Regions.** The head's regions are bumps ``(1 - r^2)^3`` around a point (the same kernel);
  here they are centred on the photo's landmarks (a mouth corner, an inner brow), with the
  head's radii.
* **jawOpen** is the head's jaw rotation, 0.3 rad about the jaw hinge, applied to the photo's
  3D landmarks (MediaPipe's depth, in the scale of x) and projected orthographically: the hinge
  sits where it sits on the head, :data:`HINGE_BELOW_EYES` IOD below the eye line and
  :data:`HINGE_BEHIND_LIPS` IOD behind the lips, so a point's drop depends on its depth in
  front of the hinge (the lower lip drops more than the chin, the jaw's angle hardly moves).
  What turns: the lower lip, and everything of the face below the mouth line (a smooth step
  0.1 IOD wide); the mouth corners half.
* **Blinks** move the upper lid points onto the closing line, a fifth of the way up from the
  lower lid, and the lower lid points up onto it; the iris points follow in proportion, the
  skin above the lid follows for 0.3 IOD, fading.
* Shapes with no 2D effect worth drawing in a frontal picture (``cheekPuff``,
  ``mouthRollLower/Upper``, ``mouthPress*``, ``mouthDimple*``, ``tongueOut``, ``jawForward``,
  ``mouthShrug*``) are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.stages.animation.portrait import landmarks as lm

F64 = NDArray[np.float64]

#: The product head's inter-ocular distance, metres (eyes at x = +-0.032).
HEAD_IOD: Final = 0.064
#: The jaw hinge of the product head: rotation, and where it is in IOD units.
JAW_ANGLE: Final = 0.3
HINGE_BELOW_EYES: Final = (0.177 - 0.146) / HEAD_IOD
HINGE_BEHIND_LIPS: Final = 1.4
#: Where the closed eye's lids meet: this fraction of the way from the lower lid up.
BLINK_LINE: Final = 0.2


def _m(metres: float) -> float:
    """The product head's metres in IOD units."""
    return metres / HEAD_IOD


def _kernel(u: F64, v: F64) -> F64:
    r2 = u * u + v * v
    out: F64 = np.where(r2 < 1.0, (1.0 - np.minimum(r2, 1.0)) ** 3, 0.0)
    return out


def _smoothstep(edge0: float, edge1: float, x: F64) -> F64:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    out: F64 = t * t * (3.0 - 2.0 * t)
    return out


@dataclass(frozen=True, slots=True)
class FaceFrame:
    """The face's own axes in the picture: ``origin`` (the eyes' midpoint, pixels), ``u``
    (unit, towards the face's left eye), ``v`` (unit, down the face), ``iod`` (pixels)."""

    origin: F64
    u: F64
    v: F64
    iod: float

    @classmethod
    def of(cls, points: F64) -> FaceFrame:
        right = points[list(lm.RIGHT_EYE_CORNERS), :2].mean(axis=0)
        left = points[list(lm.LEFT_EYE_CORNERS), :2].mean(axis=0)
        axis = left - right
        iod = float(np.linalg.norm(axis))
        if not iod > 0:
            raise ValueError("the eyes coincide")
        u = axis / iod
        return cls((left + right) / 2, u, np.array([-u[1], u[0]]), iod)

    def uv(self, points: F64) -> F64:
        """(N, 2) face coordinates, IOD units, of (N, >=2) pixel points."""
        d = points[:, :2] - self.origin
        out: F64 = np.stack([d @ self.u, d @ self.v], axis=1) / self.iod
        return out

    def pixels(self, duv: F64) -> F64:
        """(N, 2) pixel displacements of (N, 2) displacements in IOD units."""
        out: F64 = (duv[:, :1] * self.u + duv[:, 1:2] * self.v) * self.iod
        return out


class _Fields:
    def __init__(self, points: F64) -> None:
        self.points = points
        self.frame = FaceFrame.of(points)
        self.q = self.frame.uv(points)
        self.n = len(points)

    def at(self, index: int) -> F64:
        out: F64 = self.q[index]
        return out

    def bump(self, centre: F64, radius_u: float, radius_v: float) -> F64:
        d = self.q - centre
        return _kernel(d[:, 0] / radius_u, d[:, 1] / radius_v)

    def offset(self, weight: F64, du: float, dv: float) -> F64:
        out: F64 = weight[:, None] * np.array([du, dv])
        return out

    def mask(self, indices: tuple[int, ...] | list[int]) -> F64:
        out = np.zeros(self.n)
        out[list(indices)] = 1.0
        return out

    def lips(self) -> F64:
        """1 on the lips, falling off to 0 at 0.15 IOD from them."""
        lips = self.q[list(lm.LIPS)]
        d = np.sqrt(((self.q[:, None, :] - lips[None, :, :]) ** 2).sum(-1)).min(axis=1)
        out: F64 = _kernel(d / 0.15, np.zeros_like(d))
        return out

    def side(self, sign: float) -> F64:
        """1 on the ``sign`` side of the mouth's middle, 0 on the other, smooth across it."""
        centre = self.q[list(lm.MOUTH_CORNERS)].mean(axis=0)
        return _smoothstep(-0.08, 0.08, sign * (self.q[:, 0] - centre[0]))


def _jaw_open(f: _Fields) -> F64:
    p = f.points
    jaw = _jaw_mask(f)
    jaw[list(lm.MOUTH_CORNERS + lm.INNER_CORNERS)] = 0.5
    frame = f.frame
    lips_depth = float(p[[lm.UPPER_INNER[4], lm.LOWER_INNER[4]], 2].mean())
    hinge_v = HINGE_BELOW_EYES * frame.iod
    hinge_z = lips_depth + HINGE_BEHIND_LIPS * frame.iod
    # In the plane (v, z) (v down the face, z away from the camera), the jaw turns so that
    # what is in front of the hinge goes down: v' = h + c (v - h) - s (z - hz), z' = ...
    depth = p[:, 2] - hinge_z
    along = (p[:, :2] - frame.origin) @ frame.v - hinge_v
    c, s = np.cos(JAW_ANGLE), np.sin(JAW_ANGLE)
    drop = (c - 1.0) * along - s * depth  # pixels along v
    out = np.zeros((f.n, 2))
    out[:, 1] = jaw * drop / frame.iod
    return out


def _eye(f: _Fields, upper: tuple[int, ...], lower: tuple[int, ...], iris: tuple[int, ...],
         close: float, lower_share: float) -> F64:
    """Upper lid down by ``close`` of its way to the closing line, lower lid up by
    ``lower_share`` of its way (IOD units, along v)."""
    q = f.q
    up, low = q[list(upper)], q[list(lower)]
    meet = low + BLINK_LINE * (up - low)
    out = np.zeros((f.n, 2))
    d_up = (meet - up) * close
    d_low = (meet - low) * lower_share
    out[list(upper)] = d_up
    out[list(lower)] = d_low
    span = (min(up[:, 0].min(), low[:, 0].min()), max(up[:, 0].max(), low[:, 0].max()))
    lids = set(upper) | set(lower)
    for index in range(f.n):
        if index in lids:
            continue
        u, v = q[index]
        if not span[0] - 0.05 <= u <= span[1] + 0.05:
            continue
        k = int(np.argmin(np.abs(up[:, 0] - u)))
        top, bottom = up[k, 1], low[k, 1]
        if index in iris:
            t = float(np.clip((bottom - v) / max(bottom - top, 1e-6), 0.0, 1.0))
            out[index] = t * d_up[k] + (1.0 - t) * d_low[k]
        elif top - 0.3 < v < top:  # the skin above the lid follows, fading
            out[index] = d_up[k] * 0.6 * (1.0 - (top - v) / 0.3)
    return out


def displacement_fields(points: F64) -> tuple[FaceFrame, F64]:
    """The face frame and the (52, 478, 2) pixel displacement of each ARKit blendshape (in
    :data:`~avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES` order) for (478, 3) landmarks in
    pixels (x right, y down, z away from the camera in the scale of x)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (lm.LANDMARKS, 3):
        raise ValueError(f"expected (478, 3) landmarks, not {points.shape}")
    f = _Fields(points)
    fields: dict[str, F64] = {}
    lips = f.lips()
    upper, lower = f.mask(lm.UPPER_LIP), f.mask(lm.LOWER_LIP)
    corners = f.q[list(lm.MOUTH_CORNERS)]
    mouth_centre = corners.mean(axis=0)
    half_width = max(float(np.abs(corners[:, 0] - mouth_centre[0]).max()), 1e-6)
    inward = -(f.q[:, 0] - mouth_centre[0]) / half_width  # +-1 at the corners, towards centre
    for sign, name, corner, brow, eye in (
        (1.0, "Left", lm.MOUTH_CORNERS[1], lm.LEFT_BROW,
         (lm.LEFT_UPPER_LID, lm.LEFT_LOWER_LID, lm.LEFT_IRIS)),
        (-1.0, "Right", lm.MOUTH_CORNERS[0], lm.RIGHT_BROW,
         (lm.RIGHT_UPPER_LID, lm.RIGHT_LOWER_LID, lm.RIGHT_IRIS)),
    ):
        c = f.at(corner)
        corner_bump = f.bump(c, _m(0.014), _m(0.014))
        cheek = f.bump(c + [sign * _m(0.018), -_m(0.02)], _m(0.022), _m(0.02))
        fields[f"mouthSmile{name}"] = f.offset(corner_bump, sign * _m(0.004), -_m(0.0075)) + (
            f.offset(cheek, sign * _m(0.001), -_m(0.0022))
        )
        fields[f"mouthFrown{name}"] = f.offset(corner_bump, sign * _m(0.001), _m(0.0062))
        fields[f"mouthStretch{name}"] = f.offset(corner_bump, sign * _m(0.0072), _m(0.0022))
        half = f.side(sign)
        fields[f"mouthLowerDown{name}"] = f.offset(lower * half, 0.0, _m(0.0062))
        fields[f"mouthUpperUp{name}"] = f.offset(upper * half, 0.0, -_m(0.0052))
        fields[f"mouth{name}"] = f.offset(lips, sign * _m(0.0085), 0.0)
        inner, middle, outer = (f.at(i) for i in brow)
        fields[f"browDown{name}"] = f.offset(
            f.bump(middle, _m(0.026), _m(0.014)), -sign * _m(0.0015), _m(0.0055)
        )
        fields[f"browOuterUp{name}"] = f.offset(f.bump(outer, _m(0.02), _m(0.014)), 0.0,
                                                -_m(0.0065))
        eye_centre = f.q[list(eye[0] + eye[1])].mean(axis=0)
        fields[f"cheekSquint{name}"] = f.offset(
            f.bump(eye_centre + [sign * _m(0.011), _m(0.029)], _m(0.021), _m(0.015)),
            0.0, -_m(0.0042),
        )
        fields[f"noseSneer{name}"] = f.offset(
            f.bump(f.at(lm.NOSE_TIP) + [sign * _m(0.011), -_m(0.012)], _m(0.013), _m(0.016)),
            0.0, -_m(0.0035),
        )
        fields[f"eyeBlink{name}"] = _eye(f, *eye, close=1.0, lower_share=1.0)
        fields[f"eyeSquint{name}"] = _eye(f, *eye, close=0.12, lower_share=0.45)
        fields[f"eyeWide{name}"] = _eye(f, *eye, close=-0.25, lower_share=0.0)
        iris = f.mask(eye[2])
        look = 0.12  # IOD: the iris's travel at full weight
        fields[f"eyeLookOut{name}"] = f.offset(iris, sign * look, 0.0)
        fields[f"eyeLookIn{name}"] = f.offset(iris, -sign * look, 0.0)
        fields[f"eyeLookUp{name}"] = f.offset(iris, 0.0, -look * 0.5)
        fields[f"eyeLookDown{name}"] = f.offset(iris, 0.0, look * 0.5)
        fields[f"jaw{name}"] = f.offset(_jaw_mask(f), sign * _m(0.0075), 0.0)
    fields["browInnerUp"] = f.offset(
        f.bump(f.at(lm.RIGHT_BROW[0]), _m(0.017), _m(0.015))
        + f.bump(f.at(lm.LEFT_BROW[0]), _m(0.017), _m(0.015)),
        0.0, -_m(0.0075),  # the head's inner-brow raise (FACS AU1, avatar.generate)
    )
    fields["jawOpen"] = _jaw_open(f)
    fields["mouthClose"] = f.offset(upper, 0.0, _m(0.002)) + f.offset(lower, 0.0, -_m(0.0055))
    fields["mouthFunnel"] = (
        f.offset(lips * inward, _m(0.0045), 0.0)
        + f.offset(upper, 0.0, -_m(0.0022))
        + f.offset(lower, 0.0, _m(0.0025))
    )
    fields["mouthPucker"] = f.offset(lips * inward, _m(0.0085), 0.0)
    out = np.zeros((len(ARKIT_BLENDSHAPES), f.n, 2))
    for index, name in enumerate(ARKIT_BLENDSHAPES):
        duv = fields.get(name)
        if duv is not None:
            out[index] = f.frame.pixels(duv)
    return f.frame, out


def _jaw_mask(f: _Fields) -> F64:
    q = f.q
    mouth_line = (q[lm.UPPER_INNER[4], 1] + q[lm.LOWER_INNER[4], 1]) / 2
    jaw = _smoothstep(mouth_line - 0.05, mouth_line + 0.05, q[:, 1])
    jaw[list(lm.UPPER_LIP)] = 0.0
    jaw[list(lm.LOWER_LIP)] = 1.0
    return jaw
