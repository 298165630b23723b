"""Strategies, versions, datasets, backtests and schedules."""

from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    default_auto_field = "django.db.models.BigAutoField"
