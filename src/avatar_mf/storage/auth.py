"""Who may use an avatar in a call: the owner, or a grantee (TS 22.156 avatar security).

TS 22.156 asks the network to authorize an avatar for use, to identify the subscriber who has the
right to use it, to authorize given subscribers for a limited time, and to authorize a third
party temporarily under restrictive conditions such as an allow-list of parties. Here:

* The owner (:attr:`AvatarRecord.owner`) may always use the avatar.
* Anybody else needs a :class:`~avatar_mf.storage.model.Grant`: valid from ``not_before``
  (inclusive) to ``expires`` (exclusive), not revoked, and, when it has ``allow_parties``, used
  only in a call whose other participants are all in that set. Every grant expires.
* A grant with ``may_delegate`` lets its grantee give grants within it (no longer, no wider).
  A delegated grant is checked together with its chain at every use, so revoking or expiring a
  grant disables everything given under it.

:func:`decide` is the pure rule (no I/O, time passed in); :class:`Authorizer` loads the grants
from an :class:`~avatar_mf.storage.store.AvatarRepository` and manages them (grant, revoke,
prune). Every identity is compared in the normal form of
:func:`~avatar_mf.storage.identity.normalize_identity`; an unparsable call party matches no
allow-list entry (fail closed).

Times are UNIX seconds: the authorizer's clock must be a wall clock
(:class:`~avatar_mf.storage.model.SystemWallClock` in production, a ``FakeClock`` started at a
UNIX time in tests), never the monotonic loop clock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from avatar_mf.clock import Clock
from avatar_mf.storage.errors import (
    AuthorizationError,
    AvatarNotFoundError,
    GrantNotFoundError,
    InvalidIdentityError,
    InvalidRequestError,
)
from avatar_mf.storage.identity import normalize_identity
from avatar_mf.storage.model import AvatarRecord, Grant, new_id
from avatar_mf.storage.store import AvatarRepository

__all__ = [
    "MAX_DELEGATION_DEPTH",
    "Authorizer",
    "Decision",
    "Grant",
    "Reason",
    "decide",
    "grant_problem",
    "grant_state",
]

log = logging.getLogger(__name__)

#: Longest chain of delegated grants followed; a longer one (or a cycle) is broken.
MAX_DELEGATION_DEPTH = 8


class Reason(StrEnum):
    """``Decision.reason_code`` values (equal to their strings)."""

    OWNER = "owner"
    """Allowed: the user owns the avatar."""
    GRANTED = "granted"
    """Allowed: by the grant in ``Decision.grant_id``."""
    NOT_OWNER = "not-owner"
    """Refused: not the owner, and no grant for this user."""
    GRANT_EXPIRED = "grant-expired"
    GRANT_NOT_YET_VALID = "grant-not-yet-valid"
    GRANT_REVOKED = "grant-revoked"
    PARTY_NOT_ALLOWED = "party-not-allowed"
    """Refused: a grant exists, but a participant of the call is not in its allow-list."""
    GRANT_CHAIN_BROKEN = "grant-chain-broken"
    """Refused: a delegated grant whose delegating grant is gone, or does not allow it."""
    UNKNOWN_AVATAR = "unknown-avatar"
    INVALID_IDENTITY = "invalid-identity"


#: When several grants fail, the reason reported is the first of these that occurred: the one
#: closest to being usable.
_REFUSAL_PRIORITY = (
    Reason.PARTY_NOT_ALLOWED,
    Reason.GRANT_NOT_YET_VALID,
    Reason.GRANT_EXPIRED,
    Reason.GRANT_REVOKED,
    Reason.GRANT_CHAIN_BROKEN,
)

_STATUS = {
    Reason.OWNER: 200,
    Reason.GRANTED: 200,
    Reason.UNKNOWN_AVATAR: 404,
    Reason.INVALID_IDENTITY: 400,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this user use this avatar in this call?"."""

    allowed: bool
    reason_code: str
    """A :class:`Reason` value: stable, for logs, metrics and protocol answers."""
    message: str
    """For people: which grant, what is wrong with it."""
    grant_id: str | None = None
    """The grant that allowed the use, or the one closest to allowing it when refused."""
    valid_until: float | None = None
    """When allowed by a grant: when that permission ends (UNIX seconds), the earliest expiry
    along the grant's delegation chain; ``None`` for the owner and for refusals. A session
    using the avatar re-checks at this time (TS 22.156: the right holds for the whole call)."""

    @property
    def status(self) -> int:
        """HTTP-style status a front end answers with: 200, 400, 403 or 404."""
        return _STATUS.get(Reason(self.reason_code), 403)


