"""Hosted strategies in the bubblewrap sandbox: what they can reach (their own session, through
the forwarder and the relay), what they cannot (network, platform files, environment, other
paths), and the exact reason each kind of misbehaviour ends with, while the platform keeps
serving. A small http.server stands in for the platform."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import (
    SandboxLimits,
    SandboxSpec,
    SandboxSupport,
    SessionTarget,
    parse_request_head,
    path_allowed,
    probe_bubblewrap,
    run_sandboxed,
    start_sandboxed,
    strategy_env,
)

SUPPORT = probe_bubblewrap()
pytestmark = pytest.mark.skipif(
    not SUPPORT.available, reason=f"bubblewrap sandbox unavailable here: {SUPPORT.reason}"
)

SESSION = "/sessions/3f1c2b9e-0000-4000-8000-000000000001/"
TOKEN = "sess_token_for_this_session_only"
SLOT = 1
AS_ROOT = os.geteuid() == 0
LIMITS = SandboxLimits(
    memory_bytes=1 << 30,
    cpu_seconds=2,
    wall_seconds=5,
    max_processes=64,
    max_open_files=64,
    max_file_size=1 << 20,
    max_output_bytes=64 << 10,
    tmp_bytes=8 << 20,
    shm_bytes=1 << 20,
)


class _Platform(BaseHTTPRequestHandler):
    """Answers every GET with the path and Authorization it saw, and records the path."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def platform() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def target(platform: ThreadingHTTPServer) -> SessionTarget:
    _Platform.seen.clear()
    return SessionTarget(host="127.0.0.1", port=platform.server_address[1], path_prefix=SESSION)


def _platform_still_serves(platform: ThreadingHTTPServer) -> bool:
    url = f"http://127.0.0.1:{platform.server_address[1]}{SESSION}v1/health"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


@pytest.fixture(scope="module", autouse=True)
def _strategies_dir() -> Iterator[None]:
    # World-readable like the platform's strategy store: the slot's uid must read the code
    # (pytest's tmp_path lives under a 0700 directory).
    global _STRATEGIES
    _STRATEGIES = Path(tempfile.mkdtemp(prefix="parity-strategies-"))
    _STRATEGIES.chmod(0o755)
    yield
    shutil.rmtree(_STRATEGIES)


_STRATEGIES = Path()


def _spec(source: str, target: SessionTarget, params: dict[str, object] | None = None):
    code_dir = Path(tempfile.mkdtemp(dir=_STRATEGIES))
    code_dir.chmod(0o755)
    (code_dir / "main.py").write_text(textwrap.dedent(source))
    (code_dir / "main.py").chmod(0o644)
    env = strategy_env(token=TOKEN, params=params or {})
    return SandboxSpec(code_dir=code_dir, entry="main.py", env=env, target=target, slot=SLOT)


def _run(source: str, target: SessionTarget, limits: SandboxLimits = LIMITS, **kwargs):
    return run_sandboxed(_spec(source, target, **kwargs), limits, allow_unsandboxed=False)


def _json_output(result) -> object:
    return json.loads(result.output.strip().splitlines()[-1])


# --- what a well-behaved strategy gets ------------------------------------------------------


def test_strategy_prints_and_completes_as_an_unprivileged_uid(target):
    result = _run("import os\nprint('hello from', os.getuid(), os.getcwd())\n", target)

    uid = 60000 + SLOT if AS_ROOT else os.getuid()
    assert (result.outcome, result.reason) == ("completed", "exited with code 0")
    assert result.exit_code == 0
    assert result.output == f"hello from {uid} /tmp\n"
    assert result.output_tail == f"hello from {uid} /tmp"
    assert (result.truncated_bytes, result.sandboxed) == (0, True)


