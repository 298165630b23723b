"""The provider registry and the backtest provider: framework-free, resolved lazily, and the
backtest provider a Provider that reads its dataset from the settings it is given."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from config.sample_data import head_of
from runtimes.core.provider import Pacing, Provider
from runtimes.providers import registry
from runtimes.providers.backtest import BacktestProvider, BacktestSettings

ROOT = Path(__file__).resolve().parents[3]
FRAMEWORKS = ("django", "rest_framework", "channels", "celery")


def test_the_providers_and_their_registry_import_without_any_framework():
    script = (
        "import importlib, json, sys\n"
        "for name in ('runtimes.providers.registry', 'runtimes.providers.backtest'):\n"
        "    importlib.import_module(name)\n"
        "importlib.import_module('runtimes.providers.registry').factory('backtest')\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_backtest_factory_builds_the_engine_over_the_given_files_and_period(tmp_path):
    path = head_of("crypto-1m/BTCUSDT.csv", 50, tmp_path / "BTCUSDT.csv")
    settings = BacktestSettings(
        symbols=("BTCUSDT",), timeframes=("1m",), initial_cash=Decimal(5000),
        options={"paths": {"BTCUSDT": str(path), "ETHUSDT": "/not/read"},
                 "commission": {"percent": "0.1"}, "slippage_bps": "2"})
    provider = registry.factory("backtest")(settings, wake=lambda: None)
    assert isinstance(provider, BacktestProvider) and isinstance(provider, Provider)
    assert (provider.platform, provider.broker, provider.pacing) == (
        "backtest", "backtest", Pacing.SIMULATED)
    assert (provider.steps_total, provider.next_due()) == (50, None)
    assert provider.config.initial_cash == Decimal(5000)
    assert provider.config.commission.percent == Decimal("0.1")
    assert provider.config.slippage_bps == Decimal(2)
    provider.next_batch()
    assert provider.status() == {"connected": True, "latency_ms": 0,
                                 "last_heartbeat": "2021-04-02T00:00:00Z"}
    assert provider.snapshot() == {"steps_done": 1}


def test_an_import_error_inside_a_provider_is_not_taken_for_a_missing_provider(monkeypatch):
    monkeypatch.setitem(registry.FACTORIES, "mock", "tests.runtimes.providers.broken:build")
    with pytest.raises(ModuleNotFoundError) as broken:
        registry.factory("mock")
    assert broken.value.name == "a_library_nobody_installed"
