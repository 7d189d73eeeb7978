"""What the renderer draws and how: the static mesh, the framing and the output settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Linear RGB of a mesh without colours (a light grey).
DEFAULT_COLOUR = (0.6, 0.6, 0.6)


@dataclass(frozen=True, slots=True, eq=False)
class MeshData:
    """The part of a mesh that does not change per frame.

    ``triangles`` (T, 3) vertex indices; ``colors`` (N, 3) linear RGB base colours per vertex
    (glTF ``COLOR_0``) or None; ``uvs`` (N, 2) and ``texture`` (H, W, 3|4) uint8 sRGB, the
    base colour texture (glTF ``baseColorTexture``, multiplied with the vertex colour), or
    None; ``bounds`` (2, 3) the rest pose's bounding box, which frames the camera so the
    picture does not move when the face does.

    ``flat``: a 2D mesh over the picture (a portrait warp, ``stages/animation/portrait``): its
    positions are x and y as fractions of the picture (0, 0 the top left) and a depth 0..1
    (smaller: in front); drawn unlit with no camera, base colour = vertex colour x texture
    (both as stored: no sRGB decoding); normals are ignored and ``bounds`` unused.
    """

    vertex_count: int
    triangles: NDArray[np.uint32]
    bounds: NDArray[np.float64]
    colors: NDArray[np.float32] | None = None
    uvs: NDArray[np.float32] | None = None
    texture: NDArray[np.uint8] | None = None
    flat: bool = False

    def __post_init__(self) -> None:
        tri = np.ascontiguousarray(self.triangles, dtype=np.uint32)
        if tri.ndim != 2 or tri.shape[1] != 3:
            raise ValueError(f"triangles must be (T, 3), not {tri.shape}")
        if tri.size and int(tri.max()) >= self.vertex_count:
            raise ValueError("a triangle refers to a vertex past vertex_count")
        object.__setattr__(self, "triangles", tri)
        object.__setattr__(self, "bounds", np.asarray(self.bounds, dtype=np.float64))
        if self.colors is not None:
            colors = np.ascontiguousarray(self.colors, dtype=np.float32)
            if colors.shape != (self.vertex_count, 3):
                raise ValueError(f"colors must be ({self.vertex_count}, 3), not {colors.shape}")
            object.__setattr__(self, "colors", colors)
        if (self.uvs is None) != (self.texture is None):
            raise ValueError("uvs and texture come together")
        if self.uvs is not None and self.texture is not None:
            uvs = np.ascontiguousarray(self.uvs, dtype=np.float32)
            if uvs.shape != (self.vertex_count, 2):
                raise ValueError(f"uvs must be ({self.vertex_count}, 2), not {uvs.shape}")
            texture = np.ascontiguousarray(self.texture, dtype=np.uint8)
            if texture.ndim != 3 or texture.shape[2] not in (3, 4):
                raise ValueError(f"texture must be (H, W, 3|4) uint8, not {texture.shape}")
            object.__setattr__(self, "uvs", uvs)
            object.__setattr__(self, "texture", texture)

    @classmethod
    def from_arrays(
        cls,
        positions: NDArray[np.floating],
        triangles: NDArray[np.integer],
        colors: NDArray[np.floating] | None = None,
        *,
        uvs: NDArray[np.floating] | None = None,
        texture: NDArray[np.uint8] | None = None,
    ) -> MeshData:
        """A mesh framed by the bounding box of ``positions`` (its rest pose)."""
        p = np.asarray(positions, dtype=np.float64)
        return cls(
            vertex_count=len(p),
            triangles=np.asarray(triangles, dtype=np.uint32),
            bounds=np.stack([p.min(axis=0), p.max(axis=0)]),
            colors=None if colors is None else np.asarray(colors, dtype=np.float32),
            uvs=None if uvs is None else np.asarray(uvs, dtype=np.float32),
            texture=texture,
        )


@dataclass(frozen=True, slots=True)
class Framing:
    """Where the camera is: a head-and-shoulders portrait of the mesh's bounding box.

    ``yaw`` turns the camera about the vertical axis through the box's centre (degrees,
    positive: towards the subject's left, +X; 35 gives a three-quarter view); ``pitch``
    raises it (degrees, positive: looking down). ``fov`` is the vertical field of view in
    degrees (a portrait lens: narrow); ``margin`` the fraction of the picture height left
    around the box; ``top`` how much of the box's height, from the top, the picture shows (the
    default head's box runs down the neck: 0.85 keeps its base out of the picture).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    fov: float = 22.0
    margin: float = 0.12
    top: float = 0.85


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """The picture: size in pixels, background, alpha, anti-aliasing."""

    width: int = 512
    height: int = 512
    #: Background colour, sRGB 0..1 (r, g, b).
    background: tuple[float, float, float] = (0.2, 0.22, 0.25)
    #: With alpha, the background's alpha is 0 (the avatar can be composited); else 255.
    alpha: bool = False
    #: Multisample anti-aliasing samples (0 or 1: off; 4 is cheap on llvmpipe).
    samples: int = 4
    framing: Framing = field(default_factory=Framing)

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f"size must be 16..4096 pixels, not {self.width}x{self.height}")
        if self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even (H.264 4:2:0 needs it)")
        if self.samples not in (0, 1, 2, 4, 8):
            raise ValueError(f"samples must be 0, 1, 2, 4 or 8, not {self.samples}")
        if not all(0.0 <= c <= 1.0 for c in self.background) or len(self.background) != 3:
            raise ValueError(f"background must be three values 0..1, not {self.background}")

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 4