def test_environment_holds_only_the_variables_the_platform_passes(target, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret")
    source = """
        import json, os
        print(json.dumps(dict(os.environ)))
    """
    env = _json_output(_run(source, target, params={"fast": 5, "symbol": "BTCUSDT"}))

    assert env == {
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": "/opt/python/lib",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PARITY_STRATEGY_PARAMS": '{"fast":5,"symbol":"BTCUSDT"}',
        "PATH": "/opt/venv/bin:/usr/bin:/bin",
        "PWD": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TEKTII_TRADING_GATEWAY_API_KEY": TOKEN,
        "TEKTII_TRADING_GATEWAY_URL": f"http://127.0.0.1:{target.port}{SESSION.rstrip('/')}",
        "TMPDIR": "/tmp",
    }


def test_session_prefix_is_reachable_through_the_forwarder_with_the_sdk_settings(target):
    source = """
        import json, os, httpx, tektii
        tektii.TradingGateway().close()  # the SDK accepts the URL and token as they are
        url = os.environ["TEKTII_TRADING_GATEWAY_URL"] + "/v1/account"
        key = os.environ["TEKTII_TRADING_GATEWAY_API_KEY"]
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
        print(json.dumps([response.status_code, response.json()]))
    """
    result = _run(source, target)

    assert result.outcome == "completed", result.output
    assert _json_output(result) == [
        200,
        {"path": f"{SESSION}v1/account", "auth": f"Bearer {TOKEN}"},
    ]


def test_numpy_and_pandas_import_and_work_inside_the_sandbox(target):
    source = """
        import numpy, pandas
        frame = pandas.DataFrame({"close": numpy.arange(5.0)})
        print(numpy.__version__, pandas.__version__, frame["close"].rolling(2).mean().iloc[-1])
    """
    result = _run(source, target)

    import numpy
    import pandas

    assert result.outcome == "completed", result.output
    assert result.output == f"{numpy.__version__} {pandas.__version__} 3.5\n"


def test_semaphores_cpu_count_and_linear_algebra_work_without_proc(target):
    source = """
        import json, multiprocessing, os, numpy
        lock = multiprocessing.Lock()  # a POSIX semaphore: sem_open in the private /dev/shm
        with lock:
            locked = True
        matrix = numpy.array([[2.0, 1.0], [1.0, 3.0]])
        inverse = numpy.linalg.inv(matrix) @ matrix
        print(json.dumps([locked, os.cpu_count() >= 1, inverse.round(9).tolist()]))
    """
    result = _run(source, target)

    assert result.outcome == "completed", result.output
    assert _json_output(result) == [True, True, [[1.0, 0.0], [0.0, 1.0]]]


def test_stdout_and_stderr_are_captured_and_a_crash_ends_failed_with_its_last_lines(target):
    source = """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        raise ValueError("boom")
    """
    result = _run(source, target)

    assert (result.outcome, result.reason, result.exit_code) == (
        "failed", "raised ValueError: boom at main.py line 5, in <module>", 1)
    assert result.output.startswith("to stdout\nto stderr\nTraceback (most recent call last):\n")
    assert result.output_tail.splitlines()[-1] == "ValueError: boom"


# --- the only way out: the session's own prefix ---------------------------------------------


def test_paths_outside_the_session_are_refused_and_never_reach_the_platform(target):
    source = f"""
        import json, socket
        def status(request_target):
            with socket.create_connection(("127.0.0.1", {target.port})) as conn:
                conn.sendall(f"GET {{request_target}} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
                return conn.recv(4096).split(b"\\r\\n")[0].decode()
        print(json.dumps([status(t) for t in [
            "{SESSION}v1/orders",
            "/sessions/another-session/v1/orders",
            "{SESSION}../another-session/v1/orders",
            "{SESSION}%2e%2e/another-session/v1/orders",
            "/admin/",
            "http://127.0.0.1/{SESSION}v1/orders",
        ]]))
    """
    result = _run(source, target)

    assert _json_output(result) == ["HTTP/1.1 200 OK"] + ["HTTP/1.1 403 Forbidden"] * 5
    assert _Platform.seen == [f"{SESSION}v1/orders"]


def test_outbound_network_and_other_host_ports_are_unreachable(target):
    other_service = __import__("socket").create_server(("127.0.0.1", 0))  # e.g. Redis, Postgres
    source = f"""
        import json, socket
        def attempt(address):
            try:
                socket.create_connection(address, timeout=2).close()
                return "connected"
            except OSError as error:
                return type(error).__name__ + " " + str(error.errno)
        def resolve():
            try:
                socket.getaddrinfo("example.com", 80)
                return "resolved"
            except OSError as error:
                return type(error).__name__
        print(json.dumps([attempt(("1.1.1.1", 80)), attempt(("127.0.0.1", {other_service.getsockname()[1]})), resolve()]))
    """  # noqa: E501
    with other_service:
        result = _run(source, target)

    assert _json_output(result) == [
        "OSError 101",  # ENETUNREACH: the sandbox's network namespace has only its loopback
        "ConnectionRefusedError 111",
        "gaierror",
    ]


# --- what a strategy cannot see or change ---------------------------------------------------


def test_platform_code_settings_database_and_host_secrets_are_invisible(target):
    source = """
        import json, os
        def attempt(action, path):
            try:
                action(path)
                return "visible"
            except OSError as error:
                return type(error).__name__
        print(json.dumps({
            "settings": attempt(open, "/work/main/config/settings.py"),
            "database": attempt(open, "/work/main/var/parity.sqlite3"),
            "repo": attempt(os.listdir, "/work"),
            "shadow": attempt(open, "/etc/shadow"),
            "root": attempt(os.listdir, "/root"),
            "host tmp": attempt(os.listdir, "/tmp/.."),
            "top level": sorted(os.listdir("/")),
        }))
    """
    assert _json_output(_run(source, target)) == {
        "settings": "FileNotFoundError",
        "database": "FileNotFoundError",
        "repo": "FileNotFoundError",
        "shadow": "FileNotFoundError",
        "root": "FileNotFoundError",
        "host tmp": "visible",  # "/tmp/.." is the sandbox's own root
        "top level": ["bin", "dev", "lib", "lib64", "opt", "run", "sbin", "strategy",
                      "tmp", "usr"],
    }  # fmt: skip


def test_writes_outside_tmp_fail_and_tmp_is_private_and_writable(target):
    source = """
        import json, os
        def write(path):
            try:
                with open(path, "w") as handle:
                    handle.write("x")
                return "written"
            except OSError as error:
                return type(error).__name__ + " " + str(error.errno)
        tmp_at_start = os.listdir("/tmp")
        paths = ["/tmp/scratch", "/x", "/strategy/x", "/opt/venv/x", "/usr/x", "/run/parity/x",
                 "/dev/x", "/opt/python/lib/python3.11/site-packages/x"]
        print(json.dumps([tmp_at_start] + [write(path) for path in paths]))
    """
    assert _json_output(_run(source, target)) == [
        [],
        "written",
        "OSError 30",  # EROFS
        "OSError 30",
        "OSError 30",
        "OSError 30",
        "OSError 30",
        "OSError 30",  # /dev and the tmpfs hiding the interpreter's packages are memory too
        "OSError 30",
    ]


def test_dev_shm_is_private_and_holds_its_size_limit(target):
    # tmpfs pages count against no rlimit: an unbounded /dev/shm held RAM past the memory limit.
    source = """
        import json, os
        written, error = 0, None
        try:
            for n in range(32):  # 32 MiB in files of 1 MiB (the file size limit)
                fd = os.open(f"/dev/shm/hog{n}", os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    for _ in range(16):
                        written += os.write(fd, bytes(64 << 10))
                finally:
                    os.close(fd)
        except OSError as failure:
            error = failure.errno
        print(json.dumps([written, error]))
    """
    assert _json_output(_run(source, target)) == [1 << 20, 28]  # ENOSPC at shm_bytes
    assert not any(name.startswith("hog") for name in os.listdir("/dev/shm"))
    assert _json_output(_run("import os\nprint(os.listdir('/dev/shm'))", target)) == []


def test_mount_table_with_host_paths_is_unreadable(target):
    source = """
        import json
        def read(path):
            try:
                with open(path) as handle:
                    return handle.read()
            except OSError as error:
                return type(error).__name__
        print(json.dumps({path: read(path) for path in [
            "/proc/self/mountinfo", "/proc/self/mounts", "/proc/mounts", "/proc/1/mountinfo",
            "/etc/mtab",
        ]}))
    """
    seen = _json_output(_run(source, target))

    assert seen == {
        "/proc/self/mountinfo": "FileNotFoundError",
        "/proc/self/mounts": "FileNotFoundError",
        "/proc/mounts": "FileNotFoundError",
        "/proc/1/mountinfo": "FileNotFoundError",
        "/etc/mtab": "FileNotFoundError",
    }


# --- misbehaviour ends with its reason; the platform keeps serving ---------------------------


@pytest.mark.skipif(not AS_ROOT, reason="RLIMIT_NPROC is per uid: needs the per-slot uid (root)")
def test_fork_bomb_is_contained_by_the_process_limit(target, platform):
    result = _run("import os\nwhile True:\n    os.fork()\n", target)

    assert (result.outcome, result.reason) == ("failed", "process limit of 64 reached")
    assert subprocess.run(["true"], check=False).returncode == 0
    assert _platform_still_serves(platform)


def test_memory_hog_ends_with_the_memory_reason(target, platform):
    result = _run("hog = bytearray(4 << 30)\n", target)

    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert result.reason == "killed: memory limit of 1 GiB exceeded"
    assert result.output_tail.splitlines()[-1] == "MemoryError"
    assert _platform_still_serves(platform)


def test_cpu_spin_ends_with_the_cpu_reason(target, platform):
    result = _run("while True:\n    pass\n", target)

    assert (result.outcome, result.exit_code) == ("failed", 152)  # 128 + SIGXCPU
    assert result.reason == "CPU time limit of 2 s exceeded"
    assert _platform_still_serves(platform)


def test_sleeping_forever_ends_at_the_wall_limit(target, platform):
    result = _run("import time\nprint('sleeping')\ntime.sleep(3600)\n", target)

    assert (result.outcome, result.reason) == ("failed", "wall time limit of 5 s exceeded")
    assert 5 <= result.elapsed_seconds < 7
    assert result.output == "sleeping\n"
    assert _platform_still_serves(platform)


def test_printing_gigabytes_is_capped_and_the_truncation_is_said(target, platform):
    source = """
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(2048):
            sys.stdout.write(chunk)
        print("the end", file=sys.stderr)
    """
    result = _run(source, target)

    dropped = (2 << 30) + len("the end\n") - (64 << 10)
    assert (result.outcome, result.reason) == ("completed", "exited with code 0")
    assert result.truncated_bytes == dropped
    assert result.output == "x" * (64 << 10) + (
        f"\n[output truncated: {dropped} more bytes were dropped]\n"
    )
    assert result.output_tail.endswith("xthe end")
    assert _platform_still_serves(platform)


def test_writing_a_big_file_ends_with_the_file_size_reason(target):
    result = _run("open('/tmp/big', 'wb').write(bytes(2 << 20))\n", target)

    assert (result.outcome, result.reason) == ("failed", "file size limit of 1 MiB exceeded")


def test_filling_dev_shm_ends_with_the_space_reason(target):
    source = """
        for n in range(8):
            with open(f"/dev/shm/hog{n}", "wb") as handle:
                handle.write(bytes(512 << 10))
    """
    result = _run(source, target)

    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert result.reason == "space limit reached: /tmp holds 8 MiB, /dev/shm 1 MiB"


def test_kill_stops_a_running_strategy_at_once(target):
    process = start_sandboxed(
        _spec("import time\nprint('running', flush=True)\ntime.sleep(3600)\n", target),
        LIMITS,
        allow_unsandboxed=False,
    )
    deadline = time.monotonic() + 10
    while process.output_so_far() != "running\n":  # the strategy runs: now kill it
        assert time.monotonic() < deadline, "the strategy never started"
        time.sleep(0.01)
    process.kill()
    result = process.wait()

    assert (result.outcome, result.reason) == ("failed", "stopped by the platform")
    assert result.elapsed_seconds < 2


def test_a_run_started_from_a_short_lived_thread_outlives_that_thread(target):
    # bwrap's --die-with-parent follows the forking *thread*: runs are forked from one
    # long-lived thread so an asyncio.to_thread or pool worker can start them.
    started = []
    source = "import time\ntime.sleep(0.5)\nprint('still here')\n"
    spec = _spec(source, target)
    starter = threading.Thread(
        target=lambda: started.append(start_sandboxed(spec, LIMITS, allow_unsandboxed=False))
    )
    starter.start()
    starter.join()
    result = started[0].wait()

    assert (result.outcome, result.output) == ("completed", "still here\n")


# --- where bubblewrap cannot run ------------------------------------------------------------

MISSING = SandboxSupport(False, "bubblewrap is not installed (/usr/bin/bwrap not found)")


def test_runs_are_refused_with_the_reason_when_bubblewrap_cannot_run(target, monkeypatch):
    monkeypatch.setattr(sandbox, "probe_bubblewrap", lambda runtime=None: MISSING)

    result = _run("print('never runs')\n", target)

    assert (result.outcome, result.exit_code, result.sandboxed) == ("failed", None, False)
    assert result.reason == (
        "refused: bubblewrap is not installed (/usr/bin/bwrap not found); "
        "unsandboxed development runs are not allowed"
    )


def test_unsandboxed_development_runs_when_allowed_and_say_so(target, monkeypatch):
    monkeypatch.setattr(sandbox, "probe_bubblewrap", lambda runtime=None: MISSING)
    source = """
        import json, os, urllib.request
        url = os.environ["TEKTII_TRADING_GATEWAY_URL"] + "/v1/account"
        print(json.dumps([os.getuid(), sorted(os.environ), urllib.request.urlopen(url).status]))
    """
    spec = _spec(source, target)

    result = run_sandboxed(spec, LIMITS, allow_unsandboxed=True)

    uid, names, status = _json_output(result)
    assert (result.outcome, result.sandboxed, status) == ("completed", False, 200)
    assert uid == (60000 + SLOT if AS_ROOT else os.getuid())
    assert "DATABASE_URL" not in names and "DJANGO_SETTINGS_MODULE" not in names
    assert "TEKTII_TRADING_GATEWAY_API_KEY" in names


# --- the relay's rules, without a sandbox ---------------------------------------------------


@pytest.mark.parametrize(
    ("request_target", "allowed"),
    [
        (f"{SESSION}v1/account", True),
        (f"{SESSION}v1/quotes/BTC%2FUSD?x=1", True),
        (f"{SESSION}health", True),
        (SESSION.rstrip("/"), False),
        ("/sessions/3f1c2b9e-0000-4000-8000-000000000001x/v1/account", False),
        (f"{SESSION}../other/v1/account", False),
        (f"{SESSION}%2E%2E/other/v1/account", False),
        (f"{SESSION}v1/./account", False),
        (f"{SESSION}v1\\..\\..\\admin", False),
        ("/admin/", False),
        (f"http://127.0.0.1{SESSION}v1/account", False),
        ("*", False),
    ],
)
def test_relay_allows_only_paths_under_the_session_prefix(request_target, allowed):
    assert path_allowed(request_target, SESSION) is allowed


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /s/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST /s/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST /s/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"GET /s/ HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
        (b"GET /s/ HTTP/2.0\r\n\r\n", 400),
    ],
)
def test_relay_refuses_ambiguous_request_framing(head, status):
    with pytest.raises(sandbox._BadRequest) as refusal:
        parse_request_head(head)
    assert refusal.value.status == status
