"""The stored values: avatar records and grants, their ids, limits and JSON form.

Both are frozen, slotted dataclasses; change them with :func:`dataclasses.replace`. Times are
UNIX seconds (float, UTC): records and grants outlive the process, so they cannot use the
monotonic clock that timers use (see :class:`SystemWallClock`).

The JSON written for each is versioned (``"format": 1``) and read back strictly: a file that
does not parse into exactly these fields, with these types, is corrupt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avatar_mf.clock import TimerHandle
from avatar_mf.storage.errors import CorruptRecordError, InvalidRequestError

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_MAX_AVATAR_SIZE",
    "MAX_METADATA_BYTES",
    "MAX_NAME_LENGTH",
    "AvatarRecord",
    "Grant",
    "SystemWallClock",
    "Validator",
    "check_content_type",
    "check_metadata",
    "check_name",
    "grant_from_json",
    "grant_to_json",
    "is_valid_id",
    "new_id",
    "normalize_id",
    "record_from_json",
    "record_to_json",
    "sha256_hex",
]

#: Largest base avatar container accepted by default, in bytes (64 MiB).
DEFAULT_MAX_AVATAR_SIZE = 64 * 1024 * 1024
#: Content type of a container imported without one.
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Longest avatar name, in characters.
MAX_NAME_LENGTH = 256
#: Largest metadata table, in bytes of its JSON form.
MAX_METADATA_BYTES = 16 * 1024

FORMAT_VERSION = 1

Validator = Callable[[bytes], object]
"""Checks a container's format before it is stored (e.g. ARF ``read_arf`` itself): raises to
refuse; what it returns is ignored. Runs in a worker thread, never on the event loop."""

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")


# --------------------------------------------------------------------------- ids and values


def new_id() -> str:
    """A new globally unique id (random UUID, canonical lower-case form)."""
    return str(uuid.uuid4())


def normalize_id(value: str) -> str | None:
    """The canonical form of an avatar or grant id, or ``None`` if ``value`` is not one.

    Ids become file names, so only the canonical UUID form is ever accepted: nothing that could
    walk out of a directory.
    """
    lowered = value.lower()
    return lowered if _ID.fullmatch(lowered) else None


def is_valid_id(value: str) -> bool:
    return normalize_id(value) == value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidRequestError(
            f"avatar name must be at most {MAX_NAME_LENGTH} characters, without control characters"
        )
    return name


def check_content_type(content_type: str) -> str:
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidRequestError(f"not a media type such as application/zip: {content_type!r}")
    return content_type.lower()


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    table = dict(metadata or {})
    for key, value in table.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidRequestError("metadata must map non-empty strings to strings")
    if len(json.dumps(table).encode()) > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return table


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class AvatarRecord:
    """What the store knows about one base avatar (TS 26.264 Annex B "create" result)."""

    avatar_id: str
    """Globally unique id (canonical UUID) given out at creation; the BAR avatar id."""
    digest: str
    """SHA-256 of the container bytes, lower-case hex. The blob is stored once per digest."""
    owner: str
    """The subscriber who owns the avatar, as :func:`~avatar_mf.storage.identity.
    normalize_identity` writes it (``sip:alice@ims.example``, ``tel:+15551234``)."""
    name: str
    """Free text for people (often the imported file's name); may be empty."""
    content_type: str
    """Media type of the container, lower-cased."""
    size: int
    """Container size in bytes."""
    created: float
    """UNIX time the avatar was created."""
    updated: float
    """UNIX time the container was last replaced (equal to ``created`` until then)."""
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    """Free key/value pairs, at most :data:`MAX_METADATA_BYTES` as JSON."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A time-bound permission for ``grantee`` to use one avatar (TS 22.156).

    A grant given by the owner has no ``parent_grant_id``. A grantee whose grant has
    ``may_delegate`` can give grants of its own, never wider than its grant (window and parties);
    such a grant names its parent and is only as good as its parent, at every use: revoking or
    expiring a grant disables everything delegated from it.
    """

    grant_id: str
    """Globally unique id (canonical UUID)."""
    avatar_id: str
    """The avatar this grant is for."""
    grantee: str
    """Normalised identity allowed to use the avatar."""
    granted_by: str
    """Normalised identity who gave the grant: the owner, or the grantee of ``parent_grant_id``."""
    not_before: float
    """UNIX time from which the grant is valid (inclusive)."""
    expires: float
    """UNIX time at which the grant stops being valid (exclusive). Every grant is time-bound."""
    allow_parties: frozenset[str] | None = None
    """When set, the grantee may use the avatar only in calls whose other participants are all
    in this set of normalised identities (a third party under restrictive conditions). ``None``:
    any call."""
    may_delegate: bool = False
    """The grantee may give grants of its own, within this one."""
    parent_grant_id: str | None = None
    """For a delegated grant, the grant it was given under."""
    created: float = 0.0
    """UNIX time the grant was given."""
    revoked: float | None = None
    """UNIX time the grant was revoked; a revoked grant is kept (for audit) until pruned."""


# --------------------------------------------------------------------------- JSON


def record_to_json(record: AvatarRecord) -> bytes:
    document = {
        "format": FORMAT_VERSION,
        "avatar_id": record.avatar_id,
        "digest": record.digest,
        "owner": record.owner,
        "name": record.name,
        "content_type": record.content_type,
        "size": record.size,
        "created": record.created,
        "updated": record.updated,
        "metadata": dict(sorted(record.metadata.items())),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def record_from_json(data: bytes, source: str) -> AvatarRecord:
    """Parse a record file; raises :class:`CorruptRecordError` naming ``source``."""
    d = _document(data, source)
    avatar_id = _str(d, "avatar_id", source)
    digest = _str(d, "digest", source)
    if not is_valid_id(avatar_id):
        raise CorruptRecordError(f"{source}: avatar_id is not a valid id")
    if not _DIGEST.fullmatch(digest):
        raise CorruptRecordError(f"{source}: digest is not a SHA-256 hex digest")
    metadata = d.get("metadata")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CorruptRecordError(f"{source}: metadata must map strings to strings")
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CorruptRecordError(f"{source}: size must be a non-negative integer")
    _no_extra(
        d,
        source,
        {
            "avatar_id",
            "digest",
            "owner",
            "name",
            "content_type",
            "size",
            "created",
            "updated",
            "metadata",
        },
    )
    return AvatarRecord(
        avatar_id=avatar_id,
        digest=digest,
        owner=_str(d, "owner", source, non_empty=True),
        name=_str(d, "name", source),
        content_type=_str(d, "content_type", source, non_empty=True),
        size=size,
        created=_time(d, "created", source),
        updated=_time(d, "updated", source),
        metadata=dict(metadata),
    )


def grant_to_json(grant: Grant) -> bytes:
    document = {
        "format": FORMAT_VERSION,
        "grant_id": grant.grant_id,
        "avatar_id": grant.avatar_id,
        "grantee": grant.grantee,
        "granted_by": grant.granted_by,
        "not_before": grant.not_before,
        "expires": grant.expires,
        "allow_parties": None if grant.allow_parties is None else sorted(grant.allow_parties),
        "may_delegate": grant.may_delegate,
        "parent_grant_id": grant.parent_grant_id,
        "created": grant.created,
        "revoked": grant.revoked,
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def grant_from_json(data: bytes, source: str) -> Grant:
    """Parse a grant file; raises :class:`CorruptRecordError` naming ``source``."""
    d = _document(data, source)
    grant_id = _str(d, "grant_id", source)
    avatar_id = _str(d, "avatar_id", source)
    parent = d.get("parent_grant_id")
    if not is_valid_id(grant_id) or not is_valid_id(avatar_id):
        raise CorruptRecordError(f"{source}: grant_id and avatar_id must be valid ids")
    if parent is not None and (not isinstance(parent, str) or not is_valid_id(parent)):
        raise CorruptRecordError(f"{source}: parent_grant_id must be a valid id or null")
    parties = d.get("allow_parties")
    if parties is not None and (
        not isinstance(parties, list) or not all(isinstance(p, str) for p in parties)
    ):
        raise CorruptRecordError(f"{source}: allow_parties must be a list of strings or null")
    may_delegate = d.get("may_delegate")
    if not isinstance(may_delegate, bool):
        raise CorruptRecordError(f"{source}: may_delegate must be true or false")
    revoked = d.get("revoked")
    _no_extra(
        d,
        source,
        {
            "grant_id",
            "avatar_id",
            "grantee",
            "granted_by",
            "not_before",
            "expires",
            "allow_parties",
            "may_delegate",
            "parent_grant_id",
            "created",
            "revoked",
        },
    )
    return Grant(
        grant_id=grant_id,
        avatar_id=avatar_id,
        grantee=_str(d, "grantee", source, non_empty=True),
        granted_by=_str(d, "granted_by", source, non_empty=True),
        not_before=_time(d, "not_before", source),
        expires=_time(d, "expires", source),
        allow_parties=None if parties is None else frozenset(parties),
        may_delegate=may_delegate,
        parent_grant_id=parent,
        created=_time(d, "created", source),
        revoked=None if revoked is None else _time(d, "revoked", source),
    )


def _document(data: bytes, source: str) -> dict[str, Any]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRecordError(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise CorruptRecordError(f"{source}: not a JSON object")
    if document.get("format") != FORMAT_VERSION:
        raise CorruptRecordError(f"{source}: unknown format {document.get('format')!r}")
    return document


def _no_extra(document: dict[str, Any], source: str, known: set[str]) -> None:
    extra = set(document) - known - {"format"}
    if extra:
        raise CorruptRecordError(f"{source}: unknown fields {sorted(extra)}")


def _str(document: dict[str, Any], key: str, source: str, *, non_empty: bool = False) -> str:
    value = document.get(key)
    if not isinstance(value, str) or (non_empty and not value):
        raise CorruptRecordError(f"{source}: {key} must be a{' non-empty' * non_empty} string")
    return value


def _time(document: dict[str, Any], key: str, source: str) -> float:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptRecordError(f"{source}: {key} must be a finite number")
    return float(value)


# --------------------------------------------------------------------------- time


class SystemWallClock:
    """A :class:`~avatar_mf.clock.Clock` whose ``now()`` is UNIX time (``time.time()``).

    Grants and records carry calendar times that survive restarts, so the store and the
    authorizer take a wall clock, not the monotonic loop clock the timers use. Tests pass a
    :class:`~avatar_mf.testing.clock.FakeClock` started at a UNIX time instead.
    """

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)
