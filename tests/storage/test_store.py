"""The store contract (both implementations) and the filesystem store's own guarantees."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import pytest

from avatar_mf.storage import (
    AvatarNotFoundError,
    AvatarRepository,
    AvatarTooLargeError,
    BlobIntegrityError,
    CorruptRecordError,
    FilesystemStore,
    Grant,
    GrantNotFoundError,
    InvalidAvatarError,
    InvalidIdentityError,
    InvalidRequestError,
    MemoryStore,
    StorageUnavailableError,
)
from avatar_mf.testing.clock import FakeClock

from .conftest import ALICE, BOB, T0

AVATAR = b"PK\x03\x04 a base avatar container"
OTHER = b"PK\x03\x04 another container"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- contract


async def test_put_get_roundtrip(store: AvatarRepository, wall: FakeClock) -> None:
    record = await store.put(
        AVATAR,
        owner="SIP:alice@IMS.Example;user=phone",
        name="alice.arf",
        content_type="Application/Zip",
        metadata={"style": "cartoon"},
    )
    assert record.owner == ALICE
    assert record.digest == sha(AVATAR)
    assert (record.size, record.name, record.content_type) == (
        len(AVATAR),
        "alice.arf",
        "application/zip",
    )
    assert record.created == record.updated == T0
    assert record.metadata == {"style": "cartoon"}
    assert await store.get_record(record.avatar_id) == record
    assert await store.get_record(record.avatar_id.upper()) == record
    assert await store.get_blob(record.avatar_id) == AVATAR


async def test_ids_are_unique_and_identical_bytes_are_stored_once(
    store: AvatarRepository, root: Path
) -> None:
    first = await store.put(AVATAR, owner=ALICE)
    second = await store.put(AVATAR, owner=BOB)
    assert first.avatar_id != second.avatar_id
    assert first.digest == second.digest
    if isinstance(store, FilesystemStore):
        assert [p for p in files_under(root) if p.startswith("blobs/")] == [
            f"blobs/sha256/{first.digest[:2]}/{first.digest}"
        ]
    else:
        assert isinstance(store, MemoryStore)
        assert list(store.blobs) == [first.digest]
    # Deleting one keeps the shared blob for the other.
    await store.delete(first.avatar_id)
    assert await store.get_blob(second.avatar_id) == AVATAR


async def test_list_all_and_by_owner(store: AvatarRepository, wall: FakeClock) -> None:
    a1 = await store.put(AVATAR, owner=ALICE)
    wall.advance(1)
    b1 = await store.put(OTHER, owner=BOB)
    wall.advance(1)
    a2 = await store.put(OTHER, owner="sips:alice@ims.EXAMPLE:5061")
    assert await store.list() == [a1, b1, a2]
    assert await store.list(owner=ALICE) == [a1, a2]
    assert await store.list(owner=" <sip:bob@ims.example> ") == [b1]
    assert await store.list(owner="sip:nobody@ims.example") == []


async def test_delete(store: AvatarRepository) -> None:
    record = await store.put(AVATAR, owner=ALICE)
    await store.delete(record.avatar_id)
    with pytest.raises(AvatarNotFoundError):
        await store.get_record(record.avatar_id)
    with pytest.raises(AvatarNotFoundError):
        await store.get_blob(record.avatar_id)
    with pytest.raises(AvatarNotFoundError):
        await store.delete(record.avatar_id)
    assert await store.list() == []


async def test_replace_keeps_identity_and_changes_content(
    store: AvatarRepository, wall: FakeClock, root: Path
) -> None:
    record = await store.put(AVATAR, owner=ALICE, name="v1")
    wall.advance(60)
    new = await store.replace(record.avatar_id, OTHER)
    assert (new.avatar_id, new.owner, new.name, new.created) == (
        record.avatar_id,
        ALICE,
        "v1",
        record.created,
    )
    assert (new.digest, new.size, new.updated) == (sha(OTHER), len(OTHER), T0 + 60)
    assert await store.get_blob(record.avatar_id) == OTHER
    assert await store.get_record(record.avatar_id) == new
    if isinstance(store, FilesystemStore):  # the old blob, now unreferenced, is collected
        assert not (root / "blobs" / "sha256" / record.digest[:2] / record.digest).exists()
    with pytest.raises(AvatarNotFoundError):
        await store.replace("0" * 8 + "-0000-4000-8000-" + "0" * 12, OTHER)


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "nope",
        "../../../etc/passwd",
        "00000000-0000-4000-8000-00000000000g",
        "{00000000-0000-4000-8000-000000000000}",
        "a" * 10_000,
    ],
)
async def test_malformed_ids_are_unknown(store: AvatarRepository, bad_id: str) -> None:
    with pytest.raises(AvatarNotFoundError) as caught:
        await store.get_record(bad_id)
    assert caught.value.status == 404 and caught.value.code == "unknown-avatar"
    assert len(str(caught.value)) < 120  # an untrusted id is cut short in messages
    with pytest.raises(AvatarNotFoundError):
        await store.get_blob(bad_id)
    with pytest.raises(GrantNotFoundError):
        await store.get_grant(bad_id)


async def test_size_limit(store: AvatarRepository) -> None:
    with pytest.raises(AvatarTooLargeError) as caught:
        await store.put(b"x" * (1024 * 1024 + 1), owner=ALICE)
    assert caught.value.status == 413
    assert (caught.value.size, caught.value.limit) == (1024 * 1024 + 1, 1024 * 1024)
    record = await store.put(b"x" * (1024 * 1024), owner=ALICE)  # exactly the limit
    with pytest.raises(AvatarTooLargeError):
        await store.replace(record.avatar_id, b"x" * (1024 * 1024 + 1))


@pytest.mark.parametrize(
    "owner", ["alice", "sip:ims.example", "mailto:alice@ims.example", "tel:12345", ""]
)
async def test_invalid_owner_is_refused(store: AvatarRepository, owner: str) -> None:
    with pytest.raises(InvalidIdentityError) as caught:
        await store.put(AVATAR, owner=owner)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a\nb"}, "control characters"),
        ({"name": "x" * 300}, "at most 256"),
        ({"content_type": "zip"}, "media type"),
        ({"metadata": {"k": "v" * 20_000}}, "larger than"),
        ({"metadata": {"": "v"}}, "non-empty"),
    ],
)
async def test_invalid_arguments_are_refused(
    store: AvatarRepository, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await store.put(AVATAR, owner=ALICE, **kwargs)  # type: ignore[arg-type]
    assert await store.list() == []


async def test_validator_refuses_and_runs_on_replace(root: Path) -> None:
    seen: list[bytes] = []

    def validator(data: bytes) -> None:
        seen.append(data)
        if not data.startswith(b"PK"):
            raise ValueError("not a ZIP container")

    for store in (FilesystemStore(root, validator=validator), MemoryStore(validator=validator)):
        with pytest.raises(InvalidAvatarError, match="not a ZIP container") as caught:
            await store.put(b"garbage", owner=ALICE)
        assert isinstance(caught.value.__cause__, ValueError)
        assert caught.value.status == 422
        record = await store.put(AVATAR, owner=ALICE)
        with pytest.raises(InvalidAvatarError):
            await store.replace(record.avatar_id, b"garbage")
        assert await store.get_blob(record.avatar_id) == AVATAR
    assert seen.count(AVATAR) == 2


async def test_grants_crud(store: AvatarRepository) -> None:
    record = await store.put(AVATAR, owner=ALICE)
    grant = Grant(
        "11111111-1111-4111-8111-111111111111",
        record.avatar_id,
        BOB,
        ALICE,
        T0,
        T0 + 3600,
        frozenset({ALICE}),
        created=T0,
    )
    await store.put_grant(grant)
    assert await store.get_grant(grant.grant_id) == grant
    assert await store.list_grants(record.avatar_id) == [grant]
    assert await store.list_grants() == [grant]
    assert await store.list_grants("22222222-2222-4222-8222-222222222222") == []
    await store.delete_grant(grant.grant_id)
    with pytest.raises(GrantNotFoundError):
        await store.get_grant(grant.grant_id)
    with pytest.raises(GrantNotFoundError):
        await store.delete_grant(grant.grant_id)
    # A grant for an avatar that does not exist is refused.
    with pytest.raises(AvatarNotFoundError):
        await store.put_grant(
            Grant(grant.grant_id, "22222222-2222-4222-8222-222222222222", BOB, ALICE, T0, T0 + 1)
        )
    # Deleting the avatar deletes its grants.
    await store.put_grant(grant)
    await store.delete(record.avatar_id)
    assert await store.list_grants() == []


async def test_concurrent_puts_and_deletes(store: AvatarRepository) -> None:
    records = await asyncio.gather(*(store.put(AVATAR, owner=ALICE) for _ in range(20)))
    assert len({r.avatar_id for r in records}) == 20
    await asyncio.gather(*(store.delete(r.avatar_id) for r in records[:19]))
    assert await store.get_blob(records[19].avatar_id) == AVATAR


# --------------------------------------------------------------------------- filesystem


async def test_layout_on_disk(fs_store: FilesystemStore, root: Path) -> None:
    record = await fs_store.put(AVATAR, owner=ALICE)
    grant = Grant(
        "11111111-1111-4111-8111-111111111111", record.avatar_id, BOB, ALICE, T0, T0 + 3600
    )
    await fs_store.put_grant(grant)
    assert files_under(root) == [
        ".lock",
        f"blobs/sha256/{record.digest[:2]}/{record.digest}",
        f"grants/{record.avatar_id}/{grant.grant_id}.json",
        f"records/{record.avatar_id}.json",
    ]
    document = json.loads((root / "records" / f"{record.avatar_id}.json").read_text())
    assert document["format"] == 1 and document["owner"] == ALICE


async def test_restart_sees_everything(
    fs_store: FilesystemStore, root: Path, wall: FakeClock
) -> None:
    a = await fs_store.put(AVATAR, owner=ALICE, metadata={"k": "v"})
    wall.advance(1)
    b = await fs_store.put(OTHER, owner=BOB)
    grant = Grant(
        "11111111-1111-4111-8111-111111111111",
        a.avatar_id,
        BOB,
        ALICE,
        T0,
        T0 + 9,
        frozenset({ALICE, "tel:+15551234"}),
        may_delegate=True,
        created=T0,
        revoked=T0 + 1,
    )
    await fs_store.put_grant(grant)
    reopened = await FilesystemStore.open(root)
    assert await reopened.list() == [a, b]
    assert await reopened.get_blob(a.avatar_id) == AVATAR
    assert await reopened.list_grants(a.avatar_id) == [grant]


async def test_missing_root_reads_as_empty(tmp_path: Path) -> None:
    store = await FilesystemStore.open(tmp_path / "not" / "there")
    assert await store.list() == []
    assert await store.list_grants() == []
    assert not (tmp_path / "not").exists()  # reading creates nothing


async def test_corrupt_record_is_skipped_by_list_and_reported(
    fs_store: FilesystemStore, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = await fs_store.put(AVATAR, owner=ALICE)
    bad = await fs_store.put(OTHER, owner=BOB)
    bad_path = root / "records" / f"{bad.avatar_id}.json"
    bad_path.write_bytes(bad_path.read_bytes()[:40])  # truncated
    (root / "records" / "junk.txt").write_text("?")
    with caplog.at_level(logging.WARNING, logger="avatar_mf.storage"):
        assert await fs_store.list() == [good]
    assert any(bad.avatar_id in r.getMessage() for r in caplog.records)
    assert any("junk.txt" in r.getMessage() for r in caplog.records)
    with pytest.raises(CorruptRecordError) as caught:
        await fs_store.get_record(bad.avatar_id)
    assert caught.value.status == 500 and str(bad_path) in str(caught.value)
    # An operator can still delete it; its blob is kept (it cannot be known to be unused
    # while a record is unreadable), and recovery reports the unreadable file.
    report = await fs_store.recover()
    assert report.problems and report.orphan_blobs_removed == 0
    await fs_store.delete(bad.avatar_id)
    assert await fs_store.list() == [good]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(digest="../../../etc/passwd"),
        lambda d: d.update(avatar_id="11111111-1111-4111-8111-111111111111"),
        lambda d: d.update(size=-1),
        lambda d: d.update(created="yesterday"),
        lambda d: d.update(metadata={"k": 1}),
        lambda d: d.update(format=2),
        lambda d: d.update(extra=True),
        lambda d: d.pop("owner"),
    ],
)
async def test_tampered_record_is_corrupt(fs_store: FilesystemStore, root: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    record = await fs_store.put(AVATAR, owner=ALICE)
    path = root / "records" / f"{record.avatar_id}.json"
    document = json.loads(path.read_text())
    mutate(document)
    path.write_text(json.dumps(document))
    with pytest.raises(CorruptRecordError):
        await fs_store.get_record(record.avatar_id)
    with pytest.raises(CorruptRecordError):
        await fs_store.get_blob(record.avatar_id)


async def test_bit_rot_is_detected_and_healed_by_storing_again(
    fs_store: FilesystemStore, root: Path
) -> None:
    record = await fs_store.put(AVATAR, owner=ALICE)
    blob = root / "blobs" / "sha256" / record.digest[:2] / record.digest
    rotten = bytearray(AVATAR)
    rotten[5] ^= 0x01
    blob.write_bytes(bytes(rotten))
    with pytest.raises(BlobIntegrityError) as caught:
        await fs_store.get_blob(record.avatar_id)
    assert caught.value.expected == record.digest
    assert caught.value.actual == sha(bytes(rotten))
    assert caught.value.status == 500 and caught.value.code == "corrupt-blob"
    await fs_store.put(AVATAR, owner=BOB)  # same bytes: the bad copy is rewritten
    assert await fs_store.get_blob(record.avatar_id) == AVATAR
    blob.unlink()
    with pytest.raises(BlobIntegrityError, match="missing"):
        await fs_store.get_blob(record.avatar_id)


async def test_corrupt_grant_is_skipped(fs_store: FilesystemStore, root: Path) -> None:
    record = await fs_store.put(AVATAR, owner=ALICE)
    good = Grant("11111111-1111-4111-8111-111111111111", record.avatar_id, BOB, ALICE, T0, T0 + 9)
    await fs_store.put_grant(good)
    (root / "grants" / record.avatar_id / "22222222-2222-4222-8222-222222222222.json").write_text(
        "{"
    )
    assert await fs_store.list_grants(record.avatar_id) == [good]


async def test_os_errors_become_retryable_storage_errors(
    fs_store: FilesystemStore, root: Path
) -> None:
    record = await fs_store.put(AVATAR, owner=ALICE)
    blob = root / "blobs" / "sha256" / record.digest[:2] / record.digest
    blob.unlink()
    blob.mkdir()  # reading it now fails with IsADirectoryError
    with pytest.raises(StorageUnavailableError) as caught:
        await fs_store.get_blob(record.avatar_id)
    assert caught.value.retryable and caught.value.status == 503
    assert isinstance(caught.value.__cause__, OSError)


async def test_public_api_runs_off_the_event_loop(
    fs_store: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file operation happens in a worker thread, never on the loop's thread."""
    import threading

    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def spy(module: object, name: str) -> None:
        real = getattr(module, name)

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            if threading.get_ident() == loop_thread:
                on_loop.append(f"{name}{args[:1]}")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    for module, name in [
        (os, "open"),
        (io, "open"),
        (os, "listdir"),
        (os, "replace"),
        (os, "fsync"),
        (os, "unlink"),
    ]:
        spy(module, name)
    record = await fs_store.put(AVATAR, owner=ALICE)
    await fs_store.get_blob(record.avatar_id)
    await fs_store.replace(record.avatar_id, OTHER)
    await fs_store.list()
    await fs_store.delete(record.avatar_id)
    await fs_store.recover()
    assert on_loop == []
