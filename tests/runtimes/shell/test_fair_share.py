"""One workspace cannot starve the others: quotas, the queue and its positions, and sessions that
wait for their strategy without holding a worker (runtimes/quotas.py, runtimes/dispatch.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.plugins.celery_worker import worker_threads
from tests.runtimes.conftest import ask_for_worker, new_backtest_session, wait_for_state

ENDED = {"completed", "failed", "cancelled"}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "strategies"


def remote_session(workspace, user, dataset, **overrides):
    """A remote session whose strategy may take its time to connect (10 minutes)."""
    return new_backtest_session(workspace, user, dataset, **{"connect_timeout_s": 600, **overrides})


@pytest.fixture
def foreigner(stranger, stranger_workspace, stranger_dataset):
    """Another tenant as `remote_session` takes it: the stranger's workspace, the stranger, and
    a dataset of that workspace."""
    return stranger_workspace, stranger, stranger_dataset


@pytest.fixture
def stranger_dataset(stranger_workspace, btc_csv):
    from strategies.services import register_dataset

    return register_dataset(workspace=stranger_workspace, name="BTC 1m", files={"BTCUSDT": btc_csv})


def sessions_url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.id}/sessions"


def create_over_api(client, workspace, dataset):
    return client.post(sessions_url(workspace), {"dataset": str(dataset.id)}, format="json")


@pytest.fixture
def ready_worker(celery_worker):
    """The suite's worker, once it consumes (a worker process may still be starting)."""
    import uuid

    from django.core.cache import cache

    from runtimes.tasks import record_worker_heartbeat

    token = uuid.uuid4().hex
    record_worker_heartbeat.delay(token)
    deadline = time.monotonic() + 30
    while cache.get(f"worker-heartbeat:{token}") is None:
        assert time.monotonic() < deadline, "the worker did not start within 30 s"
        time.sleep(0.05)
    return celery_worker


# -- quotas ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_session_over_the_quota_is_refused_with_the_limit_and_how_to_raise_it(
    owner_client, workspace, dataset, settings
):
    settings.QUOTA_REMOTE_BACKTESTS = 2
    assert [create_over_api(owner_client, workspace, dataset).status_code for _ in range(2)] == [
        201,
        201,
    ]

    refused = create_over_api(owner_client, workspace, dataset)

    assert refused.status_code == 429
    assert refused.json() == {
        "code": "QUOTA_EXCEEDED",
        "message": "This workspace may have at most 2 remote backtest sessions queued or running "
        "at once and has 2. Wait for one to end or cancel one; to raise the limit, ask "
        "an administrator to set 'remote_backtests' in Workspace quotas (Django admin) "
        "or the default QUOTA_REMOTE_BACKTESTS.",
        "details": {"kind": "remote_backtest", "limit": 2, "running": 2},
    }


