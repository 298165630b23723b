"""Shared pytest fixtures for the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest


def _sqlite_test_database_files() -> list[Path]:
    from django.conf import settings

    database = settings.DATABASES["default"]
    name = database.get("TEST", {}).get("NAME")
    if not database["ENGINE"].endswith("sqlite3") or not name:
        return []
    return [Path(f"{name}{suffix}") for suffix in ("", "-wal", "-shm")]


def pytest_sessionstart(session: pytest.Session) -> None:
    # A killed run leaves its SQLite test database's -wal and -shm behind; SQLite would replay
    # that stale log into the next run's fresh file.
    for path in _sqlite_test_database_files():
        path.unlink(missing_ok=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # pytest-django removes the database file; its log and index go with it.
    for path in _sqlite_test_database_files()[1:]:
        path.unlink(missing_ok=True)

# =============================================================================================
# Accounts personas (owned by the accounts app; other apps reuse them).
#
#   owner     owns the shared workspace `workspace` ("Acme")
#   teammate  a member of `workspace`
#   viewer    a viewer of `workspace`
#   stranger  someone from another workspace (`stranger_workspace`, their personal one)
#
# Every persona also has a personal workspace (sign-up creates it). Passwords are PASSWORD.
# =============================================================================================

PASSWORD = "correct-horse-battery-staple"
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fast_password_hasher(settings):
    # PBKDF2's deliberate slowness is a production property; tests need many users quickly.
    settings.PASSWORD_HASHERS = FAST_HASHERS


def _persona(email: str):
    from accounts.services import sign_up

    return sign_up(email=email, password=PASSWORD)


@pytest.fixture
def owner(db, fast_password_hasher):
    return _persona("owner@example.com")


@pytest.fixture
def workspace(owner):
    from accounts.services import create_workspace

    return create_workspace(owner=owner, name="Acme")


@pytest.fixture
def teammate(workspace):
    from accounts.models import Membership, Role

    user = _persona("teammate@example.com")
    Membership.objects.create(workspace=workspace, user=user, role=Role.MEMBER)
    return user


@pytest.fixture
def viewer(workspace):
    from accounts.models import Membership, Role

    user = _persona("viewer@example.com")
    Membership.objects.create(workspace=workspace, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def stranger(db, fast_password_hasher):
    return _persona("stranger@example.com")


@pytest.fixture
def stranger_workspace(stranger):
    from accounts.models import Workspace

    return Workspace.objects.for_user(stranger).get(personal=True)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def make_api_key():
    """make_api_key(user, workspace, scopes=("read",), **kw) -> (ApiKey, plaintext)."""
    from accounts.services import create_api_key

    def make(user, workspace, scopes=("read",), name="test key", **kwargs):
        return create_api_key(workspace=workspace, created_by=user, name=name,
                              scopes=list(scopes), **kwargs)

    return make


@pytest.fixture
def sign_in(client):
    """sign_in(user, workspace) -> the test client, logged in with `workspace` as current."""
    from accounts.current import SESSION_KEY

    def sign(user, workspace):
        client.force_login(user)
        session = client.session
        session[SESSION_KEY] = str(workspace.pk)
        session.save()
        return client

    return sign


# ============================ end of the accounts section ====================================


@pytest.fixture(autouse=True)
def _private_file_storage(settings, tmp_path):
    """Uploads (strategy versions, datasets) and parsed dataset files go to this test's own
    folder, never to ./var."""
    settings.BAR_CACHE_DIR = tmp_path / "bar-cache"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "files")}},
    }
    return tmp_path / "files"
