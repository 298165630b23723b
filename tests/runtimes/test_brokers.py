"""Broker connections as the host hands them to providers (runtimes/hosting/brokers.py): where
the broker is, the keys revealed for the provider only, the request budget every session on a
connection shares (in process, or in Redis with the very same rules), and the health sink."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet
from django.core.management import call_command

from accounts.models import BrokerCredential
from runtimes.core.connection import ConnectionHealth
from runtimes.core.rate_budget import LocalBudget
from runtimes.hosting import brokers
from runtimes.hosting.budget_redis import RedisBudget
from runtimes.hosting.provision import settings_for
from runtimes.models import TradingSession
from tests.runtimes.connections import KEY_ID, SECRET, stored_connection

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_URLS = {
    "alpaca-paper": {"trading": "https://paper-api.alpaca.markets",
                     "data": "https://data.alpaca.markets",
                     "trading_stream": "wss://paper-api.alpaca.markets/stream",
                     "data_stream": "wss://stream.data.alpaca.markets/v2"},
    "alpaca-live": {"trading": "https://api.alpaca.markets",
                    "data": "https://data.alpaca.markets",
                    "trading_stream": "wss://api.alpaca.markets/stream",
                    "data_stream": "wss://stream.data.alpaca.markets/v2"},
    "binance-testnet": {"api": "https://testnet.binance.vision/api",
                        "ws_api": "wss://ws-api.testnet.binance.vision/ws-api/v3",
                        "stream": "wss://stream.testnet.binance.vision/"},
    "binance-live": {"api": "https://api.binance.com/api",
                     "ws_api": "wss://ws-api.binance.com:443/ws-api/v3",
                     "stream": "wss://stream.binance.com:9443/"},
}


def broker_urls_with(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """settings.BROKER_URLS as a fresh process with `env` (and none of ours) reads it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "BINANCE_"))}
    code = ("import django, json; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.BROKER_URLS))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60,
                            env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env})
    return json.loads(result.stdout)


def test_the_broker_urls_are_the_brokers_production_addresses_by_default():
    assert broker_urls_with({}) == PRODUCTION_URLS


def test_the_environment_points_both_alpaca_platforms_elsewhere():
    urls = broker_urls_with({"ALPACA_TRADING_URL": "http://127.0.0.1:9/",
                             "ALPACA_DATA_URL": "http://127.0.0.1:9",
                             "ALPACA_TRADING_STREAM_URL": "ws://127.0.0.1:9/stream",
                             "ALPACA_DATA_STREAM_URL": "ws://127.0.0.1:9/v2"})

    expected = {"trading": "http://127.0.0.1:9", "data": "http://127.0.0.1:9",
                "trading_stream": "ws://127.0.0.1:9/stream", "data_stream": "ws://127.0.0.1:9/v2"}
    assert urls == {"alpaca-paper": expected, "alpaca-live": expected,
                    "binance-testnet": PRODUCTION_URLS["binance-testnet"],
                    "binance-live": PRODUCTION_URLS["binance-live"]}


def test_the_environment_points_each_binance_platform_elsewhere_on_its_own():
    urls = broker_urls_with({"BINANCE_TESTNET_API_URL": "http://127.0.0.1:9/api/",
                             "BINANCE_TESTNET_WS_API_URL": "ws://127.0.0.1:9/ws-api/v3",
                             "BINANCE_TESTNET_STREAM_URL": "ws://127.0.0.1:9",
                             "BINANCE_API_URL": "http://127.0.0.1:8/api"})

    assert urls["binance-testnet"] == {"api": "http://127.0.0.1:9/api",
                                       "ws_api": "ws://127.0.0.1:9/ws-api/v3",
                                       "stream": "ws://127.0.0.1:9/"}
    assert urls["binance-live"] == {**PRODUCTION_URLS["binance-live"],
                                    "api": "http://127.0.0.1:8/api"}


# -- the connection ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_connection_of_reveals_the_keys_with_the_platforms_urls_and_options(owner, workspace):
    credential = stored_connection(workspace, owner, feed="sip")

    connection = brokers.connection_of(credential)

    assert (connection.id, connection.platform, connection.key_id, connection.secret) == (
        str(credential.pk), "alpaca-paper", KEY_ID, SECRET)
    assert dict(connection.urls) == PRODUCTION_URLS["alpaca-paper"]
    assert dict(connection.options) == {"feed": "sip"}
    assert repr(connection) == f"<BrokerConnection {credential.pk} alpaca-paper …WXYZ>"
    assert SECRET not in repr(brokers.broker_access_for(credential))
    assert repr(credential) == f"<BrokerCredential {credential.pk} alpaca-paper>"


