"""Record what a test UE receives, for inspection after the call.

A :class:`Recorder` writes into one directory::

    bootstrap/NNN-<name>.http   each HTTP response of a bootstrap channel, as received
    bootstrap/<name>            its body (``/`` is saved as ``index.html``)
    bootstrap/responses.jsonl   one line per response: time, stream, path, status, type, size
    metadata.jsonl              one line per metadata message: receive time, stream, the
                                message (JSON object), or the raw text and the parse error
    animation.aau               every animation unit received, concatenated: one ARF unit
                                stream (ISO/IEC 23090-39; readable with arf.iter_units)
    animation.jsonl             its index: time, type, timestamp, offset, length per unit
    avatars/<id>.<ext>          each base avatar received (.glb, .arf, else .bin); from an
                                ARF container also avatars/<id>.glb, the GLB inside it

Times: ``time`` is UNIX seconds (wall clock), ``t`` seconds since the recording started, both
from the receive times the UE measured (monotonic clock). File names are the ids with every
character outside ``[A-Za-z0-9._-]`` replaced by ``_``.

Lines are buffered (the event loop must not wait for the disk on every message): they reach
the files on :meth:`Recorder.flush` and :meth:`Recorder.close`. :meth:`Recorder.avatar` does
blocking work (it parses the ARF container): call it in a thread.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from avatar_mf.arf.units import Unit, UnitType, UnknownUnit
from avatar_mf.protocol.names import CONTENT_TYPE_ARF_ZIP, CONTENT_TYPE_GLB
from avatar_mf.ue.bootstrap import HttpReply

__all__ = ["Recorder", "extract_glb", "safe_name"]

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_EXTENSIONS: Final = {CONTENT_TYPE_GLB: "glb", CONTENT_TYPE_ARF_ZIP: "arf"}


def safe_name(text: str, *, limit: int = 120) -> str:
    """``text`` usable as one file name: unsafe characters become ``_``."""
    name = _UNSAFE.sub("_", text)[:limit].strip(".")
    return name or "_"


def unit_type_name(unit: Unit) -> str:
    """``CONFIG``, ``BLENDSHAPE``, ``JOINT``, ``LANDMARK`` or ``TYPE<n>`` (unknown types)."""
    if isinstance(unit, UnknownUnit):
        return f"TYPE{unit.unit_type}"
    return UnitType(unit.unit_type).name


def unit_timestamp(unit: Unit) -> int | None:
    """The unit's timestamp in ticks (an unknown unit's first 4 payload bytes, if any)."""
    if isinstance(unit, UnknownUnit):
        return int.from_bytes(unit.payload[:4], "big") if len(unit.payload) >= 4 else None
    return unit.timestamp


def extract_glb(container: bytes) -> bytes | None:
    """The GLB inside an ARF container: the mesh data entry ``read_arf`` resolves when the
    container is valid, else the first ``.glb`` entry of the ZIP; ``None`` if there is none."""
    from avatar_mf.avatar.container import read_arf
    from avatar_mf.avatar.errors import AvatarFormatError

    try:
        return read_arf(container).glb
    except AvatarFormatError:
        pass
    try:
        with zipfile.ZipFile(io.BytesIO(container)) as archive:
            for info in archive.infolist():
                if info.filename.lower().endswith(".glb"):
                    return archive.read(info)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    return None


class Recorder:
    """Writes what one UE receives into ``directory`` (created if missing)."""

    def __init__(self, directory: Path, *, now: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._now = now
        self._t0 = now()
        self._wall0 = time.time()
        self._lock = threading.Lock()  # avatar() runs in a thread
        self._metadata = (self.directory / "metadata.jsonl").open("a", encoding="utf-8")
        self._units = (self.directory / "animation.aau").open("ab")
        self._unit_index = (self.directory / "animation.jsonl").open("a", encoding="utf-8")
        self._unit_offset = self._units.tell()
        self._bootstrap_count = 0
        self.files: list[Path] = []
        """Every file written besides the three streams above, in order."""
        self.closed = False

    # -- times ----------------------------------------------------------------------------

    def _times(self, at: float | None) -> dict[str, float]:
        at = self._now() if at is None else at
        return {"time": round(self._wall0 + (at - self._t0), 6), "t": round(at - self._t0, 6)}

    # -- streams --------------------------------------------------------------------------

    def metadata(
        self,
        stream_id: int,
        raw: str | bytes,
        message: dict[str, Any] | None,
        *,
        at: float | None = None,
        error: str | None = None,
    ) -> None:
        """One metadata message received: its JSON object, or its raw text and why it could
        not be read."""
        line: dict[str, Any] = {**self._times(at), "stream": stream_id}
        if message is not None:
            line["message"] = message
        else:
            line["raw"] = raw if isinstance(raw, str) else raw.hex()
            line["error"] = error
        self._write_line(self._metadata, line)

    def unit(self, data: bytes, unit: Unit | None, *, at: float | None = None) -> None:
        """One animation unit received (``unit`` None: it did not decode; the bytes are
        still appended, so the stream shows what arrived)."""
        line: dict[str, Any] = {
            **self._times(at),
            "type": unit_type_name(unit) if unit is not None else "UNDECODABLE",
            "timestamp": unit_timestamp(unit) if unit is not None else None,
            "offset": self._unit_offset,
            "length": len(data),
        }
        with self._lock:
            self._units.write(data)
            self._unit_offset += len(data)
        self._write_line(self._unit_index, line)

    def bootstrap(
        self, stream_id: int, path: str, reply: HttpReply, *, at: float | None = None
    ) -> Path:
        """One HTTP response on a bootstrap channel: the raw response and its body."""
        folder = self.directory / "bootstrap"
        folder.mkdir(exist_ok=True)
        self._bootstrap_count += 1
        name = "index.html" if path.rstrip("/") == "" else safe_name(path.split("?")[0].strip("/"))
        raw_path = folder / f"{self._bootstrap_count:03d}-{name}.http"
        raw_path.write_bytes(reply.raw)
        body_path = folder / name
        body_path.write_bytes(reply.body)
        with (folder / "responses.jsonl").open("a", encoding="utf-8") as index:
            index.write(
                json.dumps(
                    {
                        **self._times(at),
                        "stream": stream_id,
                        "path": path,
                        "status": reply.status,
                        "content_type": reply.content_type,
                        "length": len(reply.body),
                        "file": body_path.name,
                    }
                )
                + "\n"
            )
        with self._lock:
            self.files += [raw_path, body_path]
        return body_path

    def avatar(self, avatar_id: str, content_type: str, payload: bytes) -> list[Path]:
        """A base avatar received: ``avatars/<id>.<ext>``, and for an ARF container also the
        GLB inside it as ``avatars/<id>.glb``. Blocking: run it in a thread."""
        folder = self.directory / "avatars"
        folder.mkdir(exist_ok=True)
        base = safe_name(avatar_id)
        kind = content_type.split(";")[0].strip().lower()
        if payload[:4] == b"glTF":
            kind = CONTENT_TYPE_GLB
        elif payload[:2] == b"PK" and kind != CONTENT_TYPE_GLB:
            kind = CONTENT_TYPE_ARF_ZIP
        written = [folder / f"{base}.{_EXTENSIONS.get(kind, 'bin')}"]
        written[0].write_bytes(payload)
        if kind == CONTENT_TYPE_ARF_ZIP:
            glb = extract_glb(payload)
            if glb is not None:
                written.append(folder / f"{base}.glb")
                written[1].write_bytes(glb)
        with self._lock:
            self.files += written
        return written

    def _write_line(self, file: io.TextIOWrapper, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if not self.closed:
                file.write(text)

    # -- life cycle -----------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            if not self.closed:
                for file in (self._metadata, self._units, self._unit_index):
                    file.flush()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for file in (self._metadata, self._units, self._unit_index):
                file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
