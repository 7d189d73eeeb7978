"""Bounded memo caches for pure parsers of values that come off the wire.

A peer chooses the header and attribute values the MF parses, so a cache keyed by them must
stay small: :func:`cached_parser` keeps at most ``size`` results (``functools.lru_cache``)
and only for values up to ``max_length`` characters; longer values are parsed every time.
Only for pure parsers that return immutable values (frozen dataclasses, tuples): a cached
result is shared by every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import TypeVar

__all__ = ["cached_parser"]

_T = TypeVar("_T")


def cached_parser(
    *, size: int, max_length: int
) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """A decorator: ``parse`` with an LRU cache of ``size`` results for values of at most
    ``max_length`` characters. Exceptions are not cached (they are raised again each time)."""

    def decorate(parse: Callable[[str], _T]) -> Callable[[str], _T]:
        cached = lru_cache(maxsize=size)(parse)

        @wraps(parse)
        def parse_value(value: str) -> _T:
            if len(value) <= max_length:
                return cached(value)
            return parse(value)

        return parse_value

    return decorate
