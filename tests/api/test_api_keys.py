"""API keys: the plaintext is shown once and never stored; authentication, scopes, revocation, audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.clock import ManualClock
from engine.crypto import secret_digest
from engine.db import journal
from engine.db.models import ApiKeyRow
from engine.db.storage import Storage
from engine.errors import Conflict, InvalidInput, InvalidTransition, NotFound, Unauthorized
from engine.records import Actor, ActorType
from engine.services.api_keys import AUTH_CACHE_SECONDS, SCOPES, ApiKeyService

ADMIN = Actor(ActorType.CLI, "dara")


@pytest.fixture
def keys(storage: Storage, clock: ManualClock) -> ApiKeyService:
    return ApiKeyService(storage, clock=clock)


async def test_create_returns_the_key_once_and_stores_only_its_hash(keys: ApiKeyService, storage: Storage) -> None:
    key, plaintext = await keys.create("shop-backend", ["payments:write", "payments:read"], actor=ADMIN)
    assert re.fullmatch(r"bk_[0-9a-z]{8}_[A-Za-z0-9_-]{43}", plaintext)
    assert plaintext.split("_")[1] == key.prefix
    assert key.scopes == ("payments:write", "payments:read") and key.active
    async with storage.read() as tx:
        row = (await tx.session.scalars(select(ApiKeyRow))).one()
        audit = await journal.list_audit(tx)
    assert row.secret_hash == secret_digest(plaintext) and plaintext not in row.secret_hash
    assert [(a.action, a.actor, a.subject_id) for a in audit] == [("api_key.create", "dara", key.id)]
    assert plaintext not in str(audit[0].after)


async def test_default_scopes_are_all_and_scopes_are_validated(keys: ApiKeyService) -> None:
    key, _ = await keys.create("all", None, actor=ADMIN)
    assert key.scopes == tuple(SCOPES)
    with pytest.raises(InvalidInput, match="unknown scope 'payments:delete'"):
        await keys.create("bad", ["payments:delete"], actor=ADMIN)
    with pytest.raises(InvalidInput, match="at least one scope"):
        await keys.create("none", [" "], actor=ADMIN)
    with pytest.raises(InvalidInput, match="needs a name"):
        await keys.create("  ", None, actor=ADMIN)


async def test_an_active_name_is_unique_until_revoked(keys: ApiKeyService) -> None:
    first, _ = await keys.create("pos", None, actor=ADMIN)
    with pytest.raises(Conflict, match="already exists"):
        await keys.create("pos", None, actor=ADMIN)
    await keys.revoke(first.id, actor=ADMIN)
    second, _ = await keys.create("pos", None, actor=ADMIN)
    assert second.id != first.id
    assert [k.name for k in await keys.list()] == ["pos", "pos"]
    assert [k.id for k in await keys.list(include_revoked=False)] == [second.id]


async def test_authenticate_accepts_the_key_and_refuses_anything_else(keys: ApiKeyService, storage: Storage, clock: ManualClock) -> None:
    key, plaintext = await keys.create("backend", None, actor=ADMIN)
    assert (await keys.authenticate(plaintext)).id == key.id
    assert (await keys.get(key.id)).last_used_at == clock.now()
    wrong_secret = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    for bad in (wrong_secret, "bk_00000000_" + "x" * 43, "not-a-key", "", plaintext + "x"):
        with pytest.raises(Unauthorized):
            await keys.authenticate(bad)


async def test_revoked_key_stops_working_here_at_once_and_elsewhere_within_the_cache_time(
    keys: ApiKeyService, storage: Storage, clock: ManualClock
) -> None:
    key, plaintext = await keys.create("backend", None, actor=ADMIN)
    other_process = ApiKeyService(storage, clock=clock)
    await other_process.authenticate(plaintext)
    revoked = await keys.revoke(key.id, actor=ADMIN, reason="leaked")
    assert revoked.revoked_at == clock.now() and not revoked.active
    with pytest.raises(Unauthorized):
        await keys.authenticate(plaintext)
    clock.advance(AUTH_CACHE_SECONDS)
    with pytest.raises(Unauthorized):
        await other_process.authenticate(plaintext)
    with pytest.raises(InvalidTransition, match="already revoked"):
        await keys.revoke(key.id, actor=ADMIN)
    with pytest.raises(NotFound):
        await keys.revoke("key_missing", actor=ADMIN)
    async with storage.read() as tx:
        audit = await journal.list_audit(tx, action="api_key.revoke")
    assert len(audit) == 1 and audit[0].reason == "leaked" and audit[0].after["revoked"] is True
