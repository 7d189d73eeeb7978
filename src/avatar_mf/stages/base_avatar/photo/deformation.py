"""The template's deformation onto a photo's face shape: per-axis scale, then a smooth RBF.

Given the anchors on the template (``source``, (K, 3)) and where the photos put them
(``target``), :func:`fit_deformation` builds :class:`Deformation`, a smooth map of space:

1. a per-axis scale about the anchors' centroid (a wider, longer or deeper face than the
   template's makes the whole head so; each factor least squares, clamped to +-15 %);
2. a radial basis function interpolation of what is left: Wendland's C2 kernel
   ``(1 - r/R)^4 (4 r/R + 1)`` (compact support: vertices farther than ``R`` from every anchor,
   the back of the skull and the neck, are only scaled), solved with a small ridge term so
   anchors that nearly coincide (the lid corners) do not blow the field up.

The same map carries everything: skin and mouth vertices, the anchors (for the reprojection
check), joints, and the blendshape targets (:mod:`.transfer` maps ``x + delta`` as well as
``x``). Eyeballs move rigidly: they take the field's value at their centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Kernel support radius (metres) and ridge term of the RBF solve.
RADIUS = 0.05
RIDGE = 1e-6
MAX_SCALE_CHANGE = 0.15


def _kernel(distance: F64) -> F64:
    r = np.clip(distance / RADIUS, 0.0, 1.0)
    out: F64 = (1.0 - r) ** 4 * (4.0 * r + 1.0)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Deformation:
    centre: F64  # (3,) the scale's centre
    scale: F64  # (3,) per-axis factors
    centres: F64  # (K, 3) RBF centres (the scaled anchors)
    weights: F64  # (K, 3) RBF weights

    def scaled(self, points: F64) -> F64:
        out: F64 = (points - self.centre) * self.scale + self.centre
        return out

    def field(self, points: F64) -> F64:
        """The RBF displacement at (N, 3) already scaled points."""
        out = np.zeros_like(points)
        for start in range(0, len(points), 4096):
            chunk = points[start : start + 4096]
            d = np.sqrt(((chunk[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2))
            out[start : start + 4096] = _kernel(d) @ self.weights
        return out

    def __call__(self, points: F64) -> F64:
        s = self.scaled(points)
        out: F64 = s + self.field(s)
        return out


def fit_deformation(source: F64, target: F64) -> Deformation:
    """The map taking ``source`` (K, 3) onto ``target`` (K, 3) as nearly as a smooth map can."""
    centre = source.mean(axis=0)
    a, b = source - centre, target - target.mean(axis=0)
    scale = np.clip(
        (a * b).sum(axis=0) / np.maximum((a * a).sum(axis=0), 1e-12),
        1.0 - MAX_SCALE_CHANGE,
        1.0 + MAX_SCALE_CHANGE,
    )
    scaled = (source - centre) * scale + centre
    d = np.sqrt(((scaled[:, None, :] - scaled[None, :, :]) ** 2).sum(axis=2))
    kernel = _kernel(d) + RIDGE * np.eye(len(source))
    weights = np.linalg.solve(kernel, target - scaled)
    return Deformation(centre, scale, scaled, weights)
