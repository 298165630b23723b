"""Broker credentials encrypted at rest with MultiFernet, bound to their workspace and row.

Keys come from settings.CREDENTIALS_ENCRYPTION_KEYS (independent of SECRET_KEY): the first
encrypts, all decrypt, so rotation is "prepend a key, run `rotate_credentials_keys`, drop the
old key". Fernet has no associated data, so the workspace and row ids travel *inside* the
encrypted payload and are checked on decrypt: a ciphertext copied onto another row or another
workspace's row is rejected instead of handing one tenant another tenant's broker keys.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction

from accounts.models import BrokerCredential


class CredentialDecryptionError(Exception):
    """The ciphertext is corrupt, made under an unknown key, or bound to another row/workspace.

    The message never contains the ciphertext or any part of the secret.
    """


def _ring() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.CREDENTIALS_ENCRYPTION_KEYS])


def encrypt_secret(*, workspace_id: UUID, credential_id: UUID, secret: dict[str, Any]) -> str:
    """Encrypt `secret` (a JSON-able dict) under the first key, bound to workspace and row."""
    payload = {"workspace": str(workspace_id), "credential": str(credential_id), "secret": secret}
    return _ring().encrypt(json.dumps(payload, sort_keys=True).encode()).decode()


def decrypt_secret(*, token: str, workspace_id: UUID, credential_id: UUID) -> dict[str, Any]:
    """The secret inside `token`; CredentialDecryptionError unless it is bound to these ids."""
    try:
        payload = json.loads(_ring().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise CredentialDecryptionError("Broker credential cannot be decrypted.") from None
    if payload.get("workspace") != str(workspace_id) or payload.get("credential") != str(
        credential_id
    ):
        raise CredentialDecryptionError("Broker credential is bound to another row.")
    return payload["secret"]


def seal_credential(credential: BrokerCredential, secret: dict[str, Any]) -> None:
    """Set `credential.encrypted_payload` (not saved) for its own workspace and id."""
    credential.encrypted_payload = encrypt_secret(
        workspace_id=credential.workspace_id, credential_id=credential.pk, secret=secret
    )


def reveal_credential(credential: BrokerCredential) -> dict[str, Any]:
    """Decrypt for the broker gateway only; never pass the result to serializers or strategies."""
    return decrypt_secret(
        token=credential.encrypted_payload,
        workspace_id=credential.workspace_id,
        credential_id=credential.pk,
    )


def rotate_token(token: str) -> str:
    """Re-encrypt `token` under the first key (MultiFernet.rotate); the payload is unchanged."""
    try:
        return _ring().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptionError("Broker credential cannot be decrypted.") from None


def rotate_all_credentials(*, batch_size: int = 500) -> int:
    """Re-encrypt every credential row under the first key; idempotent. Returns the row count.

    This is the one deliberate cross-workspace walk (key rotation is platform-wide); it only
    re-wraps ciphertexts and never looks inside them.
    """
    rotated = 0
    ids = list(BrokerCredential.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            rows = BrokerCredential.objects.select_for_update().filter(
                pk__in=ids[start : start + batch_size]
            )
            for credential in rows:
                credential.encrypted_payload = rotate_token(credential.encrypted_payload)
                credential.save(update_fields=["encrypted_payload"])
                rotated += 1
    return rotated
