"""A broker connection's request budget counted in Redis: every process of the distributed
platform (web, each worker) shares one count per connection.

The same rules as the in-process budget (runtimes/core/rate_budget.py, LocalBudget), each call
one Lua script, so two sessions on different workers can never both take the last request.
Times travel as integer milliseconds of the caller's clock (Lua numbers are doubles, and epoch
milliseconds stay exact in them); the hash expires once its window and any block have passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import redis

KEY_PREFIX: Final = "parity:broker"  # beside the bus's "parity:bus" keys
EXPIRY_MARGIN_MS: Final = 60_000  # kept this long past its window: a late reader still sees it

# KEYS[1]: the budget hash {end, used, limit, blocked}. ARGV[1]: now (ms), ARGV[2]: the limit
# to assume before one is stored. Every script loads the state the same way.
_LOAD = """
local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'end', 'used', 'limit', 'blocked')
local wend = tonumber(state[1]) or 0
local used = tonumber(state[2]) or 0
local limit = tonumber(state[3]) or tonumber(ARGV[2])
local blocked = tonumber(state[4]) or 0
"""
_STORE = f"""
redis.call('HSET', KEYS[1], 'end', wend, 'used', used, 'limit', limit, 'blocked', blocked)
redis.call('PEXPIRE', KEYS[1], math.max(math.max(wend, blocked) - now, 0) + {EXPIRY_MARGIN_MS})
"""
# ARGV[3]: cost, ARGV[4]: window (ms). Returns the wait in ms (0: granted and spent).
ACQUIRE = _LOAD + """
if now < blocked then return blocked - now end
if now >= wend then wend = now + tonumber(ARGV[4]); used = 0 end
local wait = 0
if used + tonumber(ARGV[3]) > limit then wait = wend - now else used = used + tonumber(ARGV[3]) end
""" + _STORE + "return wait"
# ARGV[3]: limit, ARGV[4]: remaining, ARGV[5]: reset (ms); "" for unknown.
OBSERVE = _LOAD + """
if ARGV[5] ~= '' and tonumber(ARGV[5]) > now then wend = tonumber(ARGV[5]) end
if ARGV[3] ~= '' then limit = tonumber(ARGV[3]) end
if ARGV[4] ~= '' then used = math.max(used, limit - tonumber(ARGV[4])) end
""" + _STORE + "return 1"
# ARGV[3]: the block's length (ms).
BLOCK = _LOAD + """
blocked = math.max(blocked, now + tonumber(ARGV[3]))
""" + _STORE + "return 1"
# Returns {requests left, window end (ms; 0 before the first request)}.
READ = _LOAD + """
local left = limit
if now < wend then left = math.max(0, limit - used) end
return {left, wend}
"""


class RedisBudget:
    """RateBudget (runtimes/core/connection.py) of one connection, counted in Redis."""

    def __init__(self, client: redis.Redis, connection_id: str, *, limit: int,
                 window_seconds: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.key = f"{KEY_PREFIX}:{connection_id}:budget"
        self.limit = limit
        self.window_ms = round(window_seconds * 1000)
        self.clock = clock
        self._acquire = client.register_script(ACQUIRE)
        self._observe = client.register_script(OBSERVE)
        self._block = client.register_script(BLOCK)
        self._read = client.register_script(READ)

    def _now_ms(self) -> int:
        return round(self.clock() * 1000)

    def acquire(self, cost: int = 1) -> float:
        waited = self._acquire(keys=[self.key], args=[self._now_ms(), self.limit, cost,
                                                      self.window_ms])
        return int(waited) / 1000

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        def arg(value: int | None) -> str | int:
            return "" if value is None else value

        reset_ms = None if reset_at is None else round(reset_at * 1000)
        self._observe(keys=[self.key], args=[self._now_ms(), self.limit, arg(limit),
                                             arg(remaining), arg(reset_ms)])

    def blocked_for(self, seconds: float) -> None:
        self._block(keys=[self.key], args=[self._now_ms(), self.limit, round(seconds * 1000)])

    def remaining(self) -> int | None:
        left, _ = self._read(keys=[self.key], args=[self._now_ms(), self.limit])
        return int(left)

    def reset_at(self) -> float | None:
        _, window_end = self._read(keys=[self.key], args=[self._now_ms(), self.limit])
        return int(window_end) / 1000 if int(window_end) else None
