"""Train the voice stage's viseme classifier and write it into the package.

    PYTHONPATH=$PWD/src .venv/bin/python tools/train_voice_visemes.py [--check]

Data: the real recorded speech with phone alignments in tests/stages/voice/data (LibriVox
recordings with pocketsphinx alignments, from the pocketsphinx 5.1.1 sdist on PyPI; see
docs/voice-animation.md). Prints the leave-one-utterance-out accuracy (each utterance scored by
a model trained on the others: the honest figure), then trains on all of them and writes
src/avatar_mf/stages/voice/viseme_model.npz. Deterministic (seeded); ``--check`` only prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avatar_mf.stages.voice.corpus import frame_times, hop_inputs, hop_of, load_corpus
from avatar_mf.stages.voice.labels import COARSE_OF_VISEME, frame_labels
from avatar_mf.stages.voice.model import (
    LOOKAHEAD,
    MODEL_RESOURCE,
    coarse_probabilities,
    fit,
    stack_context,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "stages" / "voice" / "data"
OUT = ROOT / "src" / "avatar_mf" / "stages" / "voice" / MODEL_RESOURCE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print accuracy, write nothing")
    args = parser.parse_args()
    corpus = load_corpus(DATA)
    data = [hop_inputs(u) for u in corpus]
    right5 = right15 = total = 0
    for i, utterance in enumerate(corpus):
        inputs = np.concatenate(
            [stack_context(h, LOOKAHEAD) for j, (h, _) in enumerate(data) if j != i]
        )
        labels = np.concatenate([lab for j, (_, lab) in enumerate(data) if j != i])
        model = fit(inputs, labels, lookahead=LOOKAHEAD)
        hops = data[i][0]
        times = frame_times(utterance.duration)
        index = np.minimum(hop_of(times), hops.shape[0] - 1)
        p = model.probabilities(stack_context(hops, LOOKAHEAD)[index])
        truth = frame_labels(utterance.phones, times)
        right15 += int((p.argmax(axis=1) == truth).sum())
        right5 += int((coarse_probabilities(p).argmax(axis=1) == COARSE_OF_VISEME[truth]).sum())
        total += times.size
    print(
        f"leave-one-out, {len(corpus)} utterances, {total} frames at 30 fps: "
        f"5-class {right5 / total:.3f}, 15-class {right15 / total:.3f}"
    )
    if args.check:
        return
    inputs = np.concatenate([stack_context(h, LOOKAHEAD) for h, _ in data])
    labels = np.concatenate([lab for _, lab in data])
    OUT.write_bytes(fit(inputs, labels, lookahead=LOOKAHEAD).to_bytes())
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
