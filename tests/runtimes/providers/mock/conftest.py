"""Fixtures of the mock market tests: session settings and a market on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from runtimes.providers.mock import MockMarket, build
from tests.runtimes.providers.clock import FakeClock


@dataclass
class Settings:
    """ProviderSettings as the host would give them."""

    options: dict[str, Any] = field(default_factory=lambda: {"seed": 7})
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ("1m", "5m")
    initial_cash: Decimal = Decimal(100_000)
    restored: dict[str, Any] | None = None
    platform: str = "mock"
    session_id: str = ""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_market(clock: FakeClock) -> Callable[..., MockMarket]:
    def make(**settings: Any) -> MockMarket:
        return build(Settings(**settings), wake=lambda: None, clock=clock)

    return make


@pytest.fixture
def market(make_market: Callable[..., MockMarket]) -> MockMarket:
    return make_market()
