"""Train the voice stage's viseme classifier and write it into the package.

    PYTHONPATH=$PWD/src .venv/bin/python tools/train_voice_visemes.py [--check]

Data: the real recorded speech with phone alignments in tests/stages/voice/data (LibriVox
recordings with pocketsphinx alignments, from the pocketsphinx 5.1.1 sdist on PyPI; see
docs/voice-animation.md). Prints the leave-one-utterance-out accuracy (each utterance scored by
a model trained on the others: the honest figure), then trains on all of them, exports the
model to ONNX (``stages/voice/onnx_export.py``, needs the ``onnx`` package of the dev extra),
writes src/avatar_mf/stages/voice/viseme_model.onnx and pins its sha256 in
src/avatar_mf/stages/voice/onnx_model.py (``MODEL_SHA256``). Deterministic (seeded);
``--check`` only prints.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import numpy as np

from avatar_mf.stages.voice.corpus import frame_times, hop_inputs, hop_of, load_corpus
from avatar_mf.stages.voice.labels import COARSE_OF_VISEME, frame_labels
from avatar_mf.stages.voice.model import LOOKAHEAD, coarse_probabilities, fit, stack_context
from avatar_mf.stages.voice.onnx_export import to_onnx
from avatar_mf.stages.voice.onnx_model import ONNX_RESOURCE

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "stages" / "voice" / "data"
PACKAGE = ROOT / "src" / "avatar_mf" / "stages" / "voice"
OUT = PACKAGE / ONNX_RESOURCE
PIN = PACKAGE / "onnx_model.py"


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
    data = to_onnx(fit(inputs, labels, lookahead=LOOKAHEAD))
    OUT.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    source = PIN.read_text()
    pinned = re.sub(
        r'MODEL_SHA256: Final = "[0-9a-f]{64}"', f'MODEL_SHA256: Final = "{digest}"', source
    )
    if pinned == source and digest not in source:
        raise SystemExit(f"MODEL_SHA256 not found in {PIN}")
    PIN.write_text(pinned)
    print(
        f"wrote {OUT.relative_to(ROOT)} ({len(data)} bytes, sha256 {digest}), pinned in {PIN.name}"
    )


if __name__ == "__main__":
    main()
