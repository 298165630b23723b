"""Settings: strict parsing of the environment, production refusals, `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "PARITY_", "SECRET_KEY", "DJANGO_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env_from_example() -> dict[str, str]:
    """The production settings documented in .env.example, with real secrets filled in."""
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
    values["SECRET_KEY"] = "k" + Fernet.generate_key().decode() + "-long-enough-random-secret"
    values["API_KEY_PEPPER"] = Fernet.generate_key().decode()
    values["CREDENTIALS_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    values["PARITY_DATA_DIR"] = "/tmp/parity-settings-test"
    values["STATIC_ROOT"] = "/tmp/parity-settings-test/static"
    return values


class TestEnv:
    def test_bool_accepts_the_usual_spellings(self) -> None:
        env = Env({"A": "yes", "B": "0", "C": " True "})
        assert (env.bool("A"), env.bool("B"), env.bool("C"), env.bool("D", True)) == (
            True,
            False,
            True,
            True,
        )

    def test_bool_refuses_anything_else_naming_the_variable(self) -> None:
        with pytest.raises(
            ImproperlyConfigured, match=r"DJANGO_DEBUG must be one of .* got 'maybe'"
        ):
            Env({"DJANGO_DEBUG": "maybe"}).bool("DJANGO_DEBUG")

    def test_int_refuses_words_and_values_below_the_minimum(self) -> None:
        with pytest.raises(
            ImproperlyConfigured, match="EMAIL_PORT must be a whole number; got 'x'"
        ):
            Env({"EMAIL_PORT": "x"}).int("EMAIL_PORT", 25)
        with pytest.raises(ImproperlyConfigured, match="must be at least 1; got 0"):
            Env({"LOGIN_THROTTLE_ATTEMPTS": "0"}).int("LOGIN_THROTTLE_ATTEMPTS", 5, minimum=1)

    def test_choice_lists_the_allowed_values(self) -> None:
        with pytest.raises(
            ImproperlyConfigured,
            match="PARITY_MODE must be one of development, production; got 'prod'",
        ):
            Env({"PARITY_MODE": "prod"}).choice("PARITY_MODE", ("development", "production"), "x")

    def test_url_checks_the_scheme_without_echoing_the_value(self) -> None:
        with pytest.raises(ImproperlyConfigured) as caught:
            Env({"DATABASE_URL": "mysql://root:hunter2@db/x"}).url("DATABASE_URL", ("postgres",))
        assert "hunter2" not in str(caught.value)
        assert "scheme 'mysql'" in str(caught.value)

    def test_list_splits_on_commas_and_drops_blanks(self) -> None:
        assert Env({"H": "a.example, b.example,,"}).list("H") == ["a.example", "b.example"]


class TestStartup:
    def test_production_refuses_the_development_secret_key(self) -> None:
        env = production_env_from_example()
        del env["SECRET_KEY"]
        result = run_manage("check", env=env)
        assert result.returncode != 0
        assert "SECRET_KEY must be set to a secret of your own" in result.stderr

    def test_production_refuses_placeholder_secrets(self) -> None:
        env = production_env_from_example()
        env["API_KEY_PEPPER"] = "change-me-to-another-long-random-string-0123456789"
        result = run_manage("check", env=env)
        assert "API_KEY_PEPPER must be set to a secret of your own" in result.stderr

    def test_a_malformed_encryption_key_is_refused_without_echoing_it(self) -> None:
        env = production_env_from_example()
        env["CREDENTIALS_ENCRYPTION_KEYS"] = f"{Fernet.generate_key().decode()},notakey-secretvalue"
        result = run_manage("check", env=env)
        assert "CREDENTIALS_ENCRYPTION_KEYS: key 2 is not a Fernet key" in result.stderr
        assert "notakey-secretvalue" not in result.stderr

    def test_production_needs_postgres_and_redis(self) -> None:
        env = production_env_from_example()
        del env["REDIS_URL"]
        result = run_manage("check", env=env)
        assert (
            "PARITY_MODE=production needs DATABASE_URL (PostgreSQL) and REDIS_URL" in result.stderr
        )

    def test_production_refuses_debug(self) -> None:
        env = {**production_env_from_example(), "DJANGO_DEBUG": "1"}
        result = run_manage("check", env=env)
        assert "DJANGO_DEBUG must be off when PARITY_MODE=production" in result.stderr

    def test_check_deploy_is_clean_under_the_documented_production_settings(self) -> None:
        result = run_manage(
            "check", "--deploy", "--fail-level", "WARNING", env=production_env_from_example()
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "System check identified no issues (0 silenced)." in result.stdout

    def test_embedded_defaults_need_nothing_set(self) -> None:
        result = run_manage("check", env={"PARITY_DATA_DIR": "/tmp/parity-settings-test"})
        assert result.returncode == 0, result.stderr
