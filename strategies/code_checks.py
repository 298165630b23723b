"""Checks on an uploaded strategy (.py or .zip) before anything is stored: sizes, archive safety,
entry point, syntax and imports. Reads bytes and parses with `ast`; never imports or runs them.
"""

from __future__ import annotations

import ast
import io
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

MAX_PY_BYTES = 1024 * 1024
MAX_ZIP_BYTES = 5 * 1024 * 1024
MAX_UNPACKED_BYTES = 20 * 1024 * 1024
MAX_ZIP_FILES = 200
ENTRY_POINTS = ("main.py", "strategy.py")
# What the hosted runtime has besides the standard library (keep in step with the sandbox image).
RUNTIME_PACKAGES = frozenset({"tektii", "numpy", "pandas"})
IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = frozenset({".DS_Store"})


@dataclass(frozen=True)
class Problem:
    """One reason an upload is refused; `line` is 1-based, None for the whole file."""

    file: str
    message: str
    line: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed every check: its kind, entry point and files (paths from its root)."""

    kind: str  # "py" | "zip"
    entry_point: str
    files: dict[str, bytes] = field(repr=False)


class UploadRefused(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(_describe(p) for p in problems))
        self.problems = problems


def _describe(problem: Problem) -> str:
    where = f"{problem.file} line {problem.line}" if problem.line else problem.file
    return f"{where}: {problem.message}"


def check_upload(filename: str, content: bytes) -> CheckedUpload:
    """Validate an upload named `filename`; returns its files or raises UploadRefused."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    lowered = name.lower()
    if lowered.endswith(".py"):
        return _check_single_file(name, content)
    if lowered.endswith(".zip"):
        return _check_archive(name, content)
    raise UploadRefused([Problem(name or "(no name)",
                                 "upload a single .py file or a .zip archive")])


def _check_single_file(name: str, content: bytes) -> CheckedUpload:
    if len(content) > MAX_PY_BYTES:
        raise UploadRefused([Problem(name, f"the file is {len(content)} bytes; "
                                           f"a .py file may have at most {MAX_PY_BYTES} (1 MB)")])
    if not content.strip():
        raise UploadRefused([Problem(name, "the file is empty")])
    files = {name: content}
    problems = check_python_files(files)
    if problems:
        raise UploadRefused(problems)
    return CheckedUpload(kind="py", entry_point=name, files=files)


# -- archives ------------------------------------------------------------------------------------


def _check_archive(name: str, content: bytes) -> CheckedUpload:
    if len(content) > MAX_ZIP_BYTES:
        raise UploadRefused([Problem(name, f"the archive is {len(content)} bytes; "
                                           f"a .zip may have at most {MAX_ZIP_BYTES} (5 MB)")])
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise UploadRefused([Problem(name, "not a valid zip archive")]) from None
    with archive:
        members = [m for m in archive.infolist() if not _ignored(m)]
        problems = _member_problems(members)
        if problems:
            raise UploadRefused(problems)
        raw = _read_members(name, archive, [m for m in members if not m.is_dir()])
    files = _strip_common_folder(raw)
    entry = next((e for e in ENTRY_POINTS if e in files), None)
    if entry is None:
        raise UploadRefused([Problem(name, "no entry point: put main.py or strategy.py at the "
                                           "top level of the archive")])
    problems = check_python_files(files)
    if problems:
        raise UploadRefused(problems)
    return CheckedUpload(kind="zip", entry_point=entry, files=files)


def _ignored(member: zipfile.ZipInfo) -> bool:
    name = member.filename
    return name.startswith(IGNORED_PREFIXES) or PurePosixPath(name).name in IGNORED_NAMES


def _member_problems(members: list[zipfile.ZipInfo]) -> list[Problem]:
    problems = [p for m in members if (p := _member_problem(m)) is not None]
    if problems:
        return problems
    files = [m for m in members if not m.is_dir()]
    if len(files) > MAX_ZIP_FILES:
        return [Problem("(archive)", f"the archive has {len(files)} files; "
                                     f"at most {MAX_ZIP_FILES} are allowed")]
    seen: set[str] = set()
    for member in files:
        if member.filename in seen:
            return [Problem(member.filename, "appears twice in the archive")]
        seen.add(member.filename)
    unpacked = sum(m.file_size for m in files)
    if unpacked > MAX_UNPACKED_BYTES:
        return [Problem("(archive)", f"the archive unpacks to {unpacked} bytes; "
                                     f"at most {MAX_UNPACKED_BYTES} (20 MB) are allowed")]
    return []


