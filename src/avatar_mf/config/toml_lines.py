"""The line where each key of a TOML document is defined, for line-numbered config problems.

tomllib reports no positions, so the text is parsed a second time with tomlkit, which keeps
every byte of the layout (comments, whitespace, quoting) and renders it back exactly. Before
rendering, a marker that cannot occur in TOML text (``NUL``, id, ``NUL``) is put in front of
every key, table header and array-of-tables element; the 1-based line of a key is then the
number of newlines before its marker, plus one. Array elements have no place for a marker, so
they are found inside their array's own text, where only whitespace, commas and comments
separate them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import ParseError
from tomlkit.items import AoT, Array, InlineTable, Item, Table

from avatar_mf.config.problems import KeyPath

__all__ = ["toml_key_lines"]

_MARKER = re.compile("\x00([0-9]+)\x00")


def toml_key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path defined in a TOML document to its 1-based line.

    Table headers map to their header line, dotted keys define each prefix on their line, and
    array elements map to the line where each element starts. Meant for documents tomllib has
    accepted; for other text it returns the lines of the part before the first error.
    """
    try:
        document = tomlkit.parse(text)
    except ParseError as exc:
        # Keep what the lines before the error define (nothing, if they do not parse either).
        head = "".join(text.splitlines(keepends=True)[: max(exc.line - 1, 0)])
        try:
            document = tomlkit.parse(head)
        except ParseError:
            return {}
        text = head
    marks = _Marks()
    marks.container(document, ())
    rendered = document.as_string()
    if _MARKER.sub("", rendered) != text:  # a layout tomlkit does not render back as it read
        return {}
    lines: dict[KeyPath, int] = {}
    line, last = 1, 0
    for match in _MARKER.finditer(rendered):
        line += rendered.count("\n", last, match.start())
        last = match.end()
        path = marks.paths[int(match[1])]
        lines.setdefault(path, line)
        for end in range(1, len(path)):  # a dotted key defines its prefixes on its line ...
            if isinstance(path[end - 1], str):  # ... but an array element starts elsewhere
                lines.setdefault(path[:end], line)
    for path, array in marks.arrays:
        if path in lines:
            _array_lines(array, path, lines[path], lines)
    return lines


@dataclass
class _Marks:
    """Puts a marker before every key and remembers the arrays that are values of keys."""

    paths: list[KeyPath] = field(default_factory=list)
    arrays: list[tuple[KeyPath, Array]] = field(default_factory=list)

    def mark(self, item: Item, path: KeyPath) -> None:
        item.trivia.indent += f"\x00{len(self.paths)}\x00"
        self.paths.append(path)

    def container(self, container: Container, path: KeyPath) -> None:
        for key, item in container.body:
            if key is None:  # whitespace and comments
                continue
            child = (*path, key.key)
            if isinstance(item, AoT):
                for index, table in enumerate(item.body):
                    self.mark(table, (*child, index))
                    self.container(table.value, (*child, index))
                continue
            # A super table (the ``a`` of ``a.b = 1`` or of ``[a.b]``) renders no text of its
            # own; its path gets the line of its first key.
            if not (isinstance(item, Table) and item.is_super_table()):
                self.mark(item, child)
            self.value(item, child)

    def value(self, item: Item, path: KeyPath) -> None:
        if isinstance(item, Table | InlineTable):
            self.container(item.value, path)
        elif isinstance(item, Array):
            self.arrays.append((path, item))
            for index, element in enumerate(item):
                self.value(element, (*path, index))


def _array_lines(array: Array, path: KeyPath, line: int, lines: dict[KeyPath, int]) -> None:
    """Lines of the elements of ``array``, which starts on ``line``; nested arrays too."""
    text = array.as_string()
    position = 1  # after "["
    for index, element in enumerate(array):
        while True:  # only whitespace, commas and comments come between elements
            if text[position] in " \t\r\n,":
                position += 1
            elif text[position] == "#":
                position = text.index("\n", position)
            else:
                break
        element_line = line + text.count("\n", 0, position)
        lines.setdefault((*path, index), element_line)
        if isinstance(element, Array):
            _array_lines(element, (*path, index), element_line, lines)
        position += len(element.as_string())
