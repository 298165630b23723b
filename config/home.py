"""The workspace's home page (/app/): counts and first steps drawn from every app (members and
keys, strategies and datasets, sessions and the sandbox). It sits above accounts, strategies and
runtimes so that none of them has to import an app above it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import ApiKey, Membership
from accounts.views import workspace_page
from runtimes.models import TradingSession
from runtimes.services import hosted_runs_support
from strategies.models import Dataset, Strategy


@workspace_page
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    return render(request, "home.html", {
        # Said on the first page, not after a user's first hosted run is refused.
        "sandbox": hosted_runs_support(),
        "allow_unsandboxed": settings.SANDBOX_ALLOW_UNSANDBOXED,
        "member_count": Membership.objects.for_workspace(workspace).count(),
        "key_count": ApiKey.objects.for_workspace(workspace).usable(timezone.now()).count(),
        "strategy_count": Strategy.objects.for_workspace(workspace).count(),
        "dataset_count": Dataset.objects.for_workspace(workspace).count(),
        "session_count": TradingSession.objects.for_workspace(workspace).count(),
        "live_count": TradingSession.objects.for_workspace(workspace).live().count(),
    })
