"""The host side of one run, set up before exec: a private per-run directory, the slot's uid,
private bind mounts for sources that uid cannot reach, and the rlimits set in the forked child."""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtimes.sandbox.spec import SLOT_UID_BASE, SandboxLimits, SandboxSpec


@dataclass
class _Workdir:
    """A private host directory per run: the relay's socket, mount points, the fallback's tmp."""

    path: Path
    identity: tuple[int, int] | None  # (uid, gid) the run drops to; None when not root

    @classmethod
    def create(cls, spec: SandboxSpec, limits: SandboxLimits) -> _Workdir:
        identity = (SLOT_UID_BASE + spec.slot,) * 2 if os.geteuid() == 0 else None
        label = f"{spec.label}-" if spec.label else ""
        path = Path(tempfile.mkdtemp(prefix=f"parity-sandbox-{label}"))
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