def grant_state(grant: Grant, now: float) -> str:
    """``active``, ``revoked``, ``not-yet-valid`` or ``expired``: the grant's own state,
    ignoring its parties and its delegation chain."""
    if grant.revoked is not None:
        return "revoked"
    if now < grant.not_before:
        return "not-yet-valid"
    if now >= grant.expires:
        return "expired"
    return "active"


def grant_problem(
    grant: Grant, record: AvatarRecord, grants: Iterable[Grant], now: float
) -> str | None:
    """Why ``grant`` cannot be used at ``now`` in any call (its own state or its delegation
    chain), or ``None`` if it can (in the calls its allow-list permits)."""
    by_id = {g.grant_id: g for g in grants if g.avatar_id == record.avatar_id}
    refusal = _check(grant, record, by_id, frozenset(), now, 0)
    return None if refusal is None else f"{refusal[0]}: {refusal[1]}"


def decide(
    record: AvatarRecord | None,
    grants: Iterable[Grant],
    user: str,
    *,
    call_parties: Iterable[str],
    now: float,
) -> Decision:
    """May ``user`` use the avatar of ``record`` (``None``: unknown) at ``now`` (UNIX seconds)
    in a call with ``call_parties`` (every participant; ``user`` itself is ignored), given the
    avatar's ``grants``?"""
    try:
        user_id = normalize_identity(user)
    except InvalidIdentityError as exc:
        return Decision(False, Reason.INVALID_IDENTITY, exc.message)
    if record is None:
        return Decision(False, Reason.UNKNOWN_AVATAR, "no such avatar")
    if user_id == record.owner:
        return Decision(True, Reason.OWNER, f"{user_id} owns avatar {record.avatar_id}")
    others = frozenset(_party(p) for p in call_parties) - {user_id}
    by_id = {g.grant_id: g for g in grants if g.avatar_id == record.avatar_id}
    refusals: dict[Reason, tuple[str, str]] = {}
    for grant in by_id.values():
        if grant.grantee != user_id:
            continue
        refusal = _check(grant, record, by_id, others, now, 0)
        if refusal is None:
            return Decision(
                True,
                Reason.GRANTED,
                f"{user_id} may use avatar {record.avatar_id} by grant {grant.grant_id} "
                f"from {grant.granted_by}",
                grant.grant_id,
                _chain_expiry(grant, by_id),
            )
        refusals.setdefault(refusal[0], (refusal[1], grant.grant_id))
    for reason in _REFUSAL_PRIORITY:
        if reason in refusals:
            message, grant_id = refusals[reason]
            return Decision(False, reason, f"grant {grant_id}: {message}", grant_id)
    return Decision(
        False,
        Reason.NOT_OWNER,
        f"{user_id} does not own avatar {record.avatar_id} and holds no grant for it",
    )


def _party(identity: str) -> str:
    try:
        return normalize_identity(identity)
    except InvalidIdentityError:
        return "invalid:" + identity  # matches no allow-list entry


def _check(
    grant: Grant,
    record: AvatarRecord,
    by_id: Mapping[str, Grant],
    others: frozenset[str],
    now: float,
    depth: int,
) -> tuple[Reason, str] | None:
    """Why ``grant`` does not allow the use (following its delegation chain), or ``None``."""
    if depth > MAX_DELEGATION_DEPTH:
        return Reason.GRANT_CHAIN_BROKEN, f"delegation chain longer than {MAX_DELEGATION_DEPTH}"
    if grant.revoked is not None:
        return Reason.GRANT_REVOKED, f"revoked at {_iso(grant.revoked)}"
    if now < grant.not_before:
        return Reason.GRANT_NOT_YET_VALID, f"valid from {_iso(grant.not_before)}"
    if now >= grant.expires:
        return Reason.GRANT_EXPIRED, f"expired at {_iso(grant.expires)}"
    if grant.allow_parties is not None and not others <= grant.allow_parties:
        outside = ", ".join(sorted(others - grant.allow_parties))
        return Reason.PARTY_NOT_ALLOWED, f"not allowed in a call with {outside}"
    if grant.parent_grant_id is None:
        if grant.granted_by != record.owner:
            return Reason.GRANT_CHAIN_BROKEN, f"given by {grant.granted_by}, not the owner"
        return None
    parent = by_id.get(grant.parent_grant_id)
    if parent is None or parent.grantee != grant.granted_by or not parent.may_delegate:
        return (
            Reason.GRANT_CHAIN_BROKEN,
            f"delegating grant {grant.parent_grant_id} is gone or does not allow delegation",
        )
    refusal = _check(parent, record, by_id, others, now, depth + 1)
    if refusal is not None:
        return refusal[0], f"delegating grant {parent.grant_id}: {refusal[1]}"
    return None


