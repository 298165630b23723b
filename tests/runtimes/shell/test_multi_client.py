"""Several clients on one session, as the reference serves them: every connected client gets
every event; in a backtest time moves once each event was acked by one client; a reconnecting
client with a cursor gets what it missed. Raw sockets, then two unmodified SDK strategies."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from tektii import AsyncTradingGateway, CandleEvent

from tests.runtimes.conftest import ROWS, wait_for_state
from tests.runtimes.shell.test_session_websocket import (  # noqa: F401 (the fixture)
    ack,
    live_session,
    nothing_arrives,
    open_socket,
    ws_url,
)

in_thread = partial(sync_to_async, thread_sensitive=False)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def ids_of_next(ws, count: int) -> list[str]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 5))["event_id"] for _ in range(count)]


async def test_two_raw_clients_both_get_every_event_and_one_ack_moves_time(
    daphne_url, live_session, trader_key  # noqa: F811 (the imported fixture)
):
    session = live_session
    url = ws_url(daphne_url, session)
    async with open_socket(url, trader_key) as first:
        assert await ids_of_next(first, 1) == ["evt-1"]
        async with open_socket(url, trader_key) as second:
            assert await ids_of_next(second, 1) == ["evt-1"]  # not acked yet: replayed to it
            await first.send(ack("evt-1"))
            assert await ids_of_next(first, 1) == ["evt-2"]
            assert await ids_of_next(second, 1) == ["evt-2"]
            await second.send(ack("evt-2"))  # either client's ack moves time
            assert await ids_of_next(first, 1) == ["evt-3"]
            assert await ids_of_next(second, 1) == ["evt-3"]
            await first.send(ack("evt-2"))  # acked already: releases nothing
            assert await nothing_arrives(first) and await nothing_arrives(second)
        await first.send(ack("evt-3"))  # the second has gone: the first carries on alone
        assert await ids_of_next(first, 1) == ["evt-4"]
        async with open_socket(ws_url(daphne_url, session, "evt-2"), trader_key) as back:
            assert await ids_of_next(back, 2) == ["evt-3", "evt-4"]  # what it missed
            await back.send(ack("evt-4"))
            assert await ids_of_next(back, 1) == ["evt-5"]
            assert await ids_of_next(first, 1) == ["evt-5"]


async def test_two_sdk_strategies_on_one_backtest_both_see_it_all_to_completion(
    daphne_url, start_backtest, trader_key
):
    session = await in_thread(start_backtest)()
    base_url = f"{daphne_url}/sessions/{session.id}"
    joined = [asyncio.Event(), asyncio.Event()]

    async def watch(me: int) -> dict:
        seen: dict = {"candles": 0, "complete": 0}
        async with AsyncTradingGateway(base_url=base_url, api_key=trader_key,
                                       max_retries=0) as gw:
            stream = gw.stream(on_backtest_complete=lambda event: seen.update(
                complete=seen["complete"] + 1))
            async with stream as events:
                async for event in events:
                    if isinstance(event, CandleEvent):
                        seen["candles"] += 1
                    if not joined[me].is_set():
                        # The SDK acks once this body has run: holding the first event until
                        # the other strategy has it too means both start from evt-1.
                        joined[me].set()
                        await asyncio.wait_for(joined[1 - me].wait(), 10)
        return seen

    first, second = await asyncio.gather(watch(0), watch(1))
    session = await in_thread(wait_for_state)(session, {"completed", "failed"})
    assert (session.state, session.failure_reason) == ("completed", "")
    assert first == second == {"candles": ROWS, "complete": 1}
    assert session.batches == ROWS
