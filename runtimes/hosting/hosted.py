"""A hosted session's strategy process: the version's code run in the sandbox, started by the
session host once the session waits, with a token for that one session, watched until it ends.

The host thread asks `outcome()` between messages (a dead process fails the session with its
reason) and calls `stop()` when the session ended: the process gets a moment to exit after a
completed run and is killed otherwise; its output lands on the session, its token is revoked.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from runtimes.core.platforms import BACKTEST as BACKTEST_PLATFORM
from runtimes.hosting.channel import session_prefix
from runtimes.instance import PlatformNotFound, check_platform_url, internal_url
from runtimes.models import Source, State, TradingSession
from runtimes.sandbox.runner import (
    PROBE_SLOT,
    SLOT_UID_BASE,
    SandboxLimits,
    SandboxProcess,
    SandboxResult,
    SandboxSpec,
    SandboxUnavailable,
    SessionTarget,
    channel_env,
    start_sandboxed,
    strategy_env,
)
from runtimes.transport.authentication import mint_session_token, revoke_session_tokens
from strategies.services import extract_strategy

logger = logging.getLogger(__name__)

EXIT_GRACE_SECONDS = 1.0  # after the process exits, frames it sent last may still be in flight
COMPLETED_EXIT_SECONDS = 5.0  # how long a strategy may take to exit after its run completed
EXIT_POLL_SECONDS = 0.01  # serving a channel run while it exits: how often its exit is seen
TOKEN_MARGIN = timedelta(minutes=5)  # a token outlives the wall clock by this, then expires


def sandbox_limits() -> SandboxLimits:
    """The limits of every hosted run, from settings (SANDBOX_*)."""
    return SandboxLimits(
        memory_bytes=settings.SANDBOX_MEMORY_MB << 20,
        cpu_seconds=settings.SANDBOX_CPU_SECONDS,
        wall_seconds=settings.SANDBOX_WALL_SECONDS,
        max_output_bytes=settings.SANDBOX_MAX_OUTPUT_BYTES,
    )


def session_target(session: TradingSession) -> SessionTarget:
    """Where the sandbox's relay sends the strategy's requests: PLATFORM_INTERNAL_URL (or where
    `serve` listens), and only this session's paths. Raises PlatformNotFound when it is unset,
    malformed, or answers as anything but this deployment: the token is minted only after."""
    raw = internal_url()
    url = urlsplit(raw)
    if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
        raise PlatformNotFound("PLATFORM_INTERNAL_URL must be http://host[:port] (the relay "
                               f"speaks plain HTTP); got {raw!r}")
    check_platform_url(raw)
    return SessionTarget(host=url.hostname, port=url.port or 80,
                         path_prefix=session_prefix(session.id))


class SlotPool:
    """Sandbox slots (one uid each) for concurrent runs. A slot is held by an exclusive flock on
    its file, so two runs never share a uid, across threads and worker processes of a machine;
    a dead worker's locks go with it."""

    def __init__(self, directory: Path, size: int = PROBE_SLOT) -> None:
        self.directory, self.size = directory, size

    def acquire(self) -> tuple[int, int]:
        """(slot, fd of its held lock). Raises RuntimeError when every slot is busy."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for slot in range(self.size):
            fd = os.open(self.directory / f"{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return slot, fd
        raise RuntimeError(f"all {self.size} sandbox slots are busy")

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the file releases its flock


SLOTS = SlotPool(Path(tempfile.gettempdir()) / "parity-sandbox-slots")


@dataclass
class _Run:
    """What a started run holds until it is stopped."""

    process: SandboxProcess
    slot_fd: int
    code_dir: Path


class HostedStrategy:
    """The sandboxed process of one hosted session (see the module docstring)."""

    def __init__(self, session: TradingSession) -> None:
        self.session = session
        self.refusal: str | None = None  # set when the run could not start
        self.result: SandboxResult | None = None  # set by the watcher once the process ended
        self._run: _Run | None = None
        self._exited_at: float | None = None
        self._watcher: threading.Thread | None = None
        self._stopped = False

    @classmethod
    def start_for(cls, session: TradingSession) -> HostedStrategy | None:
        """Start the strategy of a hosted session (None for a remote one). Never raises: a run
        that cannot start reports its reason through `outcome()`."""
        if session.source != Source.HOSTED:
            return None
        hosted = cls(session)
        try:
            hosted._start()
        except (SandboxUnavailable, PlatformNotFound) as refusal:
            hosted.refusal = str(refusal)
        except Exception as error:
            logger.exception("hosted strategy of session %s did not start", session.id)
            hosted.refusal = f"the strategy could not be started: {error}"
        if hosted.refusal is not None:
            revoke_session_tokens(session=session)
        return hosted

    @property
    def channel(self) -> socket.socket | None:
        """The listening socket of a run over the local channel (None: it talks WebSocket, or
        it did not start). The host serves it (runtimes/hosting/channel.py)."""
        return None if self._run is None else self._run.process.channel

    def _start(self) -> None:
        session = self.session
        if session.strategy_version is None:
            raise ValueError("the session has no strategy version")
        limits = sandbox_limits()
        slot, slot_fd = SLOTS.acquire()
        # Named after the session: a reaper finds what a killed worker left (runtimes/leases.py).
        code_dir = Path(tempfile.mkdtemp(prefix=f"parity-strategy-{session.pk}-"))
        try:
            entry = extract_strategy(version=session.strategy_version, into=code_dir)
            _hand_over(code_dir, slot)
            target, env = self._connection(limits)
            spec = SandboxSpec(code_dir, str(entry.relative_to(code_dir.resolve())), env,
                               target, slot=slot, label=str(session.pk))
            process = start_sandboxed(spec, limits,
                                      allow_unsandboxed=settings.SANDBOX_ALLOW_UNSANDBOXED)
        except BaseException:
            SLOTS.release(slot_fd)
            shutil.rmtree(code_dir, ignore_errors=True)
            raise
        self._run = _Run(process, slot_fd, code_dir)
        session.sandboxed = process.sandboxed
        TradingSession.objects.filter(pk=session.pk).update(sandboxed=process.sandboxed)
        self._watcher = threading.Thread(target=self._watch, name=f"hosted-{session.pk}",
                                         daemon=True)
        self._watcher.start()

    def _connection(self, limits: SandboxLimits) -> tuple[SessionTarget | None, dict[str, str]]:
        """How the run reaches its session, and its variables: a backtest over the local channel
        (no credential at all: the channel is the session's), anything else through the relay
        with a token for its own session, minted once the platform's URL was checked."""
        session, params = self.session, self.session.params or {}
        if uses_channel(session):
            return None, channel_env(base_path=session_prefix(session.pk), params=params)
        target = session_target(session)  # checked before a token exists
        lifetime = timedelta(seconds=limits.wall_seconds) + TOKEN_MARGIN
        token = mint_session_token(session=session, lifetime=lifetime)
        return target, strategy_env(token=token, params=params)

    def _watch(self) -> None:
        assert self._run is not None
        self.result = self._run.process.wait()
        self._exited_at = time.monotonic()

    def outcome(self) -> tuple[str, str] | None:
        """(FAILED, reason) once the strategy cannot run (refused, or its process ended before
        the session did); None while it runs. Called by the host thread between messages."""
        if self.refusal is not None:
            return State.FAILED, self.refusal
        exited_at = self._exited_at
        if exited_at is None or time.monotonic() - exited_at < EXIT_GRACE_SECONDS:
            return None
        assert self.result is not None
        self._store_output()  # before the host ends the session: its page shows the logs at once
        return State.FAILED, f"strategy: {self.result.reason}"

    def output_so_far(self) -> str:
        """What the strategy has printed until now (empty before it started)."""
        return "" if self._run is None else self._run.process.output_so_far()

    def stop(self, *, state: str, serve: Callable[[float], None] | None = None) -> None:
        """After the session ended in `state`: let a completed run's strategy exit on its own
        for a moment, kill it otherwise; store its output on the session, revoke its token.
        `serve(seconds)` answers the strategy meanwhile (a channel run's last requests, e.g.
        the final account asked from its end-of-backtest hook), waiting at most that long.
        Only the first call acts: the host's crash path calls it again after the session has
        ended, and no database write may follow the session's end."""
        if self._stopped:
            return
        self._stopped = True
        run = self._run
        try:
            if run is not None and self._watcher is not None:
                if state == State.COMPLETED:
                    self._await_exit(serve)
                if self._watcher.is_alive():
                    run.process.kill()
                self._watcher.join()
                self._store_output()
        except Exception:  # the session's end must not hinge on its logs
            logger.exception("hosted strategy of session %s: output not stored", self.session.pk)
        finally:
            revoke_session_tokens(session=self.session)
            if run is not None:
                SLOTS.release(run.slot_fd)
                shutil.rmtree(run.code_dir, ignore_errors=True)
                self._run = None

    def _await_exit(self, serve: Callable[[float], None] | None) -> None:
        assert self._watcher is not None
        deadline = time.monotonic() + COMPLETED_EXIT_SECONDS
        while self._watcher.is_alive() and (left := deadline - time.monotonic()) > 0:
            if serve is None:
                self._watcher.join(left)
            else:
                serve(min(left, EXIT_POLL_SECONDS))

    def discard(self) -> None:
        """Kill the process and remove what it left, writing nothing: the session was ended in
        place of this host (its lease was taken), which revoked the tokens already."""
        if self._stopped:
            return
        self._stopped = True
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.process.kill()
            if self._watcher is not None:
                self._watcher.join()
        finally:
            SLOTS.release(run.slot_fd)
            shutil.rmtree(run.code_dir, ignore_errors=True)

    def _store_output(self) -> None:
        result = self.result
        if result is None:
            return
        TradingSession.objects.filter(pk=self.session.pk).update(
            output=result.output, output_tail=result.output_tail,
            output_truncated_bytes=result.truncated_bytes, sandboxed=result.sandboxed)


def uses_channel(session: TradingSession) -> bool:
    """Whether a hosted session's strategy talks to its host over the local channel: backtests,
    unless HOSTED_BACKTEST_TRANSPORT says "websocket" (wall-clock sessions always use the relay:
    they survive their worker, and their sockets reconnect to the next host)."""
    return (session.platform == BACKTEST_PLATFORM
            and settings.HOSTED_BACKTEST_TRANSPORT == "channel")


def _hand_over(code_dir: Path, slot: int) -> None:
    # The run reads its code as the slot's uid (root drops to it); nobody else may. Mounted
    # read-only in the sandbox, so owning it lets the strategy change nothing.
    if os.geteuid() != 0:
        return
    uid = SLOT_UID_BASE + slot
    for root, dirs, files in os.walk(code_dir):
        for name in [*dirs, *files]:
            with contextlib.suppress(FileNotFoundError):
                os.chown(Path(root) / name, uid, uid)
    os.chown(code_dir, uid, uid)
