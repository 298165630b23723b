"""Broker credentials: encrypted at rest, bound to workspace and row, rotatable, never shown."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.sites import AdminSite
from django.core.management import call_command
from django.test import RequestFactory

from accounts.admin import BrokerCredentialAdmin
from accounts.crypto import CredentialDecryptionError, reveal_credential
from accounts.models import BrokerCredential
from accounts.services import store_broker_credential

SECRET = {"api_key": "AKTESTKEY123", "api_secret": "very-secret-broker-value"}


@pytest.fixture
def credential(owner, workspace):
    return store_broker_credential(workspace=workspace, by=owner, platform="alpaca-paper",
                                   label="Paper account", secret=SECRET)


def test_credentials_round_trip_and_the_row_holds_no_plaintext(credential):
    stored = BrokerCredential.objects.get(pk=credential.pk)
    assert reveal_credential(stored) == SECRET
    assert "very-secret-broker-value" not in stored.encrypted_payload
    assert "AKTESTKEY123" not in stored.encrypted_payload


def test_a_ciphertext_moved_to_another_workspace_is_rejected(credential, stranger,
                                                             stranger_workspace):
    theirs = store_broker_credential(workspace=stranger_workspace, by=stranger,
                                     platform="alpaca-paper", label="mine", secret={"k": "v"})
    BrokerCredential.objects.filter(pk=theirs.pk).update(
        encrypted_payload=credential.encrypted_payload)

    with pytest.raises(CredentialDecryptionError) as error:
        reveal_credential(BrokerCredential.objects.get(pk=theirs.pk))
    assert "very-secret" not in str(error.value)


def test_a_ciphertext_moved_to_another_row_of_the_same_workspace_is_rejected(credential, owner,
                                                                             workspace):
    other = store_broker_credential(workspace=workspace, by=owner, platform="binance-testnet",
                                    label="other", secret={"k": "v"})
    other.encrypted_payload = credential.encrypted_payload
    with pytest.raises(CredentialDecryptionError):
        reveal_credential(other)


def test_a_tampered_ciphertext_is_rejected(credential):
    token = credential.encrypted_payload
    credential.encrypted_payload = token[:-6] + ("AAAAAA" if token[-6:] != "AAAAAA" else "BBBBBB")
    with pytest.raises(CredentialDecryptionError):
        reveal_credential(credential)


def test_only_owners_store_credentials(teammate, workspace):
    from rest_framework.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        store_broker_credential(workspace=workspace, by=teammate, platform="alpaca-paper",
                                label="x", secret={"k": "v"})


def test_rotation_re_encrypts_every_row_under_the_first_key(credential, settings, capsys):
    old_key = settings.CREDENTIALS_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, old_key]
    before = BrokerCredential.objects.get(pk=credential.pk).encrypted_payload

    call_command("rotate_credentials_keys")

    assert "Re-encrypted 1 broker credential(s)." in capsys.readouterr().out
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]
    rotated = BrokerCredential.objects.get(pk=credential.pk)
    assert rotated.encrypted_payload != before
    assert reveal_credential(rotated) == SECRET
    settings.CREDENTIALS_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(CredentialDecryptionError):
        reveal_credential(rotated)


def test_admin_and_repr_never_show_the_ciphertext(credential, owner):
    request = RequestFactory().get("/")
    request.user = owner
    model_admin = BrokerCredentialAdmin(BrokerCredential, AdminSite())
    assert "encrypted_payload" not in model_admin.get_fields(request, credential)
    assert credential.encrypted_payload not in repr(credential) + str(credential)
