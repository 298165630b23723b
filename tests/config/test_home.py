"""The workspace home page (/app/, config/home.py): counts from every app, for the current
workspace only, and the sandbox notice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runtimes.models import TradingSession
from strategies.services import upload_dataset, upload_strategy_version

pytestmark = pytest.mark.django_db

BARS = (b"timestamp,open,high,low,close,volume\n2021-01-01T00:00:00Z,10,11,9,10,5\n"
        b"2021-01-02T00:00:00Z,10,12,9,11,5\n")


def _fill(workspace, user, *, sessions):
    upload_strategy_version(workspace=workspace, author=user, strategy="SMA", filename="main.py",
                            content=b"import tektii\n")
    dataset = upload_dataset(workspace=workspace, by=user, name="SPY daily",
                             files={"SPY": ("SPY.csv", BARS)})
    for state in sessions:
        TradingSession.objects.create(workspace=workspace, created_by=user, dataset=dataset,
                                      symbols=["SPY"], timeframe="1d", state=state)


def test_the_home_page_counts_the_current_workspaces_rows_of_every_app(
        sign_in, owner, workspace, teammate, stranger, stranger_workspace, make_api_key):
    _fill(workspace, owner, sessions=["completed", "running"])
    _fill(stranger_workspace, stranger, sessions=["running", "running", "running"])
    make_api_key(owner, workspace)

    page = sign_in(owner, workspace).get(reverse("dashboard")).content.decode()

    assert '<h2>Strategies</h2><p class="stat">1</p>' in page
    assert '<h2>Datasets</h2><p class="stat">1</p>' in page
    assert '<h2>Backtests</h2><p class="stat">2</p>' in page and "1 running now" in page
    assert '<h2>Active API keys</h2><p class="stat">1</p>' in page
    assert '<h2>Members</h2><p class="stat">2</p>' in page


def test_the_home_page_says_when_hosted_runs_are_refused_here(sign_in, owner, workspace,
                                                              settings, monkeypatch):
    from config import home
    from runtimes.sandbox.runner import SandboxSupport

    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    monkeypatch.setattr(home, "hosted_runs_support",
                        lambda: SandboxSupport(False, "bubblewrap is not installed"))

    page = sign_in(owner, workspace).get(reverse("dashboard")).content.decode()

    assert "Hosted runs are refused on this machine: bubblewrap is not installed." in page
