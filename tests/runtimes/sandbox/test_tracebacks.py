"""The exception that ended a strategy, read from its captured output: real tracebacks of bad
strategies run in the bubblewrap sandbox, and the edges of the text (none, the platform's own
frames only, chained, bounded)."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.sandbox.runner import (
    SandboxLimits,
    SandboxSpec,
    SessionTarget,
    probe_bubblewrap,
    run_sandboxed,
    strategy_env,
)
from runtimes.sandbox.tracebacks import MAX_MESSAGE, StrategyException, strategy_exception

SUPPORT = probe_bubblewrap()
needs_bubblewrap = pytest.mark.skipif(not SUPPORT.available,
                                      reason=f"bubblewrap unavailable here: {SUPPORT.reason}")
LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=10, max_output_bytes=64 << 10)
# Nothing listens there: these strategies never ask the platform anything.
TARGET = SessionTarget(host="127.0.0.1", port=9, path_prefix="/sessions/x/")

DIVIDES_BY_ZERO = """\
import asyncio

class Strategy:
    def __init__(self):
        self.trades = 0

    async def on_candle(self, close):
        return close / self.trades

asyncio.run(Strategy().on_candle(3))
"""
HELPER = """\
import json

def parse(text):
    return json.loads(text)
"""
CALLS_A_HELPER = """\
from signals import parse
print("starting", flush=True)
parse("{not json")
"""
RETRIES_AND_FAILS = """\
def fetch():
    raise KeyError("price")

try:
    fetch()
except KeyError as error:
    raise RuntimeError("no price for BTCUSDT") from error
"""
TASK_GROUP_FAILS = """\
import asyncio

async def fine():
    await asyncio.sleep(0)

async def on_candle(close):
    return close / 0

async def main():
    async with asyncio.TaskGroup() as group:
        group.create_task(fine())
        group.create_task(on_candle(3))

asyncio.run(main())
"""


@pytest.fixture
def code_dir() -> Iterator[Path]:
    # World-readable like the platform's strategy store: the slot's uid must read the code.
    folder = Path(tempfile.mkdtemp(prefix="parity-tracebacks-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def run(code_dir: Path, files: dict[str, str]):
    for name, source in files.items():
        (code_dir / name).write_text(textwrap.dedent(source))
        (code_dir / name).chmod(0o644)
    spec = SandboxSpec(code_dir=code_dir, entry="main.py",
                       env=strategy_env(token="unused", params={}), target=TARGET, slot=2)
    return run_sandboxed(spec, LIMITS, allow_unsandboxed=False)


@needs_bubblewrap
def test_an_exception_in_a_coroutine_names_the_method_line_and_message(code_dir):
    result = run(code_dir, {"main.py": DIVIDES_BY_ZERO})

    assert (result.outcome, result.reason) == (
        "failed", "raised ZeroDivisionError: division by zero at main.py line 8, in on_candle")
    # asyncio's own frames come after the user's first one and are skipped.
    assert strategy_exception(result.output_tail, code_root="/strategy") == StrategyException(
        type="ZeroDivisionError", message="division by zero", file="main.py", line=8,
        function="on_candle")


@needs_bubblewrap
def test_an_exception_raised_inside_a_library_names_the_users_innermost_frame(code_dir):
    result = run(code_dir, {"main.py": CALLS_A_HELPER, "signals.py": HELPER})

    assert result.reason == (
        "raised json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1) at signals.py line 4, in parse")
    assert result.output.startswith("starting\n")


@needs_bubblewrap
def test_a_chained_exception_names_the_last_one_raised(code_dir):
    result = run(code_dir, {"main.py": RETRIES_AND_FAILS})

    assert result.reason == (
        "raised RuntimeError: no price for BTCUSDT at main.py line 7, in <module>")


@needs_bubblewrap
def test_an_exception_group_of_a_task_group_names_its_sub_exception(code_dir):
    result = run(code_dir, {"main.py": TASK_GROUP_FAILS})

    assert "Exception Group Traceback" in result.output_tail
    assert result.reason == (
        "raised ZeroDivisionError: division by zero at main.py line 7, in on_candle")


@needs_bubblewrap
def test_a_plain_exit_with_a_message_has_no_exception_to_name(code_dir):
    result = run(code_dir, {"main.py": 'raise SystemExit("need 0 < fast < slow")\n'})

    assert (result.reason, result.output) == ("exited with code 1", "need 0 < fast < slow\n")


def test_output_without_a_traceback_names_nothing():
    assert strategy_exception("starting\nbacktest complete\n", code_root="/strategy") is None


def test_a_traceback_through_the_platforms_files_only_names_nothing():
    tail = ('Traceback (most recent call last):\n'
            '  File "/opt/parity/shim.py", line 370, in <module>\n'
            '    run(sys.argv[1:])\n'
            'OSError: [Errno 9] Bad file descriptor\n')

    assert strategy_exception(tail, code_root="/strategy") is None


def test_a_long_message_is_cut_and_kept_on_one_line():
    tail = ('Traceback (most recent call last):\n'
            '  File "/strategy/main.py", line 2, in <module>\n'
            '    raise ValueError(text)\n'
            f'ValueError: {"x" * 500}\n'
            'with a second line\n')

    raised = strategy_exception(tail, code_root="/strategy/")

    assert raised is not None
    assert (raised.message, len(raised.message)) == ("x" * (MAX_MESSAGE - 1) + "…", MAX_MESSAGE)


def test_an_exception_without_a_message_reads_as_its_type():
    tail = ('Traceback (most recent call last):\n'
            '  File "/strategy/main.py", line 3, in on_order\n'
            '    raise StopIteration\n'
            'StopIteration\n')

    raised = strategy_exception(tail, code_root="/strategy")

    assert raised is not None
    assert raised.sentence() == "raised StopIteration at main.py line 3, in on_order"