@pytest.mark.django_db
def test_a_connection_opens_after_the_key_rotation_with_its_shown_fields_unchanged(
        owner, workspace, settings):
    credential = stored_connection(workspace, owner)
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, *settings.CREDENTIALS_ENCRYPTION_KEYS]
    call_command("rotate_credentials_keys", stdout=io.StringIO())
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]  # the old key dropped

    rotated = BrokerCredential.objects.get(pk=credential.pk)

    assert rotated.encrypted_payload != credential.encrypted_payload
    assert (brokers.connection_of(rotated).key_id, brokers.connection_of(rotated).secret) == (
        KEY_ID, SECRET)
    assert (rotated.key_hint, rotated.options, rotated.account_summary) == (
        "WXYZ", {"feed": "iex"},
        {"account_number": "…7890", "status": "ACTIVE", "currency": "USD"})


@pytest.mark.django_db
def test_a_sessions_provider_settings_carry_its_connection(owner, workspace):
    credential = stored_connection(workspace, owner)
    session = TradingSession.objects.create(
        workspace=workspace, platform="alpaca-paper", connection=credential, symbols=["AAPL"],
        timeframe="1m")

    access = settings_for(session).broker_access

    assert access is not None
    assert (access.connection.id, access.connection.secret) == (str(credential.pk), SECRET)
    assert access.budget.acquire(2) == 0.0
    assert brokers.budget_for(credential).remaining() == 198  # one count per connection
    assert isinstance(access.health, brokers.DatabaseHealthSink)


@pytest.mark.django_db
def test_a_binance_connection_gets_its_order_budget_and_its_workspaces_share_of_the_ip(
        owner, workspace, stranger, stranger_workspace, settings):
    settings.BINANCE_IP_SCOPE = scope = f"test-{uuid.uuid4()}"  # counters of this test alone
    credential = stored_connection(workspace, owner, platform="binance-testnet")
    neighbour = stored_connection(stranger_workspace, stranger, platform="binance-testnet")
    live = stored_connection(workspace, owner, platform="binance-live")

    access = brokers.broker_access_for(credential)
    theirs = brokers.shared_budget_for(neighbour)
    assert access.shared is not None and theirs is not None

    assert [access.budget.acquire() for _ in range(100)] == [0.0] * 100
    assert 9.0 < access.budget.acquire() <= 10.0  # 100 orders per 10 s
    assert access.shared.acquire(20) == 0.0
    assert (access.shared.remaining(), theirs.remaining()) == (5980, 3000)  # they now halve
    access.shared.ban(60.0, "418")
    assert theirs.banned_until() == access.shared.banned_until()  # one IP, one ban
    assert brokers.shared_budget_for(live).banned_until() is None  # another host counts apart
    assert brokers.ip_scope_of("binance-testnet") == f"{scope}:testnet.binance.vision"
    assert brokers.shared_budget_for(stored_connection(workspace, owner)) is None  # Alpaca


@pytest.mark.django_db
def test_a_mock_session_gets_no_broker_access_and_a_broker_one_without_keys_fails(workspace):
    mock = TradingSession.objects.create(workspace=workspace, platform="mock", symbols=["AAPL"],
                                         timeframe="1m")
    orphan = TradingSession.objects.create(workspace=workspace, platform="alpaca-paper",
                                           symbols=["AAPL"], timeframe="1m")

    assert settings_for(mock).broker_access is None
    with pytest.raises(ValueError) as refusal:
        settings_for(orphan)
    assert str(refusal.value) == ("Alpaca (paper) needs a broker connection and this session "
                                  "has none (was it deleted?)")


# -- the shared budget -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    """The configured Redis (the distributed topology's), else a private redis-server."""
    from django.conf import settings

    if settings.REDIS_URL:
        yield settings.REDIS_URL
        return
    assert shutil.which("redis-server"), "the Redis budget is tested against a real redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)  # polling a starting server: there is no signal to wait on
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(5)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_budget(kind, redis_url, clock):
    if kind == "local":
        return LocalBudget(3, window_seconds=60.0, clock=clock)
    return RedisBudget(redis.Redis.from_url(redis_url), f"test-{uuid.uuid4()}", limit=3,
                       window_seconds=60.0, clock=clock)