def _member_problem(member: zipfile.ZipInfo) -> Problem | None:
    name = member.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return Problem(name, "absolute paths are not allowed in the archive")
    if ".." in parts:
        return Problem(name, "'..' is not allowed in archive paths")
    if "\\" in name:
        return Problem(name, "backslashes are not allowed in archive paths")
    if stat.S_ISLNK(member.external_attr >> 16):
        return Problem(name, "symbolic links are not allowed in the archive")
    if member.flag_bits & 0x1:
        return Problem(name, "encrypted files are not allowed in the archive")
    return None


def _read_members(
    name: str, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]
) -> dict[str, bytes]:
    """Read every member, never more bytes than the limit in total, whatever the headers claim."""
    budget = MAX_UNPACKED_BYTES
    files: dict[str, bytes] = {}
    for member in members:
        try:
            with archive.open(member) as stream:
                data = stream.read(budget + 1)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
            raise UploadRefused([Problem(member.filename, f"cannot be unpacked ({exc})")]) from None
        budget -= len(data)
        if budget < 0 or len(data) > member.file_size:
            raise UploadRefused([Problem(name, "the archive unpacks to more than its headers say "
                                               "(a zip bomb?); refused")])
        files[member.filename] = data
    return files


def _strip_common_folder(files: dict[str, bytes]) -> dict[str, bytes]:
    """`project/main.py, project/lib.py` becomes `main.py, lib.py`: zipping a folder adds it."""
    if any(entry in files for entry in ENTRY_POINTS):
        return files
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) != 1 or any("/" not in path for path in files):
        return files
    return {path.split("/", 1)[1]: data for path, data in files.items()}


# -- Python files --------------------------------------------------------------------------------


def check_python_files(files: dict[str, bytes]) -> list[Problem]:
    """Syntax and import problems of every .py file in `files` (paths relative to the root)."""
    own = own_modules(files)
    problems: list[Problem] = []
    for path, data in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        tree = _parse(path, data, problems)
        if tree is not None:
            problems.extend(Problem(path, message, line) for line, message in
                            _import_problems(tree, own))
    return problems


def own_modules(files: dict[str, bytes]) -> frozenset[str]:
    """Top-level module names the upload provides itself (its .py files and their folders)."""
    names = set()
    for path in files:
        if path.endswith(".py"):
            top = path.split("/", 1)[0]
            names.add(top.removesuffix(".py"))
    return frozenset(names)


def _parse(path: str, data: bytes, problems: list[Problem]) -> ast.Module | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(path, "the file is not UTF-8 text", line))
        return None
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        problems.append(Problem(path, f"syntax error: {exc.msg}", exc.lineno))
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        problems.append(Problem(path, f"syntax error: {exc}"))
    return None


def _import_problems(tree: ast.Module, own: frozenset[str]) -> list[tuple[int, str]]:
    finder = _ImportFinder()
    finder.visit(tree)
    return [
        (line, f"imports {module!r}, which hosted strategies cannot use: the runtime has the "
               "Python standard library, tektii, numpy and pandas")
        for line, module in finder.imports
        if not _allowed(module, own)
    ]


def _allowed(module: str, own: frozenset[str]) -> bool:
    top = module.split(".", 1)[0]
    return top in sys.stdlib_module_names or top in RUNTIME_PACKAGES or top in own


_OPTIONAL_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception",
                                     "BaseException"})


class _ImportFinder(ast.NodeVisitor):
    """Absolute imports as (line, module), except those guarded by `except ImportError`."""

    def __init__(self) -> None:
        self.imports: list[tuple[int, str]] = []
        self._guarded = 0

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_import_error(h) for h in node.handlers)
        self._guarded += guarded
        for child in node.body:
            self.visit(child)
        self._guarded -= guarded
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node.lineno, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.lineno, node.module)

    def visit_Call(self, node: ast.Call) -> None:
        # __import__("x") and importlib.import_module("x") with a literal name
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        first = node.args[0] if node.args else None
        literal = first.value if isinstance(first, ast.Constant) else None
        if name in ("__import__", "import_module") and isinstance(literal, str) and literal \
                and not literal.startswith("."):
            self._add(node.lineno, literal)
        self.generic_visit(node)

    def _add(self, line: int, module: str) -> None:
        if not self._guarded:
            self.imports.append((line, module))


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in _OPTIONAL_IMPORT_ERRORS for k in kinds)


def unpacked_files(*, kind: str, filename: str, content: bytes) -> dict[str, bytes]:
    """The files of an upload that passed `check_upload`, by path from its root (no checks)."""
    if kind == "py":
        return {filename: content}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _ignored(m)]
        raw = {m.filename: archive.read(m) for m in members}
    return _strip_common_folder(raw)
