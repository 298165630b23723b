"""A mock deployment end to end: started, its remote strategy (the unmodified tektii SDK, with an
API key) connects over a real daphne server, its session runs on a real Celery worker, and the
deployment says `running`; paused, its new orders are refused (DEPLOYMENT_PAUSED); resumed, they
go through again; stopped, its session ends and the deployment says `stopped`.

Needs the `mock` provider and a session host that runs it (issue 11's seam and mock work)."""

from __future__ import annotations

import time
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from tektii import AsyncTradingGateway, OrderRejectedError

from runtimes import deployments
from runtimes.models import Deployment

# Not thread-sensitive: asgiref's one "sync thread" is process-wide and daphne's views and
# consumers need it while the test waits.
in_thread = partial(sync_to_async, thread_sensitive=False)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def wait_for_deployment(deployment_id, states, timeout: float = 20.0) -> Deployment:
    """Poll the deployment (following its session) until its state is one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = deployments.sync_with_session(Deployment.objects.get(pk=deployment_id))
        if deployment.state in states:
            return deployment
        if time.monotonic() > deadline:
            raise AssertionError(f"the deployment stayed {deployment.state}, wanted {states}")
        time.sleep(0.05)


def start_mock_deployment(owner, workspace):
    deployment = deployments.create_deployment(
        workspace=workspace, created_by=owner, role="owner", name="mock e2e", platform="mock",
        version=None, symbols=["AAPL"], timeframes=["1m"])
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=timezone.now())
    return deployment, session


async def test_a_mock_deployment_runs_pauses_resumes_and_stops(
    daphne_url, celery_worker, owner, workspace, trader_key
):
    deployment, session = await in_thread(start_mock_deployment)(owner, workspace)
    base_url = f"{daphne_url}/sessions/{session.id}"

    gateway = AsyncTradingGateway(base_url=base_url, api_key=trader_key, max_retries=0)
    async with gateway as gw, gw.stream():
        running = await in_thread(wait_for_deployment)(deployment.pk, {"running"})
        assert (running.state, running.current_session_id) == ("running", session.id)
        first = await gw.submit_order("AAPL", "buy", "1")
        assert (await gw.get_order(first.id)).symbol == "AAPL"

        await in_thread(deployments.pause_deployment)(deployment=running)
        with pytest.raises(OrderRejectedError) as refused:
            await gw.submit_order("AAPL", "buy", "1")
        assert refused.value.details["reject_code"] == "DEPLOYMENT_PAUSED"

        await in_thread(deployments.resume_deployment)(deployment=running, role="owner")
        again = await gw.submit_order("AAPL", "buy", "1")
        assert again.id != first.id

        await in_thread(deployments.stop_deployment)(deployment=running,
                                                     now=timezone.now())
        stopped = await in_thread(wait_for_deployment)(deployment.pk, {"stopped", "failed"})

    assert (stopped.state, stopped.failure_reason) == ("stopped", "")
    await in_thread(session.refresh_from_db)()
    assert session.state == "cancelled"
