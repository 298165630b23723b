"""Starts a run: the bubblewrap command line (mounts, environment, the forwarder) or the
development fallback without namespaces, each forked from one long-lived spawner thread."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue

from runtimes.sandbox.host import _preexec, _Workdir
from runtimes.sandbox.process import IN_CODE, SandboxProcess, _OutputCollector
from runtimes.sandbox.relay import SessionRelay
from runtimes.sandbox.spec import (
    SandboxLimits,
    SandboxSpec,
    SessionTarget,
    StrategyRuntime,
)

BWRAP = "/usr/bin/bwrap"
FORWARDER_SOURCE = Path(__file__).with_name("forwarder.py")
SHIM_SOURCE = Path(__file__).with_name("shim.py")

# Paths inside the sandbox.
IN_TMP = "/tmp"  # noqa: S108 (the sandbox's own private tmpfs)
IN_SHM = "/dev/shm"  # noqa: S108 (its own sized tmpfs, never the host's)
IN_PYTHON = "/opt/python"
IN_VENV = "/opt/venv"
IN_FORWARDER = "/opt/parity/forwarder.py"
IN_SHIM = "/opt/parity/shim.py"
CHANNEL_URL = "http://127.0.0.1:8080"  # a channel run's base URL: the shim routes every request
IN_SOCKET = "/run/parity/platform.sock"


def _base_env(python_lib: str, tmp: str) -> dict[str, str]:
    return {
        "PATH": f"{IN_VENV}/bin:/usr/bin:/bin",
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        # pyenv-style interpreters find libpython through an absolute RUNPATH we do not mount.
        "LD_LIBRARY_PATH": python_lib,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # OpenBLAS starts a thread per core at import: under RLIMIT_AS/NPROC that can crash or spin.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def channel_listener(workdir: _Workdir) -> socket.socket:
    """The unix socket a channel run's shim connects to, listening before the run starts (its
    first connection waits in the backlog until the host serves it). Only the run's uid may
    connect; the host owns and closes it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(workdir.socket_path)
        os.chmod(workdir.socket_path, 0o600)
        if workdir.identity is not None:
            os.chown(workdir.socket_path, *workdir.identity)
        listener.listen(64)
    except BaseException:
        listener.close()
        raise
    return listener


def _strategy_env(spec: SandboxSpec, base: dict[str, str], url: str) -> dict[str, str]:
    env = {**base, **spec.env, "TEKTII_TRADING_GATEWAY_URL": url}
    for key, value in env.items():
        if not key or "=" in key or "\0" in key + value:
            raise ValueError(f"invalid environment variable {key!r}")
    return env


def _inner_port(target: SessionTarget) -> int:
    # Same port number as the platform, so the Host header matches a direct connection;
    # ports below 1024 need a capability the sandbox does not have.
    return target.port if target.port >= 1024 else 8080


def _start_bubblewrap(
    spec: SandboxSpec, limits: SandboxLimits, workdir: _Workdir
) -> SandboxProcess:
    runtime = spec.runtime
    sources = [runtime.python_home, runtime.site_packages, spec.code_dir.resolve()]
    exposed = [workdir.expose(source) for source in sources]
    relay: SessionRelay | None = None
    channel: socket.socket | None = None
    if spec.target is None:
        channel = channel_listener(workdir)
        url = spec.env.get("TEKTII_TRADING_GATEWAY_URL", CHANNEL_URL)
    else:
        relay = SessionRelay(socket_path=workdir.socket_path, target=spec.target)
        relay.start(owner=workdir.identity)
        url = f"http://127.0.0.1:{_inner_port(spec.target)}{spec.target.path_prefix.rstrip('/')}"
    env = _strategy_env(spec, _base_env(f"{IN_PYTHON}/lib", IN_TMP), url)
    fds = _Fds()
    try:
        options = _bwrap_options(spec, limits, workdir, exposed, env, fds)
        status_read, status_write = os.pipe()
        fds.keep(status_write)
        argv = [
            BWRAP,
            "--args",
            str(fds.memfd("\0".join(options) + "\0")),
            "--json-status-fd",
            str(status_write),
            *_forwarder_command(spec),
        ]
        binds = workdir.hidden_binds(sources, exposed)
        popen = _spawn(argv, limits, workdir, binds, env=None, cwd="/", pass_fds=fds.all)
    except BaseException:
        for opened in (relay, channel):
            if opened is not None:
                opened.close()
        raise
    finally:
        fds.close()
    return SandboxProcess(
        popen,
        limits=limits,
        workdir=workdir,
        output=_OutputCollector.start(popen, limits),
        relay=relay,
        status_fd=status_read,
        sandboxed=True,
        channel=channel,
    )


