"""App configuration for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import (
            auth_cache,
            schema,  # noqa: F401  (registers the OpenAPI auth extension)
        )

        auth_cache.connect_signals()
