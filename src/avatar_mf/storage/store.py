"""The Base Avatar Repository: a content-addressed store of base avatar containers.

Implements the repository side of TS 26.264 Annex B: *create* (:meth:`AvatarStore.put`: store a
binary base avatar container, get back a globally unique avatar id), *get*
(:meth:`~AvatarStore.get_record`, :meth:`~AvatarStore.get_blob`) and *update* by full
replacement (:meth:`~AvatarStore.replace`, the BAR ``PUT``), plus listing and deletion. Grants
(:mod:`avatar_mf.storage.auth`) are kept by the same store (:class:`GrantStore`).

:class:`FilesystemStore` is the embedded default. Its layout under ``root``::

    blobs/sha256/<aa>/<digest>           container bytes, once per SHA-256 (<aa>: first 2 hex)
    records/<avatar-id>.json             one AvatarRecord per avatar
    grants/<avatar-id>/<grant-id>.json   one Grant per file
    .lock                                flock(2) taken by every write (processes and threads)

Guarantees:

* Every file is written with :func:`~avatar_mf.storage.atomic.atomic_write`: a crash never
  leaves a half file visible and never loses the previous version. A blob is written before the
  record that names it, and a record removed before its blob is collected, so a record always
  has its blob; what a crash can leave is a stray temporary file, an unreferenced blob or the
  grants of a deleted avatar, all removed by :meth:`FilesystemStore.recover` (run by
  :meth:`FilesystemStore.open`).
* Writes hold an exclusive ``flock`` on ``root/.lock``, so the server and the ``avatar-mf
  avatar`` command line can share a root. Reads take no lock: they only ever see whole files.
* Reading a blob verifies its SHA-256 (:class:`~avatar_mf.storage.errors.BlobIntegrityError`
  on bit-rot); storing the same bytes again heals it. A record file that cannot be read is
  logged and skipped by listings, never fatal to them.
* All file I/O runs in worker threads (:func:`asyncio.to_thread`); the public API is async.
  ``OSError`` surfaces as :class:`~avatar_mf.storage.errors.StorageUnavailableError`
  (retryable, 503).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from avatar_mf.clock import Clock
from avatar_mf.storage.atomic import (
    TEMP_PREFIX,
    atomic_write,
    ensure_dir,
    fsync_dir,
    read_limited,
    remove_temp_files,
    unlink_durably,
)
from avatar_mf.storage.errors import (
    AvatarNotFoundError,
    AvatarTooLargeError,
    BlobIntegrityError,
    CorruptRecordError,
    GrantNotFoundError,
    InvalidAvatarError,
    InvalidRequestError,
    StorageError,
    StorageUnavailableError,
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
    grant_from_json,
    grant_to_json,
    is_valid_id,
    new_id,
    normalize_id,
    record_from_json,
    record_to_json,
    sha256_hex,
)

__all__ = [
    "AVATARS_SUBDIR",
    "AvatarRecord",
    "AvatarRepository",
    "AvatarStore",
    "FilesystemStore",
    "GrantStore",
    "RecoveryReport",
    "avatar_root",
    "check_container",
]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Largest record or grant file read, in bytes; a bigger one is corrupt.
MAX_RECORD_FILE = 1024 * 1024
#: Sub-directory of ``storage.path`` holding the avatar store (``storage.path`` also holds the
#: DTLS certificate).
AVATARS_SUBDIR = "avatars"


def avatar_root(storage_path: Path) -> Path:
    """The avatar store's root for the configured ``storage.path``."""
    return storage_path / AVATARS_SUBDIR


# --------------------------------------------------------------------------- protocols


