"""Strategies, versions, datasets, backtests and schedules."""

from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the receiver that deletes a schedule's beat entry when the schedule goes by
        # a cascade (workspace, version or dataset deleted) in any process, worker included.
        from strategies import schedules  # noqa: F401
