"""Runs a hosted strategy as its own process in a bubblewrap sandbox: a dedicated uid, rlimits, a
wall clock, a capped output, and one way out (a relay to its own session's URLs on the platform).
Framework-free: the caller reads settings (limits, whether unsandboxed runs are allowed) and
passes plain values in. Hosted strategies need nothing platform-specific: the SDK's environment
variables and PARITY_STRATEGY_PARAMS (JSON) are all they get.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import Literal
from urllib.parse import unquote

BWRAP = "/usr/bin/bwrap"
SLOT_UID_BASE = 60000  # slot n runs as uid/gid 60000 + n; nothing else on the host uses them
SLOT_COUNT = 1000
PROBE_SLOT = SLOT_COUNT - 1  # the probe's own slot: give runs slots 0 … SLOT_COUNT - 2
PARAMS_VARIABLE = "PARITY_STRATEGY_PARAMS"
FORWARDER_SOURCE = Path(__file__).with_name("sandbox_forwarder.py")

# Paths inside the sandbox.
IN_TMP = "/tmp"  # noqa: S108 (the sandbox's own private tmpfs)
IN_PYTHON = "/opt/python"
IN_VENV = "/opt/venv"
IN_CODE = "/strategy"
IN_FORWARDER = "/opt/parity/forwarder.py"
IN_SOCKET = "/run/parity/platform.sock"

Outcome = Literal["completed", "failed"]


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. Memory is address space (RLIMIT_AS): numpy+pandas need ≥256 MB."""

    memory_bytes: int = 1 << 30
    cpu_seconds: int = 60
    wall_seconds: float = 300
    max_processes: int = 64  # RLIMIT_NPROC: processes and threads of the slot's uid
    max_open_files: int = 256
    max_file_size: int = 16 << 20
    max_output_bytes: int = 1 << 20  # stdout + stderr together; the rest is drained and dropped
    tmp_bytes: int = 64 << 20  # size of the private /tmp (a tmpfs: it is memory)


@dataclass(frozen=True)
class SessionTarget:
    """Where the strategy's requests go: the platform's HTTP port and the one allowed prefix."""

    host: str
    port: int
    path_prefix: str  # "/sessions/<id>/"

    def __post_init__(self) -> None:
        if not (self.path_prefix.startswith("/") and self.path_prefix.endswith("/")):
            raise ValueError("path_prefix must start and end with '/'")


@dataclass(frozen=True)
class StrategyRuntime:
    """The interpreter and packages a strategy gets: `python_home` is a CPython prefix (its
    bin/pythonX.Y, lib/pythonX.Y), `site_packages` the packages (SDK, numpy, pandas)."""

    python_home: Path
    site_packages: Path
    version: str  # "3.11"

    @classmethod
    def current(cls) -> StrategyRuntime:
        """The platform's own interpreter and environment (only its lib dirs are exposed)."""
        return cls(
            python_home=Path(sys.base_prefix),
            site_packages=Path(sysconfig.get_paths()["purelib"]),
            version=f"{sys.version_info.major}.{sys.version_info.minor}",
        )


@dataclass(frozen=True)
class SandboxSpec:
    """One strategy run: its code (mounted read-only at /strategy), the file to run, the variables
    it gets (token, params; see `strategy_env`), its session and its slot (a unique uid)."""

    code_dir: Path
    entry: str
    env: Mapping[str, str]
    target: SessionTarget
    slot: int = 0
    runtime: StrategyRuntime = field(default_factory=StrategyRuntime.current)

    def __post_init__(self) -> None:
        parts = Path(self.entry).parts
        if not parts or Path(self.entry).is_absolute() or ".." in parts:
            raise ValueError("entry must be a relative path inside code_dir")
        if not 0 <= self.slot < SLOT_COUNT:
            raise ValueError(f"slot must be in [0, {SLOT_COUNT})")


