"""Binance's per-IP request weight as every workspace on a worker spends it
(runtimes/hosting/shared_budget.py): one global window aligned to the clock, a fair share per
workspace among those spending, never below the floor, 429 blocks and 418 bans seen by every
budget object, in process and in Redis alike (the same sequence gives the same answers)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from runtimes.hosting.shared_budget import (
    LocalSharedBudget,
    RedisSharedBudget,
    _IpCounters,
    local_shared_budget,
)
from tests.runtimes.test_brokers import Clock, redis_url  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
REASON = "Binance banned this IP (418) after GET /api/v3/account"

# (at, workspace, call, arguments, expected answer): a limit of 100 a minute, a floor of 20.
SEQUENCE = [
    (1000.0, "A", "remaining", {}, 100),  # alone: the whole budget is A's share
    (1000.0, "A", "acquire", {"cost": 60}, 0.0),
    (1000.0, "A", "remaining", {}, 40),
    (1000.0, "B", "remaining", {}, 40),  # B's share is 50, but only 40 are left
    (1001.0, "B", "acquire", {"cost": 30}, 0.0),
    (1002.0, "A", "acquire", {"cost": 10}, 18.0),  # A has spent 60 of its share of 50 now
    (1003.0, "B", "acquire", {"cost": 20}, 17.0),  # within B's share, beyond the IP's limit
    (1003.0, "B", "acquire", {"cost": 10}, 0.0),  # the limit reached exactly
    (1003.0, "A", "reset_at", {}, 1020.0),  # windows are aligned to the minute
    (1020.0, "A", "acquire", {"cost": 50}, 0.0),  # a new window: both still count as active
    (1021.0, "A", "acquire", {"cost": 1}, 59.0),
    (1021.0, "B", "remaining", {}, 50),
    (1080.0, "B", "acquire", {"cost": 1}, 0.0),  # A spent in the previous window: halves
    (1080.0, "A", "remaining", {}, 50),
    (1141.0, "A", "observe", {"limit": None, "remaining": 10, "reset_at": None}, None),
    (1141.0, "A", "remaining", {}, 10),  # Binance counted 90 used: it is the authority
    (1142.0, "B", "acquire", {"cost": 11}, 58.0),
    (1143.0, "A", "blocked_for", {"seconds": 5.0}, None),  # a 429: every workspace waits
    (1144.0, "B", "acquire", {"cost": 1}, 4.0),
    (1150.0, "A", "banned_until", {}, None),
    (1150.0, "B", "ban", {"seconds": 120.0, "reason": REASON}, None),  # a 418
    (1150.0, "A", "banned_until", {}, 1270.0),
    (1150.0, "A", "ban_reason", {}, REASON),
    (1200.0, "A", "acquire", {"cost": 1}, 70.0),
    (1200.0, "B", "ban", {"seconds": 10.0, "reason": "a shorter one"}, None),  # kept: longer
    (1269.0, "B", "ban_reason", {}, REASON),
    (1270.0, "A", "banned_until", {}, None),
    (1270.0, "A", "ban_reason", {}, None),
    (1270.0, "A", "acquire", {"cost": 1}, 0.0),
    (1271.0, "C", "acquire", {"cost": 1}, 0.0),
    (1271.0, "D", "acquire", {"cost": 1}, 0.0),
    (1271.0, "E", "acquire", {"cost": 1}, 0.0),
    (1271.0, "F", "acquire", {"cost": 1}, 0.0),
    (1271.0, "G", "remaining", {}, 20),  # six active: 100 // 6 = 16, but never below 20
    (1271.0, "G", "acquire", {"cost": 21}, 49.0),
    (1271.0, "G", "acquire", {"cost": 20}, 0.0),
    (1271.0, "G", "reset_at", {}, 1320.0),
]


def budgets(kind, url, clock):
    """A budget object per workspace over one scope's counters, as each process builds its own."""
    scope = f"test-{uuid.uuid4()}"
    counters = _IpCounters(limit=100)

    def view(workspace):
        if kind == "local":
            return LocalSharedBudget(counters, workspace, floor=20, clock=clock)
        return RedisSharedBudget(redis.Redis.from_url(url), scope, workspace, limit=100,
                                 floor=20, clock=clock)

    return view


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_the_local_and_the_redis_shared_budget_answer_the_same_sequence_alike(kind, redis_url):  # noqa: F811
    clock = Clock(0.0)
    view = budgets(kind, redis_url, clock)
    objects = {}
    answers, expected = [], []
    for at, workspace, call, arguments, answer in SEQUENCE:
        clock.now = at
        budget = objects.setdefault(workspace, view(workspace))
        answers.append(getattr(budget, call)(**arguments))
        expected.append(answer)

    assert answers == expected


def test_local_views_of_one_scope_share_its_counters_and_scopes_are_apart():
    scope = f"local-{uuid.uuid4()}"
    clock = Clock(600.0)
    first = local_shared_budget(scope, "A", limit=10, floor=2, clock=clock)
    again = local_shared_budget(scope, "A", limit=10, floor=2, clock=clock)
    other = local_shared_budget(f"{scope}-elsewhere", "A", limit=10, floor=2, clock=clock)

    first.ban(30.0, REASON)

    assert (again.banned_until(), again.ban_reason()) == (630.0, REASON)
    assert (other.banned_until(), other.acquire(3)) == (None, 0.0)


def test_a_ban_from_another_process_stops_every_workspace_here(redis_url):  # noqa: F811
    scope = f"process-{uuid.uuid4()}"
    code = ("import redis, sys; from runtimes.hosting.shared_budget import RedisSharedBudget; "
            "RedisSharedBudget(redis.Redis.from_url(sys.argv[1]), sys.argv[2], 'other-ws', "
            "limit=6000, floor=300).ban(90.0, sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, redis_url, scope, REASON], cwd=ROOT,
                   check=True, timeout=60)
    here = RedisSharedBudget(redis.Redis.from_url(redis_url), scope, "this-ws", limit=6000,
                             floor=300)

    until = here.banned_until()
    waited = here.acquire(1)

    assert until is not None and here.ban_reason() == REASON
    assert 85.0 < waited <= 90.0 and waited == pytest.approx(until - here.clock(), abs=0.01)


def test_the_redis_counters_expire_after_the_window_and_any_ban(redis_url):  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    budget = RedisSharedBudget(client, f"expiry-{uuid.uuid4()}", "A", limit=6000, floor=300,
                               clock=Clock(1_000_000.0))
    budget.acquire(20)
    budget.ban(600.0, REASON)

    # Redis counts the expiry in its own time: a few milliseconds may pass before it is read.
    assert 659_000 < client.pttl(budget.key) <= 660_000  # the ban, and a minute's margin
    spent = f"{budget.prefix}:spent:999960000"  # the window 1_000_000 s falls in, in ms
    assert 179_000 < client.pttl(spent) <= 180_000  # the next window reads it, and a margin
