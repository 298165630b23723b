"""Hosted backtests without running them: session tokens, the refusal when no sandbox is
available, the management API (/backtests), the dashboard's "Run a backtest" form and the logs
of a run, the slot pool. (The runs themselves: tests/runtimes/shell/test_hosted_backtests.py.)"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from config.errors import ApiError
from runtimes.models import SessionToken, Source, State, TradingSession
from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime
from runtimes.transport.access import socket_grant
from runtimes.transport.authentication import (
    authenticate_session_token,
    mint_session_token,
    revoke_session_tokens,
)

pytestmark = pytest.mark.django_db


def may_connect(raw: str | None, session_id: str) -> bool:
    """Whether the strategy socket's handshake with `raw` would be accepted."""
    return socket_grant(raw, session_id) is not None


UNAVAILABLE = SandboxSupport(False, "bubblewrap is not installed (/usr/bin/bwrap not found)")


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                   filename="main.py", content=b"import tektii\nprint('hi')\n")


@pytest.fixture
def no_sandbox(monkeypatch):
    """The probe says bubblewrap cannot run on this machine."""
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(), UNAVAILABLE)


@pytest.fixture
def with_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))


def hosted_session(owner, workspace, dataset, version, **fields):
    return TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=version, **fields)


# -- session tokens ------------------------------------------------------------------------------


def test_a_session_token_has_the_redacted_format_and_authenticates_as_its_session(
    owner, workspace, dataset, version
):
    from config.logging import RedactSecretsFilter

    session = hosted_session(owner, workspace, dataset, version)
    raw = mint_session_token(session=session, lifetime=timedelta(hours=1))

    assert re.fullmatch(r"pst_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}", raw)
    token = authenticate_session_token(raw)
    assert (token.session, token.session.created_by) == (session, owner)
    assert raw not in SessionToken.objects.values_list("hashed_secret", flat=True)[0]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"token {raw}", None, None)
    RedactSecretsFilter().filter(record)
    assert raw not in record.getMessage()


def test_a_revoked_expired_or_altered_session_token_authenticates_nobody(
    owner, workspace, dataset, version
):
    session = hosted_session(owner, workspace, dataset, version)
    revoked = mint_session_token(session=session, lifetime=timedelta(hours=1))
    revoke_session_tokens(session=session)
    expired = mint_session_token(session=session, lifetime=timedelta(seconds=1),
                                 now=timezone.now() - timedelta(minutes=1))
    live = mint_session_token(session=session, lifetime=timedelta(hours=1))

    assert authenticate_session_token(revoked) is None
    assert authenticate_session_token(expired) is None
    assert authenticate_session_token(live[:-1] + ("a" if live[-1] != "a" else "b")) is None
    assert authenticate_session_token(live) is not None


def test_the_management_api_refuses_a_session_token(api_client, owner, workspace, dataset,
                                                     version):
    raw = mint_session_token(session=hosted_session(owner, workspace, dataset, version),
                             lifetime=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert api_client.get(f"/api/v1/workspaces/{workspace.pk}/backtests").status_code == 401


def test_a_session_token_reaches_its_own_session_only(api_client, owner, workspace, dataset,
                                                       version):
    from runtimes.transport.consumers import header_key

    own = hosted_session(owner, workspace, dataset, version, state=State.WAITING)
    other = hosted_session(owner, workspace, dataset, version, state=State.WAITING)
    raw = mint_session_token(session=own, lifetime=timedelta(hours=1))

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.get(f"/sessions/{own.id}/health").status_code == 200
    assert api_client.get(f"/sessions/{other.id}/v1/session").status_code == 404
    api_client.credentials(HTTP_X_API_KEY=raw)
    assert api_client.get(f"/sessions/{other.id}/v1/account").status_code == 404
    raw_header = header_key({b"authorization": f"Bearer {raw}".encode()})
    assert (may_connect(raw_header, str(own.id)), may_connect(raw_header, str(other.id))) == (
        True, False)
    revoke_session_tokens(session=own)
    assert api_client.get(f"/sessions/{own.id}/v1/session").status_code == 401
    assert may_connect(raw_header, str(own.id)) is False


def test_a_cached_session_token_sees_its_sessions_state_change_at_once(
    api_client, owner, workspace, dataset, version
):
    session = hosted_session(owner, workspace, dataset, version, state=State.WAITING)
    raw = mint_session_token(session=session, lifetime=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.get(f"/sessions/{session.id}/health").json()["status"] == "connected"
    assert api_client.get(f"/sessions/{session.id}/health").json()["status"] == "connected"
    assert may_connect(raw, str(session.id)) is True

    assert session.finish(to=State.COMPLETED, now=timezone.now())

    assert api_client.get(f"/sessions/{session.id}/health").json()["status"] == "degraded"
    assert may_connect(raw, str(session.id)) is False
    assert authenticate_session_token(raw).session.state == State.COMPLETED


# -- refusal without a sandbox -------------------------------------------------------------------


def test_hosted_backtests_are_refused_without_a_sandbox_unless_development_allows_them(
    no_sandbox, settings, owner, workspace, dataset, version
):
    from runtimes.services import create_hosted_backtest

    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    with pytest.raises(ApiError) as refused:
        create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                               dataset=dataset)
    assert (refused.value.error_code, refused.value.status_code) == ("SANDBOX_UNAVAILABLE", 400)
    assert "bubblewrap is not installed" in refused.value.message
    assert not TradingSession.objects.exists()

    settings.SANDBOX_ALLOW_UNSANDBOXED = True
    session = create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                                     dataset=dataset, params={"fast": 5})
    assert (session.source, session.strategy_version, session.params, session.sandboxed) == (
        "hosted", version, {"fast": 5}, None)


