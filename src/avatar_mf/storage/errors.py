"""Storage errors that carry their answer.

Every error raised by :mod:`avatar_mf.storage` is a :class:`StorageError`. It names what a front
end answers with, so a Base Avatar Repository HTTP handler (TS 26.264 Annex B) or a SIP session
maps it without guessing:

* ``status``: the HTTP status a BAR front end answers with (404, 413, 500...). A SIP session that
  fails to load an avatar degrades that one call; it never answers the INVITE with this status.
* ``code``: a short stable token for logs, metrics and JSON problem bodies.
* ``retryable``: the same request may succeed later (I/O trouble), as opposed to a request that
  will fail again until something changes (unknown id, corrupt data, too large).
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "AvatarNotFoundError",
    "AvatarTooLargeError",
    "BlobIntegrityError",
    "CorruptRecordError",
    "GrantNotFoundError",
    "InvalidAvatarError",
    "InvalidIdentityError",
    "InvalidRequestError",
    "StorageError",
    "StorageUnavailableError",
]


class StorageError(Exception):
    """Base of every storage error; see the module docstring for the attributes."""

    status: int = 500
    code: str = "storage-error"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(StorageError):
    """A malformed argument: bad name, content type, metadata, time window..."""

    status = 400
    code = "invalid-request"


class InvalidIdentityError(InvalidRequestError):
    """A subscriber identity that is not a usable sip:/sips:/tel: URI."""

    code = "invalid-identity"


class AvatarNotFoundError(StorageError):
    """No avatar with this id (also raised for ids that are not well-formed)."""

    status = 404
    code = "unknown-avatar"

    def __init__(self, avatar_id: str) -> None:
        super().__init__(f"no avatar {_shown(avatar_id)}")
        self.avatar_id = avatar_id


class GrantNotFoundError(StorageError):
    """No grant with this id."""

    status = 404
    code = "unknown-grant"

    def __init__(self, grant_id: str) -> None:
        super().__init__(f"no grant {_shown(grant_id)}")
        self.grant_id = grant_id


class AvatarTooLargeError(StorageError):
    """The container is larger than the store's ``max_avatar_size``."""

    status = 413
    code = "too-large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"avatar is {size} bytes, larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidAvatarError(StorageError):
    """The format validator refused the container; ``__cause__`` is the validator's error."""

    status = 422
    code = "invalid-avatar"


class AuthorizationError(StorageError):
    """A grant operation the caller may not perform; ``code`` is the specific reason
    (``not-owner``, ``delegation-not-allowed``...)."""

    status = 403
    code = "forbidden"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CorruptRecordError(StorageError):
    """A record or grant file exists but cannot be read as one (truncated, edited, bit-rot)."""

    code = "corrupt-record"


class BlobIntegrityError(StorageError):
    """An avatar's container is missing or its bytes no longer match the recorded SHA-256."""

    code = "corrupt-blob"

    def __init__(self, avatar_id: str, expected: str, actual: str | None) -> None:
        found = "the blob file is missing" if actual is None else f"found sha256 {actual}"
        super().__init__(f"avatar {avatar_id}: expected sha256 {expected}, {found}")
        self.avatar_id = avatar_id
        self.expected = expected
        self.actual = actual


class StorageUnavailableError(StorageError):
    """The file system failed (disk full, permissions, I/O error); ``__cause__`` is the OSError."""

    status = 503
    code = "storage-unavailable"
    retryable = True


def _shown(value: str) -> str:
    """An untrusted id, quoted and cut short, fit for a log line."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
