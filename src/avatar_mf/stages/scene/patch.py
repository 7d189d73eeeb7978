"""JSON Patch (RFC 6902) over JSON Pointer (RFC 6901) for scene updates, with the MF's limits.

The ``jsonpatch`` and ``jsonpointer`` libraries do the RFC work (pointer syntax and escapes,
RFC 6901 sections 3-4; the six operations, RFC 6902 section 4). This module is the thin layer
the MF needs around them, because patches come off the wire:

- **Validation before applying.** :func:`parse_operations` checks the patch's shape (an array
  of operation objects, a known ``op``, the members it needs, pointer syntax, ``move`` not
  into its own child, RFC 6902 4.4) and returns frozen :class:`Operation` objects that the
  scene manager can inspect and rewrite (participant-addressed paths) before applying.
  Members an operation does not define are ignored (RFC 6902 4, Appendix A.11).
- **Limits** (:class:`PatchLimits`): the number of operations, the nesting depth, the size of
  the document and of the patch's values and pointers together, and the work of applying
  (values measured for moves, copies and removals, at most 4 x ``max_size``). Going past one
  is :class:`JsonPatchError` ``too-large``.
- **JSON only.** Documents and values are ``dict`` with ``str`` keys, ``list``, ``str``,
  ``int``, finite ``float``, ``bool``, ``None``; anything else is ``invalid-value``.
- **All or nothing** (RFC 6902 section 5): the patch is applied to a private copy; on any
  error the caller's document is untouched, and the result shares no mutable object with the
  document or the operations.
- **Error codes.** The libraries' exceptions become :class:`JsonPatchError` with a ``code``
  (``invalid-operation``, ``invalid-pointer``, ``path-not-found``, ``test-failed``,
  ``invalid-value``, ``invalid-json``, ``too-large``) and ``op_index``, the failing
  operation's position in the patch.

Where the MF's answer differs from the library's, the MF's is kept:

- ``test`` (RFC 6902 4.6) compares with :func:`json_equal` at every depth: numbers by value
  (``1`` equals ``1.0``) but booleans are not numbers (``true`` is not ``1``), and a ``-``
  index names no value (``path-not-found``, where the library would compare its end marker).
- ``remove`` of the whole document is ``invalid-operation``: there would be no document left.
- A ``-`` index outside ``add`` and an index past the end are ``path-not-found``; an index
  with a leading zero or not digits is ``invalid-pointer``.

:func:`loads` decodes patch text strictly (RFC 6902 Appendix A.13: duplicate member names,
and the non-JSON ``NaN``/``Infinity``, are ``invalid-json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import jsonpatch
import jsonpointer

__all__ = [
    "DEFAULT_LIMITS",
    "JsonPatchError",
    "Operation",
    "PatchLimits",
    "apply_in_place",
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

_SHORT = 60  # how much of a token or pointer goes into an error message
_WORK_FACTOR = 4  # a patch may measure, copy or remove at most this many times max_size
_MISSING: Final = object()


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

    ``depth`` is the number of containers above ``value``; the depth limit is checked before
    descending, so a value nested past it cannot exhaust the stack."""
    budget.charge(1)
    if value is None or isinstance(value, bool | int | str):
        budget.charge(len(value) if isinstance(value, str) else 0)
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


# --- JSON Pointer (RFC 6901), by the jsonpointer library -------------------------------------


def escape_token(token: str) -> str:
    """One reference token in pointer syntax: ``~`` -> ``~0``, ``/`` -> ``~1``."""
    escaped: str = jsonpointer.escape(token)
    return escaped


def format_pointer(tokens: Sequence[str]) -> str:
    """The pointer text for decoded reference tokens (``()`` is ``""``, the whole document)."""
    # What ``jsonpointer.JsonPointer.from_parts(tokens).path`` gives, without parsing the
    # pointer it builds back into tokens.
    return "".join(["/" + escape_token(token) for token in tokens])


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The decoded reference tokens of a pointer (RFC 6901 sections 3-4).

    ``""`` is the whole document; anything else must start with ``/``; ``~`` must be
    followed by ``0`` or ``1``. Raises JsonPatchError ``invalid-pointer``."""
    if not isinstance(pointer, str):
        raise JsonPatchError(
            INVALID_POINTER, f"a pointer is a string, not {type(pointer).__name__}"
        )
    try:
        parts: list[str] = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise JsonPatchError(INVALID_POINTER, f"{_short(pointer)}: {exc}") from None
    return tuple(parts)


def _lookup(document: Any, tokens: Sequence[str]) -> Any:
    """The value at ``tokens``, or ``_MISSING`` (nothing there, or a ``-`` index)."""
    try:
        value = jsonpointer.JsonPointer.from_parts(list(tokens)).resolve(document)
    except jsonpointer.JsonPointerException:
        return _MISSING
    return _MISSING if isinstance(value, jsonpointer.EndOfList) else value


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` references in ``document`` (not a copy). JsonPatchError
    ``invalid-pointer`` or ``path-not-found`` when it references nothing."""
    tokens = parse_pointer(pointer)
    value = _lookup(document, tokens)
    if value is _MISSING:
        raise JsonPatchError(*_pointer_failure(document, tokens))
    return value


def _pointer_failure(document: Any, tokens: Sequence[str]) -> tuple[str, str]:
    """(code, message) for a pointer that references nothing in ``document``: a bad array
    index token is ``invalid-pointer`` (RFC 6901 section 4), anything else ``path-not-found``."""
    value = document
    for depth, token in enumerate(tokens):
        where = _short(format_pointer(tokens[: depth + 1]))
        if isinstance(value, list) and token != "-":
            if not (token == "0" or (token[:1] in "123456789" and token.isdigit())):
                return INVALID_POINTER, f"{where}: {_short(token)} is not an array index"
        found = _lookup(value, (token,))
        if found is _MISSING:
            return PATH_NOT_FOUND, f"{where} does not exist"
        value = found
    return PATH_NOT_FOUND, f"{_short(format_pointer(tokens))} does not exist"


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
        if op == "move" and _inside(path, source):
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


