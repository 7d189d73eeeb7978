"""From a stream of ARF animation units to the avatar's pose at any instant (sans-IO).

:class:`Animator` takes decoded units (ISO/IEC 23090-39 Avatar Animation Units: CONFIG,
BLENDSHAPE, JOINT, LANDMARK; standards.md section 4) and answers :meth:`Animator.sample`
``(t)``: the :class:`~.posing.Pose` at media time ``t`` (seconds, the units' timestamps over
the stream's timescale). No clock, no I/O: the caller says what time it is.

* **Keys.** Each unit becomes a key at its time on its track (blendshapes, joints, each
  landmark set). A unit may carry only some entries: the key holds the state after applying it
  on top of the key before (a weight a unit does not carry keeps its last value, the way the
  text stage's receivers are told to behave). Units with the same timestamp merge.
* **Interpolation** between the keys around ``t``: weights and landmark positions linearly;
  joint transforms by decomposing the local matrices into translation, rotation (a unit
  quaternion, slerped along the shorter arc) and scale, so a rotating head does not shrink
  half way.
* **Hold.** Past a track's last key its last state holds (units stopped or are late).
* **Relax.** Once ``t`` is more than ``relax_after`` seconds past the newest key of any track,
  the pose eases (smoothstep) back to neutral over ``relax_time`` seconds: weights to 0, joints
  to the rest pose, landmark pulls to none. A new unit ends it.
* **Time.** Timestamps are uint32 ticks: they are unwrapped (a step back of more than half
  the range is a wrap). A CONFIG unit sets the timescale of the units after it (1000 ticks/s
  until one arrives). Keys older than ``keep`` seconds before the last sampled time are
  forgotten, so memory stays bounded in a long call.
* Units for a blendshape set or skeleton the avatar does not have (``set_id`` not in the
  ids given) and entries whose index is out of range are ignored and counted in
  :attr:`Animator.ignored`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.units import (
    AnimationUnit,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    LandmarkUnit,
)
from avatar_mf.stages.animation.posing import Pose

F64 = NDArray[np.float64]

_WRAP = 1 << 32
DEFAULT_TIMESCALE = 1000.0


@dataclass(frozen=True, slots=True)
class AnimatorSettings:
    """How an :class:`Animator` holds and relaxes."""

    #: Seconds past the newest key before the pose starts relaxing to neutral.
    relax_after: float = 1.0
    #: Seconds the relaxation takes.
    relax_time: float = 0.5
    #: Seconds of keys kept before the last sampled time.
    keep: float = 2.0

    def __post_init__(self) -> None:
        if not (self.relax_after >= 0 and self.relax_time > 0 and self.keep > 0):
            raise ValueError("relax_after >= 0, relax_time > 0 and keep > 0 are required")


# --- matrices <-> translation, rotation, scale ----------------------------------------------


def quaternions(rotations: F64) -> F64:
    """(..., 4) unit quaternions (x, y, z, w) of (..., 3, 3) rotation matrices."""
    r = rotations
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    candidates = np.stack(
        [
            np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                      r[..., 1, 0] - r[..., 0, 1], 1 + trace], -1),
            np.stack([1 + r[..., 0, 0] - r[..., 1, 1] - r[..., 2, 2], r[..., 0, 1] + r[..., 1, 0],
                      r[..., 0, 2] + r[..., 2, 0], r[..., 2, 1] - r[..., 1, 2]], -1),
            np.stack([r[..., 0, 1] + r[..., 1, 0], 1 + r[..., 1, 1] - r[..., 0, 0] - r[..., 2, 2],
                      r[..., 1, 2] + r[..., 2, 1], r[..., 0, 2] - r[..., 2, 0]], -1),
            np.stack([r[..., 0, 2] + r[..., 2, 0], r[..., 1, 2] + r[..., 2, 1],
                      1 + r[..., 2, 2] - r[..., 0, 0] - r[..., 1, 1], r[..., 1, 0] - r[..., 0, 1]],
                     -1),
        ],
        -2,
    )  # (..., 4, 4): row c is 4|q_c| q for the largest component c
    pick = np.argmax(
        np.stack([trace, r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]], -1), axis=-1
    )
    chosen = np.take_along_axis(candidates, pick[..., None, None], axis=-2)[..., 0, :]
    out: F64 = chosen / np.linalg.norm(chosen, axis=-1, keepdims=True)
    return out


def rotation_matrices(q: F64) -> F64:
    """(..., 3, 3) rotation matrices of (..., 4) unit quaternions (x, y, z, w)."""
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out: F64 = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    return out


def decompose(matrices: F64) -> tuple[F64, F64, F64]:
    """Translation (..., 3), rotation quaternion (..., 4) and scale (..., 3) of affine
    (..., 4, 4) matrices ``T @ R @ S`` (no shear)."""
    linear = matrices[..., :3, :3]
    scale = np.linalg.norm(linear, axis=-2)
    scale = np.where(scale > 0, scale, 1.0)
    rotation = linear / scale[..., None, :]
    return matrices[..., :3, 3].copy(), quaternions(rotation), scale


def compose(translation: F64, rotation: F64, scale: F64) -> F64:
    """(..., 4, 4) matrices ``T @ R @ S``."""
    shape = translation.shape[:-1]
    out = np.zeros((*shape, 4, 4))
    out[..., :3, :3] = rotation_matrices(rotation) * scale[..., None, :]
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def slerp(a: F64, b: F64, alpha: float) -> F64:
    """Spherical interpolation of (..., 4) unit quaternions along the shorter arc."""
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6
    safe = np.where(near, 1.0, sin)
    wa = np.where(near, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    wb = np.where(near, alpha, np.sin(alpha * theta) / safe)
    out = wa * a + wb * b
    result: F64 = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return result


def blend_matrices(a: F64, b: F64, alpha: float) -> F64:
    """Matrices between ``a`` (alpha 0) and ``b`` (alpha 1): translation and scale linearly,
    rotation by slerp."""
    if alpha <= 0.0:
        return a.copy()
    if alpha >= 1.0:
        return b.copy()
    ta, ra, sa = decompose(a)
    tb, rb, sb = decompose(b)
    return compose(ta + (tb - ta) * alpha, slerp(ra, rb, alpha), sa + (sb - sa) * alpha)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


# --- tracks ---------------------------------------------------------------------------------


class _Track:
    """Keys of one kind of state, sorted by time."""

    __slots__ = ("times", "states")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.states: list[F64] = []

    def last_before(self, t: float) -> int:
        """Index of the last key at or before ``t`` (-1 if none)."""
        return bisect.bisect_right(self.times, t) - 1

    def put(self, t: float, apply: _Apply, initial: F64) -> None:
        """Add (or merge into) the key at ``t``: the state before it with ``apply`` on top."""
        at = self.last_before(t)
        if at >= 0 and self.times[at] == t:
            apply(self.states[at])
        else:
            state = (self.states[at] if at >= 0 else initial).copy()
            apply(state)
            self.times.insert(at + 1, t)
            self.states.insert(at + 1, state)
            at += 1
        # A late unit changes the keys after it too (they were built on the state before).
        for later in range(at + 1, len(self.states)):
            apply(self.states[later])

    def sample(self, t: float, mix: _Mix) -> F64 | None:
        if not self.times:
            return None
        at = self.last_before(t)
        if at < 0:
            return self.states[0]
        if at == len(self.times) - 1:
            return self.states[at]
        t0, t1 = self.times[at], self.times[at + 1]
        return mix(self.states[at], self.states[at + 1], (t - t0) / (t1 - t0))

    def forget_before(self, t: float) -> None:
        """Drop keys before ``t``, keeping the last one at or before it."""
        at = self.last_before(t)
        if at > 0:
            del self.times[:at]
            del self.states[:at]

    @property
    def newest(self) -> float | None:
        return self.times[-1] if self.times else None


class _Apply:
    """Writes a unit's entries into a state array (indices checked once)."""

    __slots__ = ("indices", "values")

    def __init__(self, indices: NDArray[np.intp], values: F64) -> None:
        self.indices = indices
        self.values = values

    def __call__(self, state: F64) -> None:
        state[self.indices] = self.values


