"""``avatar-mf avatar render --photo-2d``: a PNG still of the astronaut with weights, an MP4 of
recorded units (decoded with PyAV: frame count, the mouth moving), and the error paths."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.cli import main
from avatar_mf.render.png import decode_png
from tests.portrait.conftest import png

pytestmark = pytest.mark.usefixtures("gl", "tracker")  # skipped without EGL or MediaPipe


def cli(*argv: str, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"AVATAR_MF_STORAGE__PATH": str(tmp_path / "storage"), "AVATAR_MF_RENDER__WORKERS": "1"}
    code = main(["avatar", "render", *argv], stdout=out, stderr=err, environ=env)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def photo(tmp_path: Path, astronaut_png: bytes) -> Path:
    path = tmp_path / "astronaut.png"
    path.write_bytes(astronaut_png)
    return path


def test_png_still_of_a_photo(photo: Path, tmp_path: Path) -> None:
    neutral, opened = tmp_path / "neutral.png", tmp_path / "open.png"
    code, out, err = cli("--photo-2d", str(photo), "--size", "128", "-o", str(neutral),
                         tmp_path=tmp_path)
    assert code == 0, err
    assert "128x128 PNG" in out
    code, _, _ = cli("--photo-2d", str(photo), "--size", "128", "--weight", "jawOpen=1",
                     "-o", str(opened), tmp_path=tmp_path)
    assert code == 0
    a, b = decode_png(neutral.read_bytes()), decode_png(opened.read_bytes())
    assert a.shape == (128, 128, 3)
    assert np.abs(a.astype(int) - b).sum() > 1000


def test_mp4_of_recorded_units_on_a_photo(photo: Path, tmp_path: Path) -> None:
    units = tmp_path / "animation.aau"
    jaw = ARKIT_INDEX["jawOpen"]
    stream = [encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))]
    stream += [encode_unit(BlendshapeUnit(t, 0, (jaw,), (w,)))
               for t, w in ((0, 0.0), (200, 1.0), (400, 0.0))]
    units.write_bytes(b"".join(stream))
    video = tmp_path / "talk.mp4"
    code, out, err = cli("--photo-2d", str(photo), "--units", str(units), "--size", "96",
                         "--rate", "25", "--tail", "0", "-o", str(video), tmp_path=tmp_path)
    assert code == 0, err
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 11  # 0.4 s at 25 frames/s, both ends
    assert frames[0].shape == (96, 96, 3)
    moved = [np.abs(f.astype(int) - frames[0]).mean() for f in frames]
    assert max(moved) == moved[5] and moved[5] > 0.3  # the mouth opens most at 0.2 s


def test_errors(photo: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.png")
    grey = tmp_path / "grey.png"
    grey.write_bytes(png(np.full((200, 200, 3), 90, dtype=np.uint8)))
    code, _, err = cli("--photo-2d", str(grey), "-o", out, tmp_path=tmp_path)
    assert code == 1 and "no-face" in err
    code, _, err = cli("--photo-2d", str(tmp_path / "missing.jpg"), "-o", out, tmp_path=tmp_path)
    assert code == 1 and "cannot read" in err
    code, _, err = cli("head.arf", "--photo-2d", str(photo), "-o", out, tmp_path=tmp_path)
    assert code == 2 and "one of them" in err
    code, _, err = cli("-o", out, tmp_path=tmp_path)
    assert code == 2
