"""The app boundaries of pyproject.toml's [tool.importlinter] contracts, checked without
import-linter: every import statement of every module (lazy ones inside functions and
TYPE_CHECKING blocks too), direct or through other modules of ours, as import-linter's
`forbidden` contracts read them (descendants included, `ignore_imports` with * and ** wildcards,
an ignore that matches nothing is an error)."""

from __future__ import annotations

import ast
import re
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ImportGraph:
    """`imports[module]`: the modules it imports; ours by full name, others by top-level name."""

    internal: set[str] = field(default_factory=set)
    imports: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Path, packages: list[str]) -> ImportGraph:
        files = {_module_name(path, root): path
                 for package in packages for path in sorted((root / package).rglob("*.py"))}
        graph = cls(internal=set(files))
        for module, path in files.items():
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            is_package = path.name == "__init__.py"
            graph.imports[module] = {
                graph._resolve(target) for target in _imported_names(tree, module, is_package)}
        return graph

    def _resolve(self, name: str) -> str:
        """The module `name` denotes: itself if ours, else its longest prefix that is ours (an
        attribute of a module, `from pkg import function`), else its top-level package."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.internal:
                return candidate
        return parts[0]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every name an import statement anywhere in `tree` may load (for `from a import b`, both
    `a.b`, in case b is a module, and `a`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
            if base and not any(alias.name != "*" for alias in node.names):
                names.add(base)
    return names


def _pattern(expression: str) -> re.Pattern[str]:
    """import-linter's module wildcards: * is one module name, ** one or more."""
    parts = []
    for part in expression.strip().split("."):
        parts.append({"*": r"[^.]+", "**": r"[^.]+(?:\.[^.]+)*"}.get(part, re.escape(part)))
    return re.compile(r"\.".join(parts) + r"\Z")


def _within(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def broken_chains(graph: ImportGraph, contract: dict[str, object]) -> list[list[str]]:
    """The import chains that break a `forbidden` contract: from a source module, through
    modules of ours that are not forbidden, to a forbidden one (direct imports only when
    `allow_indirect_imports`). Raises ValueError for an ignore that matches no import."""
    sources = list(contract["source_modules"])  # type: ignore[call-overload]
    forbidden = list(contract["forbidden_modules"])  # type: ignore[call-overload]
    ignored = []
    for expression in contract.get("ignore_imports", []):  # type: ignore[attr-defined]
        importer, imported = (_pattern(side) for side in expression.split("->"))
        matched = [(a, b) for a, targets in graph.imports.items() for b in targets
                   if importer.match(a) and imported.match(b)]
        if not matched:
            raise ValueError(f"ignore_imports {expression!r} matches no import")
        ignored.extend(matched)
    edges = {module: targets - {b for a, b in ignored if a == module}
             for module, targets in graph.imports.items()}
    direct_only = str(contract.get("allow_indirect_imports", "")).lower() == "true"
    chains = []
    for start in sorted(m for m in graph.internal if _within(m, sources)):
        seen, queue = {start}, deque([[start]])
        while queue:
            chain = queue.popleft()
            for target in sorted(edges.get(chain[-1], ())):
                if _within(target, forbidden):
                    chains.append([*chain, target])
                elif (target in graph.internal and target not in seen and not direct_only
                      and not _within(target, sources)):
                    seen.add(target)
                    queue.append([*chain, target])
    return chains


SETTINGS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = SETTINGS["contracts"]


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.of(ROOT, SETTINGS["root_packages"])


def test_the_contracts_are_the_app_boundaries_of_the_readme():
    assert [(c["type"], c["source_modules"], c["forbidden_modules"]) for c in CONTRACTS] == [
        ("forbidden", ["accounts"], ["runtimes", "strategies"]),
        ("forbidden", ["strategies"], ["runtimes"]),
        ("forbidden", ["runtimes.core", "runtimes.providers"],
         ["django", "celery", "channels", "rest_framework"]),
    ]
    assert CONTRACTS[1]["ignore_imports"] == ["strategies.** -> runtimes.core.**",
                                              "config.** -> runtimes.core.**"]


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["name"] for c in CONTRACTS])
def test_the_code_keeps_the_contract(graph, contract):
    assert [" -> ".join(chain) for chain in broken_chains(graph, contract)] == []


# Apps in the order they may depend on one another: each may relate to the apps before it only.
APP_ORDER = ["accounts", "strategies", "runtimes"]


def test_no_model_has_a_relation_to_an_app_above_its_own():
    """Relations name their model as a string ("runtimes.TradingSession"), which no import
    shows: a foreign key is a dependency all the same."""
    from django.apps import apps

    upward = [
        f"{model.__name__}.{relation.name} -> {relation.related_model._meta.label}"
        for model in apps.get_models() if model._meta.app_label in APP_ORDER
        for relation in model._meta.get_fields()
        if relation.concrete and relation.is_relation
        and relation.related_model._meta.app_label in APP_ORDER
        and (APP_ORDER.index(relation.related_model._meta.app_label)
             > APP_ORDER.index(model._meta.app_label))]
    assert upward == []


# -- the checker itself, on a made-up project ------------------------------------------------------


def _project(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ImportGraph.of(tmp_path, ["low", "high"])


CONTRACT = {"source_modules": ["low"], "forbidden_modules": ["high", "django"]}


def test_a_lazy_import_inside_a_function_breaks_a_contract(tmp_path):
    graph = _project(tmp_path, {
        "low/__init__.py": "", "high/__init__.py": "", "high/models.py": "",
        "low/views.py": "def page():\n    from high.models import Thing\n    return Thing\n"})

    assert broken_chains(graph, CONTRACT) == [["low.views", "high.models"]]


def test_a_relative_import_and_a_chain_through_a_third_module_are_followed(tmp_path):
    graph = _project(tmp_path, {
        "low/__init__.py": "", "high/__init__.py": "", "mid/__init__.py": "",
        "low/a.py": "from . import b\n", "low/b.py": "import mid.helpers\n",
        "mid/helpers.py": "if False:\n    import django.db\n"})
    graph = ImportGraph.of(tmp_path, ["low", "high", "mid"])

    assert broken_chains(graph, CONTRACT) == [["low.b", "mid.helpers", "django"]]
    assert broken_chains(graph, {**CONTRACT, "allow_indirect_imports": "True"}) == []


def test_an_ignored_import_is_allowed_and_an_ignore_that_matches_nothing_is_an_error(tmp_path):
    graph = _project(tmp_path, {
        "low/__init__.py": "", "high/__init__.py": "", "high/core/__init__.py": "",
        "high/core/bars.py": "", "high/shell.py": "",
        "low/parse.py": "from high.core.bars import Bar\nfrom high import shell\n"})

    kept = {**CONTRACT, "ignore_imports": ["low.** -> high.core.**"]}
    assert broken_chains(graph, kept) == [["low.parse", "high.shell"]]
    with pytest.raises(ValueError, match="matches no import"):
        broken_chains(graph, {**CONTRACT, "ignore_imports": ["low.** -> high.nowhere"]})
