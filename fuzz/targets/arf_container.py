"""ARF containers: :func:`avatar_mf.avatar.validate.validate_container` on a ZIP (the reader of
:mod:`avatar_mf.avatar.container`).

Each input is tried twice: as the uploaded bytes themselves (ZIP framing, central directory,
deflate streams), and as the parts of a container, ``arf.json`` text, the separator
:data:`SEPARATOR`, then the GLB entry, zipped uncompressed here so that mutations reach the
manifest's schema and reference checks instead of failing the CRC.

Documented outcome: an avatar or :class:`~avatar_mf.avatar.errors.AvatarFormatError` ("raises
only this error, whatever the input").
"""

from __future__ import annotations

import io
import zipfile

from avatar_mf.avatar.container import ARF_MANIFEST, GLB_ENTRY
from avatar_mf.avatar.errors import AvatarFormatError
from avatar_mf.avatar.validate import validate_container

SEPARATOR = b"\n--glb--\n"


def zip_parts(manifest: bytes, glb: bytes) -> bytes:
    """An uncompressed ZIP holding ``arf.json`` and the GLB entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo(ARF_MANIFEST, (1980, 1, 1, 0, 0, 0)), manifest)
        archive.writestr(zipfile.ZipInfo(GLB_ENTRY, (1980, 1, 1, 0, 0, 0)), glb)
    return out.getvalue()


def fuzz_one(data: bytes) -> None:
    candidates = [data]
    manifest, sep, glb = data.partition(SEPARATOR)
    if sep:
        candidates.append(zip_parts(manifest, glb))
    for candidate in candidates:
        if candidate[:4] == b"glTF":
            continue  # the GLB target's input
        try:
            validate_container(candidate)
        except AvatarFormatError:
            pass
