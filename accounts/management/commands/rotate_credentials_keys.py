"""Re-encrypt every broker credential under the first key of CREDENTIALS_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.crypto import rotate_all_credentials


class Command(BaseCommand):
    help = ("Re-encrypt all broker credentials under the first CREDENTIALS_ENCRYPTION_KEYS key. "
            "Run after prepending a new key; remove the old key afterwards.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        count = rotate_all_credentials(batch_size=batch_size)
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} broker credential(s)."))
