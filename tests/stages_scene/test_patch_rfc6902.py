"""RFC 6902 Appendix A and RFC 6901 section 5 as test vectors, plus the rules around them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from avatar_mf.stages.scene.patch import (
    JsonPatchError,
    Operation,
    apply_operations,
    apply_patch,
    escape_token,
    format_pointer,
    json_equal,
    loads,
    parse_operations,
    parse_pointer,
    resolve,
)

# (name, document, patch, expected document or the JsonPatchError code)
APPENDIX_A: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    (
        "A.1 adding an object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 adding an array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 removing an object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 removing an array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replacing a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 moving a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 moving an array element",
        {"foo": ["all", "grass", "cows", "eats"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eats", "grass"]},
    ),
    (
        "A.8 testing a value: success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.9 testing a value: error",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        "test-failed",
    ),
    (
        "A.10 adding a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignoring unrecognized elements",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.12 adding to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        "path-not-found",
    ),
    # A.13 (a duplicate "op" member) cannot be a Python dict: see test_a13_duplicate_members.
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        "test-failed",
    ),
    (
        "A.16 adding an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


def strict(value: Any) -> str:
    """Equality that tells 1 from True and 1 from 1.0 (json.dumps writes 1.0)."""
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize(
    ("document", "patch", "expected"),
    [case[1:] for case in APPENDIX_A],
    ids=[case[0] for case in APPENDIX_A],
)
def test_appendix_a(document: Any, patch: list[dict[str, Any]], expected: Any) -> None:
    before, patch_before = copy.deepcopy(document), copy.deepcopy(patch)
    if isinstance(expected, str):
        with pytest.raises(JsonPatchError) as info:
            apply_patch(document, patch)
        assert info.value.code == expected
        assert info.value.op_index == len(patch) - 1
    else:
        assert strict(apply_patch(document, patch)) == strict(expected)
    assert strict(document) == strict(before)
    assert strict(patch) == strict(patch_before)


def test_a13_duplicate_members() -> None:
    text = '[{ "op": "add", "path": "/baz", "value": "qux", "op": "remove" }]'
    with pytest.raises(JsonPatchError) as info:
        loads(text)
    assert info.value.code == "invalid-json"


def test_loads() -> None:
    assert loads(b'[{"op": "remove", "path": "/a"}]') == [{"op": "remove", "path": "/a"}]
    for text in ("NaN", '{"a": Infinity}', "[-Infinity]", "{", b"\xff\xfe\x00"):
        with pytest.raises(JsonPatchError) as info:
            loads(text)
        assert info.value.code == "invalid-json"
    with pytest.raises(JsonPatchError):
        loads("[" * 100_000)


# RFC 6901 section 5.
RFC6901_DOCUMENT = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}
RFC6901_POINTERS = [
    ("", RFC6901_DOCUMENT),
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/", 0),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "expected"), RFC6901_POINTERS)
def test_rfc6901_examples(pointer: str, expected: Any) -> None:
    assert resolve(RFC6901_DOCUMENT, pointer) == expected
    assert format_pointer(parse_pointer(pointer)) == pointer


def test_escapes() -> None:
    assert parse_pointer("/~01") == ("~1",)  # ~1 is decoded first, then ~0
    assert parse_pointer("/~10") == ("/0",)
    assert parse_pointer("/a//b/") == ("a", "", "b", "")
    assert escape_token("~/") == "~0~1"
    assert format_pointer(["a/b", "~", ""]) == "/a~1b/~0/"


@pytest.mark.parametrize("pointer", ["a", "foo/bar", "/~", "/~2", "/a~", "/~a", "#/foo"])
def test_malformed_pointers(pointer: str) -> None:
    with pytest.raises(JsonPatchError) as info:
        parse_pointer(pointer)
    assert info.value.code == "invalid-pointer"
    with pytest.raises(JsonPatchError) as info:
        apply_patch({"a": 1}, [{"op": "test", "path": pointer, "value": 1}])
    assert info.value.code == "invalid-pointer"
    assert info.value.op_index == 0


def error(document: Any, patch: Any) -> JsonPatchError:
    with pytest.raises(JsonPatchError) as info:
        apply_patch(document, patch)
    return info.value


ARRAY_DOC = {"foo": [10, 20]}


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ({"op": "remove", "path": "/foo/01"}, "invalid-pointer"),  # leading zero
        ({"op": "replace", "path": "/foo/00", "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/foo/-1", "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/foo/+1", "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/foo/ 1", "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/foo/\u0661", "value": 1}, "invalid-pointer"),  # Arabic 1
        ({"op": "add", "path": "/foo/bar", "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/foo/3", "value": 1}, "path-not-found"),  # beyond the end
        ({"op": "add", "path": "/foo/" + "9" * 5000, "value": 1}, "path-not-found"),
        ({"op": "remove", "path": "/foo/2"}, "path-not-found"),
        ({"op": "remove", "path": "/foo/-"}, "path-not-found"),  # "-" is for add only
        ({"op": "replace", "path": "/foo/-", "value": 1}, "path-not-found"),
        ({"op": "test", "path": "/foo/-", "value": 1}, "path-not-found"),
        ({"op": "copy", "from": "/foo/-", "path": "/x"}, "path-not-found"),
        ({"op": "add", "path": "/foo/0/x", "value": 1}, "path-not-found"),  # through a number
        ({"op": "remove", "path": "/bar"}, "path-not-found"),
        ({"op": "replace", "path": "/bar", "value": 1}, "path-not-found"),
        ({"op": "move", "from": "/bar", "path": "/baz"}, "path-not-found"),
        ({"op": "move", "from": "/bar", "path": "/bar"}, "path-not-found"),
        ({"op": "test", "path": "/bar", "value": None}, "path-not-found"),
        ({"op": "remove", "path": ""}, "invalid-operation"),
        ({"op": "move", "from": "/foo", "path": "/foo/0"}, "invalid-operation"),  # own child
        ({"op": "move", "from": "", "path": "/x"}, "invalid-operation"),
        ({"op": "add", "path": "/x"}, "invalid-operation"),  # no value
        ({"op": "replace", "path": "/foo"}, "invalid-operation"),
        ({"op": "test", "path": "/foo"}, "invalid-operation"),
        ({"op": "move", "path": "/x"}, "invalid-operation"),  # no from
        ({"op": "copy", "path": "/x"}, "invalid-operation"),
        ({"op": "add", "value": 1}, "invalid-operation"),  # no path
        ({"path": "/x", "value": 1}, "invalid-operation"),  # no op
        ({"op": "merge", "path": "/x", "value": 1}, "invalid-operation"),
        ({"op": "ADD", "path": "/x", "value": 1}, "invalid-operation"),
        ({"op": 1, "path": "/x", "value": 1}, "invalid-operation"),
        ({"op": "add", "path": 3, "value": 1}, "invalid-pointer"),
        ({"op": "add", "path": "/x", "value": float("nan")}, "invalid-value"),
        ({"op": "add", "path": "/x", "value": float("inf")}, "invalid-value"),
        ({"op": "add", "path": "/x", "value": (1, 2)}, "invalid-value"),
        ({"op": "add", "path": "/x", "value": {1: 2}}, "invalid-value"),
        ({"op": "add", "path": "/x", "value": {1, 2}}, "invalid-value"),
        ("add", "invalid-operation"),
        (None, "invalid-operation"),
    ],
)
def test_operation_errors(operation: Any, code: str) -> None:
    exc = error(ARRAY_DOC, [{"op": "test", "path": "/foo/0", "value": 10}, operation])
    assert exc.code == code
    assert exc.op_index == 1
    assert ARRAY_DOC == {"foo": [10, 20]}


@pytest.mark.parametrize("patch", [{"op": "add"}, "[]", None, 5])
def test_patch_must_be_an_array(patch: Any) -> None:
    exc = error({}, patch)
    assert exc.code == "invalid-operation"
    assert exc.op_index is None


def test_array_rules() -> None:
    assert apply_patch(ARRAY_DOC, [{"op": "add", "path": "/foo/2", "value": 30}]) == {
        "foo": [10, 20, 30]
    }
    assert apply_patch(ARRAY_DOC, [{"op": "add", "path": "/foo/0", "value": 5}]) == {
        "foo": [5, 10, 20]
    }
    assert apply_patch(ARRAY_DOC, [{"op": "add", "path": "/foo/-", "value": 30}]) == {
        "foo": [10, 20, 30]
    }
    assert apply_patch({"-": 1}, [{"op": "replace", "path": "/-", "value": 2}]) == {"-": 2}
    assert apply_patch({"01": 1}, [{"op": "remove", "path": "/01"}]) == {}  # a member name
    assert apply_patch([1, 2], [{"op": "remove", "path": "/0"}]) == [2]


def test_root_operations() -> None:
    assert apply_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert apply_patch({"a": 1}, [{"op": "add", "path": "", "value": "x"}]) == "x"
    assert apply_patch({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1.0}}]) == {"a": 1}
    assert apply_patch({"a": 1}, [{"op": "copy", "from": "", "path": "/b"}]) == {
        "a": 1,
        "b": {"a": 1},
    }
    assert apply_patch({"a": 1}, [{"op": "move", "from": "", "path": ""}]) == {"a": 1}
    assert apply_patch({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": ""}]) == {"b": 1}
    assert apply_patch(3, [{"op": "replace", "path": "", "value": None}]) is None


def test_move_and_copy() -> None:
    doc = {"a": {"b": [1, 2]}, "ab": 0}
    # "/a" is a prefix of "/ab" as text but not as tokens.
    assert apply_patch(doc, [{"op": "move", "from": "/a", "path": "/ab"}]) == {"ab": {"b": [1, 2]}}
    # Moving a child up over its parent is allowed: the remove happens first.
    assert apply_patch(doc, [{"op": "move", "from": "/a/b", "path": "/a"}]) == {
        "a": [1, 2],
        "ab": 0,
    }
    assert apply_patch(doc, [{"op": "move", "from": "/a", "path": "/a"}]) == doc
    # The copy is deep: changing it later leaves the original alone.
    result = apply_patch(
        doc,
        [
            {"op": "copy", "from": "/a", "path": "/c"},
            {"op": "add", "path": "/c/b/-", "value": 3},
        ],
    )
    assert result == {"a": {"b": [1, 2]}, "ab": 0, "c": {"b": [1, 2, 3]}}
    assert doc == {"a": {"b": [1, 2]}, "ab": 0}


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (0, -0.0, True),
        (True, 1, False),
        (False, 0, False),
        (1, True, False),
        (True, True, True),
        (None, None, True),
        (None, False, False),
        ("1", 1, False),
        ([1, 2], [1.0, 2.0], True),
        ([1, 2], [2, 1], False),
        ([1], [True], False),  # nested too (the library alone compares these with ==)
        ({"a": 0}, {"a": False}, False),
        ([1], [1, 1], False),
        ({"a": 1, "b": [True]}, {"b": [True], "a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ({}, [], False),
        (2**64, float(2**64), True),
        (2**64 + 1, float(2**64), False),
    ],
)
def test_json_equality(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal
    patch = [{"op": "test", "path": "/v", "value": b}]
    if equal:
        apply_patch({"v": a}, patch)
    else:
        assert error({"v": a}, patch).code == "test-failed"


def test_all_or_nothing() -> None:
    doc = {"a": [1], "b": {"c": 1}}
    exc = error(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 2},
            {"op": "remove", "path": "/b/c"},
            {"op": "replace", "path": "/b/c", "value": 3},  # removed just before
        ],
    )
    assert (exc.code, exc.op_index) == ("path-not-found", 2)
    assert "operation 2" in str(exc)
    assert doc == {"a": [1], "b": {"c": 1}}


def test_no_aliasing() -> None:
    value = {"deep": [1]}
    doc: dict[str, Any] = {"keep": {"x": [0]}}
    patch = [
        {"op": "add", "path": "/one", "value": value},
        {"op": "add", "path": "/two", "value": value},
    ]
    result = apply_patch(doc, patch)
    result["one"]["deep"].append(2)
    result["keep"]["x"].append(1)
    assert result["two"] == {"deep": [1]}
    assert value == {"deep": [1]}
    assert doc == {"keep": {"x": [0]}}


def test_parsed_operations_can_be_reused() -> None:
    operations = parse_operations([{"op": "add", "path": "/a/-", "value": {"n": 1}}])
    assert operations == [Operation("add", ("a", "-"), value={"n": 1})]
    first = apply_operations({"a": []}, operations)
    first["a"][0]["n"] = 2
    assert apply_operations({"a": []}, operations) == {"a": [{"n": 1}]}
    assert operations[0].to_json() == {"op": "add", "path": "/a/-", "value": {"n": 1}}
    move = parse_operations([{"op": "move", "from": "/a~1b", "path": "/c", "value": 1}])[0]
    assert move.to_json() == {"op": "move", "from": "/a~1b", "path": "/c"}


def test_document_must_be_json() -> None:
    for document in ({"a": (1,)}, {1: 2}, {"a": float("nan")}, {"a": object()}):
        exc = error(document, [])
        assert exc.code == "invalid-value"
        assert exc.op_index is None


def test_rewritten_operations_cannot_move_into_their_own_child() -> None:
    # A caller that rewrites parsed operations (the scene resolves participant paths) can
    # make a move into its own child that parse_operations never saw.
    move = Operation("move", ("nodes", "0", "x"), from_=("nodes",))
    with pytest.raises(JsonPatchError) as info:
        apply_operations({"nodes": [{}]}, [move])
    assert (info.value.code, info.value.op_index) == ("invalid-operation", 0)
