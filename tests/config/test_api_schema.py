"""The management API's OpenAPI schema (/api/schema/) says what the API answers.

Schemathesis generates valid and invalid requests to every operation, in process, authenticated
as the workspace's owner with ids of real objects in the path: no answer is a 5xx, and each is
one the schema documents (status code, content type, body). The error statuses every operation
shares come from config/api_schema.py.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.runtimes.connections import stored_connection
from tests.runtimes.results import completed_session, synthetic_result
from tests.runtimes.schedules.conftest import daily_bars

# 15 valid or invalid requests to each of 66 operations: about 45 s on SQLite.
EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def requests_share_the_test_transaction() -> Iterator[None]:
    # As Django's test client does: the WSGI handler would otherwise close the connection that
    # holds the test's transaction at the start and end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def throttle_out_of_the_way(settings) -> None:
    # The fuzzer sends more than a key's fair-use rate: 429 is documented but would hide the rest.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "1000000/min"},
    }


@pytest.fixture
def brokers_nowhere(request) -> None:
    # A connection the fuzzer adds is checked with the broker first: never Alpaca itself, but a
    # local port nobody listens on (refused at once: 400, as documented).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    urls = {"trading": f"http://127.0.0.1:{port}"}
    django_settings = request.getfixturevalue("settings")  # `settings` is hypothesis's here
    django_settings.BROKER_URLS = {"alpaca-paper": urls, "alpaca-live": urls}


@pytest.fixture
def api_schema(db, throttle_out_of_the_way, requests_share_the_test_transaction,
               brokers_nowhere):
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def owner_key(owner, workspace, make_api_key) -> str:
    _, plaintext = make_api_key(owner, workspace, scopes=("read", "trade:paper", "trade:live"))
    return plaintext


@pytest.fixture
def known_ids(owner, workspace, teammate, make_api_key) -> dict[str, str]:
    """One object of each kind in the owner's workspace, by the path parameter naming it: a
    version, a dataset, a schedule, a finished hosted backtest, a spare key, the teammate, a
    deployment, a broker connection, an invitation."""
    from accounts.services import invite_member
    from runtimes.deployments import create_deployment
    from runtimes.models import Source
    from runtimes.schedules.services import create_schedule
    from runtimes.transport.share_links import create_share_link
    from strategies.services import upload_dataset, upload_strategy_version

    version = upload_strategy_version(
        workspace=workspace,
        author=owner,
        strategy="Momentum",
        filename="main.py",
        content=b"import tektii\n",
    )
    dataset = upload_dataset(
        workspace=workspace, by=owner, name="SPY daily", files={"SPY": ("SPY.csv", daily_bars())}
    )
    schedule = create_schedule(
        workspace=workspace,
        created_by=owner,
        name="nightly",
        version=version,
        dataset=dataset,
        cron_expression="0 6 * * 1-5",
        rolling_days=10,
    )
    session = completed_session(
        workspace=workspace,
        by=owner,
        dataset=dataset,
        source=Source.HOSTED,
        strategy_version=version,
    )
    synthetic_result(session, trades=3)
    link, _ = create_share_link(session=session, created_by=owner, api_key=None)
    spare_key, _ = make_api_key(owner, workspace, name="revoked by the fuzzer")
    invitation, _ = invite_member(workspace=workspace, invited_by=owner,
                                  email="invited@example.com", role="viewer")
    deployment = create_deployment(
        workspace=workspace, created_by=owner, role="owner", name="paper", platform="mock",
        version=version, symbols=["SPY"], timeframes=["1d"])
    connection = stored_connection(workspace, owner)
    return {
        "workspace_id": str(workspace.pk),
        "strategy_id": str(version.strategy_id),
        "number": "1",
        "dataset_id": str(dataset.pk),
        "schedule_id": str(schedule.pk),
        "session_id": str(session.pk),
        "key_id": str(spare_key.pk),
        "member_id": str(workspace.memberships.get(user=teammate).pk),
        "link_id": str(link.pk),
        "deployment_id": str(deployment.pk),
        "connection_id": str(connection.pk),
        "invitation_id": str(invitation.pk),
    }


def failures_of(operation: Any, *, ids: dict[str, str], headers: dict[str, str]) -> list[str]:
    """What goes wrong over EXAMPLES_PER_OPERATION valid and invalid requests to `operation`
    (the first failing example of each kind, shrunk)."""
    named = set(re.findall(r"{(\w+)}", operation.path))
    in_path = {name: value for name, value in ids.items() if name in named}
    cases = st.one_of(
        *(operation.as_strategy(mode, path_parameters=in_path) for mode in GenerationMode)
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        exercise()
    except FailureGroup as group:
        return [
            f"{operation.label}: {failure.title}: {failure.message}" for failure in group.exceptions
        ]
    except Failure as failure:
        return [f"{operation.label}: {failure.title}: {failure.message}"]
    return []


def test_every_operation_answers_what_the_schema_documents_and_never_a_5xx(
    api_schema, known_ids, owner_key
) -> None:
    headers = {"Authorization": f"Bearer {owner_key}"}
    # Deletions last, so that the operations on what they delete run on it first.
    operations = sorted(
        (result.ok() for result in api_schema.get_all_operations()),
        key=lambda operation: operation.method.upper() == "DELETE",
    )
    failures = [
        failure
        for operation in operations
        for failure in failures_of(operation, ids=known_ids, headers=headers)
    ]
    assert len(operations) == 77
    assert failures == [], "\n".join(failures)


# --- what the schema says, exactly --------------------------------------------------------------


@pytest.fixture
def openapi(db) -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _responses(openapi: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return openapi["paths"][path][method]["responses"]


def _body_schema(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"]["application/json"]["schema"]


SESSIONS = "/api/v1/workspaces/{workspace_id}/sessions"
BACKTESTS = "/api/v1/workspaces/{workspace_id}/backtests"
STRATEGIES = "/api/v1/workspaces/{workspace_id}/strategies/"


def test_the_session_and_backtest_lists_are_arrays(openapi) -> None:
    for path in (SESSIONS, BACKTESTS):
        assert _body_schema(_responses(openapi, path, "get")["200"])["type"] == "array"


def test_a_strategy_without_versions_has_a_null_latest_version(openapi) -> None:
    strategy = openapi["components"]["schemas"]["Strategy"]["properties"]["latest_version"]
    assert strategy["nullable"] is True


def test_every_error_is_documented_as_the_envelope(openapi) -> None:
    assert openapi["components"]["schemas"]["Error"]["required"] == ["code", "message", "details"]
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
            assert {"401", "403", "405", "406", "429", "431"} <= errors.keys(), (method, path)
            for response in errors.values():
                assert _body_schema(response) == {"$ref": "#/components/schemas/Error"}


def test_operations_document_the_errors_their_input_and_path_can_cause(openapi) -> None:
    assert {"400", "404", "413", "415"} <= _responses(openapi, STRATEGIES, "post").keys()
    assert "400" not in _responses(openapi, "/api/v1/workspaces/", "get")
    assert "404" not in _responses(openapi, "/api/v1/workspaces/", "get")
    assert "413" not in _responses(openapi, SESSIONS, "get")
