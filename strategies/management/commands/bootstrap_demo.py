"""Create (idempotently) the demo user and workspace that `make run` prints at start-up, with the
example strategies and the shared historical datasets."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import ensure_demo_account
from strategies.services import install_demo_content

DEMO_EMAIL = "demo@parity.local"
DEMO_PASSWORD = "parity-demo-2026"  # noqa: S105 - a documented local demo login, not a secret


class Command(BaseCommand):
    help = "Create the demo user, workspace, example strategies and datasets if missing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", default=DEMO_EMAIL)
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="where the platform is served"
        )

    def handle(self, *args: Any, email: str, password: str, url: str, **options: Any) -> None:
        user, workspace = ensure_demo_account(email=email, password=password)
        added = install_demo_content(workspace=workspace, by=user)
        for kind, names in added.items():
            if names:
                self.stdout.write(f"Added demo {kind}: {', '.join(names)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo workspace '{workspace.name}' ready. Log in at {url.rstrip('/')}/login/ "
                f"as {user.email} with password {password}"
            )
        )