def test_production_refuses_unsandboxed_runs() -> None:
    from tests.config.test_settings import production_env_from_example, run_manage

    result = run_manage("check", env={**production_env_from_example(),
                                      "SANDBOX_ALLOW_UNSANDBOXED": "1"})

    assert "SANDBOX_ALLOW_UNSANDBOXED must be off when PARITY_MODE=production" in result.stderr


# -- management API ------------------------------------------------------------------------------


def test_the_api_creates_lists_and_shows_a_hosted_backtest(
    with_sandbox, api_client, owner, workspace, dataset, version
):
    api_client.force_login(owner)
    base = f"/api/v1/workspaces/{workspace.pk}/backtests"

    created = api_client.post(base, {
        "version": str(version.pk), "dataset": str(dataset.pk), "symbols": ["BTCUSDT"],
        "from": "2021-04-01T00:00:00Z", "initial_cash": "5000",
        "commission": {"percent": "0.1"}, "slippage_bps": "2", "params": {"fast": 5},
    }, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in ("source", "state", "strategy", "version", "params", "sandboxed",
                                 "progress", "initial_cash", "commission", "slippage_bps")} == {
        "source": "hosted", "state": "queued", "strategy": str(version.strategy_id),
        "version": 1, "params": {"fast": 5}, "sandboxed": None, "progress": 0.0,
        "initial_cash": "5000", "commission": {"percent": "0.1"}, "slippage_bps": "2"}
    assert [row["id"] for row in api_client.get(base).json()] == [body["id"]]
    shown = api_client.get(f"{base}/{body['id']}").json()
    assert (shown["output"], shown["output_tail"], shown["output_truncated_bytes"]) == ("", "", 0)


