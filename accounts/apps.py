"""App configuration for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import (
            access_events,
            auth_cache,
            schema,  # noqa: F401  (registers the OpenAPI auth extension)
        )

        auth_cache.connect_signals()  # first: a re-check a change triggers reads it fresh
        access_events.connect_signals()
