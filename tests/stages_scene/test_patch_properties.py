"""Property tests: valid patches agree with a naive reference model; junk raises only
JsonPatchError; pointers round-trip."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.stages.scene.patch import (
    JsonPatchError,
    PatchLimits,
    apply_patch,
    format_pointer,
    parse_pointer,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CODES = {
    "invalid-operation",
    "invalid-pointer",
    "path-not-found",
    "test-failed",
    "invalid-value",
    "too-large",
}

keys = st.text(alphabet="ab/~01-", max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
containers = st.lists(json_values, max_size=4) | st.dictionaries(keys, json_values, max_size=4)


def strict(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- the naive reference model: paths as tuples of str (object) / int (array) keys ---------


Path = tuple[Any, ...]


def pointer(path: Path) -> str:
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in path)


def get(doc: Any, path: Path) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def update(doc: Any, path: Path, change: Any) -> Any:
    """A new document with the container at ``path`` replaced by ``change(container)``."""
    if not path:
        return change(doc)
    new = list(doc) if isinstance(doc, list) else dict(doc)
    new[path[0]] = update(doc[path[0]], path[1:], change)
    return new


def model_add(doc: Any, path: Path, value: Any) -> Any:
    if not path:
        return value

    def change(parent: Any) -> Any:
        if isinstance(parent, list):
            index = len(parent) if path[-1] == "-" else path[-1]
            return [*parent[:index], value, *parent[index:]]
        return {**parent, path[-1]: value}

    return update(doc, path[:-1], change)


def model_remove(doc: Any, path: Path) -> Any:
    def change(parent: Any) -> Any:
        if isinstance(parent, list):
            return parent[: path[-1]] + parent[path[-1] + 1 :]
        return {key: item for key, item in parent.items() if key != path[-1]}

    return update(doc, path[:-1], change)


def model_replace(doc: Any, path: Path, value: Any) -> Any:
    return value if not path else model_add(model_remove(doc, path), path, value)


def locations(doc: Any, path: Path = ()) -> list[Path]:
    found = [path]
    if isinstance(doc, list):
        for index, item in enumerate(doc):
            found += locations(item, (*path, index))
    elif isinstance(doc, dict):
        for key, item in doc.items():
            found += locations(item, (*path, key))
    return found


def draw_insert_path(data: st.DataObject, doc: Any) -> Path | None:
    parents = [path for path in locations(doc) if isinstance(get(doc, path), list | dict)]
    if not parents:
        return None
    parent_path = data.draw(st.sampled_from(parents))
    parent = get(doc, parent_path)
    key: Any
    if isinstance(parent, list):
        key = data.draw(st.integers(0, len(parent)) | st.just("-"))
    else:
        key = data.draw(st.sampled_from(sorted(parent)) | keys if parent else keys)
    return (*parent_path, key)


def draw_operation(
    data: st.DataObject, doc: Any, ops: tuple[str, ...]
) -> tuple[Any, dict[str, Any]]:
    """A valid operation for ``doc`` and the model's result of it."""
    op = data.draw(st.sampled_from(ops))
    existing = [path for path in locations(doc) if path]
    if op == "add":
        path = draw_insert_path(data, doc)
        if path is not None:
            value = data.draw(json_values)
            return model_add(doc, path, value), {"op": "add", "path": pointer(path), "value": value}
    if op == "remove" and existing:
        path = data.draw(st.sampled_from(existing))
        return model_remove(doc, path), {"op": "remove", "path": pointer(path)}
    if op == "copy" and existing:
        source = data.draw(st.sampled_from([(), *existing]))
        path = draw_insert_path(data, doc)
        if path is not None:
            return model_add(doc, path, copy.deepcopy(get(doc, source))), {
                "op": "copy",
                "from": pointer(source),
                "path": pointer(path),
            }
    if op == "move" and existing:
        source = data.draw(st.sampled_from(existing))
        value = get(doc, source)
        removed = model_remove(doc, source)
        path = draw_insert_path(data, removed)
        if path is not None and not (len(source) < len(path) and path[: len(source)] == source):
            return model_add(removed, path, value), {
                "op": "move",
                "from": pointer(source),
                "path": pointer(path),
            }
    if op == "test":
        path = data.draw(st.sampled_from([(), *existing]))
        return doc, {"op": "test", "path": pointer(path), "value": copy.deepcopy(get(doc, path))}
    path = data.draw(st.sampled_from([(), *existing]))
    value = data.draw(json_values)
    return model_replace(doc, path, value), {"op": "replace", "path": pointer(path), "value": value}


def check_against_model(data: st.DataObject, ops: tuple[str, ...]) -> None:
    document = data.draw(containers | json_values)
    before = strict(document)
    model, patch = document, []
    for _ in range(data.draw(st.integers(0, 8))):
        model, operation = draw_operation(data, model, ops)
        patch.append(operation)
    patch_before = strict(patch)
    result = apply_patch(document, patch)
    assert strict(result) == strict(model)
    assert strict(document) == before  # the input is not mutated
    assert strict(patch) == patch_before
    stepwise = document
    for operation in patch:  # one at a time, the same
        stepwise = apply_patch(stepwise, [operation])
    assert strict(stepwise) == strict(result)


@FAST
@given(st.data())
def test_add_remove_replace_agree_with_the_model(data: st.DataObject) -> None:
    check_against_model(data, ("add", "remove", "replace"))


@FAST
@given(st.data())
def test_all_operations_agree_with_the_model(data: st.DataObject) -> None:
    check_against_model(data, ("add", "remove", "replace", "move", "copy", "test"))


# --- junk ----------------------------------------------------------------------------------

tokens = st.sampled_from(["", "0", "1", "01", "-", "a", "b", "~", "~0", "~1", "~2", "9" * 30])
pointers = st.text(max_size=6) | st.lists(tokens, max_size=4).map(
    lambda parts: "".join("/" + part for part in parts)
)
junk_values = json_values | st.sampled_from(
    [float("nan"), float("inf"), (1, 2), {1: 2}, {"a": {1, 2}}, b"bytes", object()]
)
junk_operations = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"])
        | junk_values,
        "path": pointers | junk_values,
        "from": pointers | junk_values,
        "value": junk_values,
    },
)
junk_patches = st.lists(junk_operations | junk_values, max_size=6) | junk_values
documents = st.fixed_dictionaries({"a": json_values, "b": st.lists(json_values, max_size=3)})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents | json_values, junk_patches)
def test_junk_raises_only_json_patch_error(document: Any, patch: Any) -> None:
    before = strict(document)
    try:
        result = apply_patch(document, patch, limits=PatchLimits(max_depth=8, max_size=10_000))
    except JsonPatchError as exc:
        assert exc.code in CODES
        assert exc.op_index is None or 0 <= exc.op_index < len(patch)
    else:
        json.dumps(result, allow_nan=False)  # still JSON
    assert strict(document) == before


@FAST
@given(st.lists(st.text(max_size=5), max_size=5))
def test_pointers_round_trip(parts: list[str]) -> None:
    assert parse_pointer(format_pointer(parts)) == tuple(parts)


@FAST
@given(st.text(max_size=12))
def test_any_text_is_a_pointer_or_invalid_pointer(text: str) -> None:
    try:
        parts = parse_pointer(text)
    except JsonPatchError as exc:
        assert exc.code == "invalid-pointer"
    else:
        assert format_pointer(parts) == text
