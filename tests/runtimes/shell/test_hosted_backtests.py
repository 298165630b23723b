"""Hosted backtests end to end: a strategy version run by the platform in the real bubblewrap
sandbox against the real daphne server and Celery worker, through its relay, with a token for its
own session only. Misbehaving strategies end failed with their reason and output tail, and the
platform keeps serving (/livez, another hosted backtest)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime, probe_bubblewrap
from tests.foreign_server import foreign_server
from tests.runtimes.conftest import wait_for_state

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "strategies"
SUPPORT = probe_bubblewrap()
ENDED = {"completed", "failed", "cancelled"}


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    # The runs read PLATFORM_INTERNAL_URL and SANDBOX_* as the tests set them: in this process.
    pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (settings are overridden in-process)"),
]
needs_bubblewrap = pytest.mark.skipif(not SUPPORT.available,
                                      reason=f"bubblewrap unavailable here: {SUPPORT.reason}")

RAISES = """\
print("starting", flush=True)
def decide():
    raise RuntimeError("the strategy's own bug")
decide()
"""
EATS_MEMORY = """\
hoard = []
while True:
    hoard.append(bytearray(16 << 20))
"""
SLEEPS_FOREVER = """\
import time
print("sleeping", flush=True)
time.sleep(10_000)
"""
SPINS_THE_CPU = """\
while True:
    pass
"""
PRINTS_GIGABYTES = """\
import sys
line = "x" * 1023 + "\\n"
while True:
    sys.stdout.write(line * 1024)
"""
FORK_BOMB = """\
import os
while True:
    os.fork()
