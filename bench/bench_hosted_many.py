"""Many hosted backtests at once (issue 14): throughput of 8 together, and memory per run.

Figures, on the embedded topology as `make run` serves it (its worker's session slots:
settings.EMBEDDED_WORKER_CONCURRENCY):
- 8 hosted backtests of examples/strategies/sma_crossover.py (fast 10, slow 30) over the same
  BTCUSDT rows, created together: aggregate bars/s (every run's bars over first creation -> last
  completion) beside a single run's measured just before in the same process (target >= 1.6 x
  on a 2-core machine), and each run's own bars/s (creation -> completion: min, max) to show
  none is starved.
- Memory per concurrent hosted run over a 1-year 1m dataset (525,600 bars, the real rows
  repeated with shifted timestamps as bench_data does): the sandbox's process tree (peak RSS,
  mean over the runs) plus the worker's share (the platform process' peak RSS growth over the
  runs, divided by their number); target < 150 MB. In a fresh child, so that the throughput
  phase's heap does not hide the growth.

Each phase runs in a child process (Django is configured once per process). Skipped, with the
reason, when the bubblewrap sandbox cannot run here.

Knobs: BENCH_MANY_RUNS (8), BENCH_MANY_ROWS (50000 bars a run), BENCH_MEMORY_RUNS (2),
BENCH_MEMORY_ROWS (525600); DJANGO_DEBUG (0).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.bench_hosted import ENDED, SKIP_MARK, hosted_child_ready
from bench.bench_trading_api import (
    RESULT_MARK,
    ROOT,
    _btc_csv,
    _child_env,
    _head,
    _start_platform,
)

SPEED_UP_TARGET = 1.6
STARVED_SHARE = 0.5  # a run below half the fastest run's bars/s is starved
MEMORY_TARGET_MB = 150.0
YEAR_OF_MINUTES = 525_600
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _knob(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# -- the parent: one child per phase, the report ---------------------------------------------------


def main() -> None:
    many = _run_child("many")
    if many is not None:
        report_many(many)
        memory = _run_child("memory")
        if memory is not None:
            report_memory(memory)


def _run_child(phase: str) -> dict[str, Any] | None:
    child = subprocess.run([sys.executable, "-m", "bench.bench_hosted_many", phase], cwd=ROOT,
                           env=_child_env(), stdout=subprocess.PIPE, text=True, check=False)
    lines = child.stdout.splitlines()
    for line in lines:
        if not line.startswith((RESULT_MARK, SKIP_MARK)):
            print(f"  [{phase}] {line}")
    skipped = [line.removeprefix(SKIP_MARK) for line in lines if line.startswith(SKIP_MARK)]
    if skipped:
        print(f"hosted, many at once: skipped: {skipped[-1]}")
        return None
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not results:
        print(f"hosted, {phase}: the run failed (exit {child.returncode})")
        return None
    return dict(json.loads(results[-1].removeprefix(RESULT_MARK)))


def report_many(result: dict[str, Any]) -> None:
    single, runs = result["single"], result["runs"]
    failed = [r for r in [single, *runs] if r["state"] != "completed"]
    if failed:
        print(f"hosted, many at once: {len(failed)} run(s) did not complete: "
              f"{failed[0]['state']}: {failed[0]['failure_reason']}")
        return
    single_rate = single["bars"] / single["elapsed"]
    aggregate = sum(r["bars"] for r in runs) / result["wall_s"]
    ratio = aggregate / single_rate
    verdict = "ok" if ratio >= SPEED_UP_TARGET else "BELOW TARGET"
    rates = [r["bars"] / r["elapsed"] for r in runs]
    print(f"hosted, {len(runs)} SMA backtests of {single['bars']:,} bars created together "
          f"(embedded, {result['slots']} worker slots, {os.cpu_count()} cores): aggregate "
          f"{aggregate:,.0f} bars/s = {ratio:.2f} x a single run's {single_rate:,.0f} bars/s "
          f"(target >= {SPEED_UP_TARGET} x: {verdict}) in {result['wall_s']:.1f} s")
    bars = sum(r["bars"] for r in runs)
    platform, sandboxes = result["platform_cpu_s"], result["sandbox_cpu_s"]
    print(f"  CPU per bar: the platform process {platform / bars * 1e6:,.0f} us "
          f"({platform / result['wall_s']:.0%} of a core: one interpreter hosts every run), "
          f"the sandboxes {sandboxes / bars * 1e6:,.0f} us ({sandboxes / result['wall_s']:.0%} "
          f"of a core); both together {(platform + sandboxes) / result['wall_s']:.0%} of a core")
    starts = [r["start_s"] for r in runs if r["start_s"] is not None]
    fair = aggregate / len(runs)
    starved = "none starved" if min(rates) >= STARVED_SHARE * max(rates) else "STARVED"
    print(f"  each run: {min(rates):,.0f} .. {max(rates):,.0f} bars/s (min .. max, creation -> "
          f"completion: {starved}, the slowest at {min(rates) / max(rates):.2f} x the fastest; "
          f"fair share {fair:,.0f}), start-up {min(starts):.2f} .. {max(starts):.2f} s")


def report_memory(result: dict[str, Any]) -> None:
    runs = result["runs"]
    failed = [r for r in runs if r["state"] != "completed"]
    if failed:
        print(f"hosted memory: {len(failed)} run(s) did not complete: "
              f"{failed[0]['state']}: {failed[0]['failure_reason']}")
        return
    sandbox = statistics.fmean(result["sandbox_peak_mb"]) if result["sandbox_peak_mb"] else 0.0
    worker = (result["worker_peak_mb"] - result["worker_base_mb"]) / len(runs)
    total = sandbox + worker
    verdict = "ok" if total < MEMORY_TARGET_MB else "OVER TARGET"
    rate = sum(r["bars"] for r in runs) / result["wall_s"]
    span = " (1 year of 1m)" if runs[0]["bars"] == YEAR_OF_MINUTES else ""
    print(f"hosted memory, {len(runs)} SMA backtests of {runs[0]['bars']:,} bars{span} "
          f"at once: {total:,.0f} MB per run (target < {MEMORY_TARGET_MB:.0f}: {verdict}) = "
          f"sandbox {sandbox:,.0f} MB (peak RSS of its processes, mean of "
          f"{len(result['sandbox_peak_mb'])}) + worker {worker:,.0f} MB (peak RSS growth "
          f"{result['worker_base_mb']:,.0f} -> {result['worker_peak_mb']:,.0f} MB, / "
          f"{len(runs)}); {rate:,.0f} bars/s aggregate over {result['wall_s']:.0f} s")


# -- a child: the platform, then one phase ---------------------------------------------------------


def run_child(phase: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"parity-bench-{phase}-") as tmp:
        os.environ["PARITY_DATA_DIR"] = tmp
        result = _phase(phase, Path(tmp))
    if result is not None:
        print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)  # the embedded worker's pool threads are not daemons and would hold the exit


def _phase(phase: str, tmp: Path) -> dict[str, Any] | None:
    if not hosted_child_ready():
        return None
    from django.conf import settings

    slots = settings.EMBEDDED_WORKER_CONCURRENCY  # what `make run` gives its worker
    stop, _ = _start_platform("embedded", tmp, concurrency=slots)
    try:
        if phase == "many":
            return {"slots": slots, **_many(tmp)}
        return _memory(tmp)
    finally:
        stop()


def _many(tmp: Path) -> dict[str, Any]:
    launch = _launcher({"many": _btc_csv(tmp, _knob("BENCH_MANY_ROWS", 50000))})
    single = _wait_all([launch("many")])[0]
    # The sandboxes' CPU is sampled from /proc: they are not reaped as this process' children.
    sampler = ProcessSampler(os.getpid())
    started, cpu = time.perf_counter(), os.times()
    sampler.start()
    sessions = [launch("many") for _ in range(_knob("BENCH_MANY_RUNS", 8))]
    runs = _wait_all(sessions)
    wall, spent = time.perf_counter() - started, os.times()
    sampler.stop()
    return {
        "single": single,
        "runs": runs,
        "wall_s": wall,
        # This process (web server, worker, every host: one interpreter) and the sandboxes.
        "platform_cpu_s": spent.user + spent.system - cpu.user - cpu.system,
        "sandbox_cpu_s": sampler.children_cpu_seconds(),
    }


def _memory(tmp: Path) -> dict[str, Any]:
    # The CSV is written by another process: building it here would leave freed heap behind
    # that the runs' growth would then fill unseen.
    rows = _knob("BENCH_MEMORY_ROWS", YEAR_OF_MINUTES)
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                    "from bench.bench_trading_api import _btc_csv; "
                    "_btc_csv(Path(sys.argv[1]), int(sys.argv[2]))", str(tmp), str(rows)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    year = tmp / "BTCUSDT.csv"
    launch = _launcher({"warm": _head(year, 1000), "year": year})
    _wait_all([launch("warm")])  # imports and first-use caches of a run, before the baseline
    sampler = ProcessSampler(os.getpid())
    base = sampler.own_rss()
    sampler.start()
    started = time.perf_counter()
    runs = _wait_all([launch("year") for _ in range(_knob("BENCH_MEMORY_RUNS", 2))])
    wall = time.perf_counter() - started
    sampler.stop()
    return {"runs": runs, "wall_s": wall, "worker_base_mb": base / 1e6,
            "worker_peak_mb": sampler.peak_own / 1e6,
            "sandbox_peak_mb": [peak / 1e6 for peak in sampler.peak_by_child.values()]}


def _launcher(files: dict[str, Path]) -> Any:
    """Registers each BTCUSDT file as a dataset of the bench workspace; returns a function
    creating one hosted SMA backtest over the dataset named."""
    from decimal import Decimal

    from django.conf import settings

    from accounts.models import User, Workspace
    from bench.bench_hosted import EXAMPLE, PARAMS
    from bench.bench_trading_api import _tenant
    from runtimes.services import create_hosted_backtest
    from strategies.services import register_dataset, upload_strategy_version

    settings.PLATFORM_INTERNAL_URL = f"http://127.0.0.1:{os.environ['BENCH_PORT']}"
    # Roomy limits: the runs are timed, not capped (the defaults, unless the environment is lower).
    settings.SANDBOX_CPU_SECONDS = max(settings.SANDBOX_CPU_SECONDS, 3600)
    settings.SANDBOX_WALL_SECONDS = max(settings.SANDBOX_WALL_SECONDS, 4 * 3600)
    _tenant()
    user = User.objects.get(email="bench@example.com")
    workspace = Workspace.objects.get(name="Bench")
    datasets = {name: register_dataset(workspace=workspace, name=f"bench-{name}",
                                       files={"BTCUSDT": csv}) for name, csv in files.items()}
    version = upload_strategy_version(workspace=workspace, author=user, strategy="sma",
                                      filename="main.py", content=EXAMPLE.read_bytes())

    def launch(name: str) -> Any:
        return create_hosted_backtest(workspace=workspace, created_by=user, version=version,
                                      dataset=datasets[name], params=PARAMS,
                                      initial_cash=Decimal(10_000_000))

    return launch


def _wait_all(sessions: list[Any]) -> list[dict[str, Any]]:
    """Wait until every session ended; each one's figures (elapsed: creation -> completion)."""
    from runtimes.models import TradingSession

    pending = {s.pk for s in sessions}
    while pending:
        time.sleep(0.05)
        ended = TradingSession.objects.filter(pk__in=pending, state__in=ENDED)
        pending -= set(ended.values_list("pk", flat=True))
    done = TradingSession.objects.with_total_bars().in_bulk([s.pk for s in sessions])
    return [_figures(done[s.pk]) for s in sessions]


