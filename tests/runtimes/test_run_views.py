"""Dashboard actions on one backtest: rename, cancel (from its page and the list), delete after a
confirmation page (refused while it runs), re-run with the same inputs, clone into the form of
its version or another one, prefilled; every one through the current workspace only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from runtimes.models import SessionEvent, SessionResult, Source, State, TradingSession
from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime
from strategies.services import upload_strategy_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def with_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))


@pytest.fixture
def version(owner, workspace):
    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"x = 1\n")


@pytest.fixture
def run(owner, workspace, dataset, version):
    """A completed hosted run with every input set."""
    session = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version,
        state=State.COMPLETED, name="SMA v1 · first try", params={"fast": 5, "slow": 20},
        start=datetime(2021, 4, 2, 1, tzinfo=UTC), end=datetime(2021, 4, 2, 3, tzinfo=UTC),
        initial_cash=Decimal("2500"), slippage_bps=Decimal("1.5"),
        commission={"percent": "0.1", "minimum": "1"})
    SessionResult.objects.create(session=session, metrics={"total_return": "0.01"})
    SessionEvent.objects.create(session=session, sequence=1, event_id="e1", frame="{}")
    return session


def _running(owner, workspace, dataset, version):
    # Its lease ran out: nobody runs it any more, so a cancel ends it here at once.
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version, state=State.RUNNING,
        name="still going", lease_expires_at=timezone.now() - timedelta(minutes=1))


def test_the_result_page_shows_the_name_and_what_was_run_with_a_link_to_the_code(
        sign_in, owner, workspace, run, version):
    page = sign_in(owner, workspace).get(reverse("backtest_detail", args=[run.pk])).content \
        .decode()

    assert "<h1>SMA v1 · first try</h1>" in page
    assert '<summary><h2>What was run</h2> <span class="muted small">fast=5, slow=20 · BTCUSDT ' \
           '· 2021-04-02 01:00 → 2021-04-02 03:00 UTC</span></summary>' in page
    code = reverse("version_detail", args=[version.strategy_id, 1])
    assert f'<dd><a href="{code}">SMA v1</a>' in page
    assert "<dd>0.1% of the notional, at least 1 per fill</dd>" in page
    assert "<li>Market orders fill at the next bar&#x27;s open, moved 1.5 bps against the " \
           "order by slippage (kept within the bar&#x27;s low and high).</li>" in page


def test_a_failed_runs_status_page_shows_what_was_run_unfolded(
        sign_in, owner, workspace, run):
    TradingSession.objects.filter(pk=run.pk).update(state=State.FAILED)

    page = sign_in(owner, workspace).get(reverse("backtest_detail", args=[run.pk])).content \
        .decode()

    assert '<details class="panel what-was-run" id="what-was-run" open>' in page
    assert "<dd>2,500</dd>" in page


def test_a_run_is_renamed_from_its_page_within_bounds(sign_in, owner, workspace, run):
    client = sign_in(owner, workspace)
    url = reverse("backtest_rename", args=[run.pk])

    client.post(url, {"name": "  fast 5 "})
    refused = client.post(url, {"name": "x" * 121}, follow=True).content.decode()

    run.refresh_from_db()
    assert run.name == "fast 5"
    assert "A name has 1 to 120 characters." in refused


def test_a_viewer_sees_no_actions_and_may_not_rename_or_delete(sign_in, viewer, workspace, run):
    client = sign_in(viewer, workspace)

    page = client.get(reverse("backtest_detail", args=[run.pk])).content.decode()

    assert "Rename" not in page and "Re-run" not in page
    assert client.post(reverse("backtest_rename", args=[run.pk]), {"name": "x"}).status_code \
        == 403
    assert client.post(reverse("backtest_delete", args=[run.pk])).status_code == 403
    assert TradingSession.objects.filter(pk=run.pk, name="SMA v1 · first try").exists()


def test_delete_asks_first_then_removes_the_run_with_its_result_and_journal(
        sign_in, owner, workspace, run):
    client = sign_in(owner, workspace)
    url = reverse("backtest_delete", args=[run.pk])

    confirm = client.get(url).content.decode()
    assert TradingSession.objects.filter(pk=run.pk).exists()  # a GET deletes nothing
    response = client.post(url)

    assert "Delete the backtest SMA v1 · first try?" in confirm
    assert "its journal of 1 event" in confirm and 'method="post"' in confirm
    assert response.status_code == 302 and response["Location"] == reverse("backtest_list")
    assert not TradingSession.objects.filter(pk=run.pk).exists()
    assert not SessionResult.objects.filter(session_id=run.pk).exists()
    assert not SessionEvent.objects.filter(session_id=run.pk).exists()


def test_a_running_run_is_not_deleted_the_page_says_to_cancel_it_first(
        sign_in, owner, workspace, dataset, version):
    running = _running(owner, workspace, dataset, version)
    client = sign_in(owner, workspace)
    url = reverse("backtest_delete", args=[running.pk])

    confirm = client.get(url).content.decode()
    refused = client.post(url, follow=True).content.decode()

    assert "It is running: cancel it first, then delete it." in confirm
    assert "The backtest is running: cancel it first, then delete it." in refused
    assert TradingSession.objects.filter(pk=running.pk).exists()


def test_a_running_run_is_cancelled_from_the_list(sign_in, owner, workspace, dataset, version):
    running = _running(owner, workspace, dataset, version)
    client = sign_in(owner, workspace)

    listed = client.get(reverse("backtest_list")).content.decode()
    response = client.post(reverse("backtest_cancel", args=[running.pk]), {"next": "list"})

    assert f'action="{reverse("backtest_cancel", args=[running.pk])}"' in listed
    assert response["Location"] == reverse("backtest_list")
    running.refresh_from_db()
    assert running.state == State.CANCELLED


def test_a_running_run_is_cancelled_from_its_page(sign_in, owner, workspace, dataset, version):
    running = _running(owner, workspace, dataset, version)
    client = sign_in(owner, workspace)
    url = reverse("backtest_cancel", args=[running.pk])

    page = client.get(reverse("backtest_detail", args=[running.pk])).content.decode()
    response = client.post(url, follow=True)

    assert f'<form method="post" action="{url}" class="inline" data-confirm=' in page
    assert response.redirect_chain == [(reverse("backtest_detail", args=[running.pk]), 302)]
    assert "still going is cancelled." in response.content.decode()
    running.refresh_from_db()
    assert (running.state, running.failure_reason) == (
        State.CANCELLED, "cancelled by a person from the dashboard")


def test_another_workspaces_run_is_a_404_for_every_action(
        sign_in, stranger, stranger_workspace, run):
    client = sign_in(stranger, stranger_workspace)

    for name in ("backtest_rename", "backtest_cancel", "backtest_delete", "backtest_rerun"):
        assert client.post(reverse(name, args=[run.pk]), {"name": "x"}).status_code == 404
    assert client.get(reverse("backtest_clone", args=[run.pk])).status_code == 404
    assert TradingSession.objects.filter(pk=run.pk, name="SMA v1 · first try").exists()


def test_re_run_starts_a_new_run_with_every_input(with_sandbox, sign_in, owner, workspace, run):
    response = sign_in(owner, workspace).post(reverse("backtest_rerun", args=[run.pk]))

    new = TradingSession.objects.exclude(pk=run.pk).get()
    assert response["Location"] == reverse("backtest_detail", args=[new.pk])
    assert (new.state, new.strategy_version_id, new.dataset_id, new.symbols, new.start,
            new.end, new.initial_cash, new.slippage_bps, new.commission, new.params) == (
        State.QUEUED, run.strategy_version_id, run.dataset_id, ["BTCUSDT"], run.start, run.end,
        Decimal(2500), Decimal("1.5"), {"percent": "0.1", "minimum": "1"},
        {"fast": 5, "slow": 20})
    assert new.name == "SMA v1 · 2021-04-02 → 2021-04-02"


def test_clone_and_edit_lands_on_the_form_prefilled_with_every_input(
        sign_in, owner, workspace, run, version):
    v2 = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                 filename="main.py", content=b"x = 2\n")
    client = sign_in(owner, workspace)

    same = client.get(reverse("backtest_clone", args=[run.pk]))
    other = client.get(reverse("backtest_clone", args=[run.pk]), {"version": str(v2.pk)})
    form = client.get(other["Location"]).content.decode()

    assert same["Location"] == f"{reverse('backtest_new', args=[version.pk])}?from={run.pk}"
    assert other["Location"] == f"{reverse('backtest_new', args=[v2.pk])}?from={run.pk}"
    assert "Run a backtest of SMA v2" in form and "Prefilled with every input of" in form
    for html in (f'<option value="{run.dataset_id}" selected>',
                 'name="symbols" value="BTCUSDT"', 'name="timeframe" value="1m"',
                 'name="start" value="2021-04-02T01:00:00"',
                 'name="end" value="2021-04-02T03:00:00"', 'name="initial_cash" value="2500"',
                 'name="commission_percent" value="0.1"', 'name="commission_minimum" value="1"',
                 'name="slippage_bps" value="1.5"'):
        assert html in form, html
    assert "{\n &quot;fast&quot;: 5,\n &quot;slow&quot;: 20\n}</textarea>" in form


def test_the_form_refuses_another_workspaces_run_as_its_source(
        sign_in, stranger, stranger_workspace, run):
    theirs = upload_strategy_version(workspace=stranger_workspace, author=stranger,
                                     strategy="theirs", filename="main.py", content=b"x = 1\n")
    client = sign_in(stranger, stranger_workspace)

    url = reverse("backtest_new", args=[theirs.pk])
    assert client.get(url, {"from": str(run.pk)}).status_code == 404
    assert client.get(url, {"from": "nonsense"}).status_code == 404


def test_the_list_says_why_a_run_failed_in_its_sentence_without_reading_its_output(
        sign_in, owner, workspace, dataset, version):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version, state=State.FAILED,
        failure_reason="strategy: raised ZeroDivisionError: division by zero at main.py line 9, "
                       "in on_candle", output="x" * 100_000, output_tail="Traceback ...")
    client = sign_in(owner, workspace)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("backtest_list")).content.decode()

    assert ("Your strategy raised ZeroDivisionError: division by zero at main.py line 9, in "
            "on_candle.") in page
    listing = [q["sql"] for q in queries if 'FROM "runtimes_tradingsession"' in q["sql"]]
    assert listing and not any('"runtimes_tradingsession"."output",' in sql for sql in listing)
