"""Fuzz every parser for a while: ``python -m fuzz.run [--seconds N] [--jobs J] [TARGET ...]``.

For each target (all of :data:`fuzz.targets.TARGETS` by default) it writes the seeds
(:mod:`fuzz.corpus`) to ``OUT/<target>/seeds``, runs :mod:`fuzz.engine` for ``--seconds``
with the growing corpus in ``OUT/<target>/corpus`` (kept between runs, so a longer campaign
goes on where the last stopped), and collects crash inputs in ``OUT/<target>/crashes``. After
a crash the target starts again for the time left (at most ``--max-crashes`` per target).

It prints one line per target (inputs tried, corpus size, crashes) and writes them to
``OUT/summary.json``; the exit status is 1 when any target crashed. ``make fuzz`` runs it with
``FUZZ_SECONDS`` (default 60) per target; tests/fuzz runs it for a few seconds per target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fuzz.corpus import write_seeds
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "var" / "fuzz"
#: Per-input time limit (s): an input slower than this is reported as a timeout (a finding).
INPUT_TIMEOUT = 10
#: Memory limit of one fuzzing process (MB): past it libFuzzer reports an out-of-memory input.
RSS_LIMIT_MB = 2048

_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"^#(\d+)\s", re.M)
_FINDING_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")


@dataclass
class TargetResult:
    """What one target's run did."""

    target: str
    seconds: float
    seeds: int
    inputs_tried: int = 0
    corpus: int = 0
    crashes: list[str] = field(default_factory=list)
    runs: int = 0
    log: str = ""


def _env(extra_paths: Sequence[Path] = ()) -> dict[str, str]:
    """This tree's sources first, whatever is installed (the engine imports avatar_mf and fuzz)."""
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT), *map(str, extra_paths)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _findings(crashes: Path) -> set[str]:
    return {p.name for p in crashes.iterdir() if p.name.startswith(_FINDING_PREFIXES)}


def run_target(
    target: str,
    seconds: float,
    out: Path,
    max_crashes: int = 5,
    *,
    extra_paths: Sequence[Path] = (),
) -> TargetResult:
    """Fuzz ``target`` for ``seconds`` (restarting after each crash while time is left).

    ``target`` is a name of :data:`TARGETS` or the name of a module with ``fuzz_one``
    (importable from ``extra_paths``); only named targets have seeds.
    """
    base = out / target
    seeds, corpus, crashes = base / "seeds", base / "corpus", base / "crashes"
    seeds.mkdir(parents=True, exist_ok=True)
    count = write_seeds(target, seeds) if target in TARGETS else 0
    result = TargetResult(target, seconds, count)
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = _findings(crashes)
    deadline = time.monotonic() + seconds
    logs = []
    while True:
        left = max(1, round(deadline - time.monotonic()))
        command = [
            sys.executable, "-m", "fuzz.engine", target, str(corpus), str(seeds),
            f"-max_total_time={left}", f"-timeout={INPUT_TIMEOUT}",
            f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={crashes}/",
            "-print_final_stats=1",
        ]  # fmt: skip
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=_env(extra_paths),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=left + 120,
            check=False,
        )
        result.runs += 1
        output = proc.stdout + proc.stderr
        logs.append(output)
        counted = _EXECUTED.search(output)
        if counted:
            result.inputs_tried += int(counted[1])
        else:  # a crash ends the run before the final stats: use the last progress line
            progress = _PROGRESS.findall(output)
            result.inputs_tried += int(progress[-1]) if progress else 0
        new = sorted(_findings(crashes) - before - set(result.crashes))
        result.crashes += new
        if proc.returncode != 0 and not new:
            raise RuntimeError(
                f"{target}: the engine failed ({proc.returncode}):\n{output[-3000:]}"
            )
        if proc.returncode == 0 or len(result.crashes) >= max_crashes:
            break
        if time.monotonic() >= deadline - 1:
            break
    result.corpus = sum(1 for _ in corpus.iterdir())
    result.log = "\n".join(logs)
    (base / "last.log").write_text(result.log)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS), metavar="TARGET")
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="seeds, corpora, crashes")
    parser.add_argument("--max-crashes", type=int, default=5, help="per target")
    args = parser.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; the targets are {list(TARGETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(
            pool.map(lambda t: run_target(t, args.seconds, args.out, args.max_crashes), targets)
        )
    row = "{:<14} {:>7} {:>5} {:>12} {:>6} {}"
    print(row.format("target", "seconds", "seeds", "inputs tried", "corpus", "crashes"))
    for r in results:
        found = ", ".join(r.crashes) if r.crashes else "0"
        print(row.format(r.target, f"{r.seconds:.0f}", r.seeds, r.inputs_tried, r.corpus, found))
    summary = [{k: v for k, v in asdict(r).items() if k != "log"} for r in results]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    crashed = [r for r in results if r.crashes]
    for r in crashed:
        where = args.out / r.target
        print(f"\n{r.target}: crash inputs in {where / 'crashes'}, its log in {where / 'last.log'}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
