"""How daphne's event loop is made, in every process of the platform: `config/__init__.py` calls
`prepare_daphne()` before Django loads its apps (the `daphne` app imports `daphne.server`, which
makes the loop); the image's web role runs `python -m config.web <daphne arguments>`.

Two settings measured on these machines (a daphne WebSocket echo, CPU per round trip in the
server: 308 us stock, 199 us with both), which matter because a backtest is lock-step, one
round trip per bar:
- daphne runs Twisted on an asyncio loop that it creates when `daphne.server` is first imported;
  that loop is uvloop's when uvloop is installed. Only daphne's loop: the process-wide event loop
  policy is put back at once, so nothing else (tests, SDK clients) changes loop.
- autobahn formats the arguments of its debug log calls eagerly, colouring them with click when
  click is importable, on every frame in and out, whether or not debug logging is on. Without
  click's colours the same calls are plain string work.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import warnings


def prepare_daphne() -> None:
    """Import `daphne.server` on uvloop (when installed), quieten autobahn's log formatting and
    give daphne the platform's request limits (config/server_limits.py). Call before anything
    imports `daphne.server`; afterwards the loop is fixed and this warns."""
    if "daphne.server" in sys.modules:
        warnings.warn("daphne.server was imported before prepare_daphne(): its loop is kept",
                      RuntimeWarning, stacklevel=2)
    else:
        _import_on_uvloop("daphne.server")
    import autobahn.util

    autobahn.util._HAS_CLICK = False  # type: ignore[attr-defined]
    from config import server_limits  # imports Twisted's HTTP, so after daphne made the loop

    server_limits.install()


def _import_on_uvloop(module: str) -> None:
    try:
        import uvloop
    except ImportError:  # a platform without uvloop wheels: asyncio's own loop works too
        importlib.import_module(module)
        return
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        importlib.import_module(module)
    finally:
        asyncio.set_event_loop_policy(previous)


def uses_uvloop() -> bool:
    """Whether daphne's loop (once imported) is uvloop's."""
    server = sys.modules.get("daphne.server")
    return server is not None and type(server.twisted_loop).__module__.startswith("uvloop")
