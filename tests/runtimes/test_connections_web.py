"""The dashboard's broker connections page (/app/connections/): the list with each connection's
health, the add form (checked against the fake Alpaca; a refusal is a form error, the keys never
rendered back), deletion behind a confirmation, owners only; and live deployments marked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import BrokerCredential
from runtimes import deployments
from runtimes.core.connection import ConnectionHealth
from runtimes.hosting import brokers
from runtimes.hosting.brokers import DatabaseHealthSink
from runtimes.hosting.risk import RiskLimits
from runtimes.models import TradingSession
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.server import KEY_ID as BINANCE_KEY_ID
from tests.fakes.binance.server import SECRET as BINANCE_SECRET
from tests.runtimes.connections import deployment_started_on, stored_connection

pytestmark = pytest.mark.django_db

WRONG_SECRET = "not-the-secret-but-close-000000000000000"
FORM = {"label": "Paper", "platform": "alpaca-paper", "key_id": KEY_ID, "secret": SECRET,
        "feed": "sip"}
PAGE = reverse("connection_list")


@pytest.fixture
def alpaca(settings):
    with FakeAlpaca() as fake:
        settings.BROKER_URLS = {p: dict(fake.urls) for p in ("alpaca-paper", "alpaca-live")}
        yield fake


def test_an_owner_adds_a_connection_and_sees_it_listed(sign_in, owner, workspace, alpaca):
    response = sign_in(owner, workspace).post(PAGE, FORM, follow=True)

    page = response.content.decode()
    credential = BrokerCredential.objects.get()
    assert (credential.label, credential.options) == ("Paper", {"feed": "sip"})
    assert "Connection &#x27;Paper&#x27; added: the broker accepted its keys." in page
    assert "<code>…WXYZ</code>" in page and "SIP" in page
    assert SECRET not in page and KEY_ID not in page


def test_wrong_keys_are_a_form_error_and_the_keys_are_not_rendered_back(sign_in, owner,
                                                                        workspace, alpaca):
    response = sign_in(owner, workspace).post(PAGE, {**FORM, "secret": WRONG_SECRET})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Alpaca refused these keys (40" in page
    assert WRONG_SECRET not in page and KEY_ID not in page
    assert not BrokerCredential.objects.exists()


def test_the_list_shows_health_and_marks_live_connections(sign_in, owner, workspace):
    credential = stored_connection(workspace, owner, platform="alpaca-live", label="Real money")
    DatabaseHealthSink(str(credential.pk)).report(ConnectionHealth(
        last_success_at=datetime(2026, 12, 7, 14, 30, tzinfo=UTC), rate_limit_remaining=187,
        streams={"trade_updates": "connected", "market_data": "reconnecting"},
        last_error="The market data stream dropped; reconnecting.", circuit_breaker="closed"))

    page = sign_in(owner, workspace).get(PAGE).content.decode()

    assert "Real money" in page and "live: real money" in page
    assert "Last successful call: 2026-12-07T14:30:00Z" in page
    assert "Rate limit left: 187" in page
    assert ("market_data <span class=\"badge badge-off\">reconnecting</span> trade_updates "
            "<span class=\"badge badge-on\">connected</span>") in page
    assert "Circuit breaker: closed" in page
    assert "Last error: The market data stream dropped; reconnecting." in page
    assert 'aria-current="page">Connections</a>' in page


def test_members_see_the_list_but_neither_the_form_nor_the_delete_button(sign_in, owner,
                                                                         teammate, workspace):
    credential = stored_connection(workspace, owner)
    client = sign_in(teammate, workspace)

    page = client.get(PAGE).content.decode()
    posted = client.post(PAGE, FORM)
    deleted = client.post(reverse("connection_delete", args=[credential.pk]))

    assert "Paper account" in page
    assert "Add a connection" not in page and "Delete" not in page
    assert (posted.status_code, deleted.status_code) == (403, 403)
    assert BrokerCredential.objects.count() == 1


def test_deleting_asks_first_then_deletes(sign_in, owner, workspace):
    credential = stored_connection(workspace, owner)
    client = sign_in(owner, workspace)
    target = reverse("connection_delete", args=[credential.pk])

    confirm = client.get(target).content.decode()
    assert BrokerCredential.objects.exists()
    response = client.post(target, follow=True)

    assert "Delete the connection Paper account?" in confirm
    assert "Connection &#x27;Paper account&#x27; deleted." in response.content.decode()
    assert not BrokerCredential.objects.exists()


def test_another_workspaces_connection_is_not_found(sign_in, owner, workspace, stranger,
                                                    stranger_workspace):
    credential = stored_connection(workspace, owner)
    client = sign_in(stranger, stranger_workspace)

    page = client.get(PAGE).content.decode()
    confirm = client.get(reverse("connection_delete", args=[credential.pk]))
    deleted = client.post(reverse("connection_delete", args=[credential.pk]))

    assert "Paper account" not in page
    assert (confirm.status_code, deleted.status_code) == (404, 404)
    assert BrokerCredential.objects.exists()


def test_the_deployment_form_offers_the_workspaces_connections_only(
        sign_in, owner, workspace, stranger, stranger_workspace):
    ours = stored_connection(workspace, owner)
    theirs = stored_connection(stranger_workspace, stranger, label="Not yours")
    client = sign_in(owner, workspace)

    form = client.get(reverse("deployment_new")).content.decode()
    foreign = client.post(reverse("deployment_new"), {
        "name": "demo", "platform": "alpaca-paper", "connection": str(theirs.pk),
        "symbols": "AAPL", "timeframes": "1m", "initial_cash": "100000", "params": "{}"})
    created = client.post(reverse("deployment_new"), {
        "name": "demo", "platform": "alpaca-paper", "connection": str(ours.pk),
        "symbols": "AAPL", "timeframes": "1m", "initial_cash": "100000", "params": "{}"})

    assert "Paper account: Alpaca (paper), key …WXYZ" in form and "Not yours" not in form
    assert "Select a valid choice." in foreign.content.decode()
    assert created.status_code == 302
    assert deployments.Deployment.objects.get().connection_id == ours.pk


def test_a_live_deployment_page_carries_the_red_banner(sign_in, owner, workspace):
    live = stored_connection(workspace, owner, platform="alpaca-live", label="Live")
    deployment = deployments.create_deployment(
        workspace=workspace, created_by=owner, role="owner", name="Real SMA",
        platform="alpaca-live", version=None, symbols=["AAPL"], timeframes=["1m"],
        connection=live, risk_limits=RiskLimits(max_position_quantity=Decimal(5),
                                                daily_loss_limit=Decimal(100)))
    client = sign_in(owner, workspace)

    detail = client.get(reverse("deployment_detail", args=[deployment.pk])).content.decode()
    listing = client.get(reverse("deployment_list")).content.decode()

    assert ('<div class="live-banner" role="alert">LIVE: real money. This deployment trades '
            'on Alpaca (live) with real funds') in detail
    assert "Connection <strong><a" in detail and "…WXYZ" in detail
    assert '<span class="badge badge-live">live: real money</span>' in listing


def test_a_paper_deployment_page_has_no_banner(sign_in, owner, workspace):
    deployment = deployments.create_deployment(
        workspace=workspace, created_by=owner, role="owner", name="Mock SMA", platform="mock",
        version=None, symbols=["AAPL"], timeframes=["1m"])

    page = sign_in(owner, workspace).get(
        reverse("deployment_detail", args=[deployment.pk])).content.decode()

    assert "live-banner" not in page


def test_a_connection_in_use_is_not_deleted_and_the_page_says_by_what(sign_in, owner,
                                                                      workspace):
    credential = stored_connection(workspace, owner)
    deployment_started_on(credential, workspace, owner)
    client = sign_in(owner, workspace)
    target = reverse("connection_delete", args=[credential.pk])

    confirm = client.get(target).content.decode()
    refused = client.post(target, follow=True).content.decode()

    assert ("It is in use by the active deployment SMA paper and 1 live session: stop them "
            "first.") in confirm
    assert "Delete the connection</button>" not in confirm
    assert ("The connection &#x27;Paper account&#x27; is in use by the active deployment "
            "&#x27;SMA paper&#x27; and 1 live session: stop them first.") in refused
    assert BrokerCredential.objects.exists()


def test_a_live_sessions_pages_carry_the_red_banner_and_a_paper_ones_do_not(
        sign_in, owner, workspace):
    live = TradingSession.objects.create(workspace=workspace, platform="alpaca-live",
                                         symbols=["AAPL"], timeframe="1m")
    paper = TradingSession.objects.create(workspace=workspace, platform="alpaca-paper",
                                          symbols=["AAPL"], timeframe="1m")
    client = sign_in(owner, workspace)

    live_pages = [client.get(reverse(name, args=[live.pk])).content.decode()
                  for name in ("backtest_detail", "backtest_live")]
    paper_pages = [client.get(reverse(name, args=[paper.pk])).content.decode()
                   for name in ("backtest_detail", "backtest_live")]

    banner = ('<div class="live-banner" role="alert">LIVE: real money. This session trades on '
              'Alpaca (live) with real funds')
    assert [banner in page for page in live_pages] == [True, True]
    assert ["live-banner" in page for page in paper_pages] == [False, False]


# -- Binance: the IP ban ------------------------------------------------------------------------


def test_a_ban_of_the_ip_is_said_on_every_page_of_a_workspace_with_a_binance_connection(
        sign_in, owner, workspace, stranger, stranger_workspace, settings):
    settings.BINANCE_IP_SCOPE = f"test-{uuid.uuid4()}"  # counters of this test alone
    credential = stored_connection(workspace, owner, platform="binance-testnet",
                                   label="Testnet")
    stored_connection(stranger_workspace, stranger)  # Alpaca only: not concerned
    shared = brokers.shared_budget_for(credential)
    shared.ban(600.0, "418 after GET /api/v3/account")
    until = datetime.fromtimestamp(shared.banned_until(), UTC)
    sentence = (f"Binance has banned this server&#x27;s IP until {until:%H:%M} UTC after too "
                "many requests; Binance sessions are stopped until then.")
    alert = f'<div class="message error broker-alert" role="alert">{sentence}</div>'

    client = sign_in(owner, workspace)
    dashboard = client.get(reverse("dashboard")).content.decode()
    connections = client.get(PAGE).content.decode()
    elsewhere = sign_in(stranger, stranger_workspace).get(reverse("dashboard")).content.decode()

    assert dashboard.count(alert) == 1
    assert connections.count(alert) == 2  # atop the page, and on the Binance connection
    assert "broker-alert" not in elsewhere


def test_a_binance_connections_health_shows_its_clock_offset_and_ban(sign_in, owner, workspace):
    credential = stored_connection(workspace, owner, platform="binance-testnet")
    DatabaseHealthSink(str(credential.pk)).report(ConnectionHealth(
        clock_offset_ms=-1250, banned_until=datetime(2026, 12, 7, 15, 5, tzinfo=UTC),
        streams={"user_data": "stopped"}))

    page = sign_in(owner, workspace).get(PAGE).content.decode()

    assert "Clock offset: -1250 ms" in page
    assert "Banned until: 2026-12-07T15:05:00Z" in page
    assert "<td>HMAC key</td>" in page


def test_an_owner_adds_a_binance_connection_and_a_key_that_can_withdraw_is_a_form_error(
        sign_in, owner, workspace, settings):
    form = {"label": "Testnet", "platform": "binance-testnet", "key_id": BINANCE_KEY_ID,
            "secret": BINANCE_SECRET, "key_type": "hmac"}
    client = sign_in(owner, workspace)
    with FakeBinance(withdrawals_enabled=True) as fake:
        settings.BROKER_URLS = {"binance-testnet": dict(fake.urls)}
        refused = client.post(PAGE, form).content.decode()
    with FakeBinance() as fake:
        settings.BROKER_URLS = {"binance-testnet": dict(fake.urls)}
        added = client.post(PAGE, form, follow=True).content.decode()

    assert ("This key can withdraw funds: create a key with withdrawals disabled; Parity never "
            "needs them.") in refused
    assert "Connection &#x27;Testnet&#x27; added: the broker accepted its keys." in added
    assert "<code>…WXYZ</code>" in added and "<td>HMAC key</td>" in added
    assert BrokerCredential.objects.get().options == {"key_type": "hmac"}
    for page in (refused, added):
        assert BINANCE_SECRET not in page and BINANCE_KEY_ID not in page