def _forwarder_command(spec: SandboxSpec) -> list[str]:
    python = f"{IN_VENV}/bin/python"
    strategy_file = f"{IN_CODE}/{spec.entry}"
    if spec.target is None:  # the shim runs the strategy in its own process, no forwarder
        return ["--", python, "-s", IN_SHIM, IN_SOCKET, "--", strategy_file]
    port = str(_inner_port(spec.target))
    strategy = [python, "-s", strategy_file]
    return ["--", python, "-I", "-S", IN_FORWARDER, port, IN_SOCKET, "--", *strategy]


def _bwrap_options(spec, limits, workdir, exposed, env, fds) -> list[str]:
    python_home, site_packages, code_dir = (str(p) for p in exposed)
    version = spec.runtime.version
    packages = f"lib/python{version}/site-packages"
    venv_cfg = f"home = {IN_PYTHON}/bin\ninclude-system-site-packages = false\n"
    groups: list[tuple[str, ...]] = [
        ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"),
        ("--new-session", "--cap-drop", "ALL", "--hostname", "sandbox", "--clearenv"),
        ("--ro-bind", "/usr", "/usr"),
        *_usr_merge_links(),
        ("--ro-bind", python_home, IN_PYTHON),
    ]
    # Every tmpfs is memory no rlimit counts: all but /tmp and /dev/shm (sized) become read-only.
    read_only = ["/", "/dev"]
    if (spec.runtime.python_home / packages).is_dir():
        # The base interpreter's own packages (the platform's dependencies) stay hidden.
        groups.append(("--tmpfs", f"{IN_PYTHON}/{packages}"))
        read_only.append(f"{IN_PYTHON}/{packages}")
    groups += [
        ("--ro-bind", site_packages, f"{IN_VENV}/{packages}"),
        ("--ro-bind-data", str(fds.memfd(venv_cfg)), f"{IN_VENV}/pyvenv.cfg"),
        ("--symlink", f"{IN_PYTHON}/bin/python{version}", f"{IN_VENV}/bin/python"),
        ("--ro-bind-data", str(fds.memfd(FORWARDER_SOURCE.read_text())), IN_FORWARDER),
        ("--ro-bind-data", str(fds.memfd(SHIM_SOURCE.read_text())), IN_SHIM),
        ("--ro-bind", code_dir, IN_CODE),
        ("--bind", workdir.socket_path, IN_SOCKET),
        ("--size", str(limits.tmp_bytes), "--tmpfs", IN_TMP),
        # No /proc: its mount table (/proc/self/mountinfo) names the host paths bound here.
        ("--dev", "/dev"),
        # bwrap's /dev/shm is a directory of the /dev tmpfs, unbounded: a sized tmpfs instead.
        ("--size", str(limits.shm_bytes), "--tmpfs", IN_SHM),
        *(("--remount-ro", path) for path in read_only),  # after every mount below them
        ("--chdir", IN_TMP),
        *(("--setenv", key, value) for key, value in env.items()),
    ]
    return [option for group in groups for option in group]


def _usr_merge_links() -> list[tuple[str, ...]]:
    groups: list[tuple[str, ...]] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            groups.append(("--symlink", os.readlink(host), f"/{name}"))
        elif host.is_dir():
            groups.append(("--ro-bind", str(host), f"/{name}"))
    return groups


