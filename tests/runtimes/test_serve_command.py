"""`manage.py serve` (what `make run` starts) serves the probes and the sign-up page, and its
hosted runs reach the platform on whatever port it serves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from runtimes.sandbox.runner import probe_bubblewrap

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture()
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PARITY_MODE"}
    }
    env["PARITY_DATA_DIR"] = str(tmp_path)
    env.pop("PLATFORM_INTERNAL_URL", None)
    return env


def manage(env: dict[str, str], *arguments: str, timeout: float = 60) -> str:
    """Runs a management command to its end; its stdout."""
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[str]:
    """`manage.py serve --port PORT` (a migrated database), until the block ends: its URL."""
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/livez", 60)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_answers_livez_and_the_signup_page_with_the_demo_ready(
    embedded_env: dict[str, str],
) -> None:
    manage(embedded_env, "migrate", "--noinput", timeout=180)
    demo = manage(embedded_env, "bootstrap_demo")
    assert "as demo@parity.local with password parity-demo-2026" in demo
    tried = manage(embedded_env, "bootstrap_demo_deployment")
    assert tried == "Added demo deployment: Try it now: SMA crossover on the mock market\n"
    assert manage(embedded_env, "bootstrap_demo_deployment") == ""  # idempotent
    with serving(embedded_env, free_port()) as url:
        assert wait_for(f"{url}/livez", 10) == b'{"status": "ok"}'
        signup = wait_for(f"{url}/signup", 10).decode()
        assert "<form" in signup and 'name="email"' in signup and 'name="password1"' in signup


SETUP = """
import json
from pathlib import Path
from accounts.services import create_api_key, ensure_demo_account
from strategies.services import register_dataset, upload_strategy_version
user, workspace = ensure_demo_account(email="port@example.com", password="a-long-password-1")
_, key = create_api_key(workspace=workspace, created_by=user, name="k",
                        scopes=["read", "trade:paper"])
version = upload_strategy_version(
    workspace=workspace, author=user, strategy="SMA", filename="main.py",
    content=Path("examples/strategies/sma_crossover.py").read_bytes())
dataset = register_dataset(workspace=workspace, name="BTC 1m", files={"BTCUSDT": Path(CSV)})
print(json.dumps({"workspace": str(workspace.id), "key": key, "version": str(version.id),
                  "dataset": str(dataset.id)}))
"""


@pytest.mark.skipif(not probe_bubblewrap().available, reason="hosted runs need bubblewrap")
def test_a_hosted_backtest_finds_the_platform_served_on_a_non_default_port(
    embedded_env: dict[str, str], btc_csv: Path
) -> None:
    manage(embedded_env, "migrate", "--noinput", timeout=180)
    made = manage(embedded_env, "shell", "-c", SETUP.replace("CSV", repr(str(btc_csv))))
    ids = json.loads(made.strip().splitlines()[-1])
    port = free_port()
    assert port != 8000
    with serving(embedded_env, port) as url:
        backtests = f"{url}/api/v1/workspaces/{ids['workspace']}/backtests"
        client = httpx.Client(headers={"Authorization": f"Bearer {ids['key']}"}, timeout=10)
        created = client.post(
            backtests,
            json={
                "version": ids["version"],
                "dataset": ids["dataset"],
                "params": {"fast": 10, "slow": 30, "quantity": "0.5"},
            },
        )
        assert created.status_code == 201, created.text
        backtest = created.json()
        deadline = time.monotonic() + 90
        while backtest["state"] not in {"completed", "failed", "cancelled"}:
            assert time.monotonic() < deadline, backtest
            time.sleep(0.5)
            backtest = client.get(f"{backtests}/{backtest['id']}").json()

    assert (backtest["state"], backtest["failure_reason"]) == ("completed", "")
    assert backtest["sandboxed"] is True
    assert "backtest complete" in backtest["output"]


def test_serve_gives_the_embedded_worker_the_configured_session_slots(
    monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    from runtimes.management.commands import serve

    started: list[int] = []

    class Services:
        def stop(self) -> None:
            started.append(-1)

    def start(app: object, *, concurrency: int) -> Services:
        started.append(concurrency)
        return Services()

    class Server:
        def __init__(self, **_: object) -> None:
            pass

        def run(self) -> None:
            pass

    monkeypatch.setattr(serve, "start_embedded_services", start)
    monkeypatch.setattr(serve, "Server", Server)
    monkeypatch.setattr(serve, "follow_served_address", lambda **_: None)
    monkeypatch.setattr(serve, "reap_lost_sessions", list)
    settings.CELERY_EMBEDDED_WORKER = True  # type: ignore[attr-defined]
    settings.EMBEDDED_WORKER_CONCURRENCY = 3  # type: ignore[attr-defined]
    serve.Command().handle(host="127.0.0.1", port=0, no_worker=False)
    assert started == [3, -1]


def test_the_embedded_worker_hosts_eight_sessions_at_once_by_default() -> None:
    from django.conf import settings

    assert settings.EMBEDDED_WORKER_CONCURRENCY == 8
