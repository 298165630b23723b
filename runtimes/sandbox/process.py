"""A started run and how it ends: waiting on a pidfd up to the wall clock, killing, draining
its output, and the sentence a person can act on about why it ended."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

from runtimes.sandbox.host import _Workdir
from runtimes.sandbox.relay import SessionRelay
from runtimes.sandbox.shim import FAILURE_PREFIX
from runtimes.sandbox.spec import Outcome, SandboxLimits, SandboxResult
from runtimes.sandbox.tracebacks import strategy_exception

IN_CODE = "/strategy"  # where the sandbox mounts the strategy's code (runtimes/sandbox/launch.py)


class SandboxProcess:
    """A started run. `wait()` blocks until it ends (at the latest at its wall limit) and always
    returns the same result; `kill()` ends it now from any thread."""

    def __init__(self, popen, *, limits, workdir, output, relay, status_fd, sandboxed,
                 channel=None, code_root: str = IN_CODE) -> None:
        self._popen: subprocess.Popen[bytes] = popen
        self._limits: SandboxLimits = limits
        self._workdir: _Workdir = workdir
        self._output: _OutputCollector = output
        self._relay: SessionRelay | None = relay
        self._status_fd: int | None = status_fd
        self.sandboxed: bool = sandboxed
        # A channel run's listening socket (runtimes/sandbox/shim.py): the caller serves and
        # closes it, since it outlives the process by the host's last answers.
        self.channel: socket.socket | None = channel
        self._code_root = code_root  # the frames of the user's files start with it
        self._started = time.monotonic()
        self._wait_lock = threading.Lock()
        self._result: SandboxResult | None = None
        self._timed_out = False
        self._killed = False

    @property
    def pid(self) -> int:
        return self._popen.pid

    def output_so_far(self) -> str:
        """What the run has printed until now (its first `max_output_bytes`), while it runs."""
        return self._output.text()

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
            wall = f"wall time limit of {_seconds(self._limits.wall_seconds)}"
            # A fork bomb's parent may fork on for ever as its children die at the limit.
            limit = limit_reached(_last_lines(self._output.tail_text()), self._limits)
            if limit is not None:
                return "failed", f"{limit}; stopped at its {wall}"
            return "failed", f"{wall} exceeded"
        if not started:
            return "failed", f"sandbox failed to start: {self._output.last_line()}"
        if exit_code == 0:
            return "completed", "exited with code 0"
        return "failed", explain_exit(exit_code, self._output.tail_text(), self._limits,
                                      code_root=self._code_root)


def explain_exit(exit_code: int, tail: str, limits: SandboxLimits, *,
                 code_root: str = IN_CODE) -> str:
    """A sentence a person can act on for a non-zero exit, from its code and last output lines.
    Python turns most limits into exceptions (MemoryError, EAGAIN, EMFILE, EFBIG) and exits 1;
    any other exception through the user's files (under `code_root`) is named with its frame."""
    last_lines = _last_lines(tail)
    refusal = _RUNTIME_REFUSAL.search(last_lines)
    if refusal is not None:  # the shim's own sentence (an SDK it does not know, say)
        return refusal.group(1)
    limit = limit_reached(last_lines, limits)
    if limit is not None:
        return limit
    raised = strategy_exception(tail, code_root=code_root)
    if raised is not None:
        return raised.sentence()
    if exit_code == 128 + signal.SIGXCPU:
        return f"CPU time limit of {_seconds(limits.cpu_seconds)} exceeded"
    if exit_code > 128 and exit_code - 128 in _SIGNAL_NAMES:
        return f"killed by signal {_SIGNAL_NAMES[exit_code - 128]}"
    return f"exited with code {exit_code}"


def limit_reached(last_lines: str, limits: SandboxLimits) -> str | None:
    """The limit the last output lines show the run ran into, as a sentence; None if none."""
    for pattern, template in _LIMIT_MARKERS:
        if pattern.search(last_lines):
            return template.format(
                memory=_bytes(limits.memory_bytes),
                processes=limits.max_processes,
                files=limits.max_open_files,
                file_size=_bytes(limits.max_file_size),
                tmp=_bytes(limits.tmp_bytes),
                shm=_bytes(limits.shm_bytes),
            )
    return None


def _last_lines(tail: str) -> str:
    return "\n".join([line for line in tail.splitlines() if line.strip()][-10:])


_RUNTIME_REFUSAL = re.compile(rf"^{re.escape(FAILURE_PREFIX)}(.+)$", re.M)
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
    (
        re.compile(r"\[Errno 28\] No space left on device"),
        "space limit reached: /tmp holds {tmp}, /dev/shm {shm}",
    ),
]
_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


def _bytes(n: int) -> str:
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit:
            return f"{n / unit:g} {name}"
    return f"{n} bytes"


def _seconds(n: float) -> str:
    return f"{n:g} s"


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
