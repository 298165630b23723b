"""Sessions on other platforms through the management API: every platform of the registry is
either created (a provider exists in this build) or refused with the INVALID_VALUE envelope
naming the available ones; mock sessions take symbols, timeframes, a balance and bounded
options, and no dataset."""

from __future__ import annotations

import pytest

from runtimes.core.platforms import PLATFORMS
from runtimes.providers import registry
from tests.runtimes.connections import stored_connection

pytestmark = pytest.mark.django_db


def sessions_url(workspace) -> str:
    return f"/api/v1/workspaces/{workspace.id}/sessions"


def create_mock(client, workspace, **extra):
    body = {"platform": "mock", "symbols": ["AAPL", "BTCUSDT"], "timeframe": "1m",
            "initial_cash": "25000", **extra}
    return client.post(sessions_url(workspace), body, format="json")


REFUSED = [p for p in PLATFORMS if p not in registry.available()]  # none in this build


def test_every_platform_of_the_registry_has_a_provider_here():
    assert registry.available() == ["backtest", "mock", "alpaca-paper", "alpaca-live",
                                    "binance-testnet", "binance-live"]
    assert REFUSED == []


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_every_platform_is_created_or_said_how_to_open_it(
    owner_client, owner, workspace, dataset, platform
):
    body = ({"dataset": str(dataset.id)} if platform == "backtest"
            else {"symbols": ["BTCUSDT"], "timeframe": "1m"})
    if PLATFORMS[platform].needs_connection and not PLATFORMS[platform].live:
        body["connection"] = str(stored_connection(workspace, owner, platform=platform).id)
    response = owner_client.post(sessions_url(workspace), {"platform": platform, **body},
                                 format="json")
    if PLATFORMS[platform].live:
        assert response.status_code == 400
        assert response.json()["details"] == {"field": "platform", "provided": platform}
        assert "open it as a deployment" in response.json()["message"]
    else:
        assert response.status_code == 201, response.json()
        assert response.json()["platform"] == platform


def test_a_platform_without_a_provider_in_this_build_is_refused_naming_the_available_ones(
    owner_client, workspace, monkeypatch
):
    monkeypatch.delitem(registry.FACTORIES, "binance-testnet")  # as a build without it
    response = owner_client.post(sessions_url(workspace), {
        "platform": "binance-testnet", "symbols": ["BTCUSDT"], "timeframe": "1m"}, format="json")
    available = ["backtest", "mock", "alpaca-paper", "alpaca-live", "binance-live"]
    assert response.status_code == 400
    assert response.json() == {
        "code": "INVALID_VALUE",
        "message": "'binance-testnet' is not available here; available platforms: "
                   f"{', '.join(available)}.",
        "details": {"field": "platform", "provided": "binance-testnet", "available": available},
    }


# -- broker paper sessions name a connection of their workspace -----------------------------------


def create_alpaca(client, workspace, **extra):
    body = {"platform": "alpaca-paper", "symbols": ["AAPL"], "timeframe": "1m", **extra}
    return client.post(sessions_url(workspace), body, format="json")


def test_an_alpaca_paper_session_trades_through_the_connection_it_names(
    owner_client, owner, workspace
):
    from runtimes.models import TradingSession

    connection = stored_connection(workspace, owner)
    response = create_alpaca(owner_client, workspace, connection=str(connection.id))
    assert response.status_code == 201, response.json()
    session = TradingSession.objects.get(pk=response.json()["id"])
    assert (session.platform, session.connection_id) == ("alpaca-paper", connection.id)


def test_an_alpaca_paper_session_without_a_connection_is_a_400_naming_it(owner_client, workspace):
    response = create_alpaca(owner_client, workspace)
    assert response.status_code == 400
    assert response.json()["details"] == {"connection": [
        "Alpaca (paper) trades through a broker connection: choose one of this workspace's "
        "Alpaca (paper) connections."]}


def test_a_connection_for_another_platform_is_a_400_naming_both(owner_client, owner, workspace):
    live = stored_connection(workspace, owner, platform="alpaca-live", label="Live account")
    response = create_alpaca(owner_client, workspace, connection=str(live.id))
    assert response.status_code == 400
    assert response.json()["details"] == {"connection": [
        "The connection 'Live account' is for Alpaca (live), not Alpaca (paper)."]}


def test_another_workspaces_connection_is_not_found(owner_client, workspace, stranger,
                                                    stranger_workspace):
    theirs = stored_connection(stranger_workspace, stranger)
    response = create_alpaca(owner_client, workspace, connection=str(theirs.id))
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_a_mock_session_takes_no_connection(owner_client, owner, workspace):
    connection = stored_connection(workspace, owner)
    response = create_mock(owner_client, workspace, connection=str(connection.id))
    assert response.status_code == 400
    assert response.json()["details"] == {"connection": [
        "Mock market needs no broker connection."]}