def _figures(session: Any) -> dict[str, Any]:
    started = session.started_at
    return {
        "state": session.state,
        "failure_reason": session.failure_reason,
        "bars": int(session.total_bars),
        "elapsed": (session.finished_at - session.created_at).total_seconds(),
        "start_s": None if started is None else (started - session.created_at).total_seconds(),
    }


class ProcessSampler:
    """Samples, every `interval` s on a daemon thread, the RSS of process `root` and of each
    of its child processes' trees (a sandbox: bwrap and what runs inside), keeping the peaks,
    and the CPU time of every descendant."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root, self.interval = root, interval
        self.peak_own = 0
        self.peak_by_child: dict[int, int] = {}
        self.ticks_by_pid: dict[int, int] = {}  # CPU ticks of each descendant, last seen
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-memory")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._sample()

    def own_rss(self) -> int:
        return _rss(self.root)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        self.peak_own = max(self.peak_own, self.own_rss())
        children = _children_by_parent()
        for child in children.get(self.root, []):
            tree = _tree(child, children)
            total = sum(_rss(pid) for pid in tree)
            self.peak_by_child[child] = max(self.peak_by_child.get(child, 0), total)
            for pid in tree:
                self.ticks_by_pid[pid] = max(self.ticks_by_pid.get(pid, 0), _ticks(pid))

    def children_cpu_seconds(self) -> float:
        """CPU seconds of every descendant seen (what each used until its last sample)."""
        return sum(self.ticks_by_pid.values()) / TICKS


def _children_by_parent() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _ticks(pid: int) -> int:
    """User + system CPU ticks of `pid` (0 once it ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _rss(pid: int) -> int:
    """Resident bytes of `pid` (0 once it ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


if __name__ == "__main__":
    run_child(sys.argv[1])