@pytest.mark.django_db
def test_a_workspace_quota_set_in_the_admin_overrides_the_default_and_ended_sessions_free_it(
    owner_client, workspace, dataset, settings
):
    from runtimes.models import WorkspaceQuota

    settings.QUOTA_REMOTE_BACKTESTS = 1
    WorkspaceQuota.objects.create(workspace=workspace, remote_backtests=3)
    created = [create_over_api(owner_client, workspace, dataset) for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    assert create_over_api(owner_client, workspace, dataset).json()["details"] == {
        "kind": "remote_backtest",
        "limit": 3,
        "running": 3,
    }

    owner_client.post(f"{sessions_url(workspace)}/{created[0].json()['id']}/cancel")

    assert create_over_api(owner_client, workspace, dataset).status_code == 201


@pytest.mark.django_db
def test_the_quota_of_one_workspace_does_not_count_another_workspaces_sessions(
    owner, workspace, dataset, stranger, stranger_workspace, stranger_dataset, settings
):
    settings.QUOTA_REMOTE_BACKTESTS = 1
    remote_session(workspace, owner, dataset)

    assert remote_session(stranger_workspace, stranger, stranger_dataset).state == "created"


@pytest.mark.django_db
def test_the_admin_edits_a_workspace_quota(admin_client, workspace):
    from runtimes.models import WorkspaceQuota

    response = admin_client.post(
        "/admin/runtimes/workspacequota/add/",
        {"workspace": str(workspace.pk), "remote_backtests": "", "hosted_backtests": "40"},
    )

    assert response.status_code == 302, response.content[:2000]
    quota = WorkspaceQuota.objects.get(workspace=workspace)
    assert (quota.remote_backtests, quota.hosted_backtests) == (None, 40)


# -- the queue: visible, with positions, answered at once ------------------------------------------


@pytest.mark.django_db
def test_queued_sessions_show_their_place_in_line_round_robin_across_workspaces(
    owner_client,
    stranger_client,
    owner,
    workspace,
    dataset,
    foreigner,
    monkeypatch,
):
    """No worker runs in this test: what a strategy's first request queues stays queued."""
    from runtimes.transport import views as trading_views

    monkeypatch.setattr(trading_views, "FIRST_CONTACT_WAIT_S", 0.0)
    first, second = (remote_session(workspace, owner, dataset) for _ in range(2))
    foreign = remote_session(*foreigner)
    for client, session in (
        (owner_client, first),
        (owner_client, second),
        (stranger_client, foreign),
    ):
        client.get(f"/sessions/{session.id}/v1/session")

    shown = owner_client.get(sessions_url(workspace)).json()
    foreign_view = stranger_client.get(f"/sessions/{foreign.id}/v1/session")

    assert [(s["id"], s["state"], s["queue_position"]) for s in shown] == [
        (str(second.id), "queued", 3),
        (str(first.id), "queued", 1),
    ]
    assert foreign_view.status_code == 200
    shown_info = foreign_view.json()
    assert {k: shown_info[k] for k in ("id", "platform", "state", "queue_position", "symbols",
                                       "timeframe")} == {
        "id": str(foreign.id),
        "platform": "backtest",
        "state": "queued",
        "queue_position": 2,
        "symbols": ["BTCUSDT"],
        "timeframe": "1m",
    }


@pytest.mark.django_db
def test_the_dashboard_shows_a_queued_sessions_place_in_line(
    sign_in, owner, workspace, dataset, foreigner
):
    ask_for_worker(remote_session(*foreigner))
    session = ask_for_worker(remote_session(workspace, owner, dataset))
    as_owner = sign_in(owner, workspace)

    listed = as_owner.get("/app/backtests/").content.decode()
    shown = as_owner.get(f"/app/backtests/{session.id}/").content.decode()

    assert '<span class="state state-queued">Queued for a worker (#2)</span>' in listed
    assert "Queued for a worker: number 2 in line." in shown


@pytest.mark.django_db
def test_a_queued_sessions_rest_calls_answer_at_once_with_their_place_and_a_retry_after(
    owner_client, owner, workspace, dataset, monkeypatch
):
    from runtimes.transport import views as trading_views

    monkeypatch.setattr(trading_views, "FIRST_CONTACT_WAIT_S", 0.0)
    session = remote_session(workspace, owner, dataset)

    started = time.monotonic()
    account = owner_client.get(f"/sessions/{session.id}/v1/account")  # read: the configured one
    response = owner_client.get(f"/sessions/{session.id}/v1/quotes/BTCUSDT")  # needs its host
    elapsed = time.monotonic() - started

    assert (account.status_code, account.json()["equity"]) == (200, "100000")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {
        "code": "PROVIDER_UNAVAILABLE",
        "message": "The session is queued for a worker (number 1 in line); retry in a moment.",
        "details": {"state": "queued", "queue_position": 1, "retry_after_seconds": 1},
    }
    assert elapsed < 1.0


@pytest.mark.django_db
def test_a_remote_session_no_strategy_contacts_fails_after_its_connect_timeout(
    owner, workspace, dataset
):
    from datetime import timedelta

    from runtimes.hosting.dispatch import expire_uncontacted_sessions

    idle = remote_session(workspace, owner, dataset, connect_timeout_s=60)
    contacted = ask_for_worker(remote_session(workspace, owner, dataset, connect_timeout_s=60))

    assert expire_uncontacted_sessions(now=idle.created_at + timedelta(seconds=59)) == 0
    assert expire_uncontacted_sessions(now=idle.created_at + timedelta(seconds=61)) == 1
    idle.refresh_from_db()
    contacted.refresh_from_db()
    assert (idle.state, idle.failure_reason) == ("failed", "no strategy connected within 60 s")
    assert contacted.state == "queued"


@pytest.mark.django_db
def test_the_sweep_sends_one_dispatch_task_while_sessions_are_queued(
    owner, workspace, dataset, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from runtimes.hosting.dispatch import sweep_sessions

    session = remote_session(workspace, owner, dataset)
    with django_capture_on_commit_callbacks() as idle_sweep:
        sweep_sessions(now=timezone.now())
    ask_for_worker(session)
    with django_capture_on_commit_callbacks() as queued_sweep:
        sweep_sessions(now=timezone.now())

    assert (len(idle_sweep), len(queued_sweep)) == (0, 1)


# -- sessions waiting for their strategy hold no worker --------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_idle_remote_sessions_do_not_hold_back_another_workspaces_session(
    ready_worker,
    owner,
    workspace,
    dataset,
    foreigner,
    stranger_client,
):
    """More idle sessions (a long connect timeout) than the worker has threads used to take them
    all, and the other workspace's first request stalled 2 s, then 503."""
    idle = [remote_session(workspace, owner, dataset) for _ in range(worker_threads() + 1)]
    foreign = remote_session(*foreigner)
    try:
        started = time.monotonic()
        response = stranger_client.get(f"/sessions/{foreign.id}/v1/account")
        elapsed = time.monotonic() - started

        assert response.status_code == 200, response.json()
        assert response.json()["equity"] == "100000"
        assert elapsed < 1.5  # was 2 s, then 503
        assert {s.state for s in map(refreshed, idle)} == {"created"}
    finally:
        end_all([*idle, foreign])


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.skipif(
    not django_settings.CELERY_EMBEDDED_WORKER,
    reason="needs the embedded worker (sandbox settings are overridden in-process)",
)
def test_idle_remote_sessions_do_not_hold_back_another_workspaces_hosted_backtest(
    ready_worker,
    owner,
    workspace,
    dataset,
    foreigner,
    daphne_url,
    settings,
    monkeypatch,
):
    from runtimes.sandbox import runner as sandbox
    from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime
    from runtimes.services import create_hosted_backtest
    from strategies.services import upload_strategy_version

    # The sandbox is not what this is about: the run goes unsandboxed, as development allows.
    monkeypatch.setitem(
        sandbox._probe_cache,
        StrategyRuntime.current(),
        SandboxSupport(False, "not needed here (test)"),
    )
    settings.SANDBOX_ALLOW_UNSANDBOXED = True
    settings.PLATFORM_INTERNAL_URL = daphne_url
    idle = [remote_session(workspace, owner, dataset) for _ in range(worker_threads() + 1)]
    version = upload_strategy_version(
        workspace=foreigner[0],
        author=foreigner[1],
        strategy="sma",
        filename="main.py",
        content=(EXAMPLES / "sma_crossover.py").read_bytes(),
    )
    try:
        hosted = create_hosted_backtest(
            workspace=foreigner[0],
            created_by=foreigner[1],
            version=version,
            dataset=foreigner[2],
            params={"fast": 10, "slow": 30, "quantity": "0.5"},
        )

        assert wait_for_state(hosted, ENDED, timeout=60).state == "completed"
        assert {s.state for s in map(refreshed, idle)} == {"created"}
    finally:
        end_all(idle)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_a_session_beyond_the_workers_is_queued_then_started_when_a_worker_frees(
    ready_worker, owner, workspace, dataset, owner_client
):
    """Contacted sessions wait for their sockets on every worker thread; one more queues
    visibly, and starts once one of them is cancelled."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    holding = [
        ask_for_worker(remote_session(workspace, owner, dataset)) for _ in range(worker_threads())
    ]
    third = remote_session(workspace, owner, dataset)
    try:
        for session in holding:
            wait_for_state(session, {"waiting"})
        queued = owner_client.get(f"/sessions/{third.id}/v1/session").json()
        assert (queued["state"], queued["queue_position"]) == ("queued", 1)

        cancel_session(session=holding[0], now=timezone.now())

        assert wait_for_state(third, {"waiting"}).dispatched_at is not None
        assert owner_client.get(f"/sessions/{third.id}/v1/account").status_code == 200
    finally:
        end_all([*holding, third])


def end_all(sessions):
    """Cancel the sessions and wait until each has ended (their hosts free the worker)."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    for session in sessions:
        cancel_session(session=session, now=timezone.now())
    for session in sessions:
        wait_for_state(session, ENDED)


def refreshed(session):
    session.refresh_from_db()
    return session


# -- two workers never claim the same session ------------------------------------------------------


@pytest.mark.ci_services
@pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="needs PostgreSQL (DATABASE_URL): concurrent writers, row locks",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_concurrent_workers_claim_every_queued_session_exactly_once(
    owner, workspace, dataset, stranger, stranger_workspace, stranger_dataset, settings
):
    import threading

    from django.db import connection
    from django.utils import timezone

    from runtimes.hosting.dispatch import claim_next_session
    from runtimes.models import TradingSession

    settings.QUOTA_REMOTE_BACKTESTS = 100
    sessions = [
        remote_session(ws, user, data)
        for ws, user, data in [
            (workspace, owner, dataset),
            (stranger_workspace, stranger, stranger_dataset),
        ]
        * 15
    ]
    # Queued without dispatch tasks: no worker process of the suite takes any of them.
    TradingSession.objects.filter(pk__in=[s.pk for s in sessions]).update(
        state="queued", queued_at=timezone.now()
    )
    gate = threading.Barrier(6)
    claimed: list[list[str]] = [[] for _ in range(6)]

    def worker(mine: list[str]) -> None:
        try:
            gate.wait()
            while (lease := claim_next_session(now=timezone.now())) is not None:
                mine.append(str(lease.session_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    every = [session_id for mine in claimed for session_id in mine]
    assert sorted(every) == sorted(str(s.pk) for s in sessions)
    assert len(set(every)) == 30


# -- the socket of a queued session ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_queued_sessions_socket_is_accepted_and_streams_once_a_worker_takes_it(
    ready_worker, owner, workspace, dataset, trader_key, daphne_url
):
    from django.utils import timezone

    from runtimes.services import cancel_session
    from tests.runtimes.shell.test_session_websocket import (
        in_thread,
        next_frame,
        nothing_arrives,
        open_socket,
        ws_url,
    )

    def make_sessions():
        holding = [
            ask_for_worker(remote_session(workspace, owner, dataset))
            for _ in range(worker_threads())
        ]
        for session in holding:
            wait_for_state(session, {"waiting"})
        return holding, remote_session(workspace, owner, dataset)

    holding, queued = await in_thread(make_sessions)()
    try:
        async with open_socket(ws_url(daphne_url, queued), trader_key) as ws:
            assert await nothing_arrives(ws)
            assert (await in_thread(refreshed)(queued)).state == "queued"

            await in_thread(cancel_session)(session=holding[0], now=timezone.now())

            first = await next_frame(ws)
            assert (first["type"], first["event_id"]) == ("candle", "evt-1")
    finally:
        await in_thread(end_all)([*holding, queued])