def test_the_api_answers_a_refusal_a_foreign_version_and_bad_symbols_with_their_codes(
    no_sandbox, api_client, owner, workspace, dataset, version, stranger, stranger_workspace,
    settings
):
    from strategies.services import upload_strategy_version

    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    api_client.force_login(owner)
    base = f"/api/v1/workspaces/{workspace.pk}/backtests"
    foreign = upload_strategy_version(workspace=stranger_workspace, author=stranger,
                                      strategy="theirs", filename="main.py", content=b"x = 1\n")

    refused = api_client.post(base, {"version": str(version.pk), "dataset": str(dataset.pk)},
                              format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "SANDBOX_UNAVAILABLE")
    assert refused.json()["details"] == {"reason": UNAVAILABLE.reason}
    settings.SANDBOX_ALLOW_UNSANDBOXED = True
    assert api_client.post(base, {"version": str(foreign.pk), "dataset": str(dataset.pk)},
                           format="json").status_code == 404
    bad = api_client.post(base, {"version": str(version.pk), "dataset": str(dataset.pk),
                                 "symbols": ["ETHUSDT"]}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_VALUE")


def test_progress_is_the_share_of_simulated_time_done(owner, workspace, dataset, version,
                                                       monkeypatch):
    from runtimes import services
    from runtimes.hosting.bus import Reply

    first = dataset.files.get().first_timestamp  # 300 one-minute bars: 299 minutes of time
    simulated = (first + timedelta(minutes=115)).isoformat().replace("+00:00", "Z")

    class Bus:
        def request(self, session_id, command, *, timeout):
            assert command["op"] == "session"
            return Reply(200, {"simulated_time": simulated})

    monkeypatch.setattr(services, "get_bus", Bus)
    session = hosted_session(owner, workspace, dataset, version, state=State.RUNNING)

    assert services.backtest_progress(session) == round(115 / 299, 4) == 0.3846
    session.state = State.COMPLETED
    assert services.backtest_progress(session) == 1.0
    session.state = State.CANCELLED
    assert services.backtest_progress(session) is None


# -- dashboard -----------------------------------------------------------------------------------


def test_the_version_page_offers_a_backtest_whose_form_keeps_errors_and_then_starts_it(
    with_sandbox, sign_in, owner, workspace, dataset, version
):
    client = sign_in(owner, workspace)
    page = client.get(reverse("version_detail", args=[version.strategy_id, 1])).content.decode()
    new = reverse("backtest_new", args=[version.pk])
    assert f'href="{new}"' in page and "Run a backtest" in page
    form = client.get(new).content.decode()
    assert 'value="100000"' in form and "bubblewrap sandbox" in form

    kept = client.post(new, {"dataset": dataset.pk, "initial_cash": "5000",
                             "commission_percent": "0.1", "slippage_bps": "0",
                             "params": "{not json"}).content.decode()
    assert "Not valid JSON" in kept and 'value="5000"' in kept and "{not json" in kept
    wrong = client.post(new, {"dataset": dataset.pk, "symbols": "ETHUSDT", "initial_cash": "5000",
                              "commission_percent": "0", "slippage_bps": "0", "params": "{}"})
    assert "The dataset has no data for ETHUSDT; its symbols are BTCUSDT." in (
        wrong.content.decode())

    started = client.post(new, {"dataset": dataset.pk, "symbols": "BTCUSDT",
                                "initial_cash": "5000", "commission_percent": "0.1",
                                "slippage_bps": "1", "params": '{"fast": 5}'})
    session = TradingSession.objects.get()
    assert started.status_code == 302
    assert started["Location"] == reverse("backtest_detail", args=[session.pk])
    assert (session.strategy_version, session.params, session.commission,
            session.initial_cash) == (version, {"fast": 5}, {"percent": "0.1"}, Decimal(5000))


def test_the_form_says_when_hosted_runs_are_refused(no_sandbox, settings, sign_in, owner,
                                                    workspace, dataset, version):
    settings.SANDBOX_ALLOW_UNSANDBOXED = False
    client = sign_in(owner, workspace)
    new = reverse("backtest_new", args=[version.pk])

    answer = client.post(new, {"dataset": dataset.pk, "initial_cash": "1000",
                               "commission_percent": "0", "slippage_bps": "0", "params": "{}"})

    text = answer.content.decode()
    assert "Hosted runs are refused on this platform: bubblewrap is not installed" in text
    assert "Hosted runs are refused here: bubblewrap is not installed" in text
    assert not TradingSession.objects.exists()


REFUSED_ON_THE_DASHBOARD = (
    "Hosted runs are refused on this machine: bubblewrap is not installed (/usr/bin/bwrap not "
    "found). They run in the bubblewrap sandbox: install it with "
    "<code>sudo apt-get install -y bubblewrap</code> and restart the platform. Remote sessions "
    "(the SDK on your machine, with an API key) work without it."
)


def test_the_dashboard_says_at_once_when_hosted_runs_are_refused_and_how_to_fix_it(
    no_sandbox, settings, sign_in, owner, workspace
):
    settings.SANDBOX_ALLOW_UNSANDBOXED = False

    page = sign_in(owner, workspace).get(reverse("dashboard")).content.decode()

    assert REFUSED_ON_THE_DASHBOARD in page


def test_the_dashboard_says_nothing_of_the_sandbox_when_hosted_runs_work(
    with_sandbox, sign_in, owner, workspace
):
    page = sign_in(owner, workspace).get(reverse("dashboard")).content.decode()

    assert "Hosted runs are" not in page and "bubblewrap" not in page


def test_the_dashboard_says_when_hosted_runs_go_unsandboxed_in_development(
    no_sandbox, settings, sign_in, owner, workspace
):
    settings.SANDBOX_ALLOW_UNSANDBOXED = True

    page = sign_in(owner, workspace).get(reverse("dashboard")).content.decode()

    assert (
        "Hosted runs are <strong>unsandboxed</strong> on this development machine: bubblewrap "
        "is not installed (/usr/bin/bwrap not found). They run in the bubblewrap sandbox: "
        "install it with <code>sudo apt-get install -y bubblewrap</code> and restart the "
        "platform."
    ) in page


def test_a_failed_hosted_run_shows_its_strategy_sandbox_reason_and_logs(
    sign_in, owner, workspace, dataset, version
):
    session = hosted_session(
        owner, workspace, dataset, version, state=State.FAILED, sandboxed=True,
        failure_reason="strategy: exited with code 1", output="strategy booting\n" + "x" * 10,
        output_tail="Traceback (most recent call last):\nRuntimeError: boom",
        output_truncated_bytes=1234)

    text = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[session.pk])).content.decode()

    assert "SMA v1" in text and "Hosted in the bubblewrap sandbox" in text
    assert ("Your strategy exited with code 1 after printing “RuntimeError: boom”."
            in text)
    assert "RuntimeError: boom" in text and "truncated 1234 bytes" in text
    logs = reverse("backtest_logs", args=[session.pk])
    assert f'hx-get="{logs}"' in text and "strategy booting" not in text  # loaded when opened
    assert "strategy booting\nxxxxxxxxxx" in sign_in(owner, workspace).get(logs).content.decode()


# -- slots ---------------------------------------------------------------------------------------


def test_the_slot_pool_hands_out_distinct_slots_and_reuses_released_ones(tmp_path):
    from runtimes.hosting.hosted import SlotPool

    pool = SlotPool(tmp_path, size=2)
    (first, first_fd), (second, second_fd) = pool.acquire(), pool.acquire()
    assert (first, second) == (0, 1)
    with pytest.raises(RuntimeError, match="all 2 sandbox slots are busy"):
        pool.acquire()
    pool.release(first_fd)
    again, again_fd = pool.acquire()
    assert again == 0
    pool.release(again_fd)
    pool.release(second_fd)