class AvatarStore(Protocol):
    """Base avatar containers and their records (TS 26.264 Annex B operations)."""

    async def put(
        self,
        data: bytes,
        owner: str,
        name: str = "",
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> AvatarRecord:
        """Store a new avatar owned by ``owner`` (normalised); returns its record with a new
        globally unique id. Identical bytes are stored once. Raises AvatarTooLargeError,
        InvalidAvatarError (the validator refused), InvalidRequestError / InvalidIdentityError."""
        ...

    async def get_record(self, avatar_id: str) -> AvatarRecord:
        """Raises AvatarNotFoundError, CorruptRecordError."""
        ...

    async def get_blob(self, avatar_id: str) -> bytes:
        """The container bytes, verified against the record's digest. Raises
        AvatarNotFoundError, BlobIntegrityError."""
        ...

    async def list(self, owner: str | None = None) -> builtins.list[AvatarRecord]:
        """Every readable record (of ``owner`` if given), oldest first."""
        ...

    async def delete(self, avatar_id: str) -> None:
        """Remove the avatar, its grants, and its blob unless another avatar shares it."""
        ...

    async def replace(self, avatar_id: str, data: bytes) -> AvatarRecord:
        """Replace the container (BAR update, full replacement); returns the new record."""
        ...


class GrantStore(Protocol):
    """Persistence for :class:`~avatar_mf.storage.model.Grant` values."""

    async def put_grant(self, grant: Grant) -> None:
        """Create or overwrite a grant. Raises AvatarNotFoundError if its avatar is gone."""
        ...

    async def get_grant(self, grant_id: str) -> Grant:
        """Raises GrantNotFoundError."""
        ...

    async def list_grants(self, avatar_id: str | None = None) -> list[Grant]:
        """Every readable grant (of ``avatar_id`` if given); unreadable ones are logged."""
        ...

    async def delete_grant(self, grant_id: str) -> None:
        """Raises GrantNotFoundError."""
        ...


class AvatarRepository(AvatarStore, GrantStore, Protocol):
    """A store of avatars and their grants: what :class:`~avatar_mf.storage.auth.Authorizer`
    and the command line need."""


# --------------------------------------------------------------------------- shared checks


def check_container(data: bytes, max_size: int, validator: Validator | None) -> str:
    """Check a container's size and format; return its SHA-256. Blocking (the validator may
    parse a large file): call it from a worker thread."""
    if len(data) > max_size:
        raise AvatarTooLargeError(len(data), max_size)
    if validator is not None:
        try:
            validator(data)
        except StorageError:
            raise
        except Exception as exc:  # the validator is a plug-in: any error is a refusal
            raise InvalidAvatarError(f"not a valid avatar container: {exc}") from exc
    return sha256_hex(data)


# --------------------------------------------------------------------------- filesystem


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`FilesystemStore.recover` cleaned up or found."""

    temp_files_removed: int = 0
    """Temporary files left by writes a crash interrupted."""
    orphan_blobs_removed: int = 0
    """Blobs no record names (a crash between writing a blob and its record)."""
    orphan_grant_dirs_removed: int = 0
    """Grants of avatars that no longer exist (a crash during a delete)."""
    problems: tuple[str, ...] = ()
    """Unreadable record or grant files, left in place for an operator."""


class FilesystemStore:
    """The embedded :class:`AvatarRepository`: files under ``root`` (module docstring).

    Args:
        root: directory of the store; created on the first write.
        clock: a wall clock (UNIX seconds) for ``created``/``updated``; default the system's.
        max_avatar_size: largest container accepted by ``put``/``replace``, in bytes.
        validator: checks a container's format before it is stored (e.g. the ARF reader);
            runs in a worker thread; any exception it raises refuses the container with
            :class:`~avatar_mf.storage.errors.InvalidAvatarError`.

    The constructor does no I/O. Use :meth:`open` at startup, which also runs :meth:`recover`.
    """

    def __init__(
        self,
        root: Path,
        *,
        clock: Clock | None = None,
        max_avatar_size: int = DEFAULT_MAX_AVATAR_SIZE,
        validator: Validator | None = None,
    ) -> None:
        if max_avatar_size < 1:
            raise ValueError("max_avatar_size must be positive")
        self.root = Path(root)
        self.max_avatar_size = max_avatar_size
        self._clock: Clock = clock if clock is not None else SystemWallClock()
        self._validator = validator
        self._records = self.root / "records"
        self._blobs = self.root / "blobs" / "sha256"
        self._grants = self.root / "grants"
        self._lock_path = self.root / ".lock"

    @classmethod
    async def open(
        cls,
        root: Path,
        *,
        clock: Clock | None = None,
        max_avatar_size: int = DEFAULT_MAX_AVATAR_SIZE,
        validator: Validator | None = None,
    ) -> FilesystemStore:
        """A store on ``root``, recovered from any interrupted write (see :meth:`recover`)."""
        store = cls(root, clock=clock, max_avatar_size=max_avatar_size, validator=validator)
        await store.recover()
        return store

    # ------------------------------------------------------------------ public API

    async def recover(self) -> RecoveryReport:
        """Remove what interrupted writes left (temporary files, unreferenced blobs, grants of
        deleted avatars) and report unreadable files. Safe while other processes use the root:
        it holds the write lock."""
        report = await self._call(self._recover)
        for problem in report.problems:
            log.warning("avatar store: unreadable file kept: %s", problem)
        if report.temp_files_removed or report.orphan_blobs_removed:
            log.info(
                "avatar store recovered",
                extra={
                    "root": str(self.root),
                    "temp_files_removed": report.temp_files_removed,
                    "orphan_blobs_removed": report.orphan_blobs_removed,
                    "orphan_grant_dirs_removed": report.orphan_grant_dirs_removed,
                },
            )
        return report

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
        record = await self._call(self._put, bytes(data), owner, name, content_type, table)
        log.info(
            "avatar stored",
            extra={"avatar_id": record.avatar_id, "owner": owner, "size": record.size},
        )
        return record

    async def get_record(self, avatar_id: str) -> AvatarRecord:
        return await self._call(self._read_record, avatar_id)

    async def get_blob(self, avatar_id: str) -> bytes:
        return await self._call(self._get_blob, avatar_id)

    async def list(self, owner: str | None = None) -> builtins.list[AvatarRecord]:
        wanted = None if owner is None else normalize_identity(owner)
        records, problems = await self._call(self._scan_records)
        for problem in problems:
            log.warning("avatar store: skipping unreadable record: %s", problem)
        return [r for r in records if wanted is None or r.owner == wanted]

    async def delete(self, avatar_id: str) -> None:
        await self._call(self._delete, avatar_id)
        log.info("avatar deleted", extra={"avatar_id": avatar_id})

    async def replace(self, avatar_id: str, data: bytes) -> AvatarRecord:
        if len(data) > self.max_avatar_size:
            raise AvatarTooLargeError(len(data), self.max_avatar_size)
        record = await self._call(self._replace, avatar_id, bytes(data))
        log.info("avatar replaced", extra={"avatar_id": avatar_id, "size": record.size})
        return record

    async def put_grant(self, grant: Grant) -> None:
        if not is_valid_id(grant.grant_id) or not is_valid_id(grant.avatar_id):
            raise InvalidRequestError("grant_id and avatar_id must be canonical ids")
        await self._call(self._put_grant, grant)

    async def get_grant(self, grant_id: str) -> Grant:
        return await self._call(self._get_grant, grant_id)

    async def list_grants(self, avatar_id: str | None = None) -> builtins.list[Grant]:
        grants, problems = await self._call(self._scan_grants, avatar_id)
        for problem in problems:
            log.warning("avatar store: skipping unreadable grant: %s", problem)
        return grants

    async def delete_grant(self, grant_id: str) -> None:
        await self._call(self._delete_grant, grant_id)

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except OSError as exc:
            raise StorageUnavailableError(f"avatar store {self.root}: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive write lock, across threads (one open file description each) and
        processes. Released when the descriptor is closed."""
        ensure_dir(self.root)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _record_path(self, avatar_id: str) -> Path:
        return self._records / f"{avatar_id}.json"

    def _blob_path(self, digest: str) -> Path:
        return self._blobs / digest[:2] / digest

    def _grant_dir(self, avatar_id: str) -> Path:
        return self._grants / avatar_id

    # ------------------------------------------------------------------ records and blobs

    def _put(
        self, data: bytes, owner: str, name: str, content_type: str, metadata: dict[str, str]
    ) -> AvatarRecord:
        digest = check_container(data, self.max_avatar_size, self._validator)
        now = self._clock.now()
        record = AvatarRecord(
            avatar_id=new_id(),
            digest=digest,
            owner=owner,
            name=name,
            content_type=content_type,
            size=len(data),
            created=now,
            updated=now,
            metadata=metadata,
        )
        with self._locked():
            self._store_blob(digest, data)
            atomic_write(self._record_path(record.avatar_id), record_to_json(record))
        return record

    def _replace(self, avatar_id: str, data: bytes) -> AvatarRecord:
        digest = check_container(data, self.max_avatar_size, self._validator)
        with self._locked():
            old = self._read_record(avatar_id)
            self._store_blob(digest, data)
            new = dataclasses.replace(old, digest=digest, size=len(data), updated=self._clock.now())
            atomic_write(self._record_path(old.avatar_id), record_to_json(new))
            if old.digest != digest:
                self._collect_blob(old.digest)
        return new

    def _store_blob(self, digest: str, data: bytes) -> None:
        """Write the blob unless an intact copy is there already (dedupe); heal a bad copy."""
        path = self._blob_path(digest)
        try:
            if path.stat().st_size == len(data) and sha256_hex(path.read_bytes()) == digest:
                return
            log.warning("avatar store: rewriting corrupt blob", extra={"digest": digest})
        except FileNotFoundError:
            pass
        atomic_write(path, data)

    def _read_record(self, avatar_id: str) -> AvatarRecord:
        canonical = normalize_id(avatar_id)
        if canonical is None:
            raise AvatarNotFoundError(avatar_id)
        path = self._record_path(canonical)
        try:
            data = read_limited(path, MAX_RECORD_FILE)
        except FileNotFoundError:
            raise AvatarNotFoundError(avatar_id) from None
        if data is None:
            raise CorruptRecordError(f"{path}: larger than {MAX_RECORD_FILE} bytes")
        record = record_from_json(data, str(path))
        if record.avatar_id != canonical:
            raise CorruptRecordError(f"{path}: holds the record of {record.avatar_id}")
        return record

    def _get_blob(self, avatar_id: str) -> bytes:
        record = self._read_record(avatar_id)
        for _ in range(3):
            try:
                data = self._blob_path(record.digest).read_bytes()
            except FileNotFoundError:
                # Replaced (old blob collected) between reading the record and the blob?
                again = self._read_record(avatar_id)
                if again.digest != record.digest:
                    record = again
                    continue
                raise self._integrity_error(record, None) from None
            actual = sha256_hex(data)
            if actual != record.digest:
                raise self._integrity_error(record, actual)
            return data
        raise StorageUnavailableError(f"avatar {avatar_id} kept changing while being read")

    def _integrity_error(self, record: AvatarRecord, actual: str | None) -> BlobIntegrityError:
        error = BlobIntegrityError(record.avatar_id, record.digest, actual)
        log.error(
            "avatar store: blob integrity failure: %s",
            error.message,
            extra={"avatar_id": record.avatar_id, "digest": record.digest},
        )
        return error

    def _scan_records(self) -> tuple[builtins.list[AvatarRecord], builtins.list[str]]:
        """Every readable record, oldest first, and a description of every unreadable one."""
        try:
            names = sorted(os.listdir(self._records))
        except FileNotFoundError:
            return [], []
        records: builtins.list[AvatarRecord] = []
        problems: builtins.list[str] = []
        for name in names:
            if name.startswith("."):
                continue  # temporary files
            path = self._records / name
            if not name.endswith(".json") or not is_valid_id(name[: -len(".json")]):
                problems.append(f"{path}: not a record file name")
                continue
            try:
                records.append(self._read_record(name[: -len(".json")]))
            except AvatarNotFoundError:
                continue  # deleted while listing
            except CorruptRecordError as exc:
                problems.append(exc.message)
            except OSError as exc:
                problems.append(f"{path}: {exc}")
        records.sort(key=lambda r: (r.created, r.avatar_id))
        return records, problems

    def _delete(self, avatar_id: str) -> None:
        canonical = normalize_id(avatar_id)
        if canonical is None:
            raise AvatarNotFoundError(avatar_id)
        with self._locked():
            try:
                digest: str | None = self._read_record(canonical).digest
            except CorruptRecordError:
                digest = None  # an operator may delete a record that no longer reads
            if not unlink_durably(self._record_path(canonical)):
                raise AvatarNotFoundError(avatar_id)
            self._remove_grant_dir(canonical)
            if digest is not None:
                self._collect_blob(digest)

    def _collect_blob(self, digest: str) -> None:
        """Remove a blob no record names any more. Keeps it when some record is unreadable:
        that record might name it, and losing data is worse than keeping a file."""
        records, problems = self._scan_records()
        if problems or any(r.digest == digest for r in records):
            return
        unlink_durably(self._blob_path(digest))

    # ------------------------------------------------------------------ grants

    def _put_grant(self, grant: Grant) -> None:
        with self._locked():
            if not self._record_path(grant.avatar_id).exists():
                raise AvatarNotFoundError(grant.avatar_id)
            existing = self._find_grant(grant.grant_id)
            if existing is not None and existing.parent.name != grant.avatar_id:
                raise InvalidRequestError(f"grant {grant.grant_id} belongs to another avatar")
            path = self._grant_dir(grant.avatar_id) / f"{grant.grant_id}.json"
            atomic_write(path, grant_to_json(grant))

    def _find_grant(self, grant_id: str) -> Path | None:
        canonical = normalize_id(grant_id)
        if canonical is None:
            return None
        try:
            avatars = os.listdir(self._grants)
        except FileNotFoundError:
            return None
        for avatar_id in avatars:
            path = self._grants / avatar_id / f"{canonical}.json"
            if path.is_file():
                return path
        return None

    def _read_grant(self, path: Path) -> Grant:
        data = read_limited(path, MAX_RECORD_FILE)
        if data is None:
            raise CorruptRecordError(f"{path}: larger than {MAX_RECORD_FILE} bytes")
        grant = grant_from_json(data, str(path))
        if f"{grant.grant_id}.json" != path.name or grant.avatar_id != path.parent.name:
            raise CorruptRecordError(f"{path}: holds grant {grant.grant_id} of {grant.avatar_id}")
        return grant

    def _get_grant(self, grant_id: str) -> Grant:
        path = self._find_grant(grant_id)
        if path is None:
            raise GrantNotFoundError(grant_id)
        try:
            return self._read_grant(path)
        except FileNotFoundError:
            raise GrantNotFoundError(grant_id) from None

    def _scan_grants(
        self, avatar_id: str | None
    ) -> tuple[builtins.list[Grant], builtins.list[str]]:
        if avatar_id is None:
            try:
                avatars = sorted(os.listdir(self._grants))
            except FileNotFoundError:
                return [], []
        else:
            canonical = normalize_id(avatar_id)
            if canonical is None:
                return [], []
            avatars = [canonical]
        grants: builtins.list[Grant] = []
        problems: builtins.list[str] = []
        for avatar in avatars:
            directory = self._grant_dir(avatar)
            try:
                names = sorted(os.listdir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    grants.append(self._read_grant(directory / name))
                except FileNotFoundError:
                    continue  # deleted while listing
                except CorruptRecordError as exc:
                    problems.append(exc.message)
                except OSError as exc:
                    problems.append(f"{directory / name}: {exc}")
        grants.sort(key=lambda g: (g.created, g.grant_id))
        return grants, problems

    def _delete_grant(self, grant_id: str) -> None:
        with self._locked():
            path = self._find_grant(grant_id)
            if path is None or not unlink_durably(path):
                raise GrantNotFoundError(grant_id)

    def _remove_grant_dir(self, avatar_id: str) -> bool:
        directory = self._grant_dir(avatar_id)
        if not directory.exists():
            return False
        shutil.rmtree(directory)
        fsync_dir(self._grants)
        return True

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> RecoveryReport:
        if not self.root.exists():
            return RecoveryReport()
        with self._locked():
            temp_removed = len(remove_temp_files(self.root))
            records, problems = self._scan_records()
            _grants, grant_problems = self._scan_grants(None)
            record_files = {
                name[: -len(".json")]
                for name in _listdir(self._records)
                if name.endswith(".json") and not name.startswith(TEMP_PREFIX)
            }
            grant_dirs = 0
            for avatar_id in _listdir(self._grants):
                if avatar_id not in record_files and self._remove_grant_dir(avatar_id):
                    grant_dirs += 1
            blobs = 0
            if not problems:  # an unreadable record might name any blob: keep them all
                referenced = {r.digest for r in records}
                for shard in _listdir(self._blobs):
                    for digest in _listdir(self._blobs / shard):
                        if digest not in referenced and unlink_durably(
                            self._blobs / shard / digest
                        ):
                            blobs += 1
            return RecoveryReport(
                temp_files_removed=temp_removed,
                orphan_blobs_removed=blobs,
                orphan_grant_dirs_removed=grant_dirs,
                problems=tuple(problems + grant_problems),
            )


def _listdir(path: Path) -> builtins.list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
