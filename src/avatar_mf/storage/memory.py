"""An in-memory :class:`~avatar_mf.storage.store.AvatarRepository`: a shipped fake.

Same checks, errors and deduplication as :class:`~avatar_mf.storage.store.FilesystemStore`,
nothing on disk; for tests of code that uses a store (sessions, the cache, the authorizer).
It counts reads (:attr:`MemoryStore.blob_reads`) and can be told to fail
(:attr:`MemoryStore.fail_next_reads`), and ``put``/``replace`` run the validator inline (tests
pass cheap validators).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Mapping

from avatar_mf.clock import Clock
from avatar_mf.storage.errors import (
    AvatarNotFoundError,
    AvatarTooLargeError,
    BlobIntegrityError,
    GrantNotFoundError,
    InvalidRequestError,
    StorageError,
)
from avatar_mf.storage.identity import normalize_identity
from avatar_mf.storage.model import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_MAX_AVATAR_SIZE,
    AvatarRecord,
    Grant,
    SystemWallClock,
    Validator,
    check_content_type,
    check_metadata,
    check_name,
    is_valid_id,
    new_id,
    normalize_id,
    sha256_hex,
)
from avatar_mf.storage.store import check_container

__all__ = ["MemoryStore"]


class MemoryStore:
    """An :class:`~avatar_mf.storage.store.AvatarRepository` held in dictionaries."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_avatar_size: int = DEFAULT_MAX_AVATAR_SIZE,
        validator: Validator | None = None,
    ) -> None:
        self.max_avatar_size = max_avatar_size
        self._clock: Clock = clock if clock is not None else SystemWallClock()
        self._validator = validator
        self.records: dict[str, AvatarRecord] = {}
        self.blobs: dict[str, bytes] = {}
        """Blobs by digest; tests may corrupt one to exercise integrity checks."""
        self.grants: dict[str, Grant] = {}
        self.blob_reads = 0
        """``get_blob`` calls that reached the store."""
        self.fail_next_reads: builtins.list[StorageError] = []
        """Errors the next ``get_blob`` calls raise, in order."""

    async def put(
        self,
        data: bytes,
        owner: str,
        name: str = "",
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> AvatarRecord:
        owner = normalize_identity(owner)
        name = check_name(name)
        content_type = check_content_type(content_type)
        table = check_metadata(metadata)
        if len(data) > self.max_avatar_size:
            raise AvatarTooLargeError(len(data), self.max_avatar_size)
        digest = check_container(bytes(data), self.max_avatar_size, self._validator)
        now = self._clock.now()
        record = AvatarRecord(
            new_id(), digest, owner, name, content_type, len(data), now, now, table
        )
        if sha256_hex(self.blobs.get(digest, b"")) != digest:  # absent or corrupt
            self.blobs[digest] = bytes(data)
        self.records[record.avatar_id] = record
        await asyncio.sleep(0)
        return record

    async def get_record(self, avatar_id: str) -> AvatarRecord:
        await asyncio.sleep(0)
        return self._record(avatar_id)

    async def get_blob(self, avatar_id: str) -> bytes:
        self.blob_reads += 1
        await asyncio.sleep(0)
        if self.fail_next_reads:
            raise self.fail_next_reads.pop(0)
        record = self._record(avatar_id)
        data = self.blobs.get(record.digest)
        if data is None:
            raise BlobIntegrityError(record.avatar_id, record.digest, None)
        actual = sha256_hex(data)
        if actual != record.digest:
            raise BlobIntegrityError(record.avatar_id, record.digest, actual)
        return data

    async def list(self, owner: str | None = None) -> builtins.list[AvatarRecord]:
        wanted = None if owner is None else normalize_identity(owner)
        await asyncio.sleep(0)
        records = [r for r in self.records.values() if wanted is None or r.owner == wanted]
        return sorted(records, key=lambda r: (r.created, r.avatar_id))

    async def delete(self, avatar_id: str) -> None:
        record = self._record(avatar_id)
        del self.records[record.avatar_id]
        for grant_id in [
            g.grant_id for g in self.grants.values() if g.avatar_id == record.avatar_id
        ]:
            del self.grants[grant_id]
        self._collect(record.digest)
        await asyncio.sleep(0)

    async def replace(self, avatar_id: str, data: bytes) -> AvatarRecord:
        old = self._record(avatar_id)
        if len(data) > self.max_avatar_size:
            raise AvatarTooLargeError(len(data), self.max_avatar_size)
        digest = check_container(bytes(data), self.max_avatar_size, self._validator)
        self.blobs[digest] = bytes(data)
        new = dataclasses.replace(old, digest=digest, size=len(data), updated=self._clock.now())
        self.records[old.avatar_id] = new
        self._collect(old.digest)
        await asyncio.sleep(0)
        return new

    async def put_grant(self, grant: Grant) -> None:
        if not is_valid_id(grant.grant_id) or not is_valid_id(grant.avatar_id):
            raise InvalidRequestError("grant_id and avatar_id must be canonical ids")
        if grant.avatar_id not in self.records:
            raise AvatarNotFoundError(grant.avatar_id)
        existing = self.grants.get(grant.grant_id)
        if existing is not None and existing.avatar_id != grant.avatar_id:
            raise InvalidRequestError(f"grant {grant.grant_id} belongs to another avatar")
        self.grants[grant.grant_id] = grant
        await asyncio.sleep(0)

    async def get_grant(self, grant_id: str) -> Grant:
        await asyncio.sleep(0)
        grant = self.grants.get(normalize_id(grant_id) or "")
        if grant is None:
            raise GrantNotFoundError(grant_id)
        return grant

    async def list_grants(self, avatar_id: str | None = None) -> builtins.list[Grant]:
        await asyncio.sleep(0)
        grants = [g for g in self.grants.values() if avatar_id in (None, g.avatar_id)]
        return sorted(grants, key=lambda g: (g.created, g.grant_id))

    async def delete_grant(self, grant_id: str) -> None:
        await asyncio.sleep(0)
        if self.grants.pop(normalize_id(grant_id) or "", None) is None:
            raise GrantNotFoundError(grant_id)

    def _record(self, avatar_id: str) -> AvatarRecord:
        record = self.records.get(normalize_id(avatar_id) or "")
        if record is None:
            raise AvatarNotFoundError(avatar_id)
        return record

    def _collect(self, digest: str) -> None:
        if all(r.digest != digest for r in self.records.values()):
            self.blobs.pop(digest, None)