@dataclass(frozen=True)
class SandboxSupport:
    available: bool
    reason: str


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None
    outcome: Outcome
    reason: str
    output_tail: str
    output: str
    truncated_bytes: int
    sandboxed: bool
    elapsed_seconds: float


class SandboxUnavailable(RuntimeError):
    """Raised instead of starting a run: bubblewrap cannot run and unsandboxed runs are off."""


def strategy_env(*, token: str, params: Mapping[str, object]) -> dict[str, str]:
    """The variables a session passes: its token (the SDK's API key) and its parameters."""
    return {
        "TEKTII_TRADING_GATEWAY_API_KEY": token,
        PARAMS_VARIABLE: json.dumps(params, sort_keys=True, separators=(",", ":"), default=str),
    }


# ------------------------------------------------------------------------------------------
# Starting, waiting, killing
# ------------------------------------------------------------------------------------------


def run_sandboxed(
    spec: SandboxSpec, limits: SandboxLimits, *, allow_unsandboxed: bool
) -> SandboxResult:
    """Runs the strategy to its end. A refusal (no bubblewrap) is a failed result, not an error."""
    try:
        process = start_sandboxed(spec, limits, allow_unsandboxed=allow_unsandboxed)
    except SandboxUnavailable as refusal:
        return SandboxResult(None, "failed", str(refusal), "", "", 0, False, 0.0)
    return process.wait()


def start_sandboxed(
    spec: SandboxSpec, limits: SandboxLimits, *, allow_unsandboxed: bool
) -> SandboxProcess:
    """Starts the run and returns at once. Raises SandboxUnavailable when bubblewrap cannot run
    and `allow_unsandboxed` is False; with it True such a run has only rlimits + env + uid."""
    support = probe_bubblewrap(spec.runtime)
    if not support.available and not allow_unsandboxed:
        raise SandboxUnavailable(
            f"refused: {support.reason}; unsandboxed development runs are not allowed"
        )
    workdir = _Workdir.create(spec, limits)
    try:
        if support.available:
            return _start_bubblewrap(spec, limits, workdir)
        return _start_unsandboxed(spec, limits, workdir)
    except BaseException:
        workdir.remove()
        raise


class SandboxProcess:
    """A started run. `wait()` blocks until it ends (at the latest at its wall limit) and always
    returns the same result; `kill()` ends it now from any thread."""

    def __init__(self, popen, *, limits, workdir, output, relay, status_fd, sandboxed) -> None:
        self._popen: subprocess.Popen[bytes] = popen
        self._limits: SandboxLimits = limits
        self._workdir: _Workdir = workdir
        self._output: _OutputCollector = output
        self._relay: SessionRelay | None = relay
        self._status_fd: int | None = status_fd
        self.sandboxed: bool = sandboxed
        self._started = time.monotonic()
        self._wait_lock = threading.Lock()
        self._result: SandboxResult | None = None
        self._timed_out = False
        self._killed = False

    @property
    def pid(self) -> int:
        return self._popen.pid

    def kill(self) -> None:
        self._killed = True
        self._kill_tree()

    def wait(self) -> SandboxResult:
        with self._wait_lock:
            if self._result is None:
                returncode = self._wait_for_exit()
                self._result = self._finish(returncode)
            return self._result

    def _wait_for_exit(self) -> int:
        # Popen.wait(timeout=…) polls with sleeps of up to 50 ms; a pidfd wakes at the exit.
        remaining = self._started + self._limits.wall_seconds - time.monotonic()
        pidfd = os.pidfd_open(self._popen.pid)
        try:
            exited = select.select([pidfd], [], [], max(remaining, 0))[0]
        finally:
            os.close(pidfd)
        if not exited:
            self._timed_out = True
            self._kill_tree()
        return self._popen.wait()

    def _kill_tree(self) -> None:
        # bwrap leads its own session; killing it tears down the pid namespace (and, through
        # --die-with-parent, everything in it). Unsandboxed runs are swept by uid afterwards.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signal.SIGKILL)

    def _finish(self, returncode: int) -> SandboxResult:
        if not self.sandboxed:
            self._workdir.kill_slot_processes()
        self._output.join()
        started = self._sandbox_started()
        if self._relay is not None:
            self._relay.close()
        self._workdir.remove()
        exit_code = 128 - returncode if returncode < 0 else returncode
        outcome, reason = self._classify(exit_code, started)
        return SandboxResult(
            exit_code=exit_code,
            outcome=outcome,
            reason=reason,
            output_tail=self._output.tail_text(),
            output=self._output.text(),
            truncated_bytes=self._output.dropped,
            sandboxed=self.sandboxed,
            elapsed_seconds=round(time.monotonic() - self._started, 3),
        )

    def _sandbox_started(self) -> bool:
        # bwrap writes {"child-pid": …} on its status fd once the sandbox is set up.
        if self._status_fd is None:
            return True
        os.set_blocking(self._status_fd, False)
        with contextlib.suppress(BlockingIOError), os.fdopen(self._status_fd, "rb") as status:
            return b'"child-pid"' in (status.read() or b"")
        return False

    def _classify(self, exit_code: int, started: bool) -> tuple[Outcome, str]:
        if self._killed:
            return "failed", "stopped by the platform"
        if self._timed_out:
            return "failed", f"wall time limit of {_seconds(self._limits.wall_seconds)} exceeded"
        if not started:
            return "failed", f"sandbox failed to start: {self._output.last_line()}"
        if exit_code == 0:
            return "completed", "exited with code 0"
        return "failed", explain_exit(exit_code, self._output.tail_text(), self._limits)


