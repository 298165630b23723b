"""Give the demo workspace (made by `bootstrap_demo`) a deployment to try at once: the SMA
example on the `mock` market, stopped until someone presses Start. Idempotent; `make run` calls
it after `bootstrap_demo`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, Role, User
from runtimes.deployments import create_deployment
from runtimes.models import Deployment
from strategies.models import Strategy

DEMO_DEPLOYMENT = "Try it now: SMA crossover on the mock market"
DEMO_STRATEGY = "SMA crossover"


class Command(BaseCommand):
    help = "Create the demo workspace's mock deployment of the SMA example if missing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", default="demo@parity.local")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        user = User.objects.filter(email=email).first()
        membership = (Membership.objects.filter(user=user, role=Role.OWNER)
                      .select_related("workspace").first() if user else None)
        if user is None or membership is None:
            raise CommandError(f"no demo owner {email}: run bootstrap_demo first")
        workspace = membership.workspace
        if Deployment.objects.for_workspace(workspace).filter(name=DEMO_DEPLOYMENT).exists():
            return
        strategy = Strategy.objects.for_workspace(workspace).filter(name=DEMO_STRATEGY).first()
        version = strategy.versions.order_by("-number").first() if strategy else None
        if version is None:
            raise CommandError(f"the demo workspace has no {DEMO_STRATEGY!r} version")
        create_deployment(workspace=workspace, created_by=user, role=membership.role,
                          name=DEMO_DEPLOYMENT, platform="mock", version=version,
                          symbols=["BTCUSDT"], timeframes=["1m"])
        self.stdout.write(f"Added demo deployment: {DEMO_DEPLOYMENT}")
