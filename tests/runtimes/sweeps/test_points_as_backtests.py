"""A sweep's points stay out of the backtest list, but each is a backtest to read, rename and
delete by its id through the backtests API, like any other."""

from __future__ import annotations

import pytest

from runtimes.models import TradingSession
from runtimes.sweeps.models import Sweep
from tests.runtimes.sweeps.conftest import end_point

pytestmark = pytest.mark.django_db


def test_a_sweep_point_is_not_listed_but_read_renamed_and_deleted_by_its_id(
        api_client, owner, workspace, version, daily_dataset):
    api_client.force_login(owner)
    created = api_client.post(f"/api/v1/workspaces/{workspace.pk}/sweeps", {
        "version": str(version.pk), "dataset": str(daily_dataset.pk),
        "parameters": {"fast": [5, 10]}, "metric": "total_return"}, format="json")
    assert created.status_code == 201, created.content
    point = TradingSession.objects.filter(sweep=Sweep.objects.get()).order_by("created_at")[0]
    end_point(point, sharpe="1.5")
    base = f"/api/v1/workspaces/{workspace.pk}/backtests"

    listed = api_client.get(base).json()
    read = api_client.get(f"{base}/{point.pk}")
    renamed = api_client.patch(f"{base}/{point.pk}", {"name": "fast 5"}, format="json")
    deleted = api_client.delete(f"{base}/{point.pk}")

    assert listed == []
    assert (read.status_code, read.json()["id"]) == (200, str(point.pk))
    assert (renamed.status_code, renamed.json()["name"]) == (200, "fast 5")
    assert deleted.status_code == 204
    assert not TradingSession.objects.filter(pk=point.pk).exists()