def explain_exit(exit_code: int, tail: str, limits: SandboxLimits) -> str:
    """A sentence a person can act on for a non-zero exit, from its code and last output lines.
    Python turns most limits into exceptions (MemoryError, EAGAIN, EMFILE, EFBIG) and exits 1."""
    last_lines = "\n".join([line for line in tail.splitlines() if line.strip()][-10:])
    for pattern, template in _LIMIT_MARKERS:
        if pattern.search(last_lines):
            return template.format(
                memory=_bytes(limits.memory_bytes),
                processes=limits.max_processes,
                files=limits.max_open_files,
                file_size=_bytes(limits.max_file_size),
                tmp=_bytes(limits.tmp_bytes),
            )
    if exit_code == 128 + signal.SIGXCPU:
        return f"CPU time limit of {_seconds(limits.cpu_seconds)} exceeded"
    if exit_code > 128 and exit_code - 128 in _SIGNAL_NAMES:
        return f"killed by signal {_SIGNAL_NAMES[exit_code - 128]}"
    return f"exited with code {exit_code}"


_LIMIT_MARKERS = [
    (
        re.compile(r"MemoryError|bad_alloc|Cannot allocate memory|out of memory", re.I),
        "killed: memory limit of {memory} exceeded",
    ),
    (
        re.compile(r"BlockingIOError: \[Errno 11\]|can't start new thread"),
        "process limit of {processes} reached",
    ),
    (re.compile(r"\[Errno 24\] Too many open files"), "open files limit of {files} reached"),
    (re.compile(r"\[Errno 27\] File too large"), "file size limit of {file_size} exceeded"),
    (re.compile(r"\[Errno 28\] No space left on device"), "tmp space limit of {tmp} reached"),
]
_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


def _bytes(n: int) -> str:
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit:
            return f"{n / unit:g} {name}"
    return f"{n} bytes"


def _seconds(n: float) -> str:
    return f"{n:g} s"


# ------------------------------------------------------------------------------------------
# Probe
# ------------------------------------------------------------------------------------------

_probe_lock = threading.Lock()
_probe_cache: dict[StrategyRuntime, SandboxSupport] = {}


