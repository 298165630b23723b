"""Dashboard pages of sweeps: the form from a version (errors kept beside what was typed), the
sweep's page (progress, points linked to their backtests, best points, heatmap, walk-forward),
cancel, the list; sweep points stay out of the backtest list; a foreign sweep is a 404."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from runtimes.models import TradingSession
from runtimes.sweeps.models import Sweep
from runtimes.sweeps.services import create_sweep
from runtimes.sweeps.space import parse_space
from tests.runtimes.sweeps.conftest import end_point, random_sweep_done

pytestmark = pytest.mark.django_db


@pytest.fixture
def form(daily_dataset):
    return {"dataset": str(daily_dataset.pk), "initial_cash": "100000",
            "commission_percent": "0", "slippage_bps": "0", "mode": "grid",
            "parameters": '{"fast": [5, 10], "slow": [20, 30]}', "fixed": '{"quantity": "1"}',
            "metric": "total_return", "oos_top": "3", "seed": "0"}


@pytest.fixture
def sweep(owner, workspace, version, daily_dataset):
    made = create_sweep(workspace=workspace, created_by=owner, version=version,
                        dataset=daily_dataset, name="SMA grid", metric="total_return",
                        space=parse_space(mode="grid", parameters={"fast": [5, 10],
                                                                   "slow": [20, 30]}))
    sessions = TradingSession.objects.filter(sweep=made).order_by("created_at")
    for session, value in zip(sessions, ["0.1", "0.25", "-0.05"], strict=False):
        end_point(session, total_return=value, sharpe="1.5", max_drawdown="0.1",
                  number_of_trades=4)
    return made


def test_the_form_starts_a_sweep_and_leads_to_its_page(sign_in, owner, workspace, version,
                                                       form):
    client = sign_in(owner, workspace)

    response = client.post(reverse("sweep_new", args=[version.pk]), form)

    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response.url == reverse("sweep_detail",
                                                                   args=[sweep.pk])
    assert (sweep.name, sweep.metric, TradingSession.objects.filter(sweep=sweep).count()) == (
        "SMA v1 sweep", "total_return", 4)


def test_the_form_keeps_every_commission_part_it_shows(sign_in, owner, workspace, version,
                                                       form):
    client = sign_in(owner, workspace)

    client.post(reverse("sweep_new", args=[version.pk]), form | {
        "commission_percent": "0.1", "commission_per_share": "0.005",
        "commission_fixed": "5", "commission_minimum": "1"})

    assert Sweep.objects.get().commission == {"percent": "0.1", "per_share": "0.005",
                                              "fixed": "5", "minimum": "1"}


def test_a_bad_space_stays_in_the_form_beside_what_was_typed(sign_in, owner, workspace,
                                                             version, form):
    client = sign_in(owner, workspace)
    typed = '{"fast": {"start": 5, "stop": 1, "step": 1}}'

    response = client.post(reverse("sweep_new", args=[version.pk]),
                           form | {"parameters": typed})

    page = response.content.decode()
    assert response.status_code == 400
    assert "parameters.fast: &#x27;stop&#x27; must not be below &#x27;start&#x27;." in page
    assert "{&quot;fast&quot;: {&quot;start&quot;: 5, &quot;stop&quot;: 1" in page
    assert not Sweep.objects.exists()


def test_the_page_shows_progress_points_best_points_and_the_heatmap(sign_in, owner, workspace,
                                                                     sweep):
    page = sign_in(owner, workspace).get(reverse("sweep_detail", args=[sweep.pk])
                                         ).content.decode()

    assert "<strong>3</strong> done · <strong>0</strong> failed" in page
    assert "/ 4 points" in page
    assert "data-sweep-running" in page  # its page reloads while it runs
    for session in TradingSession.objects.filter(sweep=sweep):
        assert reverse("backtest_detail", args=[session.pk]) in page
    assert "<li><strong>25.00 %</strong> <code>fast=5</code> <code>slow=30</code>" in page
    assert '<td class="num heat-9">25.00 %</td>' in page
    assert '<td class="num heat-0">-5.00 %</td>' in page
    assert '<td class="num heat-none">—</td>' in page


def test_cancel_from_the_page(sign_in, owner, workspace, sweep):
    client = sign_in(owner, workspace)

    response = client.post(reverse("sweep_cancel", args=[sweep.pk]))

    assert response.status_code == 302
    sweep.refresh_from_db()
    assert sweep.state == "cancelled"
    assert "data-sweep-running" not in client.get(reverse("sweep_detail", args=[sweep.pk])
                                                  ).content.decode()


def test_the_list_shows_the_sweep_and_the_backtest_list_leaves_its_points_out(
        sign_in, owner, workspace, sweep):
    client = sign_in(owner, workspace)

    listing = client.get(reverse("sweep_list")).content.decode()
    backtests = client.get(reverse("backtest_list")).content.decode()

    assert "SMA grid" in listing and "3 done / 4" in listing
    for session in TradingSession.objects.filter(sweep=sweep):
        assert str(session.pk) not in backtests


def test_a_stranger_gets_a_404_for_the_sweep_and_its_cancel(sign_in, stranger,
                                                           stranger_workspace, sweep):
    client = sign_in(stranger, stranger_workspace)

    assert client.get(reverse("sweep_detail", args=[sweep.pk])).status_code == 404
    assert client.post(reverse("sweep_cancel", args=[sweep.pk])).status_code == 404
    assert "SMA grid" not in client.get(reverse("sweep_list")).content.decode()
    sweep.refresh_from_db()
    assert sweep.state == "running"


def test_a_viewer_cannot_start_or_cancel(sign_in, viewer, workspace, version, form, sweep):
    client = sign_in(viewer, workspace)

    assert client.post(reverse("sweep_new", args=[version.pk]), form).status_code == 403
    assert client.post(reverse("sweep_cancel", args=[sweep.pk])).status_code == 403


def test_the_page_of_a_1000_point_random_sweep_maps_20_by_20_ranges(sign_in, owner, workspace,
                                                                   version, daily_dataset):
    sweep = random_sweep_done(workspace=workspace, owner=owner, version=version,
                              dataset=daily_dataset)

    page = sign_in(owner, workspace).get(reverse("sweep_detail", args=[sweep.pk])
                                         ).content.decode()

    heatmap = page[page.index('<section id="sweep-heatmap">'):]
    heatmap = heatmap[:heatmap.index("</section>")]
    assert heatmap.count("<tr>") == 21 and heatmap.count("<td ") == 400
    assert '<th class="num">1.001 to 1.05</th>' in heatmap
    assert '<th class="num">47.95 to 49.95</th>' in heatmap
    assert "each axis is grouped into equal ranges" in heatmap
    assert len(page) < 1_500_000  # the table of 1,000 points; the map was 34 MB


def test_a_refused_point_shows_its_reason_in_the_table(sign_in, owner, workspace, version,
                                                       daily_dataset, monkeypatch):
    from config.errors import ApiError
    from runtimes.sweeps import services

    def refuse(**kwargs):
        raise ApiError("INVALID_VALUE", "The date range holds no bars of SPY.")
    monkeypatch.setattr(services, "create_hosted_backtest", refuse)
    sweep = create_sweep(workspace=workspace, created_by=owner, version=version,
                         dataset=daily_dataset, name="refused",
                         space=parse_space(mode="grid", parameters={"fast": [5]}))

    page = sign_in(owner, workspace).get(reverse("sweep_detail", args=[sweep.pk])
                                         ).content.decode()

    assert ('<span class="state state-failed" title="The date range holds no bars of SPY.">'
            'failed</span> <span class="muted small">The date range holds no bars of SPY.'
            '</span>') in page


def test_delete_asks_to_cancel_a_running_sweep_then_confirms_and_deletes(sign_in, owner,
                                                                        workspace, sweep):
    client = sign_in(owner, workspace)
    url = reverse("sweep_delete", args=[sweep.pk])

    running = client.get(url).content.decode()
    refused = client.post(url)
    client.post(reverse("sweep_cancel", args=[sweep.pk]))
    confirm = client.get(url).content.decode()
    deleted = client.post(url)

    assert "It is running: cancel it first, then delete it." in running
    assert refused.status_code == 302 and refused.url == url
    assert "their <strong>4</strong> backtests" in confirm
    assert deleted.status_code == 302 and deleted.url == reverse("sweep_list")
    assert (Sweep.objects.count(), TradingSession.objects.count()) == (0, 0)


def test_a_stranger_or_a_viewer_cannot_delete_the_sweep(sign_in, stranger, stranger_workspace,
                                                        viewer, workspace, sweep):
    from runtimes.sweeps.services import cancel_sweep

    cancel_sweep(sweep=sweep, now=timezone.now())
    url = reverse("sweep_delete", args=[sweep.pk])

    assert sign_in(stranger, stranger_workspace).post(url).status_code == 404
    assert sign_in(viewer, workspace).post(url).status_code == 403
    assert Sweep.objects.filter(pk=sweep.pk).exists()
