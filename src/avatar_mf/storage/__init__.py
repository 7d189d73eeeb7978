"""Avatar storage: the Base Avatar Repository, authorization of avatar use, and the MF's cache.

* :mod:`~avatar_mf.storage.store`: :class:`AvatarStore` / :class:`GrantStore` protocols and
  :class:`FilesystemStore`, the embedded content-addressed store (TS 26.264 Annex B create,
  get, update) with atomic, crash-safe writes and integrity checks.
* :mod:`~avatar_mf.storage.auth`: :class:`Authorizer`: only the owner or a grantee may use an
  avatar; time-bound grants, allow-lists of parties, delegation, revocation (TS 22.156).
* :mod:`~avatar_mf.storage.cache`: :class:`AvatarCache`, LRU + TTL with single-flight loads, so
  a room of UEs reads an avatar from the store once.
* :mod:`~avatar_mf.storage.memory`: :class:`MemoryStore`, an in-memory store for tests.
* :mod:`~avatar_mf.cli.avatar`: the ``avatar-mf avatar`` commands.
"""

from avatar_mf.storage.auth import (
    Authorizer,
    Decision,
    Reason,
    decide,
    grant_problem,
    grant_state,
)
from avatar_mf.storage.cache import AvatarCache, BlobSource, CacheStats
from avatar_mf.storage.errors import (
    AuthorizationError,
    AvatarNotFoundError,
    AvatarTooLargeError,
    BlobIntegrityError,
    CorruptRecordError,
    GrantNotFoundError,
    InvalidAvatarError,
    InvalidIdentityError,
    InvalidRequestError,
    StorageError,
    StorageUnavailableError,
)
from avatar_mf.storage.identity import normalize_identity
from avatar_mf.storage.memory import MemoryStore
from avatar_mf.storage.model import (
    DEFAULT_MAX_AVATAR_SIZE,
    AvatarRecord,
    Grant,
    SystemWallClock,
    Validator,
)
from avatar_mf.storage.store import (
    AvatarRepository,
    AvatarStore,
    FilesystemStore,
    GrantStore,
    RecoveryReport,
    avatar_root,
)

__all__ = [
    "DEFAULT_MAX_AVATAR_SIZE",
    "AuthorizationError",
    "Authorizer",
    "AvatarCache",
    "AvatarNotFoundError",
    "AvatarRecord",
    "AvatarRepository",
    "AvatarStore",
    "AvatarTooLargeError",
    "BlobIntegrityError",
    "BlobSource",
    "CacheStats",
    "CorruptRecordError",
    "Decision",
    "FilesystemStore",
    "Grant",
    "GrantNotFoundError",
    "GrantStore",
    "InvalidAvatarError",
    "InvalidIdentityError",
    "InvalidRequestError",
    "MemoryStore",
    "Reason",
    "RecoveryReport",
    "StorageError",
    "StorageUnavailableError",
    "SystemWallClock",
    "Validator",
    "avatar_root",
    "decide",
    "grant_problem",
    "grant_state",
    "normalize_identity",
]