def probe_bubblewrap(runtime: StrategyRuntime | None = None) -> SandboxSupport:
    """Whether a full sandbox (same flags, uid drop, interpreter, forwarder) starts here.
    Runs a trivial strategy once per runtime and caches the answer."""
    runtime = runtime or StrategyRuntime.current()
    with _probe_lock:
        if runtime not in _probe_cache:
            _probe_cache[runtime] = _probe(runtime)
        return _probe_cache[runtime]


def _probe(runtime: StrategyRuntime) -> SandboxSupport:
    if not os.access(BWRAP, os.X_OK):
        return SandboxSupport(False, f"bubblewrap is not installed ({BWRAP} not found)")
    code_dir = Path(tempfile.mkdtemp(prefix="parity-probe-"))
    try:
        code_dir.chmod(0o755)
        (code_dir / "probe.py").write_text("print('ok')\n")
        (code_dir / "probe.py").chmod(0o644)
        target = SessionTarget(host="127.0.0.1", port=9, path_prefix="/probe/")
        spec = SandboxSpec(code_dir, "probe.py", {}, target, slot=PROBE_SLOT, runtime=runtime)
        limits = SandboxLimits(cpu_seconds=10, wall_seconds=20)
        workdir = _Workdir.create(spec, limits)
        try:
            result = _start_bubblewrap(spec, limits, workdir).wait()
        finally:
            workdir.remove()
    except (OSError, subprocess.SubprocessError) as error:
        return SandboxSupport(False, f"bubblewrap cannot run here: {error}")
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)
    if result.outcome != "completed" or result.output.strip() != "ok":
        return SandboxSupport(False, f"bubblewrap cannot run here: {result.output_tail[-300:]}")
    who = "uids from 60000 (one per slot)" if os.geteuid() == 0 else "the platform's own user"
    return SandboxSupport(True, f"bubblewrap sandbox works; strategies run as {who}")


# ------------------------------------------------------------------------------------------
# Per-run host directory, identity, rlimits
# ------------------------------------------------------------------------------------------


