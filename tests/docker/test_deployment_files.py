"""The deployment files: no Docker engine runs here, so check what can be checked offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
ENTRYPOINT = (ROOT / "docker" / "entrypoint.sh").read_text()


def entrypoint_roles() -> dict[str, str]:
    """Each `role)` branch of entrypoint.sh mapped to the program its exec line starts."""
    roles = {}
    for role, body in re.findall(r"^  (\w+)\)\n(.*?);;", ENTRYPOINT, flags=re.M | re.S):
        roles[role] = re.findall(r"exec (\S+)", body)[0]
    return roles


def test_compose_has_the_five_services_with_health_checks() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"], name


def test_compose_keeps_state_in_named_volumes() -> None:
    assert set(COMPOSE["volumes"]) == {"postgres-data", "redis-data", "parity-data"}
    assert "postgres-data:/var/lib/postgresql/data" in COMPOSE["services"]["postgres"]["volumes"]
    for name in ("web", "worker", "beat"):
        assert "parity-data:/var/lib/parity" in COMPOSE["services"][name]["volumes"]


def test_every_service_command_is_an_entry_point_of_the_image() -> None:
    roles = entrypoint_roles()
    assert set(roles) == {"web", "worker", "beat", "migrate"}
    for name in ("web", "worker", "beat"):
        assert COMPOSE["services"][name]["command"][0] in roles


def test_every_program_an_entry_point_starts_is_installed() -> None:
    programs = set(entrypoint_roles().values())
    assert programs == {"python", "celery"}
    venv_bin = Path(sys.executable).parent
    for program in programs - {"python"}:
        assert (venv_bin / program).exists() or shutil.which(program), program


def test_the_web_role_runs_daphne_through_the_platform_s_loop_setup() -> None:
    assert "exec python -m config.web --bind 0.0.0.0" in ENTRYPOINT
    result = subprocess.run([sys.executable, "-m", "config.web", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    assert result.returncode == 0, result.stderr
    assert "usage: daphne" in result.stdout


def test_the_celery_entry_points_resolve_their_app_and_scheduler() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');"
            "django.setup(); from config.celery import app;"
            "from django_celery_beat.schedulers import DatabaseScheduler; print(app.main)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "parity", result.stderr


def test_the_image_is_slim_and_runs_as_a_non_root_user() -> None:
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, flags=re.M)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["/app/docker/entrypoint.sh"\]', DOCKERFILE, flags=re.M)


def test_the_production_services_run_in_production_mode_with_required_secrets() -> None:
    environment = COMPOSE["x-parity"]["environment"]
    assert environment["PARITY_MODE"] == "production"
    for secret in ("SECRET_KEY", "API_KEY_PEPPER", "CREDENTIALS_ENCRYPTION_KEYS"):
        assert ":?" in environment[secret], f"{secret} must be required, not defaulted"
