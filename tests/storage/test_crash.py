"""Crash safety: an interrupted write never shows a half file nor loses the previous version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avatar_mf.storage import FilesystemStore, Grant, StorageUnavailableError
from avatar_mf.storage.atomic import TEMP_PREFIX, atomic_write
from avatar_mf.testing.clock import FakeClock

from .conftest import ALICE, BOB, T0

V1 = b"PK version one"
V2 = b"PK version two, longer than the first"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def failing_replace(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """Make os.replace fail for targets whose name ends with ``when``."""
    real = os.replace

    def replace(src: str, dst: str) -> None:
        if str(dst).endswith(when):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_atomic_write_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "dir" / "file"
    atomic_write(target, b"old")
    failing_replace(monkeypatch, "file")
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["file"]  # the temporary file was removed


async def test_failed_replace_keeps_the_previous_version(
    fs_store: FilesystemStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await fs_store.put(V1, owner=ALICE)
    failing_replace(monkeypatch, ".json")  # the new blob lands, the record update fails
    with pytest.raises(StorageUnavailableError, match="No space left"):
        await fs_store.replace(record.avatar_id, V2)
    monkeypatch.undo()
    assert await fs_store.get_record(record.avatar_id) == record
    assert await fs_store.get_blob(record.avatar_id) == V1
    assert temp_files(root) == []
    report = await fs_store.recover()  # the new, unreferenced blob goes
    assert report.orphan_blobs_removed == 1
    assert len(list((root / "blobs").rglob("*/*/*"))) == 1


async def test_failed_put_leaves_nothing_visible(
    fs_store: FilesystemStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_replace(monkeypatch, ".json")
    with pytest.raises(StorageUnavailableError):
        await fs_store.put(V1, owner=ALICE)
    monkeypatch.undo()
    assert await fs_store.list() == []
    assert temp_files(root) == []


# --------------------------------------------------------------------------- killed writer

# The child kills itself with SIGKILL at a chosen point of a write: no Python cleanup runs,
# exactly like a power cut after the data reached the disk (fsync) but before the rename.
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from avatar_mf.storage import FilesystemStore, Grant

    root, operation, stage, avatar_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    real_replace, real_fsync = os.replace, os.fsync

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst):
        if stage == "before-record-rename" and str(dst).endswith(".json"):
            die()
        real_replace(src, dst)

    def fsync(fd):
        if stage == "during-blob-write" and not os.path.isdir(f"/proc/self/fd/{fd}"):
            die()
        real_fsync(fd)

    os.replace, os.fsync = replace, fsync

    async def main() -> None:
        store = FilesystemStore(root)
        if operation == "replace":
            await store.replace(avatar_id, b"PK version two, longer than the first")
        elif operation == "put":
            await store.put(b"PK a third container", owner="sip:carol@ims.example")
        else:
            grant = Grant("33333333-3333-4333-8333-333333333333", avatar_id,
                          "sip:bob@ims.example", "sip:alice@ims.example", 0.0, 1e10, revoked=5.0)
            await store.put_grant(grant)

    asyncio.run(main())
    """
)


def kill_writer(root: Path, operation: str, stage: str, avatar_id: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), operation, stage, avatar_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.mark.parametrize(
    ("operation", "stage"),
    [
        ("replace", "during-blob-write"),
        ("replace", "before-record-rename"),
        ("put", "during-blob-write"),
        ("put", "before-record-rename"),
        ("grant", "before-record-rename"),
    ],
)
async def test_killed_writer_loses_nothing_and_recovery_cleans_up(
    root: Path, wall: FakeClock, operation: str, stage: str
) -> None:
    store = await FilesystemStore.open(root, clock=wall)
    record = await store.put(V1, owner=ALICE)
    grant = Grant("33333333-3333-4333-8333-333333333333", record.avatar_id, BOB, ALICE, 0.0, 1e10)
    await store.put_grant(grant)
    before = files_under(root)

    kill_writer(root, operation, stage, record.avatar_id)

    assert temp_files(root), "the killed writer should have left a temporary file"
    restarted = await FilesystemStore.open(root, clock=wall)  # runs recovery
    assert temp_files(root) == []
    assert await restarted.list() == [record]
    assert await restarted.get_blob(record.avatar_id) == V1
    assert await restarted.list_grants() == [grant]  # not the revoked version
    assert files_under(root) == before


async def test_recovery_removes_grants_of_a_deleted_avatar(
    fs_store: FilesystemStore, root: Path
) -> None:
    record = await fs_store.put(V1, owner=ALICE)
    grant = Grant("33333333-3333-4333-8333-333333333333", record.avatar_id, BOB, ALICE, T0, T0 + 1)
    await fs_store.put_grant(grant)
    # A crash after the record was removed, before its grants were.
    (root / "records" / f"{record.avatar_id}.json").unlink()
    report = await fs_store.recover()
    assert (report.orphan_grant_dirs_removed, report.orphan_blobs_removed) == (1, 1)
    assert not (root / "grants" / record.avatar_id).exists()
