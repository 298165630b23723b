"""Deployments as a state machine (runtimes/deployments.py): creation and its refusals, each
transition with its exact states, the state following the session, and a pause that refuses new
orders in the host's order path (DEPLOYMENT_PAUSED) while open orders keep working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import ApiError
from runtimes import deployments
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.market_data import MarketData
from runtimes.hosting.commands import execute
from runtimes.hosting.risk import RiskGuard, RiskLimits
from runtimes.models import Deployment, SessionAudit, Source, State, TradingSession
from runtimes.providers import registry
from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime
from tests.runtimes.core.scenario import D, bars

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"import tektii\n")


@pytest.fixture
def with_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))


def deploy(workspace, user, *, role="owner", version=None, **overrides):
    options = {"name": "mock demo", "platform": "mock", "symbols": ["AAPL", "MSFT"],
               "timeframes": ["1m"], "params": {"fast": 10}, **overrides}
    return deployments.create_deployment(workspace=workspace, created_by=user, role=role,
                                         version=version, **options)


def start(deployment, user, role="owner", now=NOW):
    return deployments.start_deployment(deployment=deployment, started_by=user, role=role,
                                        now=now)


def refusal(call, *args, **kwargs) -> tuple[int, str, dict]:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value.status_code, caught.value.error_code, caught.value.details


def reread(deployment):
    return deployments.sync_with_session(Deployment.objects.get(pk=deployment.pk))


def session_moves(session, to, **fields):
    assert session.transition(to=to, allowed_from=set(State.values), **fields)


# -- creation ------------------------------------------------------------------------------------


def test_a_new_remote_deployment_is_stopped_with_no_session(owner, workspace):
    deployment = deploy(workspace, owner, initial_cash=Decimal("25000"),
                        risk_limits=RiskLimits(max_order_quantity=Decimal("5")))

    assert (deployment.state, deployment.source, deployment.platform) == (
        "stopped", "remote", "mock")
    assert deployment.current_session is None and list(deployment.sessions.all()) == []
    assert deployment.risk_limits == {
        "max_order_quantity": "5", "max_order_notional": None, "max_position_quantity": None,
        "max_open_orders": None, "max_orders_per_minute": None, "daily_loss_limit": None,
        "allowed_symbols": None}
    assert deployment.initial_cash == Decimal("25000")


def test_a_deployment_of_a_version_is_hosted(owner, workspace, version):
    deployment = deploy(workspace, owner, version=version)

    assert (deployment.source, deployment.strategy_version) == ("hosted", version)


def test_backtest_and_unknown_platforms_are_refused(owner, workspace):
    assert refusal(deploy, workspace, owner, platform="backtest")[:2] == (400, "INVALID_VALUE")
    status, code, details = refusal(deploy, workspace, owner, platform="nyse")
    assert (status, code, details["field"]) == (400, "INVALID_VALUE", "platform")
    assert "backtest" not in details["available"]


def test_a_platform_without_a_provider_in_this_build_is_refused(owner, workspace, monkeypatch):
    monkeypatch.delitem(registry.FACTORIES, "binance-testnet")  # as a build without it
    status, code, details = refusal(deploy, workspace, owner, platform="binance-testnet")

    assert (status, code, details) == (400, "PLATFORM_UNAVAILABLE",
                                       {"field": "platform", "provided": "binance-testnet"})


def test_a_live_platform_needs_the_trade_live_scope_of_an_owner(owner, workspace, monkeypatch):
    monkeypatch.delitem(registry.FACTORIES, "binance-live")  # as a build without it
    status, code, details = refusal(deploy, workspace, owner, role="member",
                                    platform="binance-live")

    assert (status, code, details) == (403, "FORBIDDEN",
                                       {"required_scope": "trade:live", "role": "member"})
    # An owner passes the scope check and meets the missing provider instead.
    assert refusal(deploy, workspace, owner, platform="binance-live")[:2] == (
        400, "PLATFORM_UNAVAILABLE")


def test_names_are_unique_within_a_workspace_only(owner, workspace, stranger,
                                                  stranger_workspace):
    deploy(workspace, owner)

    assert refusal(deploy, workspace, owner, name=" mock demo ") == (
        400, "VALIDATION_ERROR",
        {"name": ["A deployment of this workspace already has this name."]})
    assert deploy(stranger_workspace, stranger).name == "mock demo"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"symbols": [" ", ""]}, "symbols"),
    ({"timeframes": ["1m", "7m"]}, "timeframes"),
    ({"timeframes": []}, "timeframes"),
    ({"params": [1, 2]}, "params"),
    ({"params": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "params"),
    ({"params": {"blob": "x" * 20_000}}, "params"),
    ({"initial_cash": Decimal(0)}, "initial_cash"),
    ({"name": "  "}, "name"),
])
def test_bad_input_is_refused_naming_the_field(owner, workspace, overrides, field):
    status, code, details = refusal(deploy, workspace, owner, **overrides)

    assert (status, code, list(details)) == (400, "VALIDATION_ERROR", [field])
    assert not Deployment.objects.exists()


def test_allowed_symbols_must_be_symbols_of_the_deployment(owner, workspace):
    limits = RiskLimits(allowed_symbols=("AAPL", "TSLA"))

    assert refusal(deploy, workspace, owner, risk_limits=limits) == (
        400, "VALIDATION_ERROR", {"allowed_symbols": ["not symbols of this session: TSLA"]})


def test_a_version_of_another_workspace_is_not_found(owner, workspace, stranger,
                                                     stranger_workspace, version):
    assert refusal(deploy, stranger_workspace, stranger, version=version)[:2] == (
        404, "NOT_FOUND")


# -- start ---------------------------------------------------------------------------------------


def test_start_opens_a_session_with_the_deployments_settings(owner, workspace):
    deployment = deploy(workspace, owner, initial_cash=Decimal("5000"), timeframes=["5m", "1m"],
                        risk_limits=RiskLimits(max_open_orders=3))

    session = start(deployment, owner)

    assert deployment.state == "starting"
    assert reread(deployment).current_session == session
    assert (session.platform, session.source, session.state, session.dataset) == (
        "mock", "remote", "created", None)
    assert (session.symbols, session.timeframe, session.initial_cash) == (
        ["AAPL", "MSFT"], "5m", Decimal("5000"))
    assert (session.max_open_orders, session.allowed_symbols) == (3, ["AAPL", "MSFT"])
    assert (session.params, session.created_by, session.workspace) == (
        {"fast": 10}, owner, workspace)
    assert list(deployment.sessions.all()) == [session]


def test_a_hosted_start_queues_its_session_for_a_worker(owner, workspace, version,
                                                        with_sandbox):
    session = start(deploy(workspace, owner, version=version), owner)

    assert (session.source, session.state, session.strategy_version) == (
        "hosted", "queued", version)
    assert session.queued_at == NOW


def test_a_hosted_start_is_refused_where_hosted_runs_are(owner, workspace, version,
                                                         monkeypatch, settings):
    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(False, "bubblewrap is not installed"))
    deployment = deploy(workspace, owner, version=version)

    assert refusal(start, deployment, owner)[:2] == (400, "SANDBOX_UNAVAILABLE")
    assert (reread(deployment).state, TradingSession.objects.count()) == ("stopped", 0)


def test_starting_twice_is_an_illegal_transition(owner, workspace):
    deployment = deploy(workspace, owner)
    start(deployment, owner)

    status, code, details = refusal(start, deployment, owner)

    assert (status, code, details) == (409, "INVALID_TRANSITION", {
        "action": "start", "state": "starting", "allowed_from": ["failed", "stopped"]})
    assert TradingSession.objects.count() == 1


def test_it_runs_when_its_session_runs(owner, workspace):
    deployment = deploy(workspace, owner)
    session = start(deployment, owner)
    session_moves(session, State.WAITING)
    assert reread(deployment).state == "starting"

    session_moves(session, State.RUNNING)

    assert reread(deployment).state == "running"


# -- pause, resume -------------------------------------------------------------------------------


def running(workspace, owner, **overrides):
    deployment = deploy(workspace, owner, **overrides)
    session = start(deployment, owner)
    session_moves(session, State.RUNNING)
    return reread(deployment), session


def test_pause_and_resume_move_between_running_and_paused(owner, workspace):
    deployment, _ = running(workspace, owner)

    deployments.pause_deployment(deployment=deployment)
    assert reread(deployment).state == "paused"
    assert refusal(deployments.pause_deployment, deployment=deployment) == (
        409, "INVALID_TRANSITION", {"action": "pause", "state": "paused",
                                    "allowed_from": ["running"]})

    deployments.resume_deployment(deployment=deployment, role="owner")
    assert reread(deployment).state == "running"
    assert refusal(deployments.resume_deployment, deployment=deployment, role="owner")[2] == {
        "action": "resume", "state": "running", "allowed_from": ["paused"]}


def test_a_starting_or_stopped_deployment_cannot_pause(owner, workspace):
    deployment = deploy(workspace, owner)
    assert refusal(deployments.pause_deployment, deployment=deployment)[:2] == (
        409, "INVALID_TRANSITION")
    start(deployment, owner)
    assert refusal(deployments.pause_deployment, deployment=deployment)[2]["state"] == "starting"


def guarded_engine(session):
    data = MarketData.from_bars(bars([(100, 100, 100, 100)] * 5, "AAPL"))
    engine = BacktestEngine(data, BacktestConfig(initial_cash=D(100_000)))
    engine.next_batch()
    return engine, RiskGuard.for_session(session, monotonic=lambda: 0.0)


def submit(engine, guard, **body):
    order = {"symbol": "AAPL", "side": "buy", "quantity": "1", "order_type": "market", **body}
    reply = execute(engine, {"op": "submit_order", "body": order}, guard=guard)
    return reply.status, reply.body


def test_a_paused_deployment_refuses_new_orders_and_keeps_open_ones(owner, workspace):
    deployment, session = running(workspace, owner)
    engine, guard = guarded_engine(session)
    assert submit(engine, guard, order_type="limit", limit_price="50")[0] == 201

    deployments.pause_deployment(deployment=deployment)
    reply = execute(engine, {"op": "risk_changed"}, guard=guard)  # what the host is told
    status, body = submit(engine, guard)

    assert reply.status == 200
    assert (status, body["code"], body["details"]["reject_code"]) == (
        422, "ORDER_REJECTED", "DEPLOYMENT_PAUSED")
    assert body["message"].startswith("DEPLOYMENT_PAUSED: the deployment is paused")
    assert [o.limit_price for o in engine.orders(open_only=True)] == [D(50)]
    guard.flush()
    assert SessionAudit.objects.get().reject_code == "DEPLOYMENT_PAUSED"

    deployments.resume_deployment(deployment=deployment, role="owner")
    execute(engine, {"op": "risk_changed"}, guard=guard)
    assert submit(engine, guard)[0] == 201


# -- stop, failure, the session's end -------------------------------------------------------------


def test_stopping_before_the_strategy_connected_stops_at_once(owner, workspace):
    deployment = deploy(workspace, owner)
    session = start(deployment, owner)

    deployments.stop_deployment(deployment=deployment, now=NOW)

    session.refresh_from_db()
    assert (reread(deployment).state, deployment.failure_reason) == ("stopped", "")
    assert (session.state, session.failure_reason) == ("cancelled", "deployment stopped")


def test_stopping_a_session_a_host_runs_waits_for_its_end(owner, workspace, monkeypatch):
    # Its host holds the lease: the cancel goes to it over the bus, and it ends the session.
    monkeypatch.setattr("runtimes.services.host_is_gone", lambda session, now: False)
    deployment, session = running(workspace, owner)

    deployments.stop_deployment(deployment=deployment, now=NOW)
    assert reread(deployment).state == "stopping"
    assert refusal(deployments.stop_deployment, deployment=deployment, now=NOW)[2]["state"] == (
        "stopping")

    session.finish(to=State.CANCELLED, now=NOW, reason="deployment stopped")
    assert (reread(deployment).state, reread(deployment).failure_reason) == ("stopped", "")


def test_a_failed_session_fails_its_deployment_with_the_reason(owner, workspace):
    deployment, session = running(workspace, owner)
    deployments.pause_deployment(deployment=deployment)

    session.finish(to=State.FAILED, now=NOW, reason="the strategy exited with code 1")

    assert (reread(deployment).state, reread(deployment).failure_reason) == (
        "failed", "the strategy exited with code 1")


def test_a_session_that_ends_by_itself_stops_its_deployment_saying_why(owner, workspace):
    deployment, session = running(workspace, owner)

    session.finish(to=State.CANCELLED, now=NOW, reason="idle for 86400 s")

    assert (reread(deployment).state, reread(deployment).failure_reason) == (
        "stopped", "its session ended (cancelled: idle for 86400 s)")


def test_a_failed_deployment_starts_again_with_a_new_session(owner, workspace):
    deployment, first = running(workspace, owner)
    first.finish(to=State.FAILED, now=NOW, reason="boom")
    deployment = reread(deployment)

    second = start(deployment, owner, now=NOW + timedelta(minutes=5))

    deployment = reread(deployment)
    assert (deployment.state, deployment.failure_reason) == ("starting", "")
    assert deployment.current_session == second
    assert list(deployment.sessions.all()) == [second, first]  # newest first


def test_only_a_stopped_or_failed_deployment_can_be_deleted(owner, workspace):
    deployment, session = running(workspace, owner)

    assert refusal(deployments.delete_deployment, deployment=deployment) == (
        409, "INVALID_TRANSITION", {"action": "delete", "state": "running",
                                    "allowed_from": ["failed", "stopped"]})
    session.finish(to=State.COMPLETED, now=timezone.now())
    deployments.delete_deployment(deployment=reread(deployment))

    assert not Deployment.objects.exists()
    assert TradingSession.objects.filter(pk=session.pk, source=Source.REMOTE).exists()


def test_resuming_a_live_deployment_needs_trade_live(owner, workspace):
    deployment, _ = running(workspace, owner)
    deployments.pause_deployment(deployment=deployment)
    Deployment.objects.filter(pk=deployment.pk).update(platform="alpaca-live")
    deployment = reread(deployment)

    assert refusal(deployments.resume_deployment, deployment=deployment, role="member")[:2] == (
        403, "FORBIDDEN")
    assert reread(deployment).state == "paused"
