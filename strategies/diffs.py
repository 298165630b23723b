"""What changed between two versions of a strategy: a unified diff of their text files (difflib,
bounded in size) and the parameters their entry points declare (read from the source, never
run).

A strategy declares its parameters as a module-level dict literal named DEFAULTS (the examples'
way: `DEFAULTS = {"fast": 10, "slow": 30}`), PARAMS or PARAMETERS; each value is compared as
the source text it is written in.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

from strategies.models import StrategyVersion
from strategies.services import strategy_source

MAX_DIFF_LINES = 5_000  # lines of the whole diff; past them it is cut and says so
MAX_COMPARED_LINES = 20_000  # a file longer than this (either side) is not compared line by line
PARAMETER_NAMES = ("DEFAULTS", "PARAMS", "PARAMETERS")


@dataclass(frozen=True)
class FileDiff:
    """One file's part of the diff: `status` added, removed, changed or too_large; `lines` the
    unified diff's lines (headers included)."""

    path: str
    status: str
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParameterChange:
    """A declared parameter added (`before` None), removed (`after` None) or changed."""

    name: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class VersionDiff:
    old: StrategyVersion
    new: StrategyVersion
    files: list[FileDiff]
    parameters: list[ParameterChange]
    truncated: bool

    def unified(self) -> str:
        """The whole diff as one text, as `diff -u` prints it (files in path order)."""
        return "".join(line + "\n" for f in self.files for line in f.lines)


def version_diff(old: StrategyVersion, new: StrategyVersion, *,
                 max_lines: int = MAX_DIFF_LINES) -> VersionDiff:
    """The diff from `old` to `new` (two versions of one strategy; ValueError otherwise)."""
    if old.strategy_id != new.strategy_id:
        raise ValueError("the versions belong to different strategies")
    before, after = strategy_source(old), strategy_source(new)
    files: list[FileDiff] = []
    budget = max_lines
    truncated = False
    for path in sorted(set(before) | set(after)):
        if budget <= 0:
            truncated = True
            break
        part = _file_diff(path, before.get(path), after.get(path), old.number, new.number)
        if part is None:
            continue
        if len(part.lines) > budget:
            part = FileDiff(part.path, part.status, part.lines[:budget])
            truncated = True
        budget -= len(part.lines)
        files.append(part)
    parameters = parameter_changes(before.get(old.entry_point, ""),
                                   after.get(new.entry_point, ""))
    return VersionDiff(old=old, new=new, files=files, parameters=parameters, truncated=truncated)


def _file_diff(path: str, before: str | None, after: str | None, old: int,
               new: int) -> FileDiff | None:
    if before == after:
        return None
    status = "added" if before is None else "removed" if after is None else "changed"
    a, b = (before or "").splitlines(), (after or "").splitlines()
    if max(len(a), len(b)) > MAX_COMPARED_LINES:
        return FileDiff(path, "too_large", [f"--- v{old}/{path}", f"+++ v{new}/{path}",
                                            f"(not compared: more than {MAX_COMPARED_LINES} "
                                            "lines)"])
    lines = difflib.unified_diff(a, b, fromfile=f"v{old}/{path}" if before is not None
                                 else "/dev/null", tofile=f"v{new}/{path}" if after is not None
                                 else "/dev/null", lineterm="")
    return FileDiff(path, status, list(lines))


def declared_parameters(source: str) -> dict[str, str]:
    """`{name: value as written}` of the module-level parameter dict (see the module's
    docstring); empty when there is none or the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    for node in tree.body:
        target, value = _assignment(node)
        if target in PARAMETER_NAMES and isinstance(value, ast.Dict):
            # The value as written in the source: ast.unparse recurses, and a deep expression
            # that parses (1 + 1 + ... a thousand times) would overflow it.
            return {key.value: _written(source, val) for key, val in zip(value.keys, value.values,
                                                                         strict=True)
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)}
    return {}


def _written(source: str, value: ast.expr) -> str:
    text = ast.get_source_segment(source, value) or ""
    return " ".join(text.split())  # one line, whatever the layout in the file


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return (target.id if isinstance(target, ast.Name) else None), node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def parameter_changes(before: str, after: str) -> list[ParameterChange]:
    """The declared parameters added, removed or given another default, by name."""
    old, new = declared_parameters(before), declared_parameters(after)
    return [ParameterChange(name, old.get(name), new.get(name))
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