def test_a_provider_of_the_registry_is_built_or_said_to_be_missing_from_this_build(
    monkeypatch,
):
    assert registry.factory("backtest").__module__ == "runtimes.providers.backtest"
    assert registry.factory("mock").__module__ == "runtimes.providers.mock.provider"
    assert registry.factory("alpaca-live").__module__ == "runtimes.providers.alpaca.build"
    assert registry.factory("binance-live").__module__ == "runtimes.providers.binance.build"
    monkeypatch.delitem(registry.FACTORIES, "binance-live")  # as a build without it
    with pytest.raises(registry.ProviderUnavailable) as refused:
        registry.factory("binance-live")
    assert str(refused.value) == ("no provider for platform 'binance-live' in this build; "
                                  "available: backtest, mock, alpaca-paper, alpaca-live, "
                                  "binance-testnet")


def test_an_unknown_platform_is_refused_naming_the_available_ones(owner_client, workspace):
    response = create_mock(owner_client, workspace, platform="nyse")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "'nyse' is an unknown platform; available platforms: backtest, mock, alpaca-paper, "
        "alpaca-live, binance-testnet, binance-live.")


def test_a_platform_that_is_not_a_string_is_refused(owner_client, workspace):
    response = create_mock(owner_client, workspace, platform=["mock"])
    assert response.json() == {"code": "INVALID_VALUE", "message": "platform must be a string.",
                               "details": {"field": "platform", "provided": ["mock"]}}


def test_a_mock_session_is_created_with_its_symbols_timeframes_balance_and_options(
    owner_client, workspace
):
    response = create_mock(owner_client, workspace, timeframes=["5m", "1m", "5m"],
                           options={"seed": 7}, max_order_quantity="10")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["platform"], body["state"], body["dataset"]) == ("mock", "created", None)
    assert (body["symbols"], body["timeframe"], body["timeframes"]) == (
        ["AAPL", "BTCUSDT"], "1m", ["1m", "5m"])
    assert (body["initial_cash"], body["options"]) == ("25000", {"seed": 7})
    assert body["risk_limits"]["allowed_symbols"] == ["AAPL", "BTCUSDT"]
    assert body["risk_limits"]["max_order_quantity"] == "10"


@pytest.mark.parametrize(("change", "details"), [
    ({"symbols": []}, {"symbols": ["This list may not be empty."]}),
    ({"symbols": ["no spaces"]},
     {"symbols": {"0": ["A symbol has 1 to 32 letters, digits or . _ / -."]}}),
    ({"timeframe": "7m"}, {"timeframe": ['"7m" is not a valid choice.']}),
    ({"timeframes": ["1m", "7m"]}, {"timeframes": {"1": ['"7m" is not a valid choice.']}}),
    ({"initial_cash": "0"}, {"initial_cash": ["Must be a positive number."]}),
    ({"options": ["seed"]}, {"options": ['Expected a dictionary of items but got type "list".']}),
    ({"options": {"blob": "x" * 5000}}, {"options": ["At most 4096 bytes as JSON."]}),
    ({"dataset": "3f2b6a5e-0000-4000-8000-000000000000"},
     {"dataset": ["A session on this platform takes no dataset."]}),
])
def test_a_mock_session_with_a_bad_field_is_a_400_naming_it(owner_client, workspace, change,
                                                             details):
    response = create_mock(owner_client, workspace, **change)
    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": "The request has invalid fields; see details.",
                               "details": details}


def test_a_mock_session_needs_symbols_and_a_timeframe(owner_client, workspace):
    response = owner_client.post(sessions_url(workspace), {"platform": "mock"}, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["details"]) == ["symbols", "timeframe"]


def test_a_mock_session_of_a_stranger_is_invisible(owner_client, stranger_client, workspace):
    created = create_mock(owner_client, workspace).json()
    answer = stranger_client.get(f"{sessions_url(workspace)}/{created['id']}")
    assert answer.status_code in {403, 404}


def test_a_mock_session_subscribes_to_quotes_and_every_timeframe_it_asked_for(
    owner_client, workspace
):
    from runtimes.models import TradingSession

    response = create_mock(owner_client, workspace, timeframes=["1m", "5m"])
    session = TradingSession.objects.get(pk=response.json()["id"])

    assert session.subscriptions() == {
        "symbols": ["AAPL", "BTCUSDT"], "timeframes": ["1m", "5m"],
        "events": ["candle", "quote", "order", "trade", "position", "account"]}


def test_a_backtest_session_streams_candles_without_quotes(owner_client, workspace, dataset):
    from runtimes.models import TradingSession

    response = owner_client.post(sessions_url(workspace),
                                 {"platform": "backtest", "dataset": str(dataset.id)},
                                 format="json")
    session = TradingSession.objects.get(pk=response.json()["id"])

    assert session.subscriptions()["events"] == [
        "candle", "order", "trade", "position", "account"]
    assert session.subscriptions()["timeframes"] == [session.timeframe]
