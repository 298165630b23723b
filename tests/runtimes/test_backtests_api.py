"""The management API's hosted backtests as a list people search: names (defaulted, renamed),
filters and numeric sorts by headline metrics, bad values answered with the field, deletion
with everything a run leaves (refused while it runs), and another workspace's id a 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtimes import backtests
from runtimes.models import (
    SessionAudit,
    SessionEvent,
    SessionResult,
    Source,
    State,
    TradingSession,
)
from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime
from strategies.services import upload_strategy_version

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def with_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))


@pytest.fixture
def versions(owner, workspace):
    """SMA v1, SMA v2 and RSI v1 of the workspace."""
    def upload(strategy, content):
        return upload_strategy_version(workspace=workspace, author=owner, strategy=strategy,
                                       filename="main.py", content=content)

    return upload("SMA", b"x = 1\n"), upload("SMA", b"x = 2\n"), upload("RSI", b"x = 3\n")


def hosted_run(workspace, owner, dataset, version, *, minute, name, state=State.COMPLETED,
               metrics=None):
    session = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version, state=state, name=name,
        created_at=T0 + timedelta(minutes=minute))
    if metrics is not None:
        SessionResult.objects.create(session=session, metrics=metrics, equity=[["x", "1"]] * 50)
    return session


@pytest.fixture
def runs(owner, workspace, dataset, versions):
    """Four completed runs whose metrics sort differently as text and as numbers, and a failed
    one whose result has metrics that must not rank it."""
    sma1, sma2, rsi = versions

    def run(version, minute, name, ret, sharpe, drawdown, trades, state=State.COMPLETED):
        return hosted_run(workspace, owner, dataset, version, minute=minute, name=name,
                          state=state, metrics={"total_return": ret, "sharpe": sharpe,
                                                "max_drawdown": drawdown,
                                                "number_of_trades": trades, "cagr": "0.1"})

    return {
        "a": run(sma1, 1, "alpha", "0.5", "10.2", "0.3", 9),
        "b": run(sma1, 2, "Bravo", "-0.05", "9.5", "0.25", 10),
        "c": run(sma2, 3, "charlie", "-0.5", "-1", "0.05", 100),
        "d": run(rsi, 4, "delta", "0.05", "0", "0.5", 2),
        "failed": run(rsi, 5, "echo", "9", "99", "0.01", 1000, state=State.FAILED),
    }


def _ids(response, runs):
    names = {str(s.pk): key for key, s in runs.items()}
    assert response.status_code == 200, response.content
    return [names[row["id"]] for row in response.json()]


@pytest.fixture
def base(workspace):
    return f"/api/v1/workspaces/{workspace.pk}/backtests"


@pytest.mark.parametrize(("sort", "order"), [
    ("", ["failed", "d", "c", "b", "a"]),
    ("created", ["a", "b", "c", "d", "failed"]),
    ("name", ["a", "b", "c", "d", "failed"]),
    ("-name", ["failed", "d", "c", "b", "a"]),
    ("return", ["c", "b", "d", "a", "failed"]),
    ("-return", ["a", "d", "b", "c", "failed"]),
    ("sharpe", ["c", "d", "b", "a", "failed"]),
    ("-sharpe", ["a", "b", "d", "c", "failed"]),
    ("drawdown", ["c", "b", "a", "d", "failed"]),
    ("-trades", ["c", "b", "a", "d", "failed"]),
])
def test_the_list_sorts_by_metrics_as_numbers_and_puts_runs_without_them_last(
        api_client, owner, runs, base, sort, order):
    api_client.force_login(owner)

    assert _ids(api_client.get(base, {"sort": sort}), runs) == order


def test_each_row_carries_its_name_and_the_headline_metrics_of_a_completed_run(
        api_client, owner, runs, base):
    api_client.force_login(owner)

    rows = {row["id"]: row for row in api_client.get(base).json()}

    alpha, failed = rows[str(runs["a"].pk)], rows[str(runs["failed"].pk)]
    assert alpha["name"] == "alpha"
    assert alpha["metrics"] == {"total_return": "0.5", "sharpe": "10.2", "max_drawdown": "0.3",
                                "number_of_trades": 9}
    assert failed["metrics"] is None


def test_the_list_filters_by_strategy_version_dataset_and_state(
        api_client, owner, workspace, runs, versions, base, btc_csv):
    from strategies.services import register_dataset

    sma1, sma2, rsi = versions
    other = register_dataset(workspace=workspace, name="Other", files={"BTCUSDT": btc_csv})
    elsewhere = hosted_run(workspace, owner, other, rsi, minute=9, name="foxtrot")
    runs["f"] = elsewhere
    api_client.force_login(owner)

    def listed(**params):
        return _ids(api_client.get(base, {**params, "sort": "created"}), runs)

    assert listed(strategy=str(sma1.strategy_id)) == ["a", "b", "c"]
    assert listed(version=str(sma2.pk)) == ["c"]
    assert listed(strategy=str(rsi.strategy_id), state="completed") == ["d", "f"]
    assert listed(dataset=str(other.pk)) == ["f"]
    assert listed(state="failed") == ["failed"]
    assert listed(state="") == ["a", "b", "c", "d", "failed", "f"]


@pytest.mark.parametrize(("params", "field", "provided"), [
    ({"sort": "fastest"}, "sort", "fastest"),
    ({"sort": "--name"}, "sort", "--name"),
    ({"state": "done"}, "state", "done"),
    ({"strategy": "not-a-uuid"}, "strategy", "not-a-uuid"),
    ({"page": "0"}, "page", "0"),
    ({"page": "10001"}, "page", "10001"),
    ({"page": "²"}, "page", "²"),
    ({"version": "00000000-0000-0000-0000-000000000000"}, "version",
     "00000000-0000-0000-0000-000000000000"),
])
def test_a_bad_filter_or_sort_is_the_error_envelope_naming_the_field(
        api_client, owner, runs, base, params, field, provided):
    api_client.force_login(owner)

    response = api_client.get(base, params)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_VALUE"
    assert body["details"] == {"field": field, "provided": provided}


def test_the_list_pages_by_a_hundred_with_the_total_and_a_link_to_the_next_page(
        api_client, owner, workspace, dataset, versions, base, monkeypatch):
    monkeypatch.setattr(backtests, "API_PAGE_SIZE", 2)
    for minute in range(5):
        hosted_run(workspace, owner, dataset, versions[0], minute=minute, name=f"run {minute}")
    api_client.force_login(owner)

    first = api_client.get(base, {"sort": "created"})
    last = api_client.get(base, {"sort": "created", "page": "3"})

    assert [row["name"] for row in first.json()] == ["run 0", "run 1"]
    assert first["X-Total-Count"] == "5"
    assert first["Link"] == f'<http://testserver{base}?sort=created&page=2>; rel="next"'
    assert [row["name"] for row in last.json()] == ["run 4"]
    assert "Link" not in last
    assert api_client.get(base, {"page": "4"}).json() == []


def test_another_workspaces_strategy_is_a_bad_filter_not_a_way_to_probe(
        api_client, owner, runs, base, stranger, stranger_workspace):
    theirs = upload_strategy_version(workspace=stranger_workspace, author=stranger,
                                     strategy="theirs", filename="main.py", content=b"x = 9\n")
    api_client.force_login(owner)

    response = api_client.get(base, {"strategy": str(theirs.strategy_id)})

    assert (response.status_code, response.json()["details"]["field"]) == (400, "strategy")


def test_a_new_hosted_backtest_is_named_after_its_strategy_version_and_range(
        with_sandbox, api_client, owner, workspace, dataset, versions, base):
    api_client.force_login(owner)
    sma1 = versions[0]

    ranged = api_client.post(base, {"version": str(sma1.pk), "dataset": str(dataset.pk),
                                    "from": "2021-04-02T01:00:00Z",
                                    "to": "2021-04-02T03:00:00Z"}, format="json")
    whole = api_client.post(base, {"version": str(versions[1].pk), "dataset": str(dataset.pk)},
                            format="json")

    named = api_client.post(base, {"version": str(sma1.pk), "dataset": str(dataset.pk),
                                   "name": " mine "}, format="json")

    assert ranged.json()["name"] == "SMA v1 · 2021-04-02 → 2021-04-02"
    assert named.json()["name"] == "mine"
    # No range given: the dataset's first and last bar (300 minutes from 2021-04-02 00:00).
    assert whole.json()["name"] == "SMA v2 · 2021-04-02 → 2021-04-02"


def test_a_long_strategy_name_is_cut_so_that_the_name_keeps_its_version_and_range(
        owner, workspace, dataset):
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="S" * 100,
                                      filename="main.py", content=b"x = 1\n")

    name = backtests.default_name(version=version, dataset=dataset, symbols=["BTCUSDT"],
                                  start=T0, end=T0 + timedelta(days=90))

    assert len(name) == 120
    assert name.endswith("S… v1 · 2024-01-01 → 2024-03-31")


def test_patch_renames_a_backtest_within_bounds(api_client, owner, runs, base):
    api_client.force_login(owner)
    url = f"{base}/{runs['a'].pk}"

    renamed = api_client.patch(url, {"name": "  fast=5, slow=20  "}, format="json")
    empty = api_client.patch(url, {"name": "   "}, format="json")
    long = api_client.patch(url, {"name": "x" * 121}, format="json")

    assert renamed.status_code == 200 and renamed.json()["name"] == "fast=5, slow=20"
    assert api_client.get(url).json()["name"] == "fast=5, slow=20"
    assert (empty.status_code, empty.json()["code"]) == (400, "VALIDATION_ERROR")
    assert "name" in empty.json()["details"]
    assert (long.status_code, list(long.json()["details"])) == (400, ["name"])


def test_delete_removes_the_run_its_result_journal_and_audits(api_client, owner, runs, base):
    session = runs["a"]
    SessionEvent.objects.create(session=session, sequence=1, event_id="e1", frame="{}")
    SessionAudit.objects.create(session=session, kind=SessionAudit.Kind.KILL_SWITCH,
                                message="set")
    api_client.force_login(owner)

    response = api_client.delete(f"{base}/{session.pk}")

    assert response.status_code == 204
    assert not TradingSession.objects.filter(pk=session.pk).exists()
    assert not SessionResult.objects.filter(session_id=session.pk).exists()
    assert not SessionEvent.objects.filter(session_id=session.pk).exists()
    assert not SessionAudit.objects.filter(session_id=session.pk).exists()
    assert api_client.get(f"{base}/{session.pk}").status_code == 404


def test_a_running_backtest_is_not_deleted_until_cancelled(
        api_client, owner, workspace, dataset, versions, base):
    running = hosted_run(workspace, owner, dataset, versions[0], minute=1, name="live",
                         state=State.RUNNING)
    api_client.force_login(owner)

    response = api_client.delete(f"{base}/{running.pk}")

    assert response.status_code == 409
    assert response.json() == {"code": "INVALID_TRANSITION",
                               "message": "The backtest is running: cancel it first, then "
                                          "delete it.", "details": {"state": "running"}}
    assert TradingSession.objects.filter(pk=running.pk).exists()


def test_a_viewer_may_read_but_not_rename_or_delete(api_client, viewer, runs, base):
    api_client.force_login(viewer)
    url = f"{base}/{runs['a'].pk}"

    assert api_client.get(url).status_code == 200
    assert api_client.patch(url, {"name": "mine"}, format="json").status_code == 403
    assert api_client.delete(url).status_code == 403
    assert TradingSession.objects.get(pk=runs["a"].pk).name == "alpha"


def test_another_workspaces_backtest_is_a_404_to_read_rename_and_delete(
        api_client, stranger, stranger_workspace, runs):
    api_client.force_login(stranger)
    theirs = f"/api/v1/workspaces/{stranger_workspace.pk}/backtests/{runs['a'].pk}"

    assert api_client.get(theirs).status_code == 404
    assert api_client.patch(theirs, {"name": "x"}, format="json").status_code == 404
    assert api_client.delete(theirs).status_code == 404
    assert api_client.get(f"/api/v1/workspaces/{stranger_workspace.pk}/backtests").json() == []
    assert TradingSession.objects.get(pk=runs["a"].pk).name == "alpha"


def test_the_list_reads_no_equity_orders_or_trades(api_client, owner, runs, base):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api_client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        api_client.get(base)

    results = [q["sql"] for q in queries if "runtimes_sessionresult" in q["sql"]]
    assert len(results) == 2  # the page's count, then its rows
    assert '"runtimes_sessionresult"."metrics"' in results[1]
    assert not any(f'"runtimes_sessionresult"."{column}"' in sql for sql in results
                   for column in ("equity", "orders", "trades"))



def test_the_migration_names_existing_backtests_as_new_ones_are_named(
        owner, workspace, dataset, versions):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("runtimes.migrations.0014_session_name")
    hosted = hosted_run(workspace, owner, dataset, versions[1], minute=1, name="")
    remote = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", start=T0, end=T0 + timedelta(days=31))
    named = hosted_run(workspace, owner, dataset, versions[0], minute=2, name="kept")

    migration.name_existing_backtests(apps, None)

    assert TradingSession.objects.get(pk=hosted.pk).name == "SMA v2 · 2021-04-02 → 2021-04-02"
    assert TradingSession.objects.get(pk=remote.pk).name == "BTC 1m · 2024-01-01 → 2024-02-01"
    assert TradingSession.objects.get(pk=named.pk).name == "kept"
