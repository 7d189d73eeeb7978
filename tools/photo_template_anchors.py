"""Where MediaPipe's 478 face landmarks lie on the product's head (the photo avatar's anchors).

Renders the default head (``avatar.generate.generate_default_head``, seed 0, default
resolution) from the front with the product's renderer, tracks it with the packaged face
landmarker and casts each landmark's pixel back onto the mesh (the nearest triangle under it
and the barycentric coordinates of the point seen there); writes them, with the template's
part, weld and mirror maps and the tracker's error on renders of the head at view angles (yaw
-45..45, pitch -15..15 degrees, in 3D and in the picture: ``anchors.measure_views``), to
``src/avatar_mf/stages/base_avatar/photo/anchors.npz``, which
the photo generator loads. Run it again whenever the procedural head changes
(``tests/stages/base_avatar/photo`` checks that the file still matches the head)::

    PYTHONPATH=$PWD/src .venv/bin/python tools/photo_template_anchors.py
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from avatar_mf.stages.base_avatar.photo.anchors import (
    ANCHORS_PATH,
    locate_anchors,
    measure_views,
    save_anchors,
)


def main() -> int:
    parser = argparse.ArgumentParser(description="locate the photo avatar's landmark anchors")
    parser.add_argument("-o", "--output", type=Path, default=ANCHORS_PATH)
    parser.add_argument("--size", type=int, default=1024, help="render size (pixels)")
    args = parser.parse_args()
    anchors, model = locate_anchors(size=args.size)
    views, image_views = measure_views(anchors, size=args.size)
    anchors = dataclasses.replace(anchors, views=views, image_views=image_views)
    save_anchors(args.output, anchors)
    print(f"{args.output}: {len(anchors.triangles)} anchors on {model.vertex_count} vertices")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
