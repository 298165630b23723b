"""A worker finds its own platform: the internal URL follows the served address unless set, and
an address is trusted with a session token only when it answers the challenge as this
deployment (the secret lives in the database that web and worker share)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from config.web import follow_served_address as follow_daphne_arguments
from runtimes.instance import (
    PlatformNotFound,
    check_platform_url,
    follow_served_address,
    internal_url,
    prove,
    served_url,
)
from runtimes.models import PlatformInstance
from tests.foreign_server import foreign_server
from tests.plugins.live_server import free_port

CHALLENGE = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8102, "http://127.0.0.1:8102"),
        ("0.0.0.0", 8000, "http://127.0.0.1:8000"),  # noqa: S104
        ("::", 8000, "http://[::1]:8000"),
        ("10.1.2.3", 80, "http://10.1.2.3:80"),
    ],
)
def test_the_served_url_is_reachable_from_this_machine(host, port, url):
    assert served_url(host, port) == url


def test_serve_sets_the_internal_url_to_its_own_address_unless_it_is_set(settings):
    settings.PLATFORM_INTERNAL_URL = ""
    follow_served_address(host="127.0.0.1", port=8102)
    assert settings.PLATFORM_INTERNAL_URL == "http://127.0.0.1:8102"

    settings.PLATFORM_INTERNAL_URL = "http://web:8000"
    follow_served_address(host="127.0.0.1", port=8102)
    assert settings.PLATFORM_INTERNAL_URL == "http://web:8000"


def test_the_web_entry_point_sets_the_internal_url_from_daphnes_bind_and_port(monkeypatch):
    monkeypatch.delenv("PLATFORM_INTERNAL_URL", raising=False)
    arguments = ["--bind", "0.0.0.0", "--port", "8102", "config.asgi:application"]  # noqa: S104
    follow_daphne_arguments(arguments)
    assert os.environ["PLATFORM_INTERNAL_URL"] == "http://127.0.0.1:8102"

    monkeypatch.setenv("PLATFORM_INTERNAL_URL", "http://web:8000")
    follow_daphne_arguments(["--port", "8102", "config.asgi:application"])
    assert os.environ["PLATFORM_INTERNAL_URL"] == "http://web:8000"


def test_an_unset_internal_url_outside_serve_names_the_setting(settings):
    settings.PLATFORM_INTERNAL_URL = ""
    with pytest.raises(PlatformNotFound) as refusal:
        internal_url()
    assert str(refusal.value) == (
        "PLATFORM_INTERNAL_URL is not set and this process serves no HTTP: set "
        "PLATFORM_INTERNAL_URL to the address of this platform's web server "
        "(e.g. http://web:8000)"
    )


@pytest.mark.django_db
def test_the_probe_answers_a_challenge_with_the_deployments_proof_and_refuses_bad_ones(client):
    answer = client.get("/instance", {"challenge": CHALLENGE})

    assert (answer.status_code, answer.json()) == (200, {"proof": prove(CHALLENGE)})
    assert PlatformInstance.objects.count() == 1
    for bad in ("", "xyz", "A" * 32, "0" * 129):
        refused = client.get("/instance", {"challenge": bad})
        assert (refused.status_code, refused.json()["code"]) == (400, "INVALID_VALUE")


@pytest.mark.django_db(transaction=True)
def test_the_served_platform_passes_the_check(daphne_url):
    check_platform_url(daphne_url)


@pytest.fixture
def impostor() -> Iterator[str]:
    with foreign_server({"proof": "0" * 64}) as (url, _):
        yield url


@pytest.mark.django_db
def test_another_instance_or_nothing_at_the_address_fails_the_check_naming_the_setting(
    impostor,
):
    nobody = f"http://127.0.0.1:{free_port()}"
    for url, detail in [
        (impostor, "it answered as another Parity instance"),
        (nobody, "nothing answers: ConnectError"),
    ]:
        with pytest.raises(PlatformNotFound) as refusal:
            check_platform_url(url)
        assert str(refusal.value) == (
            f"PLATFORM_INTERNAL_URL ({url}) does not answer as this Parity instance ({detail}): "
            "set PLATFORM_INTERNAL_URL to the address this platform's web server listens on"
        )
