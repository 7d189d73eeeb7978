"""A 2D portrait avatar (TR 26.813 section 3.4, 2D avatars): one photo, its face landmarks,
and a triangle mesh over the whole picture that the blendshapes warp.

:func:`fit_portrait` finds the face (any :class:`~avatar_mf.face.FaceTracker`; the errors are
the tracker's :class:`~avatar_mf.face.FaceTrackingError` codes: ``no-face``,
``several-faces``, ``face-too-small``, ...), crops a square head-and-shoulders picture around
it (``framing`` times the face's height, at most the picture) and builds the
:class:`PortraitModel`:

* **Vertices** (:data:`VERTEX_COUNT`): the 478 landmarks (vertex ``i`` is landmark ``i``),
  a ring of 36 points outside the face's outline (:data:`RING`: the outline pushed 30 %
  further from the face's centre, less where the picture's edge is near), 36 points where
  the rays from the centre through the ring meet the picture's edge (:data:`EDGE`), the four
  corners (:data:`CORNERS`), and two copies of the mouth opening's rim plus its centre: the
  mouth's inside, drawn dark (:data:`MOUTH`), and the photo's own mouth (:data:`TEETH`).
* **Triangles**: MediaPipe's canonical face mesh (852, with the eyes and the mouth left
  open), a fan over each eye opening from the iris centre (the eye's own picture), two fans
  over the mouth opening: the photo's mouth as it is at rest (teeth, if the photo shows them),
  moving with the upper lip only, in front of a dark one whose rim follows both lips: when
  the jaw drops, the gap between the photo's mouth and the lower lip shows the dark inside;
  and strips outline -> ring -> edge (+ a triangle at each corner), so the mesh
  covers the picture exactly.
* **Motion**: the blendshapes' displacement fields (:mod:`.shapes`), zero on the edge and
  corners, half the outline's on the ring; the head's rotation (:mod:`.rig`) moves the face
  fully, the ring partly (more above the ears: hair), the edge not at all.

Positions are pixels of the cropped picture (x right, y down) and depth (MediaPipe's z, in the
scale of x, larger: further from the camera).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.face import FaceError, FaceTracker, FaceTrackingError
from avatar_mf.render.scene import MeshData
from avatar_mf.stages.animation.portrait import landmarks as lm
from avatar_mf.stages.animation.portrait.shapes import FaceFrame, displacement_fields

F64 = NDArray[np.float64]

_N_OVAL = len(lm.FACE_OVAL)
#: First vertex of each added group.
RING: Final = lm.LANDMARKS
EDGE: Final = RING + _N_OVAL
CORNERS: Final = EDGE + _N_OVAL
MOUTH: Final = CORNERS + 4
TEETH: Final = MOUTH + len(lm.INNER_LIP_LOOP) + 1
VERTEX_COUNT: Final = TEETH + len(lm.INNER_LIP_LOOP) + 1

#: How far the ring sits outside the face's outline (its distance from the face's centre).
RING_SCALE: Final = 1.3
#: Base colour of the mouth's inside, multiplied with the lips' picture.
MOUTH_COLOUR: Final = (0.22, 0.11, 0.11)
#: Default crop: this many face heights (forehead to chin) a side.
FRAMING: Final = 2.5
#: Largest texture side kept (pixels).
MAX_SIDE: Final = 1024


@dataclass(frozen=True, slots=True, eq=False)
class PortraitModel:
    """A fitted portrait (see the module). ``picture`` (S, S, 3) uint8 the cropped photo;
    ``rest`` (V, 3) vertex positions at rest (pixels, depth); ``basis`` (52, V, 2) each ARKit
    blendshape's displacement (pixels); ``head_weight`` (V,) how much of the head's rotation
    each vertex follows; ``pivot`` (3,) the head's centre of rotation; ``triangles`` (T, 3);
    ``colors`` (V, 3) base colours (white but for the mouth's inside); ``frame`` the face's
    axes; ``crop`` (x0, y0, side) of the crop in the original picture, its pixels."""

    picture: NDArray[np.uint8]
    rest: F64
    basis: F64
    head_weight: F64
    pivot: F64
    triangles: NDArray[np.int64]
    colors: NDArray[np.float32]
    frame: FaceFrame
    crop: tuple[int, int, int]

    @property
    def size(self) -> int:
        return int(self.picture.shape[0])

    @property
    def target_names(self) -> tuple[str, ...]:
        """The blendshape names, in weight order (as :class:`AvatarModel`'s)."""
        return ARKIT_BLENDSHAPES

    def mesh(self) -> MeshData:
        """The renderer's static mesh: flat, the picture as texture at the rest positions."""
        side = float(self.size)
        uvs = (self.rest[:, :2] / side).astype(np.float32)
        return MeshData(
            vertex_count=len(self.rest),
            triangles=self.triangles.astype(np.uint32),
            bounds=np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
            colors=self.colors,
            uvs=uvs,
            texture=self.picture,
            flat=True,
        )


def decode_picture(data: bytes) -> NDArray[np.uint8]:
    """A JPEG/PNG (any format Pillow reads) as RGB, or ``unsupported-image``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaceTrackingError(FaceError.UNSUPPORTED_IMAGE, f"not a picture: {exc}") from exc


def _crop(rgb: NDArray[np.uint8], points: F64, framing: float) -> tuple[int, int, int]:
    height, width = rgb.shape[:2]
    top, bottom = float(points[:, 1].min()), float(points[:, 1].max())
    face = bottom - top
    side = int(min(width, height, max(64.0, framing * face)))
    cx = float(points[:, 0].min() + points[:, 0].max()) / 2
    cy = (top + bottom) / 2 + 0.1 * face  # the face a little above the middle
    x0 = int(round(min(max(cx - side / 2, 0.0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0.0), height - side)))
    return x0, y0, side


def fit_portrait(
    rgb: NDArray[np.uint8],
    tracker: FaceTracker,
    *,
    framing: float = FRAMING,
    max_side: int = MAX_SIDE,
) -> PortraitModel:
    """Fit a portrait to an RGB photo (the tracker's errors pass through)."""
    face = tracker.track(rgb)
    height, width = rgb.shape[:2]
    points = face.landmarks.astype(np.float64) * np.array([width, height, width])
    x0, y0, side = _crop(rgb, points, framing)
    picture = rgb[y0 : y0 + side, x0 : x0 + side]
    points = points - np.array([x0, y0, 0.0])
    if side > max_side:
        from PIL import Image

        scale = max_side / side
        picture = np.asarray(
            Image.fromarray(np.ascontiguousarray(picture)).resize(
                (max_side, max_side), Image.Resampling.LANCZOS
            )
        )
        points = points * scale
        side = max_side
    return build_model(np.ascontiguousarray(picture), points, crop=(x0, y0, side))


def build_model(
    picture: NDArray[np.uint8], points: F64, *, crop: tuple[int, int, int] = (0, 0, 0)
) -> PortraitModel:
    """The model of a square picture whose (478, 3) landmarks (pixels) are known."""
    side = float(picture.shape[0])
    if picture.shape[:2] != (picture.shape[0], picture.shape[0]):
        raise ValueError(f"the picture must be square, not {picture.shape}")
    frame, fields = displacement_fields(points)
    oval = points[list(lm.FACE_OVAL)]
    centre = oval[:, :2].mean(axis=0)
    # Where each ray centre -> outline point leaves the picture, in units of that ray.
    d = oval[:, :2] - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[:, 0] > 0, (side - centre[0]) / d[:, 0],
                      np.where(d[:, 0] < 0, -centre[0] / d[:, 0], np.inf))
        ty = np.where(d[:, 1] > 0, (side - centre[1]) / d[:, 1],
                      np.where(d[:, 1] < 0, -centre[1] / d[:, 1], np.inf))
    t_edge = np.minimum(tx, ty)
    t_ring = np.clip(np.minimum(RING_SCALE, 0.5 * (1.0 + t_edge)), 1.0, None)
    ears_depth = float(points[list(lm.EARS), 2].mean())
    ring = np.column_stack([centre + d * t_ring[:, None], np.full(_N_OVAL, ears_depth)])
    edge = np.column_stack([centre + d * t_edge[:, None], np.full(_N_OVAL, ears_depth)])
    edge[:, :2] = np.clip(edge[:, :2], 0.0, side)
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64)
    corners = np.column_stack([corners, np.full(4, ears_depth)])
    rim = points[list(lm.INNER_LIP_LOOP)]
    mouth = np.vstack([rim, rim.mean(axis=0, keepdims=True)])
    rest = np.vstack([points, ring, edge, corners, mouth, mouth])
    assert len(rest) == VERTEX_COUNT

    basis = np.zeros((fields.shape[0], VERTEX_COUNT, 2))
    basis[:, : lm.LANDMARKS] = fields
    basis[:, RING:EDGE] = 0.5 * fields[:, list(lm.FACE_OVAL)]
    rim_fields = fields[:, list(lm.INNER_LIP_LOOP)]
    basis[:, MOUTH : TEETH - 1] = rim_fields
    basis[:, TEETH - 1] = rim_fields.mean(axis=1)
    upper_fields = fields[:, list(_UPPER_OF_RIM)]
    basis[:, TEETH : VERTEX_COUNT - 1] = upper_fields
    basis[:, VERTEX_COUNT - 1] = upper_fields.mean(axis=1)

    head = np.zeros(VERTEX_COUNT)
    head[: lm.LANDMARKS] = 1.0
    head[MOUTH:] = 1.0
    ring_v = frame.uv(ring)[:, 1]
    ears_v = float(frame.uv(points[list(lm.EARS)])[:, 1].mean())
    head[RING:EDGE] = 0.25 + 0.55 * np.clip((ears_v - ring_v) / 0.5 + 0.5, 0.0, 1.0)
    pivot = np.array([*(frame.origin + frame.v * 0.5 * frame.iod), ears_depth])

    colors = np.ones((VERTEX_COUNT, 3), dtype=np.float32)
    colors[MOUTH:TEETH] = MOUTH_COLOUR
    return PortraitModel(
        picture=picture,
        rest=rest,
        basis=basis,
        head_weight=head,
        pivot=pivot,
        triangles=_triangles(_corner_triangles(centre, edge, corners)),
        colors=colors,
        frame=frame,
        crop=crop,
    )


#: For each point of the mouth's rim, the upper lip point the photo's mouth follows.
_UPPER_OF_RIM: Final = tuple(
    {lower: upper for lower, upper in zip(lm.LOWER_INNER, lm.UPPER_INNER, strict=True)}.get(i, i)
    for i in lm.INNER_LIP_LOOP
)


def _fan(centre: int, loop: list[int]) -> list[tuple[int, int, int]]:
    return [(centre, loop[i], loop[(i + 1) % len(loop)]) for i in range(len(loop))]


def _strip(inner: list[int], outer: list[int]) -> list[tuple[int, int, int]]:
    out = []
    n = len(inner)
    for i in range(n):
        j = (i + 1) % n
        out += [(inner[i], inner[j], outer[j]), (inner[i], outer[j], outer[i])]
    return out


def _corner_triangles(centre: F64, edge: F64, corners: F64) -> list[tuple[int, int, int]]:
    """Triangles closing the gaps the edge strip leaves at the picture's corners."""
    angles = np.arctan2(edge[:, 1] - centre[1], edge[:, 0] - centre[0])
    corner_angles = np.arctan2(corners[:, 1] - centre[1], corners[:, 0] - centre[0])
    out = []
    n = len(edge)
    for i in range(n):
        j = (i + 1) % n
        sweep = (angles[j] - angles[i] + np.pi) % (2 * np.pi) - np.pi
        between = []
        for k in range(4):
            offset = (corner_angles[k] - angles[i] + np.pi) % (2 * np.pi) - np.pi
            if offset * sweep > 0 and abs(offset) < abs(sweep):
                between.append((abs(offset), CORNERS + k))
        chain = [EDGE + i, *(c for _, c in sorted(between)), EDGE + j]
        out += [(EDGE + i, chain[m], chain[m + 1]) for m in range(1, len(chain) - 1)]
    return out


def _triangles(extra: list[tuple[int, int, int]]) -> NDArray[np.int64]:
    tris: list[tuple[int, int, int]] = [tuple(t) for t in lm.face_triangles().tolist()]
    tris += extra
    for corners, lower, upper, iris in (
        (lm.RIGHT_EYE_CORNERS, lm.RIGHT_LOWER_LID, lm.RIGHT_UPPER_LID, lm.RIGHT_IRIS),
        (lm.LEFT_EYE_CORNERS, lm.LEFT_LOWER_LID, lm.LEFT_UPPER_LID, lm.LEFT_IRIS),
    ):
        loop = [corners[0], *lower, corners[1], *reversed(upper)]
        tris += _fan(iris[0], loop)
    tris += _fan(TEETH - 1, list(range(MOUTH, TEETH - 1)))
    tris += _fan(VERTEX_COUNT - 1, list(range(TEETH, VERTEX_COUNT - 1)))
    oval = list(lm.FACE_OVAL)
    ring = list(range(RING, EDGE))
    edge = list(range(EDGE, CORNERS))
    tris += _strip(oval, ring)
    tris += _strip(ring, edge)
    return np.array(tris, dtype=np.int64)
