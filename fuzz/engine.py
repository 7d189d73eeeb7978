"""Run one fuzz target under atheris: ``python -m fuzz.engine TARGET [libFuzzer flags] [DIR...]``.

``TARGET`` is a name of :data:`fuzz.targets.TARGETS`, or the name of any importable module with a
``fuzz_one(data)`` function (the tests use one that always crashes).

The product's modules (``avatar_mf``) are instrumented for coverage as the target imports
them; libFuzzer's flags and corpus directories pass through (``-max_total_time=60``,
``-artifact_prefix=DIR/``, ``-runs=N`` ...). A Python exception escaping the target is a crash:
atheris prints its traceback and libFuzzer writes the input to ``<artifact_prefix>crash-<sha1>``.
"""

from __future__ import annotations

import importlib
import sys

import atheris

from fuzz.targets import TARGETS


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(f"usage: python -m fuzz.engine TARGET [libFuzzer flags]; targets: {list(TARGETS)}")
    name = f"fuzz.targets.{argv[1]}" if argv[1] in TARGETS else argv[1]
    with atheris.instrument_imports(include=["avatar_mf"]):
        module = importlib.import_module(name)
    atheris.Setup([argv[0], *argv[2:]], module.fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
