"""Camera maths: look-at, perspective, and the portrait framing of a bounding box.

Column-vector matrices as in glTF (``clip = P @ V @ [x, y, z, 1]``); the model's conventions:
Y up, the face looks along +Z, so the default camera stands on +Z looking back at it. The
projection flips Y so that the rows OpenGL reads back (bottom first) come out top first.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from avatar_mf.render.scene import Framing

F64 = NDArray[np.float64]


def look_at(eye: F64, target: F64, up: F64) -> F64:
    """The view matrix of a camera at ``eye`` looking at ``target``."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    side = np.cross(forward, up)
    side = side / np.linalg.norm(side)
    true_up = np.cross(side, forward)
    view = np.eye(4)
    view[0, :3] = side
    view[1, :3] = true_up
    view[2, :3] = -forward
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def perspective(fov_y: float, aspect: float, near: float, far: float, *, flip_y: bool) -> F64:
    """An OpenGL perspective projection (``fov_y`` in degrees)."""
    f = 1.0 / math.tan(math.radians(fov_y) / 2.0)
    out = np.zeros((4, 4))
    out[0, 0] = f / aspect
    out[1, 1] = -f if flip_y else f
    out[2, 2] = (far + near) / (near - far)
    out[2, 3] = 2.0 * far * near / (near - far)
    out[3, 2] = -1.0
    return out


def portrait(bounds: F64, framing: Framing, aspect: float) -> tuple[F64, F64]:
    """(view, projection) framing the top ``framing.top`` of the box ``bounds`` (2, 3).

    The camera orbits the box's centre by ``yaw`` and ``pitch``; its distance fits the shown
    height (plus the margin) in the vertical field of view, or the width in the horizontal
    one, whichever needs more.
    """
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    size = high - low
    shown_low = high[1] - size[1] * framing.top
    centre = np.array([(low[0] + high[0]) / 2, (shown_low + high[1]) / 2, (low[2] + high[2]) / 2])
    half_height = (high[1] - shown_low) / 2 * (1.0 + framing.margin)
    half_width = max(size[0], size[2]) / 2 * (1.0 + framing.margin)
    tan_v = math.tan(math.radians(framing.fov) / 2)
    distance = max(half_height / tan_v, half_width / (tan_v * aspect)) + max(size[0], size[2]) / 2
    yaw, pitch = math.radians(framing.yaw), math.radians(framing.pitch)
    direction = np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    eye = centre + direction * distance
    view = look_at(eye, centre, np.array([0.0, 1.0, 0.0]))
    radius = float(np.linalg.norm(size)) / 2
    near = max(distance - 2 * radius, distance * 0.05)
    projection = perspective(framing.fov, aspect, near, distance + 2 * radius, flip_y=True)
    return view, projection
