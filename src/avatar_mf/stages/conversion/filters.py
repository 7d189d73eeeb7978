"""Per-audience expression filters (TR 26.813 multi-party use cases: network-based filtering
or replacing of avatar expressions for selected audiences).

An :class:`ExpressionFilter` works on ARKit-52 weights (the common format) in this order:

1. ``neutral``: freeze the face -- every weight 0 (JOINT units still pass: the head moves);
2. ``replace``: move the weight of one blendshape onto a calmer one (``{"mouthFrownLeft":
   "mouthPressLeft"}``; the target gets the larger of its own and the moved weight);
3. ``suppress``: these blendshapes are 0;
4. ``scale``: a factor for every blendshape (``"*"``) or per name;
5. ``clamp``: a ceiling for every blendshape (``"*"``) or per name.

An :class:`Audience` says who a filter is for: participant ids (``p2``), subscriber
identities (``sip:bob@ims.example``), operator groups (``group:class``, identity patterns in
config) or ``*`` (every receiver). The most specific rule wins: participant, then identity,
then group, then ``*``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX

F32 = NDArray[np.float32]
_N = len(ARKIT_BLENDSHAPES)

__all__ = ["Audience", "ExpressionFilter", "FilterBook", "FilterError", "parse_filter"]


class FilterError(ValueError):
    """A filter or audience that cannot be used; ``code`` is the error code for the UE."""

    code = "bad-message"


def _names(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise FilterError(f"{what}: a list of blendshape names")
    bad = [v for v in value if v not in ARKIT_INDEX and v != "*"]
    if bad:
        raise FilterError(f"{what}: not ARKit-52 blendshapes: {', '.join(bad[:8])}")
    return tuple(value)


def _per_name(value: object, what: str, low: float, high: float) -> dict[str, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = {"*": value}
    if not isinstance(value, dict):
        raise FilterError(f"{what}: a number or an object of blendshape name -> number")
    out: dict[str, float] = {}
    for name, number in value.items():
        _names([name], what)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise FilterError(f"{what}.{name}: a number")
        if not low <= float(number) <= high:
            raise FilterError(f"{what}.{name}: between {low} and {high}")
        out[name] = float(number)
    return out


def _vector(values: Mapping[str, float], default: float) -> F32:
    vec = np.full(_N, values.get("*", default), np.float32)
    for name, number in values.items():
        if name != "*":
            vec[ARKIT_INDEX[name]] = number
    return vec


@dataclass(frozen=True, slots=True, eq=False)
class ExpressionFilter:
    """A filter on ARKit-52 weights (see the module doc for the order of the steps)."""

    neutral: bool = False
    suppress: tuple[str, ...] = ()
    scale: Mapping[str, float] = field(default_factory=dict)
    clamp: Mapping[str, float] = field(default_factory=dict)
    replace: Mapping[str, str] = field(default_factory=dict)
    _keep: F32 = field(init=False, repr=False)
    _ceiling: F32 = field(init=False, repr=False)
    _moves: tuple[tuple[int, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        keep = _vector(self.scale, 1.0)
        for name in self.suppress:
            if name == "*":
                keep[:] = 0.0
            else:
                keep[ARKIT_INDEX[name]] = 0.0
        object.__setattr__(self, "_keep", keep)
        object.__setattr__(self, "_ceiling", _vector(self.clamp, 1.0))
        moves = tuple((ARKIT_INDEX[a], ARKIT_INDEX[b]) for a, b in self.replace.items())
        object.__setattr__(self, "_moves", moves)

    def apply(self, arkit: F32) -> F32:
        """The filtered copy of ``arkit`` (52 weights)."""
        if self.neutral:
            return np.zeros(_N, np.float32)
        out = arkit.copy()
        for source, target in self._moves:
            moved = out[source]
            out[source] = 0.0
            if moved > out[target]:
                out[target] = moved
        out *= self._keep
        np.minimum(out, self._ceiling, out=out)
        return out

    def ceiling(self, name: str) -> float:
        """The most ``name`` can weigh after this filter (for tests and logs)."""
        if self.neutral:
            return 0.0
        return float(self._ceiling[ARKIT_INDEX[name]])

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.neutral:
            out["neutral"] = True
        if self.suppress:
            out["suppress"] = list(self.suppress)
        if self.scale:
            out["scale"] = dict(self.scale)
        if self.clamp:
            out["clamp"] = dict(self.clamp)
        if self.replace:
            out["replace"] = dict(self.replace)
        return out


_FILTER_KEYS = {"neutral", "suppress", "scale", "clamp", "replace"}


def parse_filter(value: Mapping[str, Any]) -> ExpressionFilter:
    """An :class:`ExpressionFilter` from its JSON form (the metadata message, the config)."""
    unknown = set(value) - _FILTER_KEYS
    if unknown:
        raise FilterError(f"filter: unknown members {', '.join(sorted(unknown))}")
    neutral = value.get("neutral", False)
    if not isinstance(neutral, bool):
        raise FilterError("filter.neutral: true or false")
    replace = value.get("replace", {})
    if not isinstance(replace, dict):
        raise FilterError("filter.replace: an object of blendshape name -> blendshape name")
    for source, target in replace.items():
        if source == "*" or target == "*" or not isinstance(target, str):
            raise FilterError("filter.replace: names, not *")
        _names([source, target], "filter.replace")
    return ExpressionFilter(
        neutral=neutral,
        suppress=_names(value.get("suppress", []), "filter.suppress"),
        scale=_per_name(value.get("scale", {}), "filter.scale", 0.0, 1.0),
        clamp=_per_name(value.get("clamp", {}), "filter.clamp", 0.0, 1.0),
        replace=dict(replace),
    )


@dataclass(frozen=True, slots=True)
class Audience:
    """One receiver as the filters see it."""

    participant: str
    identity: str


def _specificity(key: str, who: Audience, groups: Mapping[str, tuple[str, ...]]) -> int:
    """How specifically ``key`` names ``who`` (0: not at all)."""
    if key == who.participant:
        return 4
    if key == who.identity:
        return 3
    if key.startswith("group:"):
        patterns = groups.get(key[len("group:") :], ())
        return 2 if any(fnmatch.fnmatchcase(who.identity, p) for p in patterns) else 0
    return 1 if key == "*" else 0


@dataclass
class FilterBook:
    """The filters one sender set, by audience key; the operator's policy underneath."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policy: Mapping[str, ExpressionFilter] = field(default_factory=dict)
    rules: dict[str, ExpressionFilter] = field(default_factory=dict)

    def set(self, keys: Iterable[str], rule: ExpressionFilter | None) -> None:
        """Set (or, with None, clear) the owner's filter for each audience key."""
        for key in keys:
            if key.startswith("group:") and key[len("group:") :] not in self.groups:
                raise FilterError(f"no receiver group {key[len('group:') :]!r} is configured")
            if rule is None:
                self.rules.pop(key, None)
            else:
                self.rules[key] = rule

    def for_receiver(self, who: Audience) -> ExpressionFilter | None:
        """The filter for ``who``: the owner's most specific rule, else the operator's."""
        for table in (self.rules, self.policy):
            best, chosen = 0, None
            for key, rule in table.items():
                rank = _specificity(key, who, self.groups)
                if rank > best:
                    best, chosen = rank, rule
            if chosen is not None:
                return chosen
        return None
