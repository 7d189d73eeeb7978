"""JSON Patch (RFC 6902) over JSON Pointer (RFC 6901), pure functions with no I/O.

Implements:

- RFC 6901 sections 3-4: pointer syntax, ``~0``/``~1`` escapes (decoded ``~1`` first, then
  ``~0``), array index tokens (``0`` or digits without a leading zero; ``-`` names the element
  after the last one, which only ``add`` may use).
- RFC 6902 section 3: a patch is an array of operation objects, applied in order; the patch as
  a whole fails if any operation fails, so nothing of it is applied (section 5).
- RFC 6902 section 4: ``add`` (4.1), ``remove`` (4.2), ``replace`` (4.3), ``move`` (4.4, the
  ``from`` location must not be a proper prefix of ``path``), ``copy`` (4.5), ``test`` (4.6,
  JSON equality: numbers compare by mathematical value, so ``1`` equals ``1.0``, but booleans
  are not numbers, so ``true`` does not equal ``1``). Members an operation does not define are
  ignored (4, Appendix A.11); a missing ``op``/``path``/``value``/``from`` is an error.
- RFC 6902 section 5 / Appendix A.13: :func:`loads` decodes patch text strictly (duplicate
  member names and the non-JSON ``NaN``/``Infinity`` are errors), for callers who hold bytes.

Choices the RFCs leave open, fixed here:

- ``remove`` of the whole document (path ``""``) is an error: there would be no document left.
- Documents and values must be JSON: ``dict`` with ``str`` keys, ``list``, ``str``, ``int``,
  ``float`` (finite), ``bool``, ``None``. Anything else (tuples, NaN) is ``invalid-value``.
- Patches come off the wire, so they are bounded (:class:`PatchLimits`): the number of
  operations, the nesting depth, the size of the document and of the patch's values and
  pointers together, and the work of applying (values measured, copied or removed, at most
  4 x ``max_size``, so that moving a big subtree back and forth cannot take long). Going past
  a limit is :class:`JsonPatchError` with code ``too-large``.

API: :func:`apply_patch` (parse and apply), or :func:`parse_operations` then
:func:`apply_operations` for callers who inspect or rewrite the parsed :class:`Operation`
objects first; :func:`parse_pointer`, :func:`format_pointer`, :func:`resolve`,
:func:`json_equal`, :func:`copy_json`, :func:`loads`. Every failure is a
:class:`JsonPatchError` carrying ``code`` (``invalid-operation``, ``invalid-pointer``,
``path-not-found``, ``test-failed``, ``invalid-value``, ``invalid-json``, ``too-large``) and
``op_index``, the failing operation's position in the patch.

The input document and the operations are never mutated, and the result shares no mutable
object with either.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

__all__ = [
    "DEFAULT_LIMITS",
    "JsonPatchError",
    "Operation",
    "PatchLimits",
    "apply_operations",
    "apply_patch",
    "copy_json",
    "escape_token",
    "format_pointer",
    "json_equal",
    "json_size",
    "loads",
    "parse_operations",
    "parse_pointer",
    "resolve",
]

OpName = Literal["add", "remove", "replace", "move", "copy", "test"]
OPS: Final[frozenset[str]] = frozenset({"add", "remove", "replace", "move", "copy", "test"})

# Error codes (JsonPatchError.code).
INVALID_OPERATION: Final = "invalid-operation"  # not an operation object, unknown op, no member
INVALID_POINTER: Final = "invalid-pointer"  # pointer syntax, or a bad array index token
PATH_NOT_FOUND: Final = "path-not-found"  # nothing at the location, index out of range
TEST_FAILED: Final = "test-failed"  # a ``test`` operation found a different value
INVALID_VALUE: Final = "invalid-value"  # a value (or the document) that is not JSON
INVALID_JSON: Final = "invalid-json"  # :func:`loads` could not decode the text
TOO_LARGE: Final = "too-large"  # a PatchLimits bound was exceeded

_INDEX = re.compile(r"0|[1-9][0-9]*")
_MAX_INDEX_DIGITS = 18  # longer index tokens are out of range of any list we accept
_SHORT = 60  # how much of a token or pointer goes into an error message


class JsonPatchError(ValueError):
    """A patch that cannot be applied. ``code`` is one of the codes above, ``op_index`` the
    position of the failing operation in the patch (None when the patch as a whole is bad)."""

    def __init__(self, code: str, message: str, op_index: int | None = None) -> None:
        where = "" if op_index is None else f"operation {op_index}: "
        super().__init__(f"{where}{code}: {message}")
        self.code = code
        self.detail = message
        self.op_index = op_index


@dataclass(frozen=True, slots=True)
class PatchLimits:
    """Bounds against abusive patches and documents.

    ``size`` is approximate and cheap: one per JSON value, plus the length of every string and
    of every object member name. ``depth`` counts nested containers: a scalar is 0, ``[]`` 1,
    ``[[1]]`` 2; the document's depth includes the containers above a value.
    """

    max_operations: int = 1024
    max_depth: int = 64
    max_size: int = 1_000_000


DEFAULT_LIMITS: Final = PatchLimits()


@dataclass(frozen=True, slots=True)
class Operation:
    """One validated operation. Pointers are decoded reference tokens; ``from_`` is set for
    move/copy; ``value`` is a private copy for add/replace/test (None for the others)."""

    op: OpName
    path: tuple[str, ...]
    from_: tuple[str, ...] | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        """The operation as a JSON object (a fresh copy, safe to hand out)."""
        out: dict[str, Any] = {"op": self.op}
        if self.from_ is not None:
            out["from"] = format_pointer(self.from_)
        out["path"] = format_pointer(self.path)
        if self.op in ("add", "replace", "test"):
            out["value"] = _clone(self.value)
        return out


# --- JSON values -----------------------------------------------------------------------------


def _short(text: str) -> str:
    return repr(text if len(text) <= _SHORT else text[:_SHORT] + "...")


class _Budget:
    """Size and depth accounting while copying or measuring a value."""

    __slots__ = ("max_depth", "max_size", "size")

    def __init__(self, max_depth: int, max_size: int) -> None:
        self.max_depth = max_depth
        self.max_size = max_size
        self.size = 0

    def charge(self, amount: int) -> None:
        self.size += amount
        if self.size > self.max_size:
            raise JsonPatchError(TOO_LARGE, f"larger than {self.max_size} size units")


def _copy(value: Any, depth: int, budget: _Budget) -> Any:
    """A deep copy of a JSON value, checking that it is JSON and within the budget.

    ``depth`` is the number of containers above ``value``."""
    budget.charge(1)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        budget.charge(len(value))
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonPatchError(INVALID_VALUE, f"{value} is not a JSON number")
        return value
    if isinstance(value, list | dict):
        if depth + 1 > budget.max_depth:
            raise JsonPatchError(TOO_LARGE, f"nested deeper than {budget.max_depth}")
        if isinstance(value, list):
            return [_copy(item, depth + 1, budget) for item in value]
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise JsonPatchError(INVALID_VALUE, f"object member name {key!r} is not a string")
            budget.charge(len(key))
            out[key] = _copy(item, depth + 1, budget)
        return out
    raise JsonPatchError(INVALID_VALUE, f"a {type(value).__name__} is not a JSON value")


def _clone(value: Any) -> Any:
    """A deep copy of a value already known to be JSON."""
    if isinstance(value, list):
        return [_clone(item) for item in value]
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    return value


def copy_json(value: Any, limits: PatchLimits = DEFAULT_LIMITS) -> Any:
    """A deep copy of a JSON value; JsonPatchError if it is not JSON or exceeds ``limits``."""
    return _copy(value, 0, _Budget(limits.max_depth, limits.max_size))


def json_size(value: Any, limits: PatchLimits = DEFAULT_LIMITS) -> int:
    """The size of a JSON value as :class:`PatchLimits` counts it (checking it is JSON)."""
    budget = _Budget(limits.max_depth, limits.max_size)
    _copy(value, 0, budget)
    return budget.size


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902 section 4.6): numbers by value, bool never equal to a number,
    arrays element by element, objects by member set regardless of order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    return False


def loads(text: str | bytes) -> Any:
    """Decode JSON text strictly: duplicate member names (RFC 6902 A.13) and ``NaN``,
    ``Infinity``, ``-Infinity`` are :class:`JsonPatchError` ``invalid-json``."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise JsonPatchError(INVALID_JSON, f"duplicate member name {_short(key)}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise JsonPatchError(INVALID_JSON, f"{name} is not JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        if isinstance(exc, JsonPatchError):
            raise
        raise JsonPatchError(INVALID_JSON, str(exc)) from None


# --- JSON Pointer (RFC 6901) -----------------------------------------------------------------


def escape_token(token: str) -> str:
    """One reference token in pointer syntax: ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def format_pointer(tokens: Sequence[str]) -> str:
    """The pointer text for decoded reference tokens (``()`` is ``""``, the whole document)."""
    return "".join("/" + escape_token(token) for token in tokens)


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The decoded reference tokens of a pointer (RFC 6901 sections 3-4).

    ``""`` is the whole document; anything else must start with ``/``; ``~`` must be
    followed by ``0`` or ``1``. Raises JsonPatchError ``invalid-pointer``."""
    if not isinstance(pointer, str):
        raise JsonPatchError(
            INVALID_POINTER, f"a pointer is a string, not {type(pointer).__name__}"
        )
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise JsonPatchError(INVALID_POINTER, f"{_short(pointer)} does not start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        position = token.find("~")
        while position != -1:
            if token[position + 1 : position + 2] not in ("0", "1"):
                raise JsonPatchError(
                    INVALID_POINTER, f"{_short(pointer)}: '~' must be followed by 0 or 1"
                )
            position = token.find("~", position + 2)
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


def _array_index(tokens: Sequence[str], depth: int, array: list[Any], *, insert: bool) -> int:
    """The index that ``tokens[depth]`` names in ``array``; ``insert`` allows ``len(array)``
    and ``-`` (add only)."""
    token = tokens[depth]
    if token == "-":
        if insert:
            return len(array)
        raise JsonPatchError(
            PATH_NOT_FOUND, f"{_short(format_pointer(tokens[: depth + 1]))}: '-' names no element"
        )
    if _INDEX.fullmatch(token) is None:
        raise JsonPatchError(
            INVALID_POINTER,
            f"{_short(format_pointer(tokens[: depth + 1]))}: {_short(token)} is not an array "
            "index (digits, no leading zero, or '-')",
        )
    limit = len(array) if insert else len(array) - 1
    index = int(token) if len(token) <= _MAX_INDEX_DIGITS else limit + 1
    if index > limit:
        raise JsonPatchError(
            PATH_NOT_FOUND,
            f"{_short(format_pointer(tokens[: depth + 1]))}: index out of range "
            f"(array of {len(array)})",
        )
    return index


def _child(container: Any, tokens: Sequence[str], depth: int) -> Any:
    token = tokens[depth]
    if isinstance(container, dict):
        if token not in container:
            raise JsonPatchError(
                PATH_NOT_FOUND, f"{_short(format_pointer(tokens[: depth + 1]))} does not exist"
            )
        return container[token]
    if isinstance(container, list):
        return container[_array_index(tokens, depth, container, insert=False)]
    raise JsonPatchError(
        PATH_NOT_FOUND,
        f"{_short(format_pointer(tokens[:depth]))} is a {_kind(container)}, not a container",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _get(document: Any, tokens: Sequence[str]) -> Any:
    value = document
    for depth in range(len(tokens)):
        value = _child(value, tokens, depth)
    return value


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` references in ``document`` (not a copy). JsonPatchError
    ``invalid-pointer`` or ``path-not-found`` when it references nothing."""
    return _get(document, parse_pointer(pointer))


# --- parsing a patch -------------------------------------------------------------------------


def _pointer_member(operation: Mapping[str, Any], name: str, budget: _Budget) -> tuple[str, ...]:
    if name not in operation:
        raise JsonPatchError(INVALID_OPERATION, f"{operation['op']!r} needs a {name!r} member")
    tokens = parse_pointer(operation[name])
    budget.charge(len(operation[name]))
    return tokens


def parse_operations(
    operations: Sequence[Mapping[str, Any]], limits: PatchLimits = DEFAULT_LIMITS
) -> list[Operation]:
    """Validate a patch (a JSON array of operation objects) without applying it.

    The patch comes off the wire, so it is checked at run time whatever its static type.
    Values are copied; their sizes count against ``limits.max_size`` together."""
    if not isinstance(operations, list | tuple):
        raise JsonPatchError(
            INVALID_OPERATION, f"a patch is a JSON array, not {type(operations).__name__}"
        )
    if len(operations) > limits.max_operations:
        raise JsonPatchError(TOO_LARGE, f"more than {limits.max_operations} operations")
    budget = _Budget(limits.max_depth, limits.max_size)
    parsed: list[Operation] = []
    for index, operation in enumerate(operations):
        try:
            parsed.append(_parse_operation(operation, budget))
        except JsonPatchError as exc:
            raise JsonPatchError(exc.code, exc.detail, index) from None
    return parsed


def _parse_operation(operation: Any, budget: _Budget) -> Operation:
    if not isinstance(operation, dict):
        raise JsonPatchError(
            INVALID_OPERATION, f"an operation is a JSON object, not {type(operation).__name__}"
        )
    if "op" not in operation:
        raise JsonPatchError(INVALID_OPERATION, "no 'op' member")
    op = operation["op"]
    if not isinstance(op, str) or op not in OPS:
        text = _short(op) if isinstance(op, str) else type(op).__name__
        raise JsonPatchError(INVALID_OPERATION, f"unknown op {text}")
    path = _pointer_member(operation, "path", budget)
    if op in ("move", "copy"):
        source = _pointer_member(operation, "from", budget)
        if op == "move" and len(source) < len(path) and path[: len(source)] == source:
            raise JsonPatchError(
                INVALID_OPERATION,
                f"cannot move {_short(format_pointer(source))} into its own child",
            )
        return Operation(cast(OpName, op), path, from_=source)
    if op == "remove":
        return Operation("remove", path)
    if "value" not in operation:
        raise JsonPatchError(INVALID_OPERATION, f"{op!r} needs a 'value' member")
    value = _copy(operation["value"], len(path), budget)  # ``len(path)`` containers above it
    return Operation(cast(OpName, op), path, value=value)


# --- applying --------------------------------------------------------------------------------

_WORK_FACTOR = 4  # a patch may measure, copy or remove at most this many times max_size


def _measure(value: Any) -> tuple[int, int]:
    """(size, depth) of a value already known to be JSON (see :class:`PatchLimits`)."""
    if isinstance(value, str):
        return 1 + len(value), 0
    if isinstance(value, list | dict):
        size, depth = 1, 0
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            item_size, item_depth = _measure(item)
            size += item_size + (len(key) if isinstance(key, str) else 0)
            depth = max(depth, item_depth)
        return size, depth + 1
    return 1, 0


def _not_container(tokens: Sequence[str], value: Any) -> JsonPatchError:
    return JsonPatchError(
        PATH_NOT_FOUND,
        f"{_short(format_pointer(tokens))} is a {_kind(value)}, not a container",
    )


class _Document:
    """The working copy a patch is applied to, with its size and the patch's work tracked.

    Work (values measured, copied or removed) is bounded so that moving or copying a large
    subtree back and forth cannot turn a small patch into a long computation."""

    __slots__ = ("limits", "root", "size", "work")

    def __init__(self, root: Any, size: int, limits: PatchLimits) -> None:
        self.root = root
        self.size = size
        self.limits = limits
        self.work = 0

    def measure(self, value: Any) -> tuple[int, int]:
        size, depth = _measure(value)
        self.work += size
        if self.work > _WORK_FACTOR * self.limits.max_size:
            raise JsonPatchError(TOO_LARGE, "the patch moves, copies or removes too much")
        return size, depth

    def place(self, tokens: Sequence[str], value: Any, replaced_size: int = 0) -> None:
        """Check the limits for ``value`` placed at ``tokens`` (instead of something of
        ``replaced_size``) and account for it."""
        size, depth = self.measure(value)
        if len(tokens) + depth > self.limits.max_depth:
            raise JsonPatchError(TOO_LARGE, f"document nested deeper than {self.limits.max_depth}")
        if self.size + size - replaced_size > self.limits.max_size:
            raise JsonPatchError(TOO_LARGE, f"document larger than {self.limits.max_size} units")
        self.size += size - replaced_size

    def add(self, tokens: Sequence[str], value: Any) -> None:
        if not tokens:  # RFC 6902 4.1: the value becomes the whole document
            self.replace(tokens, value)
            return
        parent = _get(self.root, tokens[:-1])
        if isinstance(parent, dict):
            key = tokens[-1]
            replaced_size = self.measure(parent[key])[0] if key in parent else 0
            self.place(tokens, value, replaced_size)
            parent[key] = value
        elif isinstance(parent, list):
            index = _array_index(tokens, len(tokens) - 1, parent, insert=True)
            self.place(tokens, value)
            parent.insert(index, value)
        else:
            raise _not_container(tokens[:-1], parent)

    def remove(self, tokens: Sequence[str]) -> Any:
        if not tokens:
            raise JsonPatchError(INVALID_OPERATION, "cannot remove the whole document")
        parent = _get(self.root, tokens[:-1])
        removed: Any
        if isinstance(parent, dict):
            removed = _child(parent, tokens, len(tokens) - 1)
            del parent[tokens[-1]]
        elif isinstance(parent, list):
            removed = parent.pop(_array_index(tokens, len(tokens) - 1, parent, insert=False))
        else:
            raise _not_container(tokens[:-1], parent)
        self.size -= self.measure(removed)[0]
        return removed

    def replace(self, tokens: Sequence[str], value: Any) -> None:
        if not tokens:
            self.place(tokens, value, self.measure(self.root)[0])
            self.root = value
            return
        parent = _get(self.root, tokens[:-1])
        if isinstance(parent, list):
            index = _array_index(tokens, len(tokens) - 1, parent, insert=False)
            self.place(tokens, value, self.measure(parent[index])[0])
            parent[index] = value
        elif isinstance(parent, dict):
            self.place(tokens, value, self.measure(_child(parent, tokens, len(tokens) - 1))[0])
            parent[tokens[-1]] = value
        else:
            raise _not_container(tokens[:-1], parent)


def _apply_one(document: _Document, operation: Operation) -> None:
    op, path = operation.op, operation.path
    if op == "add":
        document.add(path, _clone(operation.value))
    elif op == "remove":
        document.remove(path)
    elif op == "replace":
        document.replace(path, _clone(operation.value))
    elif op == "test":
        if not json_equal(_get(document.root, path), operation.value):
            raise JsonPatchError(
                TEST_FAILED, f"{_short(format_pointer(path))} holds a different value"
            )
    elif op in ("move", "copy"):
        source = operation.from_
        if source is None:
            raise JsonPatchError(INVALID_OPERATION, f"{op!r} needs a 'from' member")
        if op == "copy":
            document.add(path, _clone(_get(document.root, source)))
        elif source == path:
            _get(document.root, source)  # it must exist; there is nothing else to do
        elif len(source) < len(path) and path[: len(source)] == source:
            raise JsonPatchError(INVALID_OPERATION, "cannot move a value into its own child")
        else:
            document.add(path, document.remove(source))
    else:
        raise JsonPatchError(INVALID_OPERATION, f"unknown op {_short(str(op))}")


def apply_operations(
    document: Any, operations: Sequence[Operation], limits: PatchLimits = DEFAULT_LIMITS
) -> Any:
    """Apply parsed operations to a copy of ``document``; the new document, or JsonPatchError
    (with ``op_index``) and nothing applied. ``document`` is not touched."""
    budget = _Budget(limits.max_depth, limits.max_size)
    try:
        root = _copy(document, 0, budget)
    except JsonPatchError as exc:
        raise JsonPatchError(exc.code, f"the document: {exc.detail}") from None
    working = _Document(root, budget.size, limits)
    for index, operation in enumerate(operations):
        try:
            _apply_one(working, operation)
        except JsonPatchError as exc:
            raise JsonPatchError(exc.code, exc.detail, index) from None
    return working.root


def apply_patch(
    document: Any,
    operations: Sequence[Mapping[str, Any]],
    *,
    limits: PatchLimits = DEFAULT_LIMITS,
) -> Any:
    """Apply an RFC 6902 patch to ``document``: the new document, or JsonPatchError and
    nothing applied. Neither ``document`` nor ``operations`` is mutated."""
    return apply_operations(document, parse_operations(operations, limits), limits)
