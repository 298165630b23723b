"""Runs a hosted strategy as its own process in a bubblewrap sandbox: a dedicated uid, rlimits, a
wall clock, a capped output, and one way out (a relay to its own session's URLs on the platform).
Framework-free: the caller reads settings (limits, whether unsandboxed runs are allowed) and
passes plain values in. Hosted strategies need nothing platform-specific: the SDK's environment
variables and PARITY_STRATEGY_PARAMS (JSON) are all they get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from runtimes.sandbox.host import _Workdir
from runtimes.sandbox.launch import (
    BWRAP,
    CHANNEL_URL,
    FORWARDER_SOURCE,
    IN_CODE,
    IN_FORWARDER,
    IN_PYTHON,
    IN_SOCKET,
    IN_TMP,
    IN_VENV,
    _start_bubblewrap,
    _start_unsandboxed,
)
from runtimes.sandbox.process import SandboxProcess, explain_exit
from runtimes.sandbox.relay import (
    MAX_HEAD_BYTES,
    SessionRelay,
    parse_request_head,
    path_allowed,
)
from runtimes.sandbox.relay import _BadRequest as _BadRequest  # re-exported for the tests
from runtimes.sandbox.spec import (
    PROBE_SLOT,
    SLOT_COUNT,
    SLOT_UID_BASE,
    Outcome,
    SandboxLimits,
    SandboxResult,
    SandboxSpec,
    SandboxSupport,
    SandboxUnavailable,
    SessionTarget,
    StrategyRuntime,
)

__all__ = [
    "BWRAP",
    "CHANNEL_URL",
    "FORWARDER_SOURCE",
    "IN_CODE",
    "IN_FORWARDER",
    "IN_PYTHON",
    "IN_SOCKET",
    "IN_TMP",
    "IN_VENV",
    "MAX_HEAD_BYTES",
    "PARAMS_VARIABLE",
    "PROBE_SLOT",
    "SLOT_COUNT",
    "SLOT_UID_BASE",
    "Outcome",
    "SandboxLimits",
    "SandboxProcess",
    "SandboxResult",
    "SandboxSpec",
    "SandboxSupport",
    "SandboxUnavailable",
    "SessionRelay",
    "SessionTarget",
    "StrategyRuntime",
    "channel_env",
    "explain_exit",
    "parse_request_head",
    "path_allowed",
    "probe_bubblewrap",
    "run_sandboxed",
    "start_sandboxed",
    "strategy_env",
]

PARAMS_VARIABLE = "PARITY_STRATEGY_PARAMS"


def strategy_env(*, token: str, params: Mapping[str, object]) -> dict[str, str]:
    """The variables a session passes: its token (the SDK's API key) and its parameters."""
    return {"TEKTII_TRADING_GATEWAY_API_KEY": token, PARAMS_VARIABLE: _params_json(params)}


def channel_env(*, base_path: str, params: Mapping[str, object]) -> dict[str, str]:
    """The variables of a run over the local channel: the SDK's base URL (the shim routes every
    request to the host, which serves `base_path` only), no credential, and its parameters."""
    return {"TEKTII_TRADING_GATEWAY_URL": CHANNEL_URL + base_path.rstrip("/"),
            PARAMS_VARIABLE: _params_json(params)}


def _params_json(params: Mapping[str, object]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


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
