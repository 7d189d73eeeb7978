"""toml_key_lines: the line of every key, which gives config problems their line numbers."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.config import KeyPath, format_key_path, toml_key_lines

from .conftest import REPO

SAMPLE = '''\
# comment with [brackets] and key = "value"
title = "x" # trailing [comment]
a.b.c = 1

[sip]                       # 5
host = "127.0.0.1"
"quoted.key" = 'lit'
transports = [              # 8
  "udp",  # first, with = and [ in a comment
  # a comment line inside the array
  "tcp",                    # 11
]
text = """
[not_a_table]
fake = 1
"""
after = 17
raw = \'\'\'
x = 1 ''\'\'\'
after_raw = 20
nested = [[1, 2], [
  3]]                       # 22
sip2 . dotted = true        # 23

[log.modules]               # 25
"avatar_mf.sip" = "DEBUG"
inline = { a = 1, "b.c" = { d = [1, 2] } }   # 27

[[peers]]                   # 29
name = "a"
[[peers]]                   # 31
name = "b"
'''


def test_sample_lines() -> None:
    lines = toml_key_lines(SAMPLE)
    expected: dict[KeyPath, int] = {
        ("title",): 2,
        ("a",): 3,
        ("a", "b"): 3,
        ("a", "b", "c"): 3,
        ("sip",): 5,
        ("sip", "host"): 6,
        ("sip", "quoted.key"): 7,
        ("sip", "transports"): 8,
        ("sip", "transports", 0): 9,
        ("sip", "transports", 1): 11,
        ("sip", "text"): 13,
        ("sip", "after"): 17,
        ("sip", "raw"): 18,
        ("sip", "after_raw"): 20,
        ("sip", "nested"): 21,
        ("sip", "nested", 0): 21,
        ("sip", "nested", 0, 1): 21,
        ("sip", "nested", 1): 21,
        ("sip", "nested", 1, 0): 22,
        ("sip", "sip2"): 23,
        ("sip", "sip2", "dotted"): 23,
        ("log",): 25,
        ("log", "modules"): 25,
        ("log", "modules", "avatar_mf.sip"): 26,
        ("log", "modules", "inline"): 27,
        ("log", "modules", "inline", "b.c", "d", 1): 27,
        ("peers",): 29,
        ("peers", 0): 29,
        ("peers", 0, "name"): 30,
        ("peers", 1): 31,
        ("peers", 1, "name"): 32,
    }
    assert {path: lines.get(path) for path in expected} == expected
    assert ("not_a_table",) not in lines
    assert ("sip", "fake") not in lines
    assert ("sip", "x") not in lines


def test_crlf_line_endings() -> None:
    assert toml_key_lines("[sip]\r\nport = 1\r\n\r\nhost = 'h'\r\n") == {
        ("sip",): 1,
        ("sip", "port"): 2,
        ("sip", "host"): 4,
    }


def test_text_tomllib_rejects_keeps_the_lines_before_the_error() -> None:
    assert toml_key_lines("[sip]\nport = 1\nhost = [1,\n") == {
        ("sip",): 1,
        ("sip", "port"): 2,
    }
    assert toml_key_lines('a = "unterminated\nb = 2\n') == {}


def test_shipped_configs_have_a_line_for_every_setting() -> None:
    for path in [
        REPO / "configs" / "example-lab.toml",
        REPO / "src" / "avatar_mf" / "configs" / "default.toml",
    ]:
        text = path.read_text()
        lines = toml_key_lines(text)
        for leaf in _leaf_paths(tomllib.loads(text)):
            assert leaf in lines, f"{path.name}: {format_key_path(leaf)}"


def _leaf_paths(value: object, prefix: KeyPath = ()) -> list[KeyPath]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def test_format_key_path() -> None:
    assert format_key_path(("sip", "transports", 1)) == "sip.transports[1]"
    assert format_key_path(("log", "modules", "avatar_mf.sip")) == 'log.modules."avatar_mf.sip"'
    assert format_key_path(()) == ""


# --------------------------------------------------------------------------- property test
#
# Random documents are rendered with random but valid layouts; the renderer notes the line
# where it put every key and array element, and toml_key_lines must find the same lines.

TRICKY = list("ab =#[]{}\"'\\\n\t.,é")
texts = st.text(alphabet=st.sampled_from(TRICKY), max_size=12)
bare_keys = st.text(alphabet=st.sampled_from(list("abz09_-")), min_size=1, max_size=6)
quoted_keys = st.text(alphabet=st.sampled_from(list("ab.= #[]")), min_size=1, max_size=6)
keys = st.one_of(bare_keys, quoted_keys)
scalars = st.one_of(st.integers(-(10**6), 10**6), st.booleans(), texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=8,
)
documents = st.dictionaries(keys, st.dictionaries(keys, values, max_size=5), max_size=4)


@dataclass
class Renderer:
    draw: Callable[[st.SearchStrategy[Any]], Any]
    out: list[str] = field(default_factory=list)
    lines: dict[KeyPath, int] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return "".join(self.out).count("\n") + 1

    def key(self, key: str) -> str:
        if key.replace("_", "").replace("-", "").isalnum() and key.isascii() and key:
            return key
        return json.dumps(key)

    def string(self, text: str) -> str:
        styles = ["basic"]
        if "'" not in text and not any(c in text for c in "\n\x7f") and "\t" not in text:
            styles.append("literal")
        styles.append("ml_basic")
        if "'" not in text and not text.startswith("\n"):
            styles.append("ml_literal")
        style = self.draw(st.sampled_from(styles))
        if style == "basic":
            return json.dumps(text, ensure_ascii=False)
        if style == "literal":
            return f"'{text}'"
        if style == "ml_basic":
            body = text.replace("\\", "\\\\").replace('"', '\\"')
            # A newline right after the opening quotes is dropped by TOML.
            lead = "\n" if text.startswith("\n") or self.draw(st.booleans()) else ""
            return f'"""{lead}{body}"""'
        return f"'''{text}'''"

    def value(self, path: KeyPath, value: object) -> None:
        if isinstance(value, bool):
            self.out.append("true" if value else "false")
        elif isinstance(value, int):
            self.out.append(str(value))
        elif isinstance(value, str):
            self.out.append(self.string(value))
        elif isinstance(value, list):
            multiline = self.draw(st.booleans())
            self.out.append("[")
            for index, item in enumerate(value):
                if multiline:
                    self.out.append("\n  # element comment [x] = 1\n  " if index % 2 else "\n  ")
                self.lines[(*path, index)] = self.line
                self.value((*path, index), item)
                if index < len(value) - 1 or (multiline and self.draw(st.booleans())):
                    self.out.append(", ")
            self.out.append("\n]" if multiline else "]")
        else:
            assert isinstance(value, dict)
            self.out.append("{ ")
            for index, (key, item) in enumerate(value.items()):
                self.lines[(*path, key)] = self.line
                self.out.append(f"{self.key(key)} = ")
                self.value((*path, key), item)
                if index < len(value) - 1:
                    self.out.append(", ")
            self.out.append(" }")

    def document(self, doc: dict[str, dict[str, object]]) -> str:
        for index, (section, table) in enumerate(doc.items()):
            dotted = (
                index == 0 and bool(table) and self.draw(st.booleans())
            )  # root-level `section.key = v`
            if not dotted:
                self.out.append("\n" * self.draw(st.integers(0, 2)))
                self.lines[(section,)] = self.line
                self.out.append(f"[ {self.key(section)} ]  # section\n")
            for key, value in table.items():
                prefix = f"{self.key(section)} . " if dotted else ""
                self.lines.setdefault((section,), self.line)
                self.lines[(section, key)] = self.line
                self.out.append(f"{prefix}{self.key(key)} = ")
                self.value((section, key), value)
                self.out.append("  # comment = [x]\n" if self.draw(st.booleans()) else "\n")
        return "".join(self.out)


@settings(max_examples=100, deadline=None)
@given(doc=documents, data=st.data())
def test_scanner_agrees_with_a_renderer(
    doc: dict[str, dict[str, object]], data: st.DataObject
) -> None:
    renderer = Renderer(data.draw)
    text = renderer.document(doc)
    assert tomllib.loads(text) == doc  # the rendering is valid TOML for the same data
    found = toml_key_lines(text)
    assert {path: found.get(path) for path in renderer.lines} == renderer.lines
