"""What RuntimesConfig.ready wires up: a saved or deleted session token (the admin's edits
included, which no service sees) invalidates cached credential checks and tells the sockets
opened with the run's tokens; a new token or a session's bookkeeping write does neither."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import access_events, auth_cache
from runtimes.models import SessionToken, TradingSession
from runtimes.transport.authentication import mint_session_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    subjects: list[str] = []
    monkeypatch.setattr(access_events, "publish", lambda *s: subjects.extend(s))
    return subjects


@pytest.fixture
def token(owner, workspace, dataset):
    session = TradingSession.objects.create(workspace=workspace, created_by=owner,
                                            dataset=dataset, symbols=["BTCUSDT"], timeframe="1m")
    mint_session_token(session=session, lifetime=timedelta(hours=1))
    return SessionToken.objects.get(session=session)


def test_saving_a_token_invalidates_the_cache_and_publishes_its_sessions_subject(token,
                                                                                 published):
    before = auth_cache.current_epoch()

    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])

    assert auth_cache.current_epoch() != before
    assert published == [f"session-tokens:{token.session_id}"]


def test_deleting_a_token_does_too(token, published):
    before = auth_cache.current_epoch()

    token.delete()

    assert auth_cache.current_epoch() != before
    assert published == [f"session-tokens:{token.session_id}"]


def test_a_new_token_takes_nobodys_access_away(owner, workspace, dataset, published):
    session = TradingSession.objects.create(workspace=workspace, created_by=owner,
                                            dataset=dataset, symbols=["BTCUSDT"], timeframe="1m")
    before = auth_cache.current_epoch()

    mint_session_token(session=session, lifetime=timedelta(hours=1))

    assert auth_cache.current_epoch() == before
    assert published == []


def test_a_sessions_state_change_invalidates_cached_checks(token, published):
    before = auth_cache.current_epoch()

    TradingSession.objects.get(pk=token.session_id).save(update_fields=["state"])

    assert auth_cache.current_epoch() != before
    assert published == []  # sessions are no subject: their sockets follow the state itself
