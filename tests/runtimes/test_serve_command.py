"""`manage.py serve` (what `make run` starts) serves the probes and the sign-up page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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
    return env


def test_serve_answers_livez_and_the_signup_page_with_the_demo_ready(
    embedded_env: dict[str, str],
) -> None:
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"],
        cwd=ROOT,
        env=embedded_env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    demo = subprocess.run(
        [*manage, "bootstrap_demo"],
        cwd=ROOT,
        env=embedded_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "as demo@parity.local with password parity-demo-2026" in demo.stdout
    port = free_port()
    server = subprocess.Popen(
        [*manage, "serve", "--port", str(port)],
        cwd=ROOT,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/livez", 60) == b'{"status": "ok"}'
        signup = wait_for(f"http://127.0.0.1:{port}/signup", 10).decode()
        assert "<form" in signup and 'name="email"' in signup and 'name="password1"' in signup
    finally:
        server.terminate()
        server.wait(timeout=20)
