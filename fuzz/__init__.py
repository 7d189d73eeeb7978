"""Fuzzing the MF's parsers with atheris (coverage-guided libFuzzer for Python).

* :mod:`fuzz.targets` -- one target per parser: ``fuzz_one(data)`` returns when the parser
  returned or raised its own documented error, and lets anything else escape (a crash).
* :mod:`fuzz.corpus` -- seed inputs written from the repository's own fixtures.
* :mod:`fuzz.engine` -- ``python -m fuzz.engine TARGET [libFuzzer flags]``: one target under
  atheris, the product's modules instrumented for coverage.
* :mod:`fuzz.run` -- ``python -m fuzz.run --seconds N [TARGET ...]`` (``make fuzz``): seeds,
  runs every target, counts the inputs tried and the crashes found.

docs/fuzzing.md says how to run them and what they found.
"""