def _chain_expiry(grant: Grant, by_id: Mapping[str, Grant]) -> float:
    """The earliest expiry of ``grant`` and the grants it was delegated from."""
    expires = grant.expires
    current = grant
    for _ in range(MAX_DELEGATION_DEPTH):
        if current.parent_grant_id is None:
            break
        parent = by_id.get(current.parent_grant_id)
        if parent is None:
            break
        expires = min(expires, parent.expires)
        current = parent
    return expires


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class Authorizer:
    """Checks avatar use and manages grants kept in ``store``.

    Args:
        store: where records and grants live (grants persist across restarts with it).
        clock: a wall clock, UNIX seconds (see the module docstring).
    """

    def __init__(self, store: AvatarRepository, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def now(self) -> float:
        """The authorizer's wall clock (UNIX seconds): the time grants are judged at."""
        return self._clock.now()

    async def check_use(
        self,
        record: AvatarRecord | None,
        user: str,
        *,
        call_parties: Iterable[str],
        now: float | None = None,
    ) -> Decision:
        """:func:`decide` with the avatar's stored grants, at ``now`` (default: the clock)."""
        when = self._clock.now() if now is None else now
        grants = [] if record is None else await self._store.list_grants(record.avatar_id)
        decision = decide(record, grants, user, call_parties=call_parties, now=when)
        log.log(
            logging.DEBUG if decision.allowed else logging.INFO,
            "avatar use %s: %s",
            "allowed" if decision.allowed else "refused",
            decision.message,
            extra={
                "avatar_id": None if record is None else record.avatar_id,
                "reason_code": decision.reason_code,
                "grant_id": decision.grant_id,
            },
        )
        return decision

    async def authorize_use(
        self,
        avatar_id: str,
        user: str,
        *,
        call_parties: Iterable[str],
        now: float | None = None,
    ) -> Decision:
        """:meth:`check_use` by id; an unknown id is a refusal (``unknown-avatar``), other
        storage errors are raised."""
        try:
            record: AvatarRecord | None = await self._store.get_record(avatar_id)
        except AvatarNotFoundError:
            record = None
        return await self.check_use(record, user, call_parties=call_parties, now=now)

    async def authorize_parties(
        self,
        avatar_id: str,
        user: str,
        parties: Iterable[str],
        *,
        now: float | None = None,
    ) -> tuple[Decision, dict[str, Decision]]:
        """May ``user`` still use the avatar at all, and towards each of ``parties`` alone?

        For a call in progress (TS 22.156: the right must hold for the whole call): the first
        decision ignores the other parties (is some grant, or the ownership, still valid?), the
        mapping gives the decision for a delivery to each party (``call_parties`` = that party
        only). One read of the store; nothing is logged (the caller logs what changes).
        """
        when = self._clock.now() if now is None else now
        try:
            record: AvatarRecord | None = await self._store.get_record(avatar_id)
        except AvatarNotFoundError:
            record = None
        grants = [] if record is None else await self._store.list_grants(avatar_id)
        overall = decide(record, grants, user, call_parties=(), now=when)
        each: dict[str, Decision] = {}
        for party in parties:
            if party not in each:
                each[party] = (
                    decide(record, grants, user, call_parties=(party,), now=when)
                    if overall.allowed
                    else overall
                )
        return overall, each

    async def authorized_users(
        self, record: AvatarRecord, *, now: float | None = None
    ) -> frozenset[str]:
        """The identities with the right to use the avatar at ``now``: the owner and every
        grantee with a valid grant (in some calls, when the grant has an allow-list)."""
        when = self._clock.now() if now is None else now
        grants = await self._store.list_grants(record.avatar_id)
        by_id = {g.grant_id: g for g in grants}
        users = {
            g.grantee for g in grants if _check(g, record, by_id, frozenset(), when, 0) is None
        }
        return frozenset({record.owner, *users})

    async def grant(
        self,
        avatar_id: str,
        *,
        grantee: str,
        granted_by: str,
        expires: float,
        not_before: float | None = None,
        allow_parties: Iterable[str] | None = None,
        may_delegate: bool = False,
    ) -> Grant:
        """Give ``grantee`` the use of the avatar from ``not_before`` (default: now) until
        ``expires`` (UNIX seconds), and store the grant.

        ``granted_by`` must be the owner, or hold a valid grant with ``may_delegate`` that covers
        the new grant's window and parties (the new grant inherits its parent's allow-list when
        it gives none). Raises AuthorizationError (``not-owner``, ``delegation-not-allowed``),
        InvalidRequestError, AvatarNotFoundError.
        """
        now = self._clock.now()
        grantee_id = normalize_identity(grantee)
        by = normalize_identity(granted_by)
        parties = (
            None
            if allow_parties is None
            else frozenset(normalize_identity(p) for p in allow_parties)
        )
        start = now if not_before is None else not_before
        if not (math.isfinite(start) and math.isfinite(expires)):
            raise InvalidRequestError("grant times must be finite")
        if expires <= now:
            raise InvalidRequestError(f"a grant expiring at {_iso(expires)} has already expired")
        if expires <= start:
            raise InvalidRequestError("a grant must expire after it becomes valid")
        record = await self._store.get_record(avatar_id)
        if grantee_id == record.owner:
            raise InvalidRequestError(
                f"{grantee_id} owns avatar {record.avatar_id}: no grant needed"
            )
        if grantee_id == by:
            raise InvalidRequestError("a grant cannot be given to its giver")
        parent: Grant | None = None
        if by != record.owner:
            parent = await self._delegating_grant(record, by, start, expires, parties, now)
            if parties is None:
                parties = parent.allow_parties
        grant = Grant(
            grant_id=new_id(),
            avatar_id=record.avatar_id,
            grantee=grantee_id,
            granted_by=by,
            not_before=start,
            expires=expires,
            allow_parties=parties,
            may_delegate=may_delegate,
            parent_grant_id=None if parent is None else parent.grant_id,
            created=now,
        )
        await self._store.put_grant(grant)
        log.info(
            "avatar grant given",
            extra={
                "grant_id": grant.grant_id,
                "avatar_id": grant.avatar_id,
                "grantee": grantee_id,
                "granted_by": by,
                "expires": _iso(expires),
            },
        )
        return grant

    async def _delegating_grant(
        self,
        record: AvatarRecord,
        by: str,
        start: float,
        expires: float,
        parties: frozenset[str] | None,
        now: float,
    ) -> Grant:
        grants = await self._store.list_grants(record.avatar_id)
        by_id = {g.grant_id: g for g in grants}
        held = [g for g in grants if g.grantee == by and g.may_delegate]
        if not held:
            raise AuthorizationError(
                Reason.NOT_OWNER,
                f"{by} neither owns avatar {record.avatar_id} nor holds a grant it may delegate",
            )
        at = max(now, start)
        problems: list[str] = []
        for candidate in held:
            refusal = _check(candidate, record, by_id, frozenset(), at, 0)
            if refusal is not None:
                problems.append(f"grant {candidate.grant_id}: {refusal[1]}")
            elif start < candidate.not_before or expires > candidate.expires:
                problems.append(f"grant {candidate.grant_id} does not cover that time window")
            elif (
                candidate.allow_parties is not None
                and parties is not None
                and not parties <= candidate.allow_parties
            ):
                problems.append(f"grant {candidate.grant_id} does not allow those parties")
            else:
                return candidate
        raise AuthorizationError("delegation-not-allowed", "; ".join(problems))

    async def revoke(self, grant_id: str, *, by: str | None = None) -> Grant:
        """Revoke a grant (kept, marked revoked, until :meth:`prune`); idempotent.

        ``by``: who asks; must be the avatar's owner or the grant's giver. ``None``: an operator
        (the command line), always allowed.
        """
        grant = await self._store.get_grant(grant_id)
        if by is not None:
            who = normalize_identity(by)
            record = await self._store.get_record(grant.avatar_id)
            if who not in (record.owner, grant.granted_by):
                raise AuthorizationError(
                    Reason.NOT_OWNER, f"{who} neither owns the avatar nor gave grant {grant_id}"
                )
        if grant.revoked is not None:
            return grant
        revoked = dataclasses.replace(grant, revoked=self._clock.now())
        await self._store.put_grant(revoked)
        log.info("avatar grant revoked", extra={"grant_id": grant.grant_id, "by": by})
        return revoked

    async def prune(self, *, now: float | None = None, retention: float = 0.0) -> list[str]:
        """Delete grants expired or revoked more than ``retention`` seconds before ``now``, and
        every grant delegated from a deleted or missing one; returns the deleted ids."""
        when = (self._clock.now() if now is None else now) - retention
        grants = await self._store.list_grants()
        by_id = {g.grant_id: g for g in grants}
        dead = {
            g.grant_id
            for g in grants
            if g.expires <= when or (g.revoked is not None and g.revoked <= when)
        }
        changed = True
        while changed:
            changed = False
            for g in grants:
                parent = g.parent_grant_id
                if (
                    g.grant_id not in dead
                    and parent is not None
                    and (parent not in by_id or parent in dead)
                ):
                    dead.add(g.grant_id)
                    changed = True
        for grant_id in sorted(dead):
            try:
                await self._store.delete_grant(grant_id)
            except GrantNotFoundError:
                pass
        if dead:
            log.info("avatar grants pruned", extra={"count": len(dead)})
        return sorted(dead)
