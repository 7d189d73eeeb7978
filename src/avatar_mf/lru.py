"""Bounded memo caches for pure parsers of values that come off the wire.

A peer chooses the header and attribute values the MF parses, so a cache keyed by them must
stay small: :func:`cached_parser` keeps at most ``size`` results (``functools.lru_cache``)
and only for values up to ``max_length`` characters; longer values are parsed every time.
Only for pure parsers that return immutable values (frozen dataclasses, tuples): a cached
result is shared by every caller.

A caller that has just built a value from a parsed result (the server transport writing
``received`` and ``rport`` into the top Via, RFC 3581) can :meth:`CachedParser.prime` the cache
with it, so the layers above read the new value without parsing it again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Protocol, TypeVar

__all__ = ["CachedParser", "cached_parser"]

_T = TypeVar("_T")


class CachedParser(Protocol[_T]):
    """A parser with a bounded cache (see :func:`cached_parser`)."""

    __name__: str
    #: The parser itself, without the cache.
    __wrapped__: Callable[[str], _T]

    def __call__(self, value: str) -> _T: ...

    def prime(self, value: str, result: _T) -> None:
        """Cache ``result`` as the parse of ``value`` without parsing it.

        ``result`` must be what the parser returns for ``value`` (a value just serialized
        from ``result``); values longer than ``max_length`` are not cached.
        """


def cached_parser(
    *, size: int, max_length: int
) -> Callable[[Callable[[str], _T]], CachedParser[_T]]:
    """A decorator: ``parse`` with an LRU cache of ``size`` results for values of at most
    ``max_length`` characters. Exceptions are not cached (they are raised again each time)."""

    def decorate(parse: Callable[[str], _T]) -> CachedParser[_T]:
        # While prime() runs, the one value it is priming; empty otherwise.
        priming: list[tuple[str, _T]] = []

        def parse_or_primed(value: str) -> _T:
            if priming and priming[0][0] == value:
                return priming[0][1]
            return parse(value)

        cached = lru_cache(maxsize=size)(parse_or_primed)

        @wraps(parse)
        def parse_value(value: str) -> _T:
            if len(value) <= max_length:
                return cached(value)
            return parse(value)

        def prime(value: str, result: _T) -> None:
            if len(value) > max_length:
                return
            priming.append((value, result))
            try:
                cached(value)  # a miss stores ``result``; a hit keeps the equal cached value
            finally:
                priming.clear()

        parse_value.prime = prime  # type: ignore[attr-defined]  # the Protocol's method
        return parse_value  # type: ignore[return-value]  # has prime() from the line above

    return decorate
