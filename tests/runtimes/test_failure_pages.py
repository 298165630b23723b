"""The pages of a failed or finished hosted run (runtimes/views.py, templates/runtimes): the
failure's sentence with what to do and the traceback folded below; the captured output fetched
only when its collapsed log is opened, so a result page stays small; a foreign id is a 404."""

from __future__ import annotations

from django.urls import reverse

from runtimes.models import SessionResult, Source, State, TradingSession
from tests.runtimes.results import completed_session, run_in_process

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/strategy/main.py", line 42, in on_candle\n'
    "    ratio = gain / loss\n"
    "ZeroDivisionError: division by zero")


def failed_run(workspace, owner, dataset) -> TradingSession:
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, state=State.FAILED, sandboxed=True,
        failure_reason="strategy: raised ZeroDivisionError: division by zero at main.py line "
                       "42, in on_candle",
        output="starting\n" + TRACEBACK, output_tail="starting\n" + TRACEBACK)


def test_a_failed_run_says_what_happened_and_what_to_do_with_the_traceback_folded(
        sign_in, owner, workspace, dataset):
    session = failed_run(workspace, owner, dataset)

    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[session.pk])).content.decode()

    assert ("<strong data-failure-sentence>Your strategy raised ZeroDivisionError: division by "
            "zero at main.py line 42, in on_candle.</strong>") in page
    assert ("Fix the code at that line (its traceback is below) and upload a new version."
            in page)
    folded = page[page.index("<details data-failure-traceback>"):]
    assert folded.index("ratio = gain / loss") < folded.index("</details>")


def test_the_api_detail_carries_the_same_sentence(api_client, owner, workspace, dataset):
    session = failed_run(workspace, owner, dataset)
    api_client.force_login(owner)

    body = api_client.get(f"/api/v1/workspaces/{workspace.pk}/backtests/{session.pk}").json()

    assert body["failure_message"] == (
        "Your strategy raised ZeroDivisionError: division by zero at main.py line 42, in "
        "on_candle. Fix the code at that line (its traceback is below) and upload a new "
        "version.")


def test_a_result_page_with_a_large_log_stays_small_and_fetches_the_log_when_opened(
        sign_in, owner, workspace, dataset):
    session = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    line = "2021-04-01 00:00 on_candle BTCUSDT close 58912.13 fast above slow: holding\n"
    output = line * (700_000 // len(line))
    TradingSession.objects.filter(pk=session.pk).update(source=Source.HOSTED, output=output)
    client = sign_in(owner, workspace)

    page = client.get(reverse("backtest_detail", args=[session.pk])).content
    log = client.get(reverse("backtest_logs", args=[session.pk])).content.decode()

    assert len(page) < 150_000, len(page)
    assert line.encode() not in page
    assert log == f'<pre class="logs" aria-label="Captured output">{output}</pre>\n'


def test_another_workspaces_log_is_a_404(sign_in, owner, workspace, dataset, stranger,
                                         stranger_workspace):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset,
                                source=Source.HOSTED, output="secret output\n")
    SessionResult.objects.create(session=session)

    answer = sign_in(stranger, stranger_workspace).get(
        reverse("backtest_logs", args=[session.pk]))

    assert answer.status_code == 404 and b"secret output" not in answer.content


def test_the_live_views_snapshot_carries_the_period_the_total_and_the_failure(
        owner, workspace, dataset):
    from datetime import UTC, datetime

    from runtimes.dashboard_consumers import snapshot

    session = failed_run(workspace, owner, dataset)
    TradingSession.objects.filter(pk=session.pk).update(
        total_batches=240, start=datetime(2021, 4, 2, 1, tzinfo=UTC))
    session.refresh_from_db()

    shown = snapshot(session)["session"]

    # The dataset's 300 bars run from 2021-04-02 00:00 to 04:59; the run starts at 01:00.
    assert {key: shown[key] for key in ("total_batches", "period", "failure_message")} == {
        "total_batches": 240,
        "period": {"first": "2021-04-02T01:00:00+00:00", "last": "2021-04-02T04:59:00+00:00"},
        "failure_message": "Your strategy raised ZeroDivisionError: division by zero at main.py "
                           "line 42, in on_candle. Fix the code at that line (its traceback is "
                           "below) and upload a new version."}
