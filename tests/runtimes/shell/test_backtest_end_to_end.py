"""A backtest driven end to end by the unmodified tektii SDK over a real daphne server and a real
Celery worker: lock-step pacing, order events, completion, journal, determinism."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from tektii import AsyncTradingGateway, CandleEvent, OrderEvent

from tests.runtimes.conftest import ROWS, SYMBOL, wait_for_state

# Not thread-sensitive: asgiref's one "sync thread" is process-wide and daphne's views and
# consumers need it while the test waits.
in_thread = partial(sync_to_async, thread_sensitive=False)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def sma_cross(base_url: str, key: str) -> dict:
    """A 5/20 SMA-cross strategy with market orders; returns what it saw."""
    seen: dict = {"candles": 0, "orders": [], "order_events": 0, "complete": []}
    closes: list[Decimal] = []
    long = False
    async with AsyncTradingGateway(base_url=base_url, api_key=key, max_retries=0) as gw:
        stream = gw.stream(on_backtest_complete=lambda event: seen["complete"].append(event))
        async with stream as events:
            async for event in events:
                if isinstance(event, OrderEvent):
                    seen["order_events"] += 1
                if not isinstance(event, CandleEvent):
                    continue
                seen["candles"] += 1
                closes.append(Decimal(event.bar.close))
                if len(closes) < 20:
                    continue
                fast, slow = sum(closes[-5:]) / 5, sum(closes[-20:]) / 20
                if fast > slow and not long:
                    seen["orders"].append(await gw.submit_order(SYMBOL, "buy", "0.1"))
                    long = True
                elif fast < slow and long:
                    seen["orders"].append(await gw.submit_order(SYMBOL, "sell", "0.1"))
                    long = False
    return seen


def _journal(session) -> list[str]:
    return list(session.events.order_by("sequence").values_list("frame", flat=True))


async def test_sdk_strategy_runs_a_backtest_to_completion_in_lock_step(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    seen = await sma_cross(f"{daphne_url}/sessions/{session.id}", trader_key)

    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert (session.state, session.failure_reason) == ("completed", "")
    assert seen["candles"] == ROWS
    assert len(seen["complete"]) == 1
    assert seen["orders"] and all(o.status.value in {"PENDING", "OPEN", "FILLED"}
                                  for o in seen["orders"])
    assert seen["order_events"] >= len(seen["orders"])
    assert session.batches == ROWS
    frames = await in_thread(_journal)(session)
    assert len(frames) == session.events_sent == session.events_acked
    assert sum('"type":"candle"' in f for f in frames) == ROWS
    assert frames[-1].startswith('{"type":"backtest_complete"')
    result = await in_thread(lambda: session.result)()
    assert len(result.orders) == len(seen["orders"])


async def test_two_runs_of_the_same_backtest_stream_identical_frames(
    daphne_url, start_backtest, trader_key
):
    journals = []
    for _ in range(2):
        session = await in_thread(start_backtest)()
        await sma_cross(f"{daphne_url}/sessions/{session.id}", trader_key)
        session = await in_thread(wait_for_state)(session, {"completed", "failed"})
        assert session.state == "completed"
        journals.append(await in_thread(_journal)(session))
    assert journals[0] == journals[1]
    assert len(journals[0]) > ROWS
