"""``avatar-mf avatar generate --photo`` and ``avatar-mf avatar export`` (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.avatar.glb import read_glb
from avatar_mf.stages.base_avatar.photo.images import encode_png
from tests.cli.test_avatar_cli import Cli
from tests.storage.conftest import ALICE


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh storage, large enough for a generated photo avatar."""
    cli = Cli(tmp_path)
    cli.max_avatar_size = 16 * 1024 * 1024
    return cli


def test_generate_from_a_photo_then_export_the_glb(cli: Cli, tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(encode_png(np.ascontiguousarray(skimage_data.astronaut())))
    first = json.loads(cli.ok("generate", "--photo", str(photo), "--owner", ALICE,
                              "--name", "Eileen", "--json"))
    avatar_id = first["avatar_id"]
    assert first["owner"] == ALICE and first["name"] == "Eileen"
    assert first["metadata"]["generator"] == "photo"
    # The same photo again: the stored avatar, not a new one.
    again = cli.ok("generate", "--photo", str(photo), "--owner", ALICE, "--name", "Eileen")
    assert again.strip() == avatar_id
    assert len(json.loads(cli.ok("list", "--json", "--owner", ALICE))) == 1
    out = tmp_path / "eileen.glb"
    cli.ok("export", avatar_id, "-o", str(out))
    model = read_glb(out.read_bytes())
    assert len(model.target_names) == 52
    assert model.colors is not None


def test_a_photo_without_a_face_fails_with_its_code(cli: Cli, tmp_path: Path) -> None:
    photo = tmp_path / "grey.png"
    photo.write_bytes(encode_png(np.full((480, 640, 3), 128, dtype=np.uint8)))
    code, out, err = cli("generate", "--photo", str(photo), "--owner", ALICE)
    assert (code, out) == (1, "")
    assert "no-face" in err
    code, _, err = cli("export", "0" * 32, "-o", str(tmp_path / "x.glb"))
    assert code == 1


def test_a_depth_image_follows_its_photo(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from PIL import Image

    photo = tmp_path / "grey.png"
    photo.write_bytes(encode_png(np.full((480, 640, 3), 128, dtype=np.uint8)))
    depth = tmp_path / "depth.png"
    out = io.BytesIO()
    Image.fromarray(np.full((240, 320), 700, dtype=np.uint16)).save(out, format="PNG")
    depth.write_bytes(out.getvalue())
    # Of another size than its photo: refused with bad-depth before any face is looked for.
    code, stdout, err = cli("generate", "--photo", str(photo), "--depth", str(depth),
                            "--owner", ALICE)
    assert (code, stdout) == (1, "")
    assert "bad-depth" in err
    # --depth belongs to the --photo before it: none before, or two for one, is a usage error.
    for args in (("--depth", str(depth), "--photo", str(photo)),
                 ("--photo", str(photo), "--depth", str(depth), "--depth", str(depth))):
        with pytest.raises(SystemExit) as exited:  # argparse's usage error
            cli("generate", *args, "--owner", ALICE)
        assert exited.value.code == 2
        assert "--depth FILE follows" in capsys.readouterr().err
