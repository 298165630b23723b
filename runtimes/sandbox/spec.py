"""What a sandboxed run is and what it yields: its spec, limits, runtime and session target, its
result, and the refusal. Plain frozen values shared by the modules of runtimes.sandbox."""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SLOT_UID_BASE = 60000  # slot n runs as uid/gid 60000 + n; nothing else on the host uses them
SLOT_COUNT = 1000
PROBE_SLOT = SLOT_COUNT - 1  # the probe's own slot: give runs slots 0 … SLOT_COUNT - 2

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
    # Size of the private /dev/shm (POSIX semaphores, shared memory). tmpfs pages count against
    # no rlimit: tmp_bytes + shm_bytes is all a run can hold outside memory_bytes.
    shm_bytes: int = 4 << 20


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
    it gets (token or channel URL, params; see `strategy_env`), its session's target (None for a
    channel run) and its slot (a unique uid)."""

    code_dir: Path
    entry: str
    env: Mapping[str, str]
    # Where the relay sends the strategy's HTTP and WebSocket; None: the strategy talks to its host
    # over the local channel instead (runtimes/sandbox/shim.py), and the sandbox has no relay.
    target: SessionTarget | None
    slot: int = 0
    runtime: StrategyRuntime = field(default_factory=StrategyRuntime.current)
    label: str = ""  # names the run's temp folder (the session id), for a sweep after a crash

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
