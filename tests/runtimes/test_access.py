"""The guard of an open socket (runtimes/access.py) on its own: a published change, the
credential's expiry and a failing re-check each lead to the right re-check, at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts import access_events, auth_cache
from runtimes.transport import access

# Transactional: a change is published on commit, at once outside a transaction; the guard's
# re-checks run on database_sync_to_async's thread.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(10)]
REFUSED = access.Refusal(access.CLOSE_CREDENTIAL_INVALID, "This API key was revoked.")


def grant(**overrides) -> access.Grant:
    fields = {
        "session_id": "s",
        "credential": None,
        "subjects": ("key:7",),
        "expires_at": None,
        "epoch": auth_cache.current_epoch(),
        **overrides,
    }
    return access.Grant(**fields)


async def guarded(the_grant: access.Grant, check) -> tuple[asyncio.Task, asyncio.Future]:
    """Start a guard; the future resolves with the refusal it reports."""
    refused: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_refused(refusal):
        refused.set_result(refusal)

    task = asyncio.create_task(access.guard(the_grant, check, on_refused))
    return task, refused


async def test_a_published_change_makes_the_guard_recheck_at_once():
    revoked = False
    task, refused = await guarded(grant(), lambda g: REFUSED if revoked else None)
    await asyncio.sleep(0)  # let the guard register its watch
    revoked = True
    await sync_to_async(access_events.publish)("key:8")  # another key: no re-check
    await sync_to_async(access_events.publish)("key:7")
    assert await asyncio.wait_for(refused, 1.0) == REFUSED
    await task


async def test_the_guard_rechecks_when_the_credential_expires():
    expires_at = timezone.now() + timedelta(seconds=0.2)

    def check(_):
        return REFUSED if timezone.now() >= expires_at else None

    _, refused = await guarded(grant(expires_at=expires_at), check)
    assert await asyncio.wait_for(refused, 1.0) == REFUSED
    assert timezone.now() >= expires_at


async def test_a_failing_recheck_is_tried_again(monkeypatch):
    monkeypatch.setattr(access, "RETRY_AFTER_ERROR_S", 0.01)
    outcomes = iter([RuntimeError("database gone"), REFUSED])

    def check(_):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stale = grant(epoch="an epoch from before a change")  # makes the guard check at once
    _, refused = await guarded(stale, check)
    assert await asyncio.wait_for(refused, 1.0) == REFUSED


async def test_a_cancelled_guard_stops_watching():
    task, _ = await guarded(grant(subjects=("key:9",)), lambda g: None)
    await asyncio.sleep(0)
    assert access_events._registry._by_subject.get("key:9")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "key:9" not in access_events._registry._by_subject


def test_a_demoted_owners_live_key_may_no_longer_trade_a_live_session(
    owner, teammate, workspace, make_api_key
):
    from accounts.models import Membership, Role
    from accounts.services import authenticate_api_key, change_member_role
    from runtimes.models import TradingSession

    _, raw = make_api_key(owner, workspace, scopes=["trade:paper", "trade:live"])
    live, paper = TradingSession(platform="alpaca-live"), TradingSession(platform="backtest")
    assert access.denial(authenticate_api_key(raw), live) is None
    for user, role, by in ((teammate, Role.OWNER, owner), (owner, Role.MEMBER, teammate)):
        membership = Membership.objects.get(workspace=workspace, user=user)
        change_member_role(membership=membership, role=role, by=by)

    key = authenticate_api_key(raw)
    refused = access.denial(key, live)
    assert (refused.status_code, refused.details) == (
        403,
        {"required_scope": "trade:live", "role": "member"},
    )
    assert access.denial(key, paper) is None
