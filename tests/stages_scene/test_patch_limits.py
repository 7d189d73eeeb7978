"""Abuse limits: patches and documents past PatchLimits fail fast with ``too-large``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from avatar_mf.stages.scene.patch import (
    DEFAULT_LIMITS,
    JsonPatchError,
    PatchLimits,
    apply_patch,
    copy_json,
    json_size,
)

SMALL = PatchLimits(max_operations=10, max_depth=5, max_size=1000)


def code_of(document: Any, patch: Any, limits: PatchLimits = SMALL) -> str:
    with pytest.raises(JsonPatchError) as info:
        apply_patch(document, patch, limits=limits)
    return info.value.code


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_size_counts_values_strings_and_names() -> None:
    assert json_size(None) == 1
    assert json_size("abc") == 4
    assert json_size([1, "ab"]) == 1 + 1 + 3
    assert json_size({"ab": [True]}) == 1 + 2 + 2


def test_too_many_operations() -> None:
    patch = [{"op": "test", "path": "", "value": {}}] * 11
    assert code_of({}, patch) == "too-large"
    apply_patch({}, patch[:10], limits=SMALL)


def test_value_too_deep() -> None:
    # A value at /a sits inside the root: depth 1 + its own.
    apply_patch({}, [{"op": "add", "path": "/a", "value": nested(4)}], limits=SMALL)
    assert code_of({}, [{"op": "add", "path": "/a", "value": nested(5)}]) == "too-large"


def test_very_deep_values_do_not_exhaust_the_stack() -> None:
    assert code_of({}, [{"op": "add", "path": "/a", "value": nested(100_000)}]) == "too-large"
    looped: list[Any] = []
    looped.append(looped)
    assert code_of({}, [{"op": "add", "path": "/a", "value": looped}]) == "too-large"
    with pytest.raises(JsonPatchError):
        copy_json(looped)


def test_document_too_deep_or_large() -> None:
    assert code_of(nested(6), []) == "too-large"
    assert code_of({"a": "x" * 1000}, []) == "too-large"


def test_patch_values_too_large_together() -> None:
    patch = [{"op": "add", "path": f"/{i}", "value": "x" * 200} for i in range(6)]
    assert code_of({}, patch) == "too-large"


def test_moving_a_value_deeper_than_allowed() -> None:
    document = {"a": nested(3), "b": [[[]]]}  # depth 4 and 4
    patch = [{"op": "move", "from": "/a", "path": "/b/0/0/0"}]
    assert code_of(document, patch) == "too-large"


def test_copies_cannot_grow_the_document_past_its_size() -> None:
    patch = [{"op": "copy", "from": "/a", "path": f"/c{i}"} for i in range(10)]
    assert code_of({"a": "x" * 200}, patch) == "too-large"


def test_moving_back_and_forth_is_bounded() -> None:
    """A small patch cannot make the applier walk a big subtree over and over."""
    limits = PatchLimits(max_operations=1000, max_depth=8, max_size=200_000)
    document = {"a": {"big": list(range(50_000))}, "b": {}}
    patch: list[dict[str, Any]] = []
    for _ in range(500):
        patch.append({"op": "move", "from": "/a/big", "path": "/b/big"})
        patch.append({"op": "move", "from": "/b/big", "path": "/a/big"})
    started = time.perf_counter()
    assert code_of(document, patch, limits) == "too-large"
    assert time.perf_counter() - started < 2.0


def test_defaults_are_generous_enough_for_real_documents() -> None:
    document = {"nodes": [{"name": f"n{i}", "translation": [0.0, 0.0, 0.0]} for i in range(500)]}
    patch = [
        {"op": "replace", "path": f"/nodes/{i}/translation", "value": [1.0, 2.0, 3.0]}
        for i in range(500)
    ]
    result = apply_patch(document, patch, limits=DEFAULT_LIMITS)
    assert result["nodes"][499]["translation"] == [1.0, 2.0, 3.0]


def test_long_pointers_count_against_the_size() -> None:
    assert code_of({}, [{"op": "remove", "path": "/" + "a" * 2000}]) == "too-large"
    assert code_of({}, [{"op": "copy", "from": "/" + "a" * 2000, "path": "/b"}]) == "too-large"
