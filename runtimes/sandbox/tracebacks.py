"""The exception that ended a strategy, read from the end of its captured output: its type and
message and the innermost frame of the user's own code (file, line, function), as one sentence.

Plain text in, plain values out: the output is the strategy's, so everything is bounded (the
lines read, the message kept) and nothing in it is trusted beyond being shown as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINES = 400  # of the output's end: a traceback deeper than this is cut at its start
MAX_MESSAGE = 160  # characters of the exception's message kept in the sentence

_HEADER = "Traceback (most recent call last):"
# An asyncio.TaskGroup's failure prints an exception group: each sub-exception's traceback is
# drawn in a margin of "|" (and "+-" rules), one margin a line however deep the nesting.
_GROUP_HEADER = "Exception Group Traceback (most recent call last):"
_GROUP_MARGIN = re.compile(r"^\s*[|+] ?")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)')
# "ZeroDivisionError: division by zero", "mypkg.errors.Bad", "KeyError: 'x'"
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


@dataclass(frozen=True)
class StrategyException:
    """The exception a strategy's run ended with, at the innermost frame of its own files."""

    type: str
    message: str
    file: str  # relative to the strategy's code ("main.py", "lib/signals.py")
    line: int
    function: str

    def sentence(self) -> str:
        """ "raised ZeroDivisionError: division by zero at main.py line 42, in on_candle" """
        message = f": {self.message}" if self.message else ""
        return (f"raised {self.type}{message} at {self.file} line {self.line}, "
                f"in {self.function}")


def strategy_exception(output_tail: str, *, code_root: str) -> StrategyException | None:
    """The last traceback in `output_tail` whose frames reach a file under `code_root` (the
    folder the strategy's code runs from), or None: no traceback, or none through the user's
    code (an exception of the platform's shim or of Python's start-up, say). Of an exception
    group (a TaskGroup's), the last sub-exception's."""
    lines = output_tail.splitlines()[-MAX_LINES:]
    if any(_GROUP_HEADER in line for line in lines):  # the last sub-exception's is the last
        lines = [_GROUP_MARGIN.sub("", line, count=1) for line in lines]
    starts = [i for i, line in enumerate(lines) if line.strip() == _HEADER]
    if not starts:
        return None
    block = lines[starts[-1] + 1:]
    frame = _innermost_own_frame(block, code_root.rstrip("/") + "/")
    raised = _exception_line(block)
    if frame is None or raised is None:
        return None
    file, line, function = frame
    kind, message = raised
    return StrategyException(type=kind, message=_bounded(message), file=file, line=line,
                             function=function)


def _innermost_own_frame(block: list[str], root: str) -> tuple[str, int, str] | None:
    own = None
    for text in block:
        match = _FRAME.match(text)
        if match and match["file"].startswith(root):
            own = (match["file"][len(root):], int(match["line"]), match["function"])
    return own


def _exception_line(block: list[str]) -> tuple[str, str] | None:
    # The first unindented line after the frames names the exception; a message may continue
    # on further lines (kept to its first).
    for text in block:
        if not text or text[0].isspace():
            continue
        match = _EXCEPTION.match(text)
        return None if match is None else (match["type"], match["message"] or "")
    return None


def _bounded(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…"
