"""avatar_mf.lru: a bounded parse cache for values off the wire."""

from __future__ import annotations

import pytest

from avatar_mf.lru import CachedParser, cached_parser


def counting_parser(size: int, max_length: int) -> tuple[list[str], CachedParser[tuple[str, int]]]:
    calls: list[str] = []

    @cached_parser(size=size, max_length=max_length)
    def parse(value: str) -> tuple[str, int]:
        calls.append(value)
        if value == "bad":
            raise ValueError(value)
        return (value, len(value))

    return calls, parse


def test_short_values_are_parsed_once() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    assert parse("abc") == ("abc", 3)
    assert parse("abc") == ("abc", 3)
    assert calls == ["abc"]


def test_long_values_are_parsed_every_time() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    parse("x" * 9)
    parse("x" * 9)
    parse("y" * 8)
    parse("y" * 8)
    assert calls == ["x" * 9, "x" * 9, "y" * 8]


def test_the_cache_keeps_at_most_size_values() -> None:
    calls, parse = counting_parser(size=2, max_length=8)
    for value in ("a", "b", "c", "a"):  # "a" is the least recently used when "c" comes
        parse(value)
    assert calls == ["a", "b", "c", "a"]


def test_errors_are_not_cached() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    for _ in range(2):
        with pytest.raises(ValueError):
            parse("bad")
    assert calls == ["bad", "bad"]


def test_the_parser_keeps_its_name() -> None:
    _, parse = counting_parser(size=4, max_length=8)
    assert parse.__name__ == "parse"


def test_a_primed_value_is_not_parsed() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    parse.prime("abc", ("abc", 3))
    assert parse("abc") == ("abc", 3)
    assert calls == []


def test_priming_a_cached_value_keeps_it() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    first = parse("abc")
    parse.prime("abc", ("abc", 3))
    assert parse("abc") is first
    assert calls == ["abc"]


def test_long_values_are_not_primed() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    parse.prime("x" * 9, ("x" * 9, 9))
    parse("x" * 9)
    assert calls == ["x" * 9]


def test_priming_leaves_other_values_to_the_parser() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    parse.prime("abc", ("abc", 3))
    assert parse("abd") == ("abd", 3)
    assert calls == ["abd"]
    with pytest.raises(ValueError):
        parse("bad")


def test_the_uncached_parser_is_kept() -> None:
    calls, parse = counting_parser(size=4, max_length=8)
    parse("abc")
    assert parse.__wrapped__("abc") == ("abc", 3)
    assert calls == ["abc", "abc"]
