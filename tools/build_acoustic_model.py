"""Build the voice stage's acoustic scorer from pocketsphinx's US English model.

    PYTHONPATH=$PWD/src .venv/bin/python tools/build_acoustic_model.py [--sdist FILE] [--check]

Takes ``model/en-us/en-us/{means,variances,mdef}`` from the pocketsphinx 5.1.1 source
distribution (the file given by ``--sdist``, or the one already in ``--cache``, else
downloaded there from PyPI's file URL with urllib, :data:`SDIST_URL`: pip cannot fetch it, as
``pip download`` of that sdist builds its metadata and fails; either way checked against the
sha256 pinned in tools/voice_corpus.py before use, and a download that does not match is
not kept; this is a build-time tool: nothing is downloaded at run time), reads
them (``stages/voice/sphinx_files.py``: byte order, dimensions and the files' own checksums
verified), writes the scoring graph
(``stages/voice/acoustic_export.py``, needs the ``onnx`` package of the dev extra) to
src/avatar_mf/stages/voice/acoustic_model.onnx and pins its sha256 in
src/avatar_mf/stages/voice/acoustic_model.py (``ACOUSTIC_SHA256``). Deterministic: the same
sdist gives the same bytes. ``--check`` builds and compares with the shipped file, writes
nothing. The model's licence (BSD-style: the model directory's README, Alpha Cephei Inc.,
and the sdist's LICENSE, Carnegie Mellon University) asks a binary redistribution to carry
its notice: the tool writes both texts next to the model, ``acoustic_model.LICENSE``
(package data).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from avatar_mf.stages.voice.acoustic_export import to_onnx
from avatar_mf.stages.voice.acoustic_model import ACOUSTIC_RESOURCE
from avatar_mf.stages.voice.sphinx_files import read_base_phones, read_gaussians

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from voice_corpus import SDISTS  # noqa: E402

PACKAGE = ROOT / "src" / "avatar_mf" / "stages" / "voice"
OUT = PACKAGE / ACOUSTIC_RESOURCE
LICENCE = PACKAGE / "acoustic_model.LICENSE"
PIN = PACKAGE / "acoustic_model.py"
MODEL = "pocketsphinx-5.1.1/model/en-us/en-us/"
#: PyPI's file URL of the pinned sdist (from its simple index, PEP 691; the path is the
#: file's blake2b-256 digest, so the URL names these bytes only).
SDIST_URL = (
    "https://files.pythonhosted.org/packages/61/e7/"
    "13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/pocketsphinx-5.1.1.tar.gz"
)


def download(url: str, target: Path, sha256: str, *, timeout: float = 120.0) -> Path:
    """Fetch ``url`` into ``target`` (its folder created) and check its sha256 first: a file
    that does not match is removed and refused (SystemExit); ``target`` only ever holds the
    pinned bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    part.write(chunk)
        except BaseException:
            Path(part.name).unlink()
            raise
    if digest.hexdigest() != sha256:
        Path(part.name).unlink()
        raise SystemExit(f"{url}: sha256 {digest.hexdigest()}, pinned {sha256}")
    Path(part.name).chmod(0o644)
    return Path(part.name).replace(target)


def handle_text(tar: tarfile.TarFile, path: str) -> str:
    handle = tar.extractfile(path)
    if handle is None:
        raise SystemExit(f"{path} not in the sdist")
    return handle.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sdist", type=Path, help="pocketsphinx-5.1.1.tar.gz (else --cache, else PyPI)"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voice-corpus-sdists"))
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    name, digest = SDISTS["pocketsphinx"]
    if args.sdist is not None:
        sdist = args.sdist
    else:
        sdist = args.cache / name
        if not sdist.exists():
            print(f"downloading {SDIST_URL}")
            download(SDIST_URL, sdist, digest)
    got = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if got != digest:
        raise SystemExit(f"{sdist}: sha256 {got}, pinned {digest}")
    with tarfile.open(sdist) as tar:

        def member(file: str) -> bytes:
            handle = tar.extractfile(MODEL + file)
            if handle is None:
                raise SystemExit(f"{MODEL}{file} not in {sdist.name}")
            return handle.read()

        means = read_gaussians(member("means"))
        variances = read_gaussians(member("variances"))
        phones = read_base_phones(member("mdef"))
        licence = (
            "acoustic_model.onnx is derived from model/en-us/en-us/{means,variances,mdef} of\n"
            f"the pocketsphinx 5.1.1 source distribution ({name}, sha256 {digest}).\n\n"
            "model/en-us/en-us/README:\n\n"
            + member("README").decode()
            + "\npocketsphinx-5.1.1/LICENSE:\n\n"
            + handle_text(tar, "pocketsphinx-5.1.1/LICENSE")
        )
    print(
        f"{name}: means {means.values.shape} (checksum {means.checksum:08x}), variances "
        f"{variances.values.shape} (checksum {variances.checksum:08x}), {len(phones)} phones"
    )
    data = to_onnx(means.values, variances.values, phones)
    sha = hashlib.sha256(data).hexdigest()
    if args.check:
        shipped = hashlib.sha256(OUT.read_bytes()).hexdigest() if OUT.exists() else None
        print(f"built {len(data)} bytes, sha256 {sha}; shipped {shipped}")
        raise SystemExit(0 if shipped == sha else 1)
    OUT.write_bytes(data)
    LICENCE.write_text(licence)
    source = PIN.read_text()
    pinned = re.sub(
        r'ACOUSTIC_SHA256: Final = "[0-9a-f]{64}"', f'ACOUSTIC_SHA256: Final = "{sha}"', source
    )
    if pinned == source and sha not in source:
        raise SystemExit(f"ACOUSTIC_SHA256 not found in {PIN}")
    PIN.write_text(pinned)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(data)} bytes, sha256 {sha}), pinned")


if __name__ == "__main__":
    main()