# (at, call, arguments, expected answer): a window of 3 requests, the broker's headers, a 429.
SEQUENCE = [
    (1000.0, "remaining", {}, 3),
    (1000.0, "reset_at", {}, None),
    (1000.0, "acquire", {}, 0.0),
    (1000.0, "reset_at", {}, 1060.0),
    (1001.0, "acquire", {"cost": 2}, 0.0),
    (1002.0, "remaining", {}, 0),
    (1002.5, "acquire", {}, 57.5),  # refused: nothing spent
    (1002.5, "remaining", {}, 0),
    (1060.0, "remaining", {}, 3),  # the window is over
    (1060.0, "acquire", {}, 0.0),  # a new one opens
    (1061.0, "observe", {"limit": 5, "remaining": 2, "reset_at": 1100.0}, None),
    (1061.0, "remaining", {}, 2),  # the broker counted more than we did
    (1061.0, "reset_at", {}, 1100.0),
    (1062.0, "observe", {"limit": None, "remaining": 4, "reset_at": None}, None),
    (1062.0, "remaining", {}, 2),  # ... but never less
    (1062.0, "acquire", {"cost": 2}, 0.0),
    (1063.0, "acquire", {}, 37.0),
    (1063.0, "blocked_for", {"seconds": 50.0}, None),
    (1100.0, "remaining", {}, 5),
    (1100.0, "acquire", {}, 13.0),  # the 429's Retry-After outlasts the window
    (1113.0, "acquire", {}, 0.0),
    (1113.0, "remaining", {}, 4),
    (1113.0, "reset_at", {}, 1173.0),
]


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_the_local_and_the_redis_budget_answer_the_same_sequence_alike(kind, redis_url):
    clock = Clock(0.0)
    budget = make_budget(kind, redis_url, clock)
    answers, expected = [], []
    for at, call, arguments, answer in SEQUENCE:
        clock.now = at
        answers.append(getattr(budget, call)(**arguments))
        expected.append(answer)

    assert answers == expected


def test_two_redis_budgets_of_one_connection_share_one_count(redis_url):
    clock, name = Clock(5000.0), f"shared-{uuid.uuid4()}"
    web, worker = (RedisBudget(redis.Redis.from_url(redis_url), name, limit=2, clock=clock)
                   for _ in range(2))

    assert [web.acquire(), worker.acquire(), web.acquire(), worker.remaining()] == [
        0.0, 0.0, 60.0, 0]


def test_a_redis_budget_expires_once_its_window_and_block_are_over(redis_url):
    client = redis.Redis.from_url(redis_url)
    budget = RedisBudget(client, f"expiring-{uuid.uuid4()}", limit=2, clock=time.time)
    budget.acquire()
    budget.blocked_for(30)

    assert budget.key.startswith("parity:broker:")
    assert 85_000 < client.pttl(budget.key) <= 120_000  # the 60 s window, a margin of 60 s


# -- health ------------------------------------------------------------------------------------


def health(**fields):
    base = {"last_success_at": datetime(2026, 12, 7, 14, 30, tzinfo=UTC),
            "rate_limit_remaining": 190, "streams": {"trade_updates": "connected"}}
    return ConnectionHealth(**{**base, **fields})


@pytest.mark.django_db
def test_the_health_sink_writes_at_most_every_few_seconds_but_at_once_on_a_state_change(
        owner, workspace, django_assert_num_queries):
    credential = stored_connection(workspace, owner)
    clock = Clock(100.0)
    stamp = datetime(2026, 12, 7, 14, 31, tzinfo=UTC)
    sink = brokers.DatabaseHealthSink(str(credential.pk), interval=5.0, clock=clock,
                                      now=lambda: stamp)

    def written():
        row = BrokerCredential.objects.get(pk=credential.pk)
        return row.health.get("rate_limit_remaining"), row.health.get("streams"), row.health_at

    sink.report(health())
    first = written()
    clock.now = 102.0
    with django_assert_num_queries(0):
        sink.report(health(rate_limit_remaining=180))  # throttled
    clock.now = 103.0
    sink.report(health(rate_limit_remaining=170, streams={"trade_updates": "reconnecting"}))
    on_change = written()
    clock.now = 104.0
    sink.report(health(rate_limit_remaining=160, streams={"trade_updates": "reconnecting"},
                       circuit_breaker="open"))
    on_breaker = written()[0]
    clock.now = 108.0
    with django_assert_num_queries(0):
        sink.report(health(rate_limit_remaining=150, streams={"trade_updates": "reconnecting"},
                           circuit_breaker="open"))
    clock.now = 109.0
    sink.report(health(rate_limit_remaining=140, streams={"trade_updates": "reconnecting"},
                       circuit_breaker="open"))

    assert first == (190, {"trade_updates": "connected"}, stamp)
    assert on_change == (170, {"trade_updates": "reconnecting"}, stamp)
    assert on_breaker == 160
    assert written()[0] == 140
    assert BrokerCredential.objects.get(pk=credential.pk).health == {
        "last_success_at": "2026-12-07T14:30:00Z", "rate_limit_remaining": 140,
        "rate_limit_reset_at": None, "streams": {"trade_updates": "reconnecting"},
        "market_open": None, "last_error": None, "circuit_breaker": "open",
        "clock_offset_ms": None, "banned_until": None}


@pytest.mark.django_db
def test_revealing_a_connection_logs_nothing_of_its_keys(owner, workspace, caplog):
    caplog.set_level(logging.DEBUG)
    credential = stored_connection(workspace, owner)
    access = brokers.broker_access_for(credential)
    logging.getLogger("parity.test").info("built %r with %s", access.connection, access)

    assert "…WXYZ" in caplog.text  # the line was written: the checks below see it
    assert SECRET not in caplog.text and KEY_ID not in caplog.text