def _start_unsandboxed(
    spec: SandboxSpec, limits: SandboxLimits, workdir: _Workdir
) -> SandboxProcess:
    # Development only: no namespaces, so the strategy talks to the platform directly.
    runtime = spec.runtime
    sources = [runtime.python_home, spec.code_dir.resolve()]
    python_home, code_dir = (workdir.expose(source) for source in sources)
    venv = _write_venv(workdir.path / "venv", python_home, runtime)
    tmp = str(workdir.path / "tmp")
    target = spec.target
    base = {**_base_env(f"{python_home}/lib", tmp), "PATH": "/usr/bin:/bin"}
    python, strategy_file = str(venv / "bin" / "python"), str(code_dir / spec.entry)
    channel: socket.socket | None = None
    if target is None:
        shim = workdir.path / "shim.py"  # a copy the run's uid can read, wherever the repo is
        shim.write_text(SHIM_SOURCE.read_text())
        shim.chmod(0o644)
        channel = channel_listener(workdir)
        env = _strategy_env(spec, base, spec.env.get("TEKTII_TRADING_GATEWAY_URL", CHANNEL_URL))
        argv = [python, "-s", str(shim), workdir.socket_path, "--", strategy_file]
    else:
        url = f"http://{target.host}:{target.port}{target.path_prefix.rstrip('/')}"
        env = _strategy_env(spec, base, url)
        argv = [python, "-s", strategy_file]
    binds = workdir.hidden_binds(sources, [python_home, code_dir])
    try:
        popen = _spawn(argv, limits, workdir, binds, env=env, cwd=tmp, pass_fds=())
    except BaseException:
        if channel is not None:
            channel.close()
        raise
    return SandboxProcess(
        popen,
        limits=limits,
        workdir=workdir,
        output=_OutputCollector.start(popen, limits),
        relay=None,
        status_fd=None,
        sandboxed=False,
        channel=channel,
        code_root=str(code_dir),
    )


def _write_venv(venv: Path, python_home: Path, runtime: StrategyRuntime) -> Path:
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / f"python{runtime.version}").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {python_home}/bin\n")
    (venv / "bin" / "python").symlink_to(python_home / "bin" / f"python{runtime.version}")
    (venv / "lib" / f"python{runtime.version}" / "site-packages").symlink_to(runtime.site_packages)
    return venv


class _Fds:
    """File descriptors handed to bwrap (args and file contents as memfds), closed after spawn."""

    def __init__(self) -> None:
        self.all: list[int] = []

    def keep(self, fd: int) -> int:
        self.all.append(fd)
        return fd

    def memfd(self, text: str) -> int:
        fd = self.keep(os.memfd_create("parity-sandbox", 0))
        os.write(fd, text.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def close(self) -> None:
        for fd in self.all:
            os.close(fd)


def _spawn(argv, limits, workdir, binds, *, env, cwd, pass_fds) -> subprocess.Popen[bytes]:
    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env if env is not None else {},
            cwd=cwd,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=_preexec(limits, workdir.identity, binds),
        )

    return _Spawner.run(popen)


class _Spawner:
    """Forks every run from one long-lived thread. bwrap's --die-with-parent (PDEATHSIG) fires
    when the *thread* that forked it exits, so a run started from a short-lived worker thread
    (asyncio.to_thread, a pool) would be killed with that thread."""

    _queue: SimpleQueue[tuple[Callable[[], object], Future[object]]] = SimpleQueue()
    _thread: threading.Thread | None = None
    _lock = threading.Lock()

    @classmethod
    def run(cls, job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with cls._lock:
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._serve, name="sandbox-spawner")
                cls._thread.daemon = True
                cls._thread.start()
        future: Future[object] = Future()
        cls._queue.put((job, future))
        return future.result()  # type: ignore[return-value]

    @classmethod
    def _serve(cls) -> None:
        while True:
            job, future = cls._queue.get()
            try:
                future.set_result(job())
            except BaseException as error:
                future.set_exception(error)