@dataclass
class _Workdir:
    """A private host directory per run: the relay's socket, mount points, the fallback's tmp."""

    path: Path
    identity: tuple[int, int] | None  # (uid, gid) the run drops to; None when not root

    @classmethod
    def create(cls, spec: SandboxSpec, limits: SandboxLimits) -> _Workdir:
        identity = (SLOT_UID_BASE + spec.slot,) * 2 if os.geteuid() == 0 else None
        path = Path(tempfile.mkdtemp(prefix="parity-sandbox-"))
        for sub in ("tmp", "mnt"):
            (path / sub).mkdir()
        if identity is not None:
            for owned in (path, path / "tmp"):
                os.chown(owned, *identity)
        return cls(path, identity)

    @property
    def socket_path(self) -> str:
        return str(self.path / "platform.sock")

    def expose(self, source: Path) -> Path:
        """A path to `source` the run's uid can reach. Hidden sources (e.g. under /root) get a
        mount point here that the launcher binds them on, in its own private mount namespace."""
        if self.identity is None or _world_traversable(source):
            return source
        mount_point = self.path / "mnt" / str(len(list((self.path / "mnt").iterdir())))
        mount_point.mkdir()
        return mount_point

    def hidden_binds(self, sources: list[Path], exposed: list[Path]) -> list[tuple[str, str]]:
        return [(str(s), str(e)) for s, e in zip(sources, exposed, strict=True) if s != e]

    def kill_slot_processes(self) -> None:
        # Unsandboxed runs have no pid namespace: sweep every process of the slot's uid.
        if self.identity is not None:
            uid, gid = self.identity
            subprocess.run(
                ["/bin/kill", "-KILL", "-1"],
                user=uid,
                group=gid,
                extra_groups=[],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _world_traversable(path: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


_LIBC = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 0x1000, 0x4000, 0x40000


def _bind_privately(binds: list[tuple[str, str]]) -> None:
    # Runs in the forked child before exec: the binds exist only in its own mount namespace.
    if _LIBC.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _LIBC.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for source, target in binds:
        if _LIBC.mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None) != 0:
            raise OSError(ctypes.get_errno(), f"mount --bind {source}")


def _preexec(
    limits: SandboxLimits, identity: tuple[int, int] | None, binds: list[tuple[str, str]]
) -> Callable[[], None]:
    cpu = limits.cpu_seconds
    rlimits = [
        (resource.RLIMIT_AS, (limits.memory_bytes,) * 2),
        # soft < hard: SIGXCPU first (exit 152, a clear reason), SIGKILL a second later if ignored
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_NOFILE, (limits.max_open_files,) * 2),
        (resource.RLIMIT_FSIZE, (limits.max_file_size,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if identity is not None:
        # NPROC counts per real uid and is ignored for root: only meaningful after the drop.
        rlimits.append((resource.RLIMIT_NPROC, (limits.max_processes,) * 2))

    def in_child() -> None:
        if binds:
            _bind_privately(binds)
        if identity is not None:
            uid, gid = identity
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        for kind, value in rlimits:
            resource.setrlimit(kind, value)

    return in_child


# ------------------------------------------------------------------------------------------
# Launchers
# ------------------------------------------------------------------------------------------


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
        relay.close()
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
    )


def _forwarder_command(spec: SandboxSpec) -> list[str]:
    python = f"{IN_VENV}/bin/python"
    port = str(_inner_port(spec.target))
    strategy = [python, "-s", f"{IN_CODE}/{spec.entry}"]
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
    if (spec.runtime.python_home / packages).is_dir():
        # The base interpreter's own packages (the platform's dependencies) stay hidden.
        groups.append(("--tmpfs", f"{IN_PYTHON}/{packages}"))
    groups += [
        ("--ro-bind", site_packages, f"{IN_VENV}/{packages}"),
        ("--ro-bind-data", str(fds.memfd(venv_cfg)), f"{IN_VENV}/pyvenv.cfg"),
        ("--symlink", f"{IN_PYTHON}/bin/python{version}", f"{IN_VENV}/bin/python"),
        ("--ro-bind-data", str(fds.memfd(FORWARDER_SOURCE.read_text())), IN_FORWARDER),
        ("--ro-bind", code_dir, IN_CODE),
        ("--bind", workdir.socket_path, IN_SOCKET),
        ("--size", str(limits.tmp_bytes), "--tmpfs", IN_TMP),
        ("--proc", "/proc", "--dev", "/dev"),
        ("--remount-ro", "/"),  # after every mount: the sandbox's own root becomes read-only
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
    url = f"http://{target.host}:{target.port}{target.path_prefix.rstrip('/')}"
    base = {**_base_env(f"{python_home}/lib", tmp), "PATH": "/usr/bin:/bin"}
    env = _strategy_env(spec, base, url)
    argv = [str(venv / "bin" / "python"), "-s", str(code_dir / spec.entry)]
    binds = workdir.hidden_binds(sources, [python_home, code_dir])
    popen = _spawn(argv, limits, workdir, binds, env=env, cwd=tmp, pass_fds=())
    return SandboxProcess(
        popen,
        limits=limits,
        workdir=workdir,
        output=_OutputCollector.start(popen, limits),
        relay=None,
        status_fd=None,
        sandboxed=False,
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


# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------


_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ arrived in Python 3.12


class _OutputCollector:
    """Drains stdout+stderr so the run never blocks on a full pipe; keeps the first
    `max_output_bytes` and, separately, the last bytes (the end of a crash matters most)."""

    TAIL_BYTES = 16384
    TAIL_LINES = 50

    def __init__(self, pipe, max_bytes: int) -> None:
        self._pipe = pipe
        self._max = max_bytes
        self.kept = bytearray()
        self.dropped = 0
        self._tail = bytearray()
        self._thread = threading.Thread(target=self._drain, name="sandbox-output", daemon=True)

    @classmethod
    def start(cls, popen: subprocess.Popen[bytes], limits: SandboxLimits) -> _OutputCollector:
        # A 1 MiB pipe (Linux default: 64 KiB) lets a chatty strategy run ahead of the drain and
        # cuts the syscalls per byte on both sides.
        with contextlib.suppress(OSError):
            fcntl.fcntl(popen.stdout.fileno(), _F_SETPIPE_SZ, 1 << 20)
        collector = cls(popen.stdout, limits.max_output_bytes)
        collector._thread.start()
        return collector

    def _drain(self) -> None:
        while chunk := self._pipe.read1(1 << 20):
            room = max(self._max - len(self.kept), 0)
            self.kept += chunk[:room]
            self.dropped += len(chunk) - min(room, len(chunk))
            self._tail = (self._tail + chunk[-self.TAIL_BYTES :])[-self.TAIL_BYTES :]
        self._pipe.close()

    def join(self) -> None:
        self._thread.join(timeout=5)

    def text(self) -> str:
        text = self.kept.decode(errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes were dropped]\n"
        return text

    def tail_text(self) -> str:
        lines = self._tail.decode(errors="replace").splitlines()
        return "\n".join(lines[-self.TAIL_LINES :])

    def last_line(self) -> str:
        lines = [line for line in self.tail_text().splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


# ------------------------------------------------------------------------------------------
# Relay: the host side of the sandbox's only way out
# ------------------------------------------------------------------------------------------


class SessionRelay:
    """Accepts connections on a unix socket (bind-mounted into one sandbox) and forwards each
    HTTP request to the platform's TCP port only if its path is under the session's prefix;
    anything else gets 403 and a closed connection. After a WebSocket upgrade (101) bytes pass
    through untouched."""

    MAX_CONNECTIONS = 32

    def __init__(self, *, socket_path: str, target: SessionTarget) -> None:
        self.socket_path = socket_path
        self.target = target
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, *, owner: tuple[int, int] | None = None) -> None:
        self._listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        if owner is not None:
            os.chown(self.socket_path, *owner)
        self._listener.listen(64)
        threading.Thread(target=self._accept_loop, name="sandbox-relay", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            # shutdown wakes threads blocked in accept/recv on it; close alone would not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                _send_refusal(client, 503, "too many connections from this strategy")
                client.close()
                continue
            connection = _RelayConnection(self, client)
            threading.Thread(target=connection.run, name="sandbox-relay-conn", daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed or len(self._sockets) >= 2 * self.MAX_CONNECTIONS:
                return False
            self._sockets.add(sock)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(socks)


def path_allowed(request_target: str, prefix: str) -> bool:
    """Whether an HTTP request target stays under `prefix`, raw and percent-decoded, with no
    dot segments ('..' would leave the prefix once a server normalises the path)."""
    if not request_target.startswith("/"):
        return False  # absolute-form ("http://other/"), authority-form, "*"
    path = request_target.split("?", 1)[0]
    if "#" in path or "\\" in path:
        return False
    decoded = unquote(path)
    if not (path.startswith(prefix) and decoded.startswith(prefix)):
        return False
    return not any(segment in (".", "..") for segment in decoded.split("/"))


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    target: str
    content_length: int
    upgrade: bool


MAX_HEAD_BYTES = 32768


def parse_request_head(head: bytes) -> _Request:
    """The parts of an HTTP/1.x request head the relay decides on. Refuses anything whose
    framing two parsers could read differently (request smuggling): chunked bodies, repeated
    or malformed Content-Length, folded headers, stray CR/LF."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[0].isalpha():
        raise _BadRequest(400, "malformed request line")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b"\r" in line or b"\n" in line:
            raise _BadRequest(400, "malformed header")
        headers.setdefault(name.lower(), []).append(value.strip())
    if b"transfer-encoding" in headers:
        raise _BadRequest(501, "chunked request bodies are not supported")
    lengths = headers.get(b"content-length", [b"0"])
    if len(lengths) != 1 or not lengths[0].isdigit():
        raise _BadRequest(400, "bad Content-Length")
    upgrade = b"websocket" in b",".join(headers.get(b"upgrade", [])).lower()
    return _Request(parts[1].decode("latin-1"), int(lengths[0]), upgrade)


class _RelayConnection:
    """One connection from the sandbox: requests are checked one by one (keep-alive), the
    platform's responses stream back on a second thread."""

    def __init__(self, relay: SessionRelay, client: socket.socket) -> None:
        self._relay = relay
        self._client = client
        self._upstream: socket.socket | None = None
        self._buffer = b""

    def run(self) -> None:
        replies = None
        try:
            replies = self._serve()
        except _BadRequest as refusal:
            _send_refusal(self._client, refusal.status, str(refusal))
        except OSError:
            pass
        self._close(replies)

    def _serve(self) -> threading.Thread | None:
        replies = None
        while (head := self._read_head()) is not None:
            request = parse_request_head(head)
            if not path_allowed(request.target, self._relay.target.path_prefix):
                raise _BadRequest(403, "this path is outside the strategy's session")
            if request.upgrade:
                if self._upstream is not None:
                    raise _BadRequest(400, "a WebSocket upgrade must open its own connection")
                self._connect_upstream().sendall(head)
                return self._upgrade()
            if self._upstream is None:
                replies = _start_pump(self._connect_upstream(), self._client)
            self._upstream.sendall(head)
            self._copy_body(request.content_length)
        return replies

    def _read_head(self) -> bytes | None:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "request head too large")
            chunk = self._client.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        head, self._buffer = self._buffer[: end + 4], self._buffer[end + 4 :]
        return head

    def _copy_body(self, length: int) -> None:
        assert self._upstream is not None
        while length > 0:
            chunk = self._buffer[:length] or self._client.recv(min(length, 65536))
            if not chunk:
                raise OSError("client closed inside a request body")
            self._buffer = self._buffer[len(chunk) :]
            self._upstream.sendall(chunk)
            length -= len(chunk)

    def _upgrade(self) -> threading.Thread | None:
        # Bytes pass through only once the platform has agreed to switch protocols.
        assert self._upstream is not None
        response = b""
        while b"\r\n\r\n" not in response and len(response) < MAX_HEAD_BYTES:
            chunk = self._upstream.recv(65536)
            if not chunk:
                break
            response += chunk
        self._client.sendall(response)
        if not response.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
            return None
        replies = _start_pump(self._upstream, self._client)
        if self._buffer:
            self._upstream.sendall(self._buffer)
        _pump(self._client, self._upstream)
        return replies

    def _connect_upstream(self) -> socket.socket:
        target = self._relay.target
        upstream = socket.create_connection((target.host, target.port), timeout=10)
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self._relay._track(upstream):
            upstream.close()
            raise OSError("relay closed")
        self._upstream = upstream
        return upstream

    def _close(self, replies: threading.Thread | None) -> None:
        if replies is not None and self._upstream is not None:
            # The strategy finished sending; let the last response through before closing.
            with contextlib.suppress(OSError):
                self._upstream.shutdown(socket.SHUT_WR)
            replies.join(timeout=30)
        for sock in (self._client, self._upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                self._relay._forget(sock)


def _start_pump(source: socket.socket, sink: socket.socket) -> threading.Thread:
    thread = threading.Thread(target=_pump, args=(source, sink), daemon=True)
    thread.start()
    return thread


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def _send_refusal(client: socket.socket, status: int, message: str) -> None:
    body = f"parity sandbox relay: {message}\n".encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        client.sendall(head + body)
