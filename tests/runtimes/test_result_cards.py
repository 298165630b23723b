"""The result and compare pages mark the annualised figures of a short run, and results stored
before the short-run rule (no `days` or `short_run` key) still render, unmarked."""

from __future__ import annotations

from django.urls import reverse

from runtimes.result_pages import metric_cards
from tests.runtimes.results import completed_session, run_in_process, synthetic_result

SHORT = {"total_return": "0.01", "cagr": "0.2", "sharpe": "1.5", "sortino": "2",
         "annualised_volatility": "0.3", "max_drawdown": "0.05", "number_of_trades": 3,
         "days": 40, "short_run": True}


def _notes(metrics: dict) -> dict[str, str]:
    return {card["label"]: card["note"] for card in metric_cards(metrics)}


def test_a_short_run_marks_only_its_annualised_cards():
    notes = _notes(SHORT)

    marked = {label for label, note in notes.items() if note}
    assert marked == {"CAGR", "Sharpe", "Sortino", "Volatility"}
    assert notes["Sharpe"].startswith("Annualised from 40 days of returns, under a quarter")


def test_a_long_run_and_an_old_result_without_the_new_keys_are_not_marked():
    long_run = {**SHORT, "days": 300, "short_run": False}
    old = {k: v for k, v in SHORT.items() if k not in ("days", "short_run")}

    assert not any(_notes(long_run).values())
    assert not any(_notes(old).values())
    assert [c["value"] for c in metric_cards(old)][:3] == ["1.00%", "20.00%", "1.50"]


def test_the_result_page_shows_the_short_run_marker_with_its_explanation(
        sign_in, owner, workspace, dataset):
    session = run_in_process(workspace=workspace, by=owner, dataset=dataset)  # 300 minutes

    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[session.pk])).content.decode()

    assert session.result.metrics["short_run"] is True
    assert ('<div class="label">CAGR <abbr class="short-run" title="Annualised from 1 day of '
            'returns, under a quarter of a year') in page
    assert '<div class="label">Total return</div>' in page  # not annualised: unmarked


def test_pages_of_a_result_stored_before_the_rule_still_render(
        sign_in, owner, workspace, dataset):
    old = completed_session(workspace=workspace, by=owner, dataset=dataset)
    other = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(old, trades=4)  # metrics without days, short_run or periods_per_year
    synthetic_result(other, trades=6)
    client = sign_in(owner, workspace)

    page = client.get(reverse("backtest_detail", args=[old.pk]))
    compare = client.get(reverse("backtest_compare"), {"ids": [str(old.pk), str(other.pk)]})

    assert page.status_code == 200 and "short-run" not in page.content.decode()
    assert compare.status_code == 200 and "short-run" not in compare.content.decode()


def test_the_compare_page_marks_the_annualised_figures_of_a_short_run_too(
        sign_in, owner, workspace, dataset):
    short = run_in_process(workspace=workspace, by=owner, dataset=dataset)  # 300 minutes
    old = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(old, trades=4)

    compare = sign_in(owner, workspace).get(
        reverse("backtest_compare"), {"ids": [str(short.pk), str(old.pk)]}).content.decode()

    # Of its annualised figures only CAGR is defined on one day of returns: it alone is marked.
    cagr_row = compare[compare.index("<tr><td>CAGR</td>"):]
    cagr_row = cagr_row[:cagr_row.index("</tr>")]
    assert compare.count('<abbr class="short-run"') == 1
    assert '<abbr class="short-run" title="Annualised from 1 day of returns' in cagr_row
