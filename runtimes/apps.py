"""The Django shell around the framework-free trading core in runtimes/core."""

from django.apps import AppConfig


class RuntimesConfig(AppConfig):
    name = "runtimes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import access_events, auth_cache
        from runtimes.models import SessionToken, TradingSession

        # The schedules' receiver deletes a schedule's beat entry when a cascade (workspace,
        # version or dataset deleted) takes the schedule, in any process, worker included; and
        # Celery's autodiscovery finds runtimes.tasks only, not this package's task.
        from runtimes.schedules import services, tasks  # noqa: F401
        from runtimes.sweeps import tasks as sweep_tasks  # noqa: F401

        # A hosted run's token is a credential like an API key: accounts keeps the cache and the
        # socket notices, this app says which of its rows a credential check reads. The cache
        # first, so a re-check that a notice triggers reads the change fresh.
        auth_cache.invalidate_on_change(SessionToken, TradingSession)
        access_events.publish_changes_of(SessionToken, lambda token: [
            access_events.session_tokens_subject(token.session_id)])
