"""Authorization of avatar use (TS 22.156): owner, time-bound grants, allow-lists, delegation."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_mf.storage import (
    AuthorizationError,
    Authorizer,
    AvatarNotFoundError,
    AvatarRecord,
    Decision,
    FilesystemStore,
    Grant,
    InvalidIdentityError,
    InvalidRequestError,
    MemoryStore,
    Reason,
    decide,
    grant_state,
)
from avatar_mf.testing.clock import FakeClock

from .conftest import ALICE, BOB, CAROL, DAVE, T0

HOUR = 3600.0
AVATAR_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
RECORD = AvatarRecord(AVATAR_ID, "0" * 64, ALICE, "alice", "application/zip", 1, T0, T0)


def grant(
    grantee: str = BOB,
    *,
    grant_id: str = "11111111-1111-4111-8111-111111111111",
    not_before: float = T0,
    expires: float = T0 + HOUR,
    parties: frozenset[str] | None = None,
    revoked: float | None = None,
    by: str = ALICE,
    parent: str | None = None,
    may_delegate: bool = False,
) -> Grant:
    return Grant(
        grant_id,
        AVATAR_ID,
        grantee,
        by,
        not_before,
        expires,
        parties,
        may_delegate,
        parent,
        T0,
        revoked,
    )


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("grants", "user", "parties", "now", "allowed", "reason"),
    [
        # the owner, however spelled, in any call
        ([], ALICE, {BOB, CAROL}, T0, True, Reason.OWNER),
        ([], "<SIPS:alice@IMS.EXAMPLE:5061;transport=tls>", set(), T0, True, Reason.OWNER),
        # nobody else without a grant
        ([], BOB, {ALICE}, T0, False, Reason.NOT_OWNER),
        ([grant(CAROL)], BOB, {ALICE}, T0, False, Reason.NOT_OWNER),
        # a grantee within the window (not_before inclusive, expires exclusive)
        ([grant()], BOB, {ALICE}, T0, True, Reason.GRANTED),
        ([grant()], BOB, {ALICE}, T0 + HOUR - 0.001, True, Reason.GRANTED),
        ([grant()], BOB, {ALICE}, T0 + HOUR, False, Reason.GRANT_EXPIRED),
        ([grant()], BOB, {ALICE}, T0 - 1, False, Reason.GRANT_NOT_YET_VALID),
        ([grant(revoked=T0)], BOB, {ALICE}, T0 + 1, False, Reason.GRANT_REVOKED),
        # a third party restricted to an allow-list of parties
        ([grant(parties=frozenset({ALICE, DAVE}))], BOB, {ALICE, DAVE}, T0, True, Reason.GRANTED),
        ([grant(parties=frozenset({ALICE, DAVE}))], BOB, {"tel:+1-555-1234"}, T0, True,
         Reason.GRANTED),
        ([grant(parties=frozenset({ALICE}))], BOB, {BOB, ALICE}, T0, True, Reason.GRANTED),
        ([grant(parties=frozenset({ALICE}))], BOB, set(), T0, True, Reason.GRANTED),
        ([grant(parties=frozenset({ALICE}))], BOB, {ALICE, CAROL}, T0, False,
         Reason.PARTY_NOT_ALLOWED),
        ([grant(parties=frozenset())], BOB, {ALICE}, T0, False, Reason.PARTY_NOT_ALLOWED),
        ([grant(parties=frozenset({ALICE}))], BOB, {"garbage"}, T0, False,
         Reason.PARTY_NOT_ALLOWED),
        ([grant()], BOB, {"garbage"}, T0, True, Reason.GRANTED),  # unrestricted
        # several grants: any valid one allows; otherwise the closest reason is given
        ([grant(expires=T0), grant(grant_id="22222222-2222-4222-8222-222222222222")], BOB,
         {ALICE}, T0, True, Reason.GRANTED),
        ([grant(expires=T0), grant(grant_id="22222222-2222-4222-8222-222222222222",
                                   parties=frozenset())], BOB, {ALICE}, T0, False,
         Reason.PARTY_NOT_ALLOWED),
        # a grant given by someone other than the owner, without a parent, is worthless
        ([grant(by=CAROL)], BOB, {ALICE}, T0, False, Reason.GRANT_CHAIN_BROKEN),
        # identities that are not identities
        ([grant()], "bob", {ALICE}, T0, False, Reason.INVALID_IDENTITY),
    ],
)  # fmt: skip
def test_authorization_matrix(
    grants: list[Grant],
    user: str,
    parties: set[str],
    now: float,
    allowed: bool,
    reason: Reason,
) -> None:
    decision = decide(RECORD, grants, user, call_parties=frozenset(parties), now=now)
    assert (decision.allowed, decision.reason_code) == (allowed, reason), decision.message
    assert decision.status == (200 if allowed else 400 if reason == "invalid-identity" else 403)


def test_unknown_avatar() -> None:
    decision = decide(None, [], BOB, call_parties=(), now=T0)
    assert decision == Decision(False, "unknown-avatar", "no such avatar")
    assert decision.status == 404


def test_grants_of_other_avatars_do_not_count() -> None:
    other = RECORD.__class__(
        **{
            **{f: getattr(RECORD, f) for f in RECORD.__slots__},
            "avatar_id": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
        }
    )
    decision = decide(other, [grant()], BOB, call_parties=(), now=T0)
    assert decision.reason_code == "not-owner"


def test_delegation_chain_is_checked_at_use() -> None:
    parent = grant(may_delegate=True, parties=frozenset({ALICE, CAROL, DAVE}))
    child = grant(
        CAROL,
        grant_id="22222222-2222-4222-8222-222222222222",
        by=BOB,
        parent=parent.grant_id,
        parties=frozenset({ALICE}),
    )
    ok = decide(RECORD, [parent, child], CAROL, call_parties={ALICE}, now=T0)
    assert (ok.allowed, ok.grant_id) == (True, child.grant_id)
    revoked_parent = grant(may_delegate=True, revoked=T0)
    refused = decide(RECORD, [revoked_parent, child], CAROL, call_parties={ALICE}, now=T0)
    assert refused.reason_code == "grant-revoked"
    assert parent.grant_id in refused.message
    no_delegation = grant()
    refused = decide(RECORD, [no_delegation, child], CAROL, call_parties={ALICE}, now=T0)
    assert refused.reason_code == "grant-chain-broken"
    refused = decide(RECORD, [child], CAROL, call_parties={ALICE}, now=T0)  # parent pruned
    assert refused.reason_code == "grant-chain-broken"
    # A cycle (only possible in tampered files) ends as a broken chain, not a recursion error.
    loop_a = grant(
        CAROL,
        grant_id="22222222-2222-4222-8222-222222222222",
        by=BOB,
        parent="33333333-3333-4333-8333-333333333333",
        may_delegate=True,
    )
    loop_b = grant(
        BOB,
        grant_id="33333333-3333-4333-8333-333333333333",
        by=CAROL,
        parent=loop_a.grant_id,
        may_delegate=True,
    )
    refused = decide(RECORD, [loop_a, loop_b], CAROL, call_parties=(), now=T0)
    assert refused.reason_code == "grant-chain-broken"


def test_grant_state() -> None:
    assert grant_state(grant(), T0) == "active"
    assert grant_state(grant(), T0 - 1) == "not-yet-valid"
    assert grant_state(grant(), T0 + HOUR) == "expired"
    assert grant_state(grant(revoked=T0), T0) == "revoked"


# --------------------------------------------------------------------------- the authorizer


@pytest.fixture
def memory(wall: FakeClock) -> MemoryStore:
    return MemoryStore(clock=wall)


@pytest.fixture
def authorizer(memory: MemoryStore, wall: FakeClock) -> Authorizer:
    return Authorizer(memory, wall)


async def test_grant_then_use_until_it_expires(
    memory: MemoryStore, authorizer: Authorizer, wall: FakeClock
) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    given = await authorizer.grant(
        record.avatar_id,
        grantee="sip:bob@IMS.example:5060",
        granted_by=ALICE,
        expires=T0 + HOUR,
        allow_parties=["sip:alice@ims.example;user=phone"],
    )
    assert (given.grantee, given.granted_by, given.allow_parties) == (
        BOB,
        ALICE,
        frozenset({ALICE}),
    )
    assert (given.not_before, given.created) == (T0, T0)
    use = await authorizer.check_use(record, BOB, call_parties={ALICE})
    assert use.allowed and use.grant_id == given.grant_id
    assert (await authorizer.check_use(record, BOB, call_parties={CAROL})).reason_code == (
        "party-not-allowed"
    )
    wall.advance(HOUR)
    assert (await authorizer.check_use(record, BOB, call_parties={ALICE})).reason_code == (
        "grant-expired"
    )


async def test_authorize_use_by_id(memory: MemoryStore, authorizer: Authorizer) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    assert (await authorizer.authorize_use(record.avatar_id, ALICE, call_parties=())).allowed
    unknown = await authorizer.authorize_use("nope", ALICE, call_parties=())
    assert unknown.reason_code == "unknown-avatar"


async def test_future_grant(memory: MemoryStore, authorizer: Authorizer, wall: FakeClock) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    await authorizer.grant(
        record.avatar_id, grantee=BOB, granted_by=ALICE, not_before=T0 + HOUR, expires=T0 + 2 * HOUR
    )
    assert (await authorizer.check_use(record, BOB, call_parties=())).reason_code == (
        "grant-not-yet-valid"
    )
    wall.advance(HOUR)
    assert (await authorizer.check_use(record, BOB, call_parties=())).allowed


async def test_revoke(memory: MemoryStore, authorizer: Authorizer, wall: FakeClock) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    given = await authorizer.grant(
        record.avatar_id, grantee=BOB, granted_by=ALICE, expires=T0 + HOUR
    )
    with pytest.raises(AuthorizationError) as caught:
        await authorizer.revoke(given.grant_id, by=CAROL)
    assert (caught.value.status, caught.value.code) == (403, "not-owner")
    wall.advance(5)
    revoked = await authorizer.revoke(given.grant_id, by=ALICE)
    assert revoked.revoked == T0 + 5
    assert await authorizer.revoke(given.grant_id) == revoked  # idempotent
    decision = await authorizer.check_use(record, BOB, call_parties=())
    assert decision.reason_code == "grant-revoked"


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"expires": T0}, InvalidRequestError, "invalid-request"),
        ({"expires": T0 + 10, "not_before": T0 + 20}, InvalidRequestError, "invalid-request"),
        ({"expires": float("inf")}, InvalidRequestError, "invalid-request"),
        ({"grantee": ALICE}, InvalidRequestError, "invalid-request"),
        ({"grantee": "bob"}, InvalidIdentityError, "invalid-identity"),
        ({"granted_by": CAROL}, AuthorizationError, "not-owner"),
        ({"allow_parties": ["nobody"]}, InvalidIdentityError, "invalid-identity"),
    ],
)
async def test_grant_refusals(
    memory: MemoryStore,
    authorizer: Authorizer,
    kwargs: dict[str, object],
    error: type[Exception],
    code: str,
) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    arguments: dict[str, object] = {"grantee": BOB, "granted_by": ALICE, "expires": T0 + HOUR}
    arguments.update(kwargs)
    with pytest.raises(error) as caught:
        await authorizer.grant(record.avatar_id, **arguments)  # type: ignore[arg-type]
    assert getattr(caught.value, "code", None) == code
    assert memory.grants == {}


async def test_grant_for_unknown_avatar(authorizer: Authorizer) -> None:
    with pytest.raises(AvatarNotFoundError):
        await authorizer.grant("nope", grantee=BOB, granted_by=ALICE, expires=T0 + HOUR)


async def test_delegation(memory: MemoryStore, authorizer: Authorizer) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    parent = await authorizer.grant(
        record.avatar_id,
        grantee=BOB,
        granted_by=ALICE,
        expires=T0 + HOUR,
        may_delegate=True,
        allow_parties=[ALICE, CAROL, DAVE],
    )
    child = await authorizer.grant(
        record.avatar_id, grantee=CAROL, granted_by=BOB, expires=T0 + HOUR / 2
    )
    assert child.parent_grant_id == parent.grant_id
    assert child.allow_parties == parent.allow_parties  # inherited
    assert (await authorizer.check_use(record, CAROL, call_parties={DAVE})).allowed
    # No wider than the parent: window, parties; and not from a grant that may not delegate.
    with pytest.raises(AuthorizationError, match="time window") as caught:
        await authorizer.grant(
            record.avatar_id, grantee=DAVE, granted_by=BOB, expires=T0 + 2 * HOUR
        )
    assert caught.value.code == "delegation-not-allowed"
    with pytest.raises(AuthorizationError, match="parties"):
        await authorizer.grant(
            record.avatar_id,
            grantee=DAVE,
            granted_by=BOB,
            expires=T0 + 60,
            allow_parties=["sip:eve@ims.example"],
        )
    with pytest.raises(AuthorizationError) as caught:
        await authorizer.grant(record.avatar_id, grantee=DAVE, granted_by=CAROL, expires=T0 + 60)
    assert caught.value.code == "not-owner"
    # Revoking the parent disables the child.
    await authorizer.revoke(parent.grant_id)
    refused = await authorizer.check_use(record, CAROL, call_parties={DAVE})
    assert refused.reason_code == "grant-revoked"
    with pytest.raises(AuthorizationError, match="revoked"):
        await authorizer.grant(record.avatar_id, grantee=DAVE, granted_by=BOB, expires=T0 + 60)


async def test_authorized_users(memory: MemoryStore, authorizer: Authorizer) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    await authorizer.grant(record.avatar_id, grantee=BOB, granted_by=ALICE, expires=T0 + 10)
    await authorizer.grant(
        record.avatar_id, grantee=CAROL, granted_by=ALICE, expires=T0 + 20, allow_parties=[ALICE]
    )
    await authorizer.grant(
        record.avatar_id, grantee=DAVE, granted_by=ALICE, not_before=T0 + 15, expires=T0 + 20
    )
    assert await authorizer.authorized_users(record) == {ALICE, BOB, CAROL}
    assert await authorizer.authorized_users(record, now=T0 + 15) == {ALICE, CAROL, DAVE}


async def test_prune(memory: MemoryStore, authorizer: Authorizer, wall: FakeClock) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    short = await authorizer.grant(
        record.avatar_id, grantee=BOB, granted_by=ALICE, expires=T0 + 10, may_delegate=True
    )
    delegated = await authorizer.grant(
        record.avatar_id, grantee=DAVE, granted_by=BOB, expires=T0 + 5
    )
    revoked = await authorizer.grant(
        record.avatar_id, grantee=CAROL, granted_by=ALICE, expires=T0 + HOUR
    )
    await authorizer.revoke(revoked.grant_id)
    kept = await authorizer.grant(
        record.avatar_id, grantee=DAVE, granted_by=ALICE, expires=T0 + HOUR
    )
    wall.advance(20)
    assert await authorizer.prune(retention=60) == []  # within the retention
    assert await authorizer.prune() == sorted(
        [short.grant_id, delegated.grant_id, revoked.grant_id]
    )
    assert list(memory.grants) == [kept.grant_id]


async def test_revoked_parent_prunes_its_children(
    memory: MemoryStore, authorizer: Authorizer
) -> None:
    record = await memory.put(b"PK", owner=ALICE)
    parent = await authorizer.grant(
        record.avatar_id, grantee=BOB, granted_by=ALICE, expires=T0 + HOUR, may_delegate=True
    )
    child = await authorizer.grant(
        record.avatar_id, grantee=CAROL, granted_by=BOB, expires=T0 + HOUR
    )
    await authorizer.revoke(parent.grant_id)
    assert await authorizer.prune() == sorted([parent.grant_id, child.grant_id])


async def test_grants_persist_across_restart(root: Path, wall: FakeClock) -> None:
    store = await FilesystemStore.open(root, clock=wall)
    record = await store.put(b"PK", owner=ALICE)
    given = await Authorizer(store, wall).grant(
        record.avatar_id,
        grantee=BOB,
        granted_by=ALICE,
        expires=T0 + HOUR,
        allow_parties=[ALICE],
    )
    restarted = Authorizer(await FilesystemStore.open(root, clock=wall), wall)
    decision = await restarted.authorize_use(record.avatar_id, BOB, call_parties={ALICE})
    assert (decision.allowed, decision.grant_id) == (True, given.grant_id)
    await restarted.revoke(given.grant_id)
    again = Authorizer(await FilesystemStore.open(root, clock=wall), wall)
    decision = await again.authorize_use(record.avatar_id, BOB, call_parties={ALICE})
    assert decision.reason_code == "grant-revoked"
