"""Checks on uploaded strategy code: sizes, archive safety, entry point, syntax, imports.
Plain functions over bytes; nothing uploaded is imported or run."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from strategies.code_checks import (
    MAX_PY_BYTES,
    MAX_ZIP_BYTES,
    UploadRefused,
    check_upload,
    unpacked_files,
)

GOOD = b"import asyncio\nimport numpy as np\nfrom tektii import AsyncTradingGateway\n"


def zip_of(entries: dict[str, bytes] | list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items() if isinstance(entries, dict) else entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def problems_of(filename: str, content: bytes) -> list[dict]:
    with pytest.raises(UploadRefused) as refused:
        check_upload(filename, content)
    return [p.as_dict() for p in refused.value.problems]


def test_a_single_py_file_is_its_own_entry_point():
    checked = check_upload("sma.py", GOOD)
    assert (checked.kind, checked.entry_point, checked.files) == ("py", "sma.py", {"sma.py": GOOD})


def test_a_zip_with_main_py_and_its_own_modules_passes():
    content = zip_of({"main.py": b"import helpers\nfrom lib.signals import sma\n",
                      "helpers.py": b"import pandas\n", "lib/__init__.py": b"",
                      "lib/signals.py": b"from . import x\n", "params.json": b"{}"})
    checked = check_upload("bot.zip", content)
    assert (checked.kind, checked.entry_point) == ("zip", "main.py")
    assert sorted(checked.files) == ["helpers.py", "lib/__init__.py", "lib/signals.py",
                                     "main.py", "params.json"]


def test_strategy_py_is_the_other_entry_point_and_a_zipped_folder_is_unwrapped():
    content = zip_of({"bot/strategy.py": GOOD, "bot/util.py": b"", "__MACOSX/bot/._x.py": b"\xff"})
    checked = check_upload("bot.zip", content)
    assert (checked.entry_point, sorted(checked.files)) == ("strategy.py",
                                                            ["strategy.py", "util.py"])
    assert unpacked_files(kind="zip", filename="bot.zip", content=content) == checked.files


@pytest.mark.parametrize("filename,content,expected", [
    ("notes.txt", b"x", [{"file": "notes.txt", "line": None,
                          "message": "upload a single .py file or a .zip archive"}]),
    ("big.py", b"#" * (MAX_PY_BYTES + 1), [{"file": "big.py", "line": None,
     "message": "the file is 1048577 bytes; a .py file may have at most 1048576 (1 MB)"}]),
    ("empty.py", b"  \n", [{"file": "empty.py", "line": None, "message": "the file is empty"}]),
    ("bad.py", b"x = 1\ndef f(:\n", [{"file": "bad.py", "line": 2,
                                      "message": "syntax error: invalid syntax"}]),
    ("latin.py", b"x = 1\ny = '\xe9'\n", [{"file": "latin.py", "line": 2,
                                          "message": "the file is not UTF-8 text"}]),
    ("nul.py", b"x = 1\x00\n", [{"file": "nul.py", "line": None,
     "message": "syntax error: source code string cannot contain null bytes"}]),
])
def test_single_file_problems_are_named_with_file_and_line(filename, content, expected):
    assert problems_of(filename, content) == expected


def test_every_foreign_import_is_refused_with_its_module_and_line():
    source = (b"import os, sys\nimport requests\nfrom sklearn.linear_model import Ridge\n"
              b"from . import sibling\nimport importlib\nimportlib.import_module('torch')\n"
              b"try:\n    import uvloop\nexcept ImportError:\n    uvloop = None\n")
    message = ("imports {!r}, which hosted strategies cannot use: the runtime has the Python "
               "standard library, tektii, numpy and pandas")
    assert problems_of("s.py", source) == [
        {"file": "s.py", "line": 2, "message": message.format("requests")},
        {"file": "s.py", "line": 3, "message": message.format("sklearn.linear_model")},
        {"file": "s.py", "line": 6, "message": message.format("torch")},
    ]


def test_archive_problems_are_all_reported_per_file():
    content = zip_of({"main.py": b"import requests\n", "lib.py": b"def (\n"})
    assert problems_of("a.zip", content) == [
        {"file": "lib.py", "line": 1, "message": "syntax error: invalid syntax"},
        {"file": "main.py", "line": 1, "message": "imports 'requests', which hosted strategies "
         "cannot use: the runtime has the Python standard library, tektii, numpy and pandas"},
    ]


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize("entries,expected", [
    ({"helper.py": b""}, [{"file": "a.zip", "line": None, "message": "no entry point: put "
                           "main.py or strategy.py at the top level of the archive"}]),
    ({"main.py": b"", "/etc/evil.py": b""}, [{"file": "/etc/evil.py", "line": None,
     "message": "absolute paths are not allowed in the archive"}]),
    ({"main.py": b"", "../evil.py": b""}, [{"file": "../evil.py", "line": None,
     "message": "'..' is not allowed in archive paths"}]),
    ({"main.py": b"", "lib/../../evil.py": b""}, [{"file": "lib/../../evil.py", "line": None,
     "message": "'..' is not allowed in archive paths"}]),
    ([("main.py", b""), (symlink("secrets.py"), b"/etc/passwd")], [{"file": "secrets.py",
     "line": None, "message": "symbolic links are not allowed in the archive"}]),
    ({"main.py": b"", **{f"m{i}.py": b"" for i in range(200)}}, [{"file": "(archive)",
     "line": None, "message": "the archive has 201 files; at most 200 are allowed"}]),
    ({"main.py": b"", "zeros.bin": bytes(21 * 1024 * 1024)}, [{"file": "(archive)",
     "line": None, "message": "the archive unpacks to 22020096 bytes; at most 20971520 (20 MB) "
                              "are allowed"}]),
])
def test_unsafe_or_incomplete_archives_are_refused(entries, expected):
    assert problems_of("a.zip", zip_of(entries)) == expected


def test_an_archive_over_5_mb_is_refused_before_it_is_opened():
    assert problems_of("a.zip", b"PK" + bytes(MAX_ZIP_BYTES)) == [{"file": "a.zip", "line": None,
        "message": "the archive is 5242882 bytes; a .zip may have at most 5242880 (5 MB)"}]


def test_something_that_is_not_a_zip_is_refused():
    assert problems_of("a.zip", b"not a zip") == [
        {"file": "a.zip", "line": None, "message": "not a valid zip archive"}]


def test_a_zip_bomb_whose_headers_understate_its_size_is_refused_without_unpacking_it():
    content = bytearray(zip_of({"main.py": b"", "bomb.txt": bytes(2_000_000)}))
    # Rewrite bomb.txt's uncompressed size in the central directory to claim 100 bytes.
    entry = content.rindex(b"PK\x01\x02")
    struct.pack_into("<I", content, entry + 24, 100)
    [problem] = problems_of("a.zip", bytes(content))
    assert problem["file"] == "bomb.txt"
    assert problem["message"].startswith("cannot be unpacked (")