def _mix_linear(a: F64, b: F64, alpha: float) -> F64:
    out: F64 = a + (b - a) * alpha
    return out


def _mix_landmarks(a: F64, b: F64, alpha: float) -> F64:
    # A landmark that has a target on one side only takes that target (no pull from NaN).
    a2 = np.where(np.isnan(a), b, a)
    b2 = np.where(np.isnan(b), a, b)
    out: F64 = a2 + (b2 - a2) * alpha
    return out


_Mix = Callable[[F64, F64, float], F64]


class Animator:
    """The pose of one avatar over media time, from its animation units (see the module)."""

    def __init__(
        self,
        neutral: Pose,
        *,
        blendshape_sets: tuple[int, ...] = (0,),
        skeletons: tuple[int, ...] = (0,),
        landmark_sets: dict[int, int] | None = None,
        settings: AnimatorSettings | None = None,
    ) -> None:
        """``neutral``: the avatar's neutral pose (zero weights, rest locals);
        ``landmark_sets``: landmark set id -> landmark count, for the sets the avatar binds."""
        self.settings = settings or AnimatorSettings()
        self._neutral_weights = neutral.weights.astype(np.float64)
        self._rest = neutral.locals.astype(np.float64)
        self._blendshape_sets = frozenset(blendshape_sets)
        self._skeletons = frozenset(skeletons)
        self._landmark_sizes = dict(landmark_sets or {})
        self._weights = _Track()
        self._joints = _Track()
        self._landmarks: dict[int, _Track] = {k: _Track() for k in self._landmark_sizes}
        self.timescale = DEFAULT_TIMESCALE
        self._last_tick: int | None = None
        self._epoch = 0  # wraps seen, times 2**32
        #: Units or entries ignored (unknown set, index out of range).
        self.ignored = 0
        #: Units applied.
        self.applied = 0

    # --- input --------------------------------------------------------------------------

    def unit_time(self, timestamp: int) -> float:
        """Media seconds of a tick timestamp, unwrapping uint32 wraps (updates the state)."""
        if self._last_tick is not None:
            step = timestamp - self._last_tick
            if step < -_WRAP // 2:
                self._epoch += _WRAP
            elif step > _WRAP // 2 and self._epoch:
                return (self._epoch - _WRAP + timestamp) / self.timescale  # late, before a wrap
        self._last_tick = timestamp
        return (self._epoch + timestamp) / self.timescale

    def feed(self, unit: AnimationUnit) -> float | None:
        """Apply one unit; its media time, or None for a CONFIG or an ignored unit."""
        if isinstance(unit, ConfigUnit):
            if math.isfinite(unit.timescale) and unit.timescale > 0:
                self.timescale = float(unit.timescale)
            return None
        if isinstance(unit, BlendshapeUnit):
            if unit.set_id not in self._blendshape_sets:
                self.ignored += 1
                return None
            apply = self._entries(unit.indices, np.asarray(unit.weights, dtype=np.float64),
                                  len(self._neutral_weights))
            if apply is None:
                return None
            t = self.unit_time(unit.timestamp)
            self._weights.put(t, apply, self._neutral_weights)
        elif isinstance(unit, JointUnit):
            if unit.joint_set_id not in self._skeletons:
                self.ignored += 1
                return None
            matrices = np.asarray(unit.matrices, dtype=np.float64).reshape(-1, 4, 4)
            apply = self._entries(unit.indices, matrices, len(self._rest))
            if apply is None:
                return None
            t = self.unit_time(unit.timestamp)
            self._joints.put(t, apply, self._rest)
        elif isinstance(unit, LandmarkUnit):
            size = self._landmark_sizes.get(unit.set_id)
            if size is None:
                self.ignored += 1
                return None
            apply = self._entries(unit.indices, np.asarray(unit.coords, dtype=np.float64), size)
            if apply is None:
                return None
            t = self.unit_time(unit.timestamp)
            if not unit.is_3d:  # x and y only: z keeps no target (NaN)
                apply.values = np.column_stack([apply.values, np.full(len(apply.values), np.nan)])
            self._landmarks[unit.set_id].put(t, apply, np.full((size, 3), np.nan))
        else:  # pragma: no cover - AnimationUnit is closed
            return None
        self.applied += 1
        return t

    def _entries(self, indices: tuple[int, ...], values: F64, size: int) -> _Apply | None:
        """The entries of a unit whose index is in range and whose values are finite."""
        index = np.asarray(indices, dtype=np.intp)
        finite = np.isfinite(values.reshape(len(index), -1)).all(axis=1)
        keep = (index >= 0) & (index < size) & finite
        if not keep.all():
            self.ignored += int((~keep).sum())
            if not keep.any():
                return None
        return _Apply(index[keep], values[keep])

    # --- output -------------------------------------------------------------------------

    @property
    def newest(self) -> float | None:
        """Media time of the newest key of any track (None before the first unit)."""
        times = [t for t in (self._weights.newest, self._joints.newest) if t is not None]
        times += [t for track in self._landmarks.values() if (t := track.newest) is not None]
        return max(times) if times else None

    def relaxation(self, t: float) -> float:
        """0 (animated) to 1 (fully relaxed to neutral) at media time ``t``."""
        newest = self.newest
        if newest is None:
            return 1.0
        s = self.settings
        return _smoothstep((t - newest - s.relax_after) / s.relax_time)

    def sample(self, t: float) -> Pose:
        """The pose at media time ``t``; forgets keys older than ``t - keep``."""
        relax = self.relaxation(t)
        weights = self._weights.sample(t, _mix_linear)
        weights = self._neutral_weights.copy() if weights is None else weights.copy()
        joints = self._joints.sample(t, blend_matrices)
        joints = self._rest.copy() if joints is None else joints.copy()
        landmarks: dict[int, F64] = {}
        for set_id, track in self._landmarks.items():
            coords = track.sample(t, _mix_landmarks)
            if coords is not None and relax < 1.0:
                landmarks[set_id] = coords.copy()
        if relax > 0.0:
            weights = weights + (self._neutral_weights - weights) * relax
            joints = blend_matrices(joints, self._rest, relax)
        forget = t - self.settings.keep
        for track in (self._weights, self._joints, *self._landmarks.values()):
            track.forget_before(forget)
        return Pose(weights, joints, landmarks, landmark_strength=1.0 - relax)
