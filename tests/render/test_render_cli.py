"""``avatar-mf avatar render``: a PNG still, an MP4 of recorded units (frame count and size
checked by decoding it with PyAV), an MP4 of spoken text with audio, and the error paths."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.avatar import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.cli import main
from avatar_mf.render.png import decode_png

pytestmark = pytest.mark.usefixtures("renderer")  # skipped where EGL cannot be had


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("avatar") / "head.arf"
    path.write_bytes(write_arf(generate_default_head(resolution="low"), avatar_id="h", name="h"))
    return path


def cli(*argv: str, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"AVATAR_MF_STORAGE__PATH": str(tmp_path / "storage"), "AVATAR_MF_RENDER__WORKERS": "2"}
    code = main(["avatar", "render", *argv], stdout=out, stderr=err, environ=env)
    return code, out.getvalue(), err.getvalue()


def decode(path: Path) -> tuple[list[np.ndarray], list[str]]:
    with av.open(str(path)) as container:
        kinds = [stream.codec_context.name for stream in container.streams]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, kinds


def test_png_still_with_weights(head_file: Path, tmp_path: Path) -> None:
    neutral, opened = tmp_path / "neutral.png", tmp_path / "open.png"
    assert cli(str(head_file), "--size", "128", "-o", str(neutral), tmp_path=tmp_path)[0] == 0
    code, out, _ = cli(str(head_file), "--size", "128", "--weight", "jawOpen=1",
                       "-o", str(opened), tmp_path=tmp_path)
    assert code == 0 and "128x128 PNG" in out
    a, b = decode_png(neutral.read_bytes()), decode_png(opened.read_bytes())
    assert a.shape == (128, 128, 3)
    assert np.abs(a.astype(int) - b).sum() > 1000
    transparent = tmp_path / "alpha.png"
    assert cli(str(head_file), "--size", "64", "--alpha", "-o", str(transparent),
               tmp_path=tmp_path)[0] == 0
    picture = decode_png(transparent.read_bytes())
    assert picture.shape == (64, 64, 4) and picture[0, 0, 3] == 0


def test_mp4_of_recorded_units(head_file: Path, tmp_path: Path) -> None:
    # A recorded stream as the test UE writes it: CONFIG, then jawOpen 0 -> 1 -> 0 over 2 s.
    units = [ConfigUnit(0, "arf-face-v1", 1000.0)]
    units += [BlendshapeUnit(ms, 0, (ARKIT_INDEX["jawOpen"],), (w,))
              for ms, w in ((0, 0.0), (1000, 1.0), (2000, 0.0))]
    recording = tmp_path / "animation.aau"
    recording.write_bytes(b"".join(encode_unit(u) for u in units))
    video = tmp_path / "units.mp4"
    code, out, err = cli(str(head_file), "--units", str(recording), "--size", "96",
                         "--tail", "0", "-o", str(video), tmp_path=tmp_path)
    assert code == 0, err
    frames, kinds = decode(video)
    assert kinds == ["h264"]
    assert len(frames) == 51  # 0 .. 2.0 s at 25 fps, both ends included
    assert frames[0].shape == (96, 96, 3)
    # The mouth is widest at 1 s (frame 25) and closed again at the end.
    change = [np.abs(f.astype(int) - frames[0]).mean() for f in frames]
    assert int(np.argmax(change)) in range(23, 28)
    assert change[-1] < change[25] / 3  # what is left is H.264 noise (P frames vs the I frame)


def test_mp4_of_text_with_speech_audio(head_file: Path, tmp_path: Path) -> None:
    from avatar_mf.stages.animation_data.espeak import SpeechEngineUnavailable, espeak_engine

    try:
        espeak_engine()
    except SpeechEngineUnavailable as exc:
        pytest.skip(str(exc))
    video = tmp_path / "text.mp4"
    code, out, err = cli(str(head_file), "--text", "Hello there", "--size", "64",
                         "-o", str(video), tmp_path=tmp_path)
    assert code == 0, err
    frames, kinds = decode(video)
    assert kinds == ["h264", "aac"]
    with av.open(str(video)) as container:
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base)
    assert abs(len(frames) / 25 - seconds) < 0.5  # the speech fills the video
    assert any(np.abs(f.astype(int) - frames[0]).mean() > 1 for f in frames)


def test_errors(head_file: Path, tmp_path: Path) -> None:
    code, _, err = cli("no-such-avatar", "-o", str(tmp_path / "x.png"), tmp_path=tmp_path)
    assert code == 1 and "no-such-avatar" in err
    code, _, err = cli(str(head_file), "-o", str(tmp_path / "x.mp4"), tmp_path=tmp_path)
    assert code == 2 and "--units" in err
    code, _, err = cli(str(head_file), "-o", str(tmp_path / "x.gif"), tmp_path=tmp_path)
    assert code == 2
    bad = tmp_path / "bad.aau"
    bad.write_bytes(b"\x02\x00\x00\x00\x40")
    code, _, err = cli(str(head_file), "--units", str(bad), "-o", str(tmp_path / "x.mp4"),
                       tmp_path=tmp_path)
    assert code == 1 and "not an ARF unit stream" in err
    code, _, err = cli(str(head_file), "--weight", "noSuchShape=1", "-o",
                       str(tmp_path / "x.png"), tmp_path=tmp_path)
    assert code == 1 and "noSuchShape" in err
