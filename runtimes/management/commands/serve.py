"""Serve the whole platform from one process: HTTP and WebSocket (daphne), plus, when embedded,
the Celery worker and beat scheduler as threads."""

from __future__ import annotations

from typing import Any

from channels.routing import get_default_application
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand

from config.celery import app as celery_app
from config.embedded import start_embedded_services
from runtimes.hosting.leases import reap_lost_sessions
from runtimes.instance import follow_served_address


class Command(BaseCommand):
    help = "Serve the platform (HTTP, WebSocket and, when embedded, worker and scheduler)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not start the in-process worker and scheduler",
        )

    def handle(self, *args: Any, host: str, port: int, no_worker: bool, **options: Any) -> None:
        follow_served_address(host=host, port=port)  # unless PLATFORM_INTERNAL_URL is set
        reaped = reap_lost_sessions()  # a restart after a crash: the sessions it stranded
        if reaped:
            self.stdout.write(f"Ended {len(reaped)} session(s) whose host had stopped.")
        services = None
        if settings.CELERY_EMBEDDED_WORKER and not no_worker:
            services = start_embedded_services(
                celery_app, concurrency=settings.EMBEDDED_WORKER_CONCURRENCY
            )
        self.stdout.write(
            f"Parity {settings.VERSION} ({settings.TOPOLOGY}) on http://{host}:{port}/"
        )
        try:
            Server(
                application=get_default_application(),
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=True,
                websocket_handshake_timeout=10,
                application_close_timeout=10,
            ).run()
        finally:
            if services is not None:
                services.stop()
