"""The dashboard's deployment pages: the list, the "New deployment" form (its refusals stay in
the form, never a 500), a deployment's page (the live session view, the backtest side by side),
its buttons (an illegal move is a message; a live start needs the name typed again)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from runtimes import deployments
from runtimes.hosting.risk import RiskLimits
from runtimes.models import Deployment, Source, State, TradingSession
from runtimes.providers import registry
from tests.runtimes.connections import stored_connection
from tests.runtimes.results import completed_session, synthetic_result

pytestmark = pytest.mark.django_db

LIVE_LIMITS = RiskLimits(max_position_quantity=Decimal(10), daily_loss_limit=Decimal(500))
FORM = {"name": "demo", "version": "", "platform": "mock", "symbols": "AAPL, MSFT",
        "timeframes": "1m", "initial_cash": "100000", "params": "{}", "start_now": "on"}


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"import tektii\n")


def deploy(workspace, owner, **overrides):
    options = {"name": "demo", "platform": "mock", "version": None, "symbols": ["AAPL"],
               "timeframes": ["1m"], **overrides}
    return deployments.create_deployment(workspace=workspace, created_by=owner, role="owner",
                                         **options)


def detail(deployment):
    return reverse("deployment_detail", args=[deployment.pk])


def act(deployment, action):
    return reverse("deployment_action", args=[deployment.pk, action])


def test_the_list_shows_the_workspaces_deployments(sign_in, owner, workspace):
    client = sign_in(owner, workspace)
    empty = client.get(reverse("deployment_list"))
    deploy(workspace, owner, name="Paper SMA")

    page = client.get(reverse("deployment_list"))

    assert (empty.status_code, page.status_code) == (200, 200)
    assert "No deployments yet" in empty.content.decode()
    assert "Paper SMA" in page.content.decode() and "Mock market" in page.content.decode()


def test_a_valid_form_creates_and_starts_the_deployment(sign_in, owner, workspace):
    response = sign_in(owner, workspace).post(reverse("deployment_new"), FORM)

    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(deployment)
    assert (deployment.state, deployment.symbols, deployment.current_session.state) == (
        "starting", ["AAPL", "MSFT"], "created")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"symbols": " , "}, "symbols", "At least one symbol."),
    ({"params": "[1]"}, "params", "Must be a JSON object"),
    ({"params": "{oops"}, "params", "Not valid JSON"),
    ({"initial_cash": "-1"}, "initial_cash", "greater than or equal to 0.01"),
    ({"timeframes": "1m, 9x"}, "timeframes", "unknown: 9x"),
    ({"platform": "binance-testnet"}, "connection",
     "Binance (testnet) trades through a broker connection"),
    ({"platform": "nyse"}, "platform", "Select a valid choice"),
    ({"platform": "binance-live"}, "confirm_name", "type the deployment&#x27;s name"),
])
def test_bad_input_stays_in_the_form(sign_in, owner, workspace, changes, field, message):
    response = sign_in(owner, workspace).post(reverse("deployment_new"), {**FORM, **changes})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert message in response.content.decode()
    assert not Deployment.objects.exists()


def test_a_taken_name_stays_in_the_form(sign_in, owner, workspace):
    deploy(workspace, owner)

    response = sign_in(owner, workspace).post(reverse("deployment_new"), FORM)

    assert response.context["form"].errors == {
        "name": ["A deployment of this workspace already has this name."]}


def test_a_member_cannot_deploy_live_even_with_the_name_typed(sign_in, teammate, workspace):
    response = sign_in(teammate, workspace).post(reverse("deployment_new"), {
        **FORM, "platform": "binance-live", "confirm_name": "demo"})

    assert response.status_code == 200
    assert "needs the &#x27;trade:live&#x27; scope" in response.content.decode()
    assert not Deployment.objects.exists()


def test_a_viewer_cannot_post_the_form(sign_in, viewer, workspace):
    assert sign_in(viewer, workspace).post(reverse("deployment_new"), FORM).status_code == 403


def test_a_running_deployments_page_is_its_live_session_page(sign_in, owner, workspace):
    deployment = deploy(workspace, owner)
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=deployment.created_at)
    session.transition(to=State.RUNNING, allowed_from={State.CREATED})

    page = sign_in(owner, workspace).get(detail(deployment)).content.decode()

    assert f'data-live-url="/app/sessions/{session.pk}/live"' in page
    for part in ("data-live-account", "data-live-positions", "data-live-orders",
                 "data-live-fills", 'data-live-field="connection"', 'id="logs"'):
        assert part in page
    assert f"http://testserver/sessions/{session.pk}" in page  # where the remote strategy connects
    assert '>Pause</button>' in page and '>Stop</button>' in page and ">Start<" not in page


def test_a_stopped_deployment_says_it_has_not_started(sign_in, owner, workspace):
    page = sign_in(owner, workspace).get(detail(deploy(workspace, owner))).content.decode()

    assert "Not started yet" in page and "data-live-url" not in page
    assert '>Start</button>' in page


def test_a_paper_deployment_shows_its_versions_backtest_side_by_side(
    sign_in, owner, workspace, version, dataset
):
    backtest = completed_session(workspace=workspace, by=owner, dataset=dataset,
                                 source=Source.HOSTED, strategy_version=version)
    synthetic_result(backtest, trades=4)

    page = sign_in(owner, workspace).get(
        detail(deploy(workspace, owner, version=version))).content.decode()

    assert "Backtest and deployment, side by side" in page
    assert reverse("backtest_detail", args=[backtest.pk]) in page
    assert "1.23%" in page  # the backtest's total return card
    assert "data-live-equity" in page


def test_an_illegal_action_is_a_message_on_the_page(sign_in, owner, workspace):
    deployment = deploy(workspace, owner)
    client = sign_in(owner, workspace)

    response = client.post(act(deployment, "pause"), follow=True)

    assert response.status_code == 200
    assert ("Cannot pause the deployment &#x27;demo&#x27;: it is stopped; pause needs it "
            "running.") in response.content.decode()


def test_a_live_start_needs_the_name_typed_again(sign_in, owner, workspace, monkeypatch):
    # As if this build had a provider for a live platform (the broker providers come later).
    monkeypatch.setitem(registry.FACTORIES, "alpaca-live", "runtimes.providers.mock:build")
    connection = stored_connection(workspace, owner, platform="alpaca-live", label="Live")
    deployment = deploy(workspace, owner, platform="alpaca-live", connection=connection,
                        risk_limits=LIVE_LIMITS)
    client = sign_in(owner, workspace)

    untyped = client.post(act(deployment, "start"), {"confirm_name": "dem"}, follow=True)
    assert Deployment.objects.get().state == "stopped"
    typed = client.post(act(deployment, "start"), {"confirm_name": "demo"})

    assert "type the deployment&#x27;s name, &#x27;demo&#x27;, to start it" in (
        untyped.content.decode())
    assert typed.status_code == 302
    assert Deployment.objects.get().state == "starting"
    assert TradingSession.objects.get().platform == "alpaca-live"
    assert TradingSession.objects.get().connection_id == connection.pk


def test_stop_and_delete_from_the_page(sign_in, owner, workspace):
    deployment = deploy(workspace, owner, initial_cash=Decimal(1000))
    client = sign_in(owner, workspace)
    client.post(act(deployment, "start"))
    client.post(act(deployment, "stop"))
    assert Deployment.objects.get().state == "stopped"

    response = client.post(reverse("deployment_delete", args=[deployment.pk]))

    assert response["Location"] == reverse("deployment_list")
    assert not Deployment.objects.exists()


def test_another_workspaces_deployment_is_404(sign_in, owner, workspace, stranger,
                                              stranger_workspace):
    deployment = deploy(workspace, owner)
    client = sign_in(stranger, stranger_workspace)

    assert client.get(detail(deployment)).status_code == 404
    assert client.post(act(deployment, "start")).status_code == 404
    assert client.post(reverse("deployment_delete", args=[deployment.pk])).status_code == 404
    assert Deployment.objects.get().state == "stopped"


def test_a_failed_hosted_deployment_shows_why_and_its_output(sign_in, owner, workspace,
                                                              version, monkeypatch):
    from runtimes.sandbox import runner as sandbox
    from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime

    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))
    deployment = deploy(workspace, owner, version=version)
    session = deployments.start_deployment(deployment=deployment, started_by=owner,
                                           role="owner", now=deployment.created_at)
    TradingSession.objects.filter(pk=session.pk).update(
        output="Traceback: boom\n", output_tail="Traceback: boom\n", sandboxed=True)
    session.finish(to=State.FAILED, now=deployment.created_at, reason="the strategy exited 1")

    page = sign_in(owner, workspace).get(detail(deployment)).content.decode()

    assert "Failed: the strategy exited 1" in page
    assert "Traceback: boom" in page and "data-live-url" not in page
    assert '>Start again</button>' in page
    assert Deployment.objects.get().state == "failed"
