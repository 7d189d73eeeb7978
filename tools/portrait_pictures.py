"""Make the 2D-mode pictures of docs/rendering.md: scikit-image's astronaut as a 2D avatar
(``avatar-mf avatar render --photo-2d``), neutral, jawOpen 0.45 + mouthSmileLeft/Right 0.8
(the weights of the 3D head's picture beside it) and both eyes closed with the inner brows up.

    PYTHONPATH=src .venv/bin/python tools/portrait_pictures.py
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from avatar_mf.cli import main

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
PICTURES = {
    "portrait-neutral.png": [],
    "portrait-jawopen-smile.png": ["jawOpen=0.45", "mouthSmileLeft=0.8", "mouthSmileRight=0.8"],
    "portrait-blink-brows.png": ["eyeBlinkLeft=1", "eyeBlinkRight=1", "browInnerUp=1"],
}


def run() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.png"
        Image.fromarray(np.ascontiguousarray(data.astronaut())).save(photo)
        for name, weights in PICTURES.items():
            argv = ["avatar", "render", "--photo-2d", str(photo), "--size", "384"]
            for weight in weights:
                argv += ["--weight", weight]
            out = io.StringIO()
            code = main([*argv, "-o", str(OUT / name)], stdout=out, stderr=sys.stderr,
                        environ={})
            if code:
                return code
            print(out.getvalue().strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
