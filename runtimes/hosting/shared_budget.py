"""Binance's request weight, counted per IP and shared fairly between the workspaces of a worker:
the SharedBudget (runtimes/core/connection.py) of every Binance connection.

Binance counts the weight of every REST request per IP address (6000 a minute), whichever key
sent it, so every tenant whose sessions run behind one address spends one budget; a 429 that is
not heeded becomes a 418, a ban of the whole IP. One workspace must not be able to starve the
others, so the budget is split:

- a global window aligned to the clock (`window_seconds`, Binance's minute), at most `limit`
  weight in it, raised to what X-MBX-USED-WEIGHT-1M says when Binance counted more than we did;
- each workspace spends at most its fair share of the window: the limit split equally between
  the workspaces that spent in the current or the previous window (the one asking included),
  never below `floor`. A lone workspace may use everything; a second one that appears is given
  half from its first request on.
- a 429's Retry-After blocks every workspace; a 418 bans every workspace until it ends, with its
  reason kept so that every process (the dashboard's included) can say so.

Two implementations with the same rules: `LocalSharedBudget` in this process (the embedded
platform, tests) and `RedisSharedBudget` (production: every process of the platform sees the
same counts; each call one Lua script). A budget object is a view of one workspace over the
counters of one IP scope: `shared_budget(scope, workspace_id)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

WINDOW_SECONDS: Final = 60.0  # X-MBX-USED-WEIGHT-1M: Binance's minute
KEY_PREFIX: Final = "parity:broker:ip"
EXPIRY_MARGIN_MS: Final = 60_000


@dataclass
class _IpCounters:
    """The counters of one IP scope: what every workspace's view reads and writes."""

    limit: int
    window_start: float = -1.0
    used: int = 0
    spent: dict[float, dict[str, int]] = field(default_factory=dict)  # window start -> ws -> w
    blocked_until: float = 0.0
    banned_until: float = 0.0
    ban_reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class LocalSharedBudget:
    """SharedBudget of one workspace over the in-process counters of one IP scope."""

    def __init__(self, counters: _IpCounters, workspace_id: str, *, floor: int,
                 window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._counters = counters
        self.workspace_id = workspace_id
        self.floor = floor
        self.window_seconds = window_seconds
        self.clock = clock

    def _roll(self, now: float) -> float:
        """Open the window `now` falls in (caller holds the lock); its start."""
        state = self._counters
        start = now - now % self.window_seconds
        if start != state.window_start:
            state.window_start, state.used = start, 0
            previous = start - self.window_seconds
            state.spent = {k: v for k, v in state.spent.items() if k in (start, previous)}
        return start

    def _share(self, start: float) -> tuple[int, int]:
        """(this workspace's fair share of the window, what it spent in it)."""
        state = self._counters
        current = state.spent.get(start, {})
        active = set(current) | set(state.spent.get(start - self.window_seconds, {}))
        active.add(self.workspace_id)
        share = max(self.floor, state.limit // len(active))
        return share, current.get(self.workspace_id, 0)

    def acquire(self, cost: int = 1) -> float:
        with self._counters.lock:
            now, state = self.clock(), self._counters
            stop = max(state.banned_until, state.blocked_until)
            if now < stop:
                return stop - now
            start = self._roll(now)
            share, spent = self._share(start)
            if state.used + cost > state.limit or spent + cost > share:
                return start + self.window_seconds - now
            state.used += cost
            state.spent.setdefault(start, {})[self.workspace_id] = spent + cost
            return 0.0

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        # reset_at is not needed: the windows are aligned to the clock as Binance's minute is.
        with self._counters.lock:
            state = self._counters
            self._roll(self.clock())
            if limit is not None:
                state.limit = limit
            if remaining is not None:
                state.used = max(state.used, state.limit - remaining)

    def blocked_for(self, seconds: float) -> None:
        with self._counters.lock:
            state = self._counters
            state.blocked_until = max(state.blocked_until, self.clock() + seconds)

    def ban(self, seconds: float, reason: str) -> None:
        with self._counters.lock:
            state = self._counters
            until = self.clock() + seconds
            if until > state.banned_until:
                state.banned_until, state.ban_reason = until, reason

    def banned_until(self) -> float | None:
        with self._counters.lock:
            state = self._counters
            return state.banned_until if self.clock() < state.banned_until else None

    def ban_reason(self) -> str | None:
        """Why the current ban was imposed (None without one)."""
        with self._counters.lock:
            state = self._counters
            return state.ban_reason if self.clock() < state.banned_until else None

    def remaining(self) -> int | None:
        """What this workspace may still spend in the current window."""
        with self._counters.lock:
            state = self._counters
            start = self._roll(self.clock())
            share, spent = self._share(start)
            return max(0, min(state.limit - state.used, share - spent))

    def reset_at(self) -> float | None:
        now = self.clock()
        return now - now % self.window_seconds + self.window_seconds


# KEYS[1]: the IP's hash {used, limit, blocked, banned, reason} of the window `win`;
# KEYS[2], KEYS[3]: the hashes workspace -> weight spent of the current and previous windows.
# ARGV[1]: now (ms), ARGV[2]: the current window's start (ms), ARGV[3]: the window (ms),
# ARGV[4]: the limit to assume before one is stored, ARGV[5]: the floor, ARGV[6]: workspace.
_LOAD = """
local now = tonumber(ARGV[1])
local start = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'win', 'used', 'limit', 'blocked', 'banned', 'reason')
local used = tonumber(s[2]) or 0
if tonumber(s[1]) ~= start then used = 0 end
local limit = tonumber(s[3]) or tonumber(ARGV[4])
local blocked = tonumber(s[4]) or 0
local banned = tonumber(s[5]) or 0
local reason = s[6] or ''
local ws = ARGV[6]
local function share()
  local active = {}
  local n = 0
  for _, key in ipairs({KEYS[2], KEYS[3]}) do
    for _, name in ipairs(redis.call('HKEYS', key)) do
      if not active[name] then active[name] = true; n = n + 1 end
    end
  end
  if not active[ws] then n = n + 1 end
  local spent = tonumber(redis.call('HGET', KEYS[2], ws)) or 0
  return math.max(tonumber(ARGV[5]), math.floor(limit / n)), spent
end
"""
_STORE = f"""
redis.call('HSET', KEYS[1], 'win', start, 'used', used, 'limit', limit, 'blocked', blocked,
           'banned', banned, 'reason', reason)
redis.call('PEXPIRE', KEYS[1],
           math.max(math.max(start + window, blocked, banned) - now, 0) + {EXPIRY_MARGIN_MS})
"""
# ARGV[7]: cost. Returns the wait in ms (0: granted and spent).
ACQUIRE = _LOAD + """
local stop = math.max(banned, blocked)
if now < stop then return stop - now end
local fair, spent = share()
local cost = tonumber(ARGV[7])
if used + cost > limit or spent + cost > fair then return start + window - now end
used = used + cost
redis.call('HINCRBY', KEYS[2], ws, cost)
redis.call('PEXPIRE', KEYS[2], 2 * window + """ + str(EXPIRY_MARGIN_MS) + """)
""" + _STORE + "return 0"
# ARGV[7]: limit, ARGV[8]: remaining ("" for unknown).
OBSERVE = _LOAD + """
if ARGV[7] ~= '' then limit = tonumber(ARGV[7]) end
if ARGV[8] ~= '' then used = math.max(used, limit - tonumber(ARGV[8])) end
""" + _STORE + "return 1"
# ARGV[7]: the block's length (ms).
BLOCK = _LOAD + """
blocked = math.max(blocked, now + tonumber(ARGV[7]))
""" + _STORE + "return 1"
# ARGV[7]: the ban's length (ms), ARGV[8]: its reason.
BAN = _LOAD + """
if now + tonumber(ARGV[7]) > banned then banned = now + tonumber(ARGV[7]); reason = ARGV[8] end
""" + _STORE + "return 1"
# Returns {what this workspace may still spend, the ban's end (ms; 0 without), its reason}.
READ = _LOAD + """
local fair, spent = share()
local left = math.max(0, math.min(limit - used, fair - spent))
if now >= banned then banned = 0; reason = '' end
return {left, banned, reason}
"""


class RedisSharedBudget:
    """SharedBudget of one workspace over the counters of one IP scope in Redis."""

    def __init__(self, client: Any, scope: str, workspace_id: str, *, limit: int, floor: int,
                 window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = f"{KEY_PREFIX}:{scope}"
        self.key = f"{self.prefix}:weight"
        self.workspace_id = workspace_id
        self.limit = limit
        self.floor = floor
        self.window_ms = round(window_seconds * 1000)
        self.clock = clock
        self._scripts = {name: client.register_script(text) for name, text in (
            ("acquire", ACQUIRE), ("observe", OBSERVE), ("block", BLOCK), ("ban", BAN),
            ("read", READ))}

    def _call(self, script: str, *extra: Any) -> Any:
        now = round(self.clock() * 1000)
        start = now - now % self.window_ms
        keys = [self.key, f"{self.prefix}:spent:{start}",
                f"{self.prefix}:spent:{start - self.window_ms}"]
        return self._scripts[script](keys=keys, args=[
            now, start, self.window_ms, self.limit, self.floor, self.workspace_id, *extra])

    def acquire(self, cost: int = 1) -> float:
        return int(self._call("acquire", cost)) / 1000

    def observe(self, *, limit: int | None, remaining: int | None,
                reset_at: float | None) -> None:
        self._call("observe", "" if limit is None else limit,
                   "" if remaining is None else remaining)

    def blocked_for(self, seconds: float) -> None:
        self._call("block", round(seconds * 1000))

    def ban(self, seconds: float, reason: str) -> None:
        self._call("ban", round(seconds * 1000), reason)

    def banned_until(self) -> float | None:
        _, banned, _ = self._call("read")
        return int(banned) / 1000 if int(banned) else None

    def ban_reason(self) -> str | None:
        _, banned, reason = self._call("read")
        if not int(banned):
            return None
        return reason.decode() if isinstance(reason, bytes) else str(reason)

    def remaining(self) -> int | None:
        left, _, _ = self._call("read")
        return int(left)

    def reset_at(self) -> float | None:
        now_ms = round(self.clock() * 1000)
        return (now_ms - now_ms % self.window_ms + self.window_ms) / 1000


_COUNTERS: dict[str, _IpCounters] = {}
_COUNTERS_LOCK = threading.Lock()


def local_shared_budget(scope: str, workspace_id: str, *, limit: int, floor: int,
                        clock: Callable[[], float] = time.time) -> LocalSharedBudget:
    """The view of `workspace_id` over the one in-process counters of `scope` (made on first
    use)."""
    with _COUNTERS_LOCK:
        counters = _COUNTERS.get(scope)
        if counters is None:
            counters = _COUNTERS[scope] = _IpCounters(limit=limit)
    return LocalSharedBudget(counters, workspace_id, floor=floor, clock=clock)