def _inside(path: Sequence[str], source: Sequence[str]) -> bool:
    """True if ``path`` is a proper child of ``source`` (RFC 6902 4.4)."""
    return len(source) < len(path) and tuple(path[: len(source)]) == tuple(source)


# --- applying, by the jsonpatch library ------------------------------------------------------


class _Document:
    """The private working copy a patch is applied to, with its size and the patch's work
    tracked. Work (values measured for moves, copies and removals) is bounded so that moving
    or copying a large subtree back and forth cannot turn a small patch into a long
    computation."""

    __slots__ = ("limits", "root", "size", "work")

    def __init__(self, root: Any, size: int, limits: PatchLimits) -> None:
        self.root = root
        self.size = size
        self.limits = limits
        self.work = 0

    def measure(self, value: Any) -> tuple[int, int]:
        if value is _MISSING:
            return 0, 0
        size, depth = _measure(value)
        self.work += size
        if self.work > _WORK_FACTOR * self.limits.max_size:
            raise JsonPatchError(TOO_LARGE, "the patch moves, copies or removes too much")
        return size, depth

    def place(self, tokens: Sequence[str], size: int, depth: int, replaced: int) -> None:
        """Check the limits for a value of ``size`` and ``depth`` placed at ``tokens``
        instead of something of size ``replaced``, and account for it."""
        if len(tokens) + depth > self.limits.max_depth:
            raise JsonPatchError(TOO_LARGE, f"document nested deeper than {self.limits.max_depth}")
        if self.size + size - replaced > self.limits.max_size:
            raise JsonPatchError(TOO_LARGE, f"document larger than {self.limits.max_size} units")
        self.size += size - replaced

    def apply(self, operation: Operation) -> None:
        op, path = operation.op, operation.path
        if op == "test":
            found = _lookup(self.root, path)
            if found is _MISSING:
                raise JsonPatchError(*_pointer_failure(self.root, path))
            if not json_equal(found, operation.value):
                raise JsonPatchError(
                    TEST_FAILED, f"{_short(format_pointer(path))} holds a different value"
                )
            return
        if op == "remove" and not path:
            raise JsonPatchError(INVALID_OPERATION, "cannot remove the whole document")
        if op == "move" and operation.from_ is not None and _inside(path, operation.from_):
            raise JsonPatchError(INVALID_OPERATION, "cannot move a value into its own child")
        self._check_limits(operation)
        try:
            self.root = _LIBRARY_OPERATIONS[op](operation.to_json()).apply(self.root)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise self._library_error(operation, exc) from None

    def _check_limits(self, operation: Operation) -> None:
        op, path = operation.op, operation.path
        target = _lookup(self.root, path)
        if op == "remove":
            self.size -= self.measure(target)[0]
        elif op in ("add", "replace"):
            size, depth = _measure(operation.value)
            self.place(path, size, depth, self.measure(self._replaced(op, path, target))[0])
        elif operation.from_ is not None:  # move, copy
            size, depth = self.measure(_lookup(self.root, operation.from_))
            if op == "copy":
                self.place(path, size, depth, self.measure(self._replaced(op, path, target))[0])
            elif path != operation.from_:  # a move only nests the value elsewhere
                self.place(path, 0, depth, 0)

    def _replaced(self, op: str, path: Sequence[str], target: Any) -> Any:
        """What writing at ``path`` replaces: nothing when ``add`` or ``copy`` insert into
        an array (RFC 6902 4.1), else the value there (``_MISSING`` if none)."""
        if op != "replace" and path and isinstance(_lookup(self.root, path[:-1]), list):
            return _MISSING
        return target

    def _library_error(self, operation: Operation, exc: Exception) -> JsonPatchError:
        """The MF's code for what the library refused. The operation's shape was checked by
        :func:`parse_operations` and ``test`` is not the library's, so what is left is where
        its pointers lead."""
        for tokens in (operation.from_, operation.path):
            if tokens is not None and _lookup(self.root, tokens) is _MISSING:
                code, message = _pointer_failure(self.root, tokens)
                if code == INVALID_POINTER:
                    return JsonPatchError(code, message)
        return JsonPatchError(PATH_NOT_FOUND, str(exc))


_LIBRARY_OPERATIONS: Final[Mapping[str, Any]] = jsonpatch.JsonPatch.operations


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
            working.apply(operation)
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


def apply_in_place(document: Any, operations: Sequence[Operation]) -> None:
    """Apply operations the caller built itself and knows apply (``add``, ``remove`` and
    ``replace`` at locations that exist, values that are JSON within its limits) to
    ``document`` itself, in order (RFC 6902 sections 4.1-4.3): no copy of the document, no
    checks, so the work is proportional to the change. Values are copied in, so the document
    shares nothing with the operations. Anything else is for :func:`apply_operations`."""
    for operation in operations:
        *parents, last = operation.path
        target = document
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        op = operation.op
        if op not in ("add", "remove", "replace"):
            raise ValueError(f"apply_in_place does not do {op!r}")
        if isinstance(target, list):
            if op == "remove":
                del target[int(last)]
            elif last == "-":
                target.append(_clone(operation.value))
            elif op == "replace":
                target[int(last)] = _clone(operation.value)
            else:
                target.insert(int(last), _clone(operation.value))
        elif op == "remove":
            del target[last]
        else:
            target[last] = _clone(operation.value)
