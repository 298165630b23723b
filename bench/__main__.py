"""Run every benchmark module (bench/bench_*.py exposing main()), or the ones named on the
command line: `python -m bench engine`."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def _modules(selected: list[str]) -> list[str]:
    names = sorted(path.stem for path in Path(__file__).parent.glob("bench_*.py"))
    if selected:
        names = [name for name in names if name.removeprefix("bench_") in selected]
    return names


def main() -> int:
    names = _modules(sys.argv[1:])
    if not names:
        print("no benchmark matched", sys.argv[1:])
        return 2
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        module.main()
        print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