"""
TRIES_ANOTHER_SESSION = """\
import json, os, urllib.error, urllib.request
base = os.environ["TEKTII_TRADING_GATEWAY_URL"]  # http://127.0.0.1:<port>/sessions/<its id>
sessions, own = base.rsplit("/", 1)
other = json.loads(os.environ["PARITY_STRATEGY_PARAMS"])["other"]
token = os.environ["TEKTII_TRADING_GATEWAY_API_KEY"]
for session in (own, other):
    request = urllib.request.Request(f"{sessions}/{session}/v1/account",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            print(session, answer.status, flush=True)
    except urllib.error.HTTPError as error:
        print(session, error.code, flush=True)
raise SystemExit(3)
"""


ASKS_ITS_ACCOUNT_AT_THE_END = """\
import asyncio
from tektii import AsyncTradingGateway
async def main():
    async with AsyncTradingGateway() as gateway:
        finals = []
        async def final(_):
            finals.append((await gateway.get_account()).balance)
        async with gateway.stream(on_backtest_complete=final) as events:
            async for _ in events:
                pass
        print("final cash", finals, flush=True)
asyncio.run(main())
"""


@pytest.fixture
def hosted(owner, workspace, dataset, celery_worker, daphne_url, settings):
    """hosted(source or example file name, **options) -> a hosted backtest being started."""
    from runtimes.services import create_hosted_backtest
    from strategies.services import upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = daphne_url
    settings.SANDBOX_CPU_SECONDS = 2
    settings.SANDBOX_WALL_SECONDS = 8
    settings.SANDBOX_MAX_OUTPUT_BYTES = 64 << 10

    def start(code: str, *, params: dict | None = None, name: str = "hosted"):
        content = (EXAMPLES / code).read_bytes() if code.endswith(".py") else code.encode()
        version = upload_strategy_version(workspace=workspace, author=owner, strategy=name,
                                          filename="main.py", content=content)
        return create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                                      dataset=dataset, params=params,
                                      commission={"percent": Decimal("0.1")})

    return start


def run_sma_started(hosted, **options):
    return hosted("sma_crossover.py", params={"fast": 10, "slow": 30, "quantity": "0.5"},
                  **options)


def run_sma(hosted, **options):
    return wait_for_state(run_sma_started(hosted, **options), ENDED, timeout=60)


def livez(daphne_url: str) -> int:
    return httpx.get(f"{daphne_url}/livez", timeout=5).status_code


@needs_bubblewrap
def test_a_hosted_sma_crossover_completes_in_the_sandbox_with_its_output_captured(hosted):
    from runtimes.models import SessionToken

    session = run_sma(hosted)

    assert (session.state, session.failure_reason, session.sandboxed) == ("completed", "", True)
    assert session.result.orders and {o["quantity"] for o in session.result.orders} == {"0.5"}
    assert "backtest complete" in session.output
    assert "trading BTCUSDT (fast 10, slow 30)" in session.output
    assert session.output_truncated_bytes == 0
    # Over the local channel the run holds no credential at all.
    assert not SessionToken.objects.filter(session=session).exists()


@needs_bubblewrap
def test_the_end_of_backtest_hook_reads_the_final_account_and_the_strategy_exits_by_itself(
        hosted):
    session = wait_for_state(hosted(ASKS_ITS_ACCOUNT_AT_THE_END), ENDED, timeout=30)

    assert (session.state, session.failure_reason) == ("completed", "")
    # Answered while the host waited for it to exit (it was not killed: exit code 0 printed
    # after the answer).
    assert session.output == "final cash ['100000']\n"


@needs_bubblewrap
def test_a_strategy_that_raises_fails_naming_its_exception_and_line_with_the_traceback_tail(hosted):
    session = wait_for_state(hosted(RAISES), ENDED, timeout=30)

    assert (session.state, session.failure_reason) == (
        "failed", "strategy: raised RuntimeError: the strategy's own bug at main.py line 3, "
        "in decide")
    assert session.failure().sentence == (
        "Your strategy raised RuntimeError: the strategy's own bug at main.py line 3, in decide.")
    assert "Traceback (most recent call last)" in session.output_tail
    assert session.output_tail.splitlines()[-1] == "RuntimeError: the strategy's own bug"
    assert session.output.startswith("starting\n")


@needs_bubblewrap
@pytest.mark.parametrize(("code", "reason"), [
    (EATS_MEMORY, "strategy: killed: memory limit of 128 MiB exceeded"),
    (SLEEPS_FOREVER, "strategy: wall time limit of 8 s exceeded"),
    (SPINS_THE_CPU, "strategy: CPU time limit of 2 s exceeded"),
    (PRINTS_GIGABYTES, "strategy: CPU time limit of 2 s exceeded"),
    (FORK_BOMB, "strategy: process limit of 64 reached"),
], ids=["memory-hog", "sleeper", "cpu-spinner", "prints-gigabytes", "fork-bomb"])
def test_a_misbehaving_strategy_fails_with_its_reason_and_the_platform_keeps_serving(
    hosted, daphne_url, settings, code, reason
):
    settings.SANDBOX_MEMORY_MB = 128

    session = wait_for_state(hosted(code), ENDED, timeout=40)

    # A fork bomb's first process may fork on as its children die at the limit, until the
    # wall clock stops it: the reason then says both.
    wall = "; stopped at its wall time limit of 8 s"
    assert session.state == "failed"
    assert session.failure_reason in (reason, reason + wall if code is FORK_BOMB else reason)
    if code is PRINTS_GIGABYTES:
        assert len(session.output.encode()) < (64 << 10) + 200
        assert session.output_truncated_bytes > 1 << 20
    assert livez(daphne_url) == 200
    settings.SANDBOX_MEMORY_MB = 1024
    assert run_sma(hosted, name="after").state == "completed"


TRIES_ANOTHER_SESSION_OVER_THE_CHANNEL = """\
import asyncio, json, os, urllib.request
from tektii import AsyncTradingGateway, TektiiError
base = os.environ["TEKTII_TRADING_GATEWAY_URL"]  # the shim serves it over the local channel
sessions, own = base.rsplit("/", 1)
other = json.loads(os.environ["PARITY_STRATEGY_PARAMS"])["other"]
async def main():
    for session in (own, other):
        async with AsyncTradingGateway(base_url=f"{sessions}/{session}") as gateway:
            try:
                await gateway.get_account()
                print(session, "account", flush=True)
            except TektiiError as error:
                print(session, getattr(error, "status_code", None), error.code, flush=True)
asyncio.run(main())
try:  # anything but the channel finds no way out of the sandbox
    urllib.request.urlopen(base + "/v1/account", timeout=5)
except OSError as error:
    print("urllib:", type(error).__name__, flush=True)
print("token:", os.environ.get("TEKTII_TRADING_GATEWAY_API_KEY"), flush=True)
raise SystemExit(3)
"""


@needs_bubblewrap
def test_a_hosted_strategy_reaches_its_own_session_only_over_the_channel(hosted,
                                                                         start_backtest):
    from django.utils import timezone

    from runtimes.services import cancel_session

    other = start_backtest()

    session = wait_for_state(hosted(TRIES_ANOTHER_SESSION_OVER_THE_CHANNEL,
                                    params={"other": str(other.id)}), ENDED, timeout=30)
    cancel_session(session=other, now=timezone.now())

    assert session.failure_reason == "strategy: exited with code 3"
    # Its own session answers; the host refuses any other path; no credential to steal.
    assert session.output.splitlines() == [
        f"{session.id} account", f"{other.id} 403 FORBIDDEN", "urllib: URLError", "token: None"]


@needs_bubblewrap
def test_a_hosted_strategy_reaches_its_own_session_only(hosted, start_backtest, settings):
    from django.utils import timezone

    from runtimes.services import cancel_session

    settings.HOSTED_BACKTEST_TRANSPORT = "websocket"
    other = start_backtest()

    session = wait_for_state(hosted(TRIES_ANOTHER_SESSION, params={"other": str(other.id)}),
                             ENDED, timeout=30)
    cancel_session(session=other, now=timezone.now())

    assert session.failure_reason == "strategy: exited with code 3"
    # Its own session answers; the relay refuses any other path before the platform sees it.
    assert session.output.splitlines() == [f"{session.id} 200", f"{other.id} 403"]


def test_unsandboxed_runs_when_development_allows_them_and_the_page_says_so(
    hosted, monkeypatch, settings, sign_in, owner, workspace
):
    from runtimes.sandbox import runner as sandbox

    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(False, "bubblewrap is not installed (test)"))
    settings.SANDBOX_ALLOW_UNSANDBOXED = True

    session = run_sma(hosted)

    assert (session.state, session.sandboxed) == ("completed", False)
    assert "backtest complete" in session.output
    page = sign_in(owner, workspace).get(f"/app/backtests/{session.id}/").content.decode()
    assert "Hosted <strong>unsandboxed</strong> (development only)" in page


def printed(session, text: str) -> bool:
    """Whether the sandboxed strategy of `session` has printed `text` by now."""
    from runtimes.hosting.survival import RUNNING_HOSTS

    host = RUNNING_HOSTS.hosting(session.pk)
    return (host is not None and host.strategy is not None and host.session.sandboxed
            and host.strategy.output_so_far() == text)


@needs_bubblewrap
def test_cancelling_a_hosted_backtest_stops_its_strategy_and_keeps_its_output(hosted):
    from django.utils import timezone

    from runtimes.models import SessionToken
    from runtimes.services import cancel_session

    session = wait_for_state(hosted(SLEEPS_FOREVER), {"waiting"}, timeout=10)
    deadline = time.monotonic() + 10
    while not printed(session, "sleeping\n"):  # the embedded worker hosts it in this process
        assert time.monotonic() < deadline, "the strategy printed nothing"
        time.sleep(0.05)

    assert cancel_session(session=session, now=timezone.now(), reason="changed my mind")
    session = wait_for_state(session, ENDED, timeout=10)

    # The host stops the strategy and stores its output before it ends the session.
    assert (session.state, session.failure_reason) == ("cancelled", "changed my mind")
    assert (session.output, session.sandboxed) == ("sleeping\n", True)
    assert not SessionToken.objects.filter(session=session, revoked_at__isnull=True).exists()


@pytest.fixture
def foreign() -> Iterator[tuple[str, list[str]]]:
    with foreign_server({}) as (url, seen):
        yield url, seen


@needs_bubblewrap
def test_a_run_whose_internal_url_is_another_server_fails_naming_the_setting_and_keeps_its_token(
    hosted, settings, foreign
):
    from runtimes.models import SessionToken

    foreign_url, seen = foreign
    settings.PLATFORM_INTERNAL_URL = foreign_url  # the fixture pointed it at daphne
    settings.HOSTED_BACKTEST_TRANSPORT = "websocket"  # a run over the channel never asks it

    session = wait_for_state(run_sma_started(hosted), ENDED, timeout=30)

    assert session.state == "failed"
    assert session.failure_reason == (
        f"PLATFORM_INTERNAL_URL ({foreign_url}) does not answer as this Parity instance "
        "(it answered something else): set PLATFORM_INTERNAL_URL to the address this "
        "platform's web server listens on"
    )
    assert not SessionToken.objects.filter(session=session).exists()  # none was minted
    assert seen and not any("pst_" in request or "Authorization" in request for request in seen)


@needs_bubblewrap
def test_the_strategy_starts_while_the_data_loads_and_is_stopped_when_the_data_is_bad(
    hosted, dataset
):
    import tempfile

    from runtimes.models import SessionToken

    path = Path(dataset.files.get().path)  # registered where it is: edited after the fact
    path.write_text("timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n")

    session = wait_for_state(hosted(SLEEPS_FOREVER), ENDED, timeout=30)

    assert (session.state, session.failure_reason) == (
        "failed", "dataset: BTCUSDT.csv line 2: timestamp 'yesterday' is not a date or time")
    assert session.sandboxed  # its sandbox had started before the data was read
    assert not SessionToken.objects.filter(session=session, revoked_at__isnull=True).exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"parity-strategy-{session.pk}-*"))
