"""runtimes.core and runtimes.providers import no web or task framework: checked in a fresh
interpreter."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import runtimes.core
import runtimes.providers

FRAMEWORKS = ("django", "rest_framework", "channels", "celery")
ROOT = Path(__file__).resolve().parents[3]


def test_every_core_module_imports_without_any_framework():
    modules = [f"runtimes.core.{m.name}" for m in pkgutil.iter_modules(runtimes.core.__path__)]
    assert "runtimes.core.engine" in modules
    assert_imports_no_framework(modules)


def test_every_provider_module_imports_without_any_framework():
    modules = [
        m.name
        for m in pkgutil.walk_packages(runtimes.providers.__path__, prefix="runtimes.providers.")
    ]
    assert "runtimes.providers.mock.provider" in modules
    assert_imports_no_framework(modules)


def assert_imports_no_framework(modules: list[str]) -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []
