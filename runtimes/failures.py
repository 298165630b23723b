"""Why a session failed, in words a person can act on: what happened and what to do, from the
short reason its host recorded (`TradingSession.failure_reason`), and the strategy's traceback
from its captured output. The status page, the list and the management API say the same."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TRACEBACK_LINES = 60  # of the output's end shown folded under the sentence

# The reasons the platform records (where each comes from in brackets), each with its sentence
# and what the person can do. The first pattern that matches wins; named groups fill the text.
_EXPLAINED: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), s, a) for p, s, a in [
    (  # runtimes/sandbox/tracebacks.py through runtimes/sandbox/process.py
        r"^strategy: raised (?P<what>.+)$",
        "Your strategy raised {what}.",
        "Fix the code at that line (its traceback is below) and upload a new version.",
    ),
    (  # the limits: runtimes/sandbox/process.py
        r"^strategy: killed: memory limit of (?P<limit>.+?) exceeded",
        "Your strategy used more memory than its limit of {limit} and was stopped.",
        "Keep less in memory (shorter histories, fewer copies of the data) and run it again.",
    ),
    (
        r"^strategy: CPU time limit of (?P<limit>.+?) exceeded",
        "Your strategy used more CPU time than its limit of {limit} and was stopped.",
        "Do less work per bar, or run it over a shorter date range or fewer symbols.",
    ),
    (
        r"^strategy: wall time limit of (?P<limit>.+?) exceeded",
        "The run took longer than its wall time limit of {limit} and was stopped.",
        "Run a shorter date range or fewer symbols, or check that the strategy does not wait "
        "for something that never comes (a sleep, a blocking read).",
    ),
    (
        r"^strategy: process limit of (?P<limit>\d+) reached",
        "Your strategy started more processes or threads than its limit of {limit}.",
        "Start fewer processes or threads (a loop that forks stops here); run the work in the "
        "strategy's own process.",
    ),
    (
        r"^strategy: open files limit of (?P<limit>\d+) reached",
        "Your strategy opened more files than its limit of {limit}.",
        "Close files once read (use `with open(...)`).",
    ),
    (
        r"^strategy: file size limit of (?P<limit>.+?) exceeded",
        "Your strategy wrote a file larger than its limit of {limit}.",
        "Write less to disk: keep results in memory or print a summary.",
    ),
    (
        r"^strategy: space limit reached: (?P<limit>.+)$",
        "Your strategy filled its scratch space ({limit}).",
        "Write less to /tmp and /dev/shm, and remove files it no longer needs.",
    ),
    (
        r"^strategy: killed by signal (?P<signal>\w+)",
        "Your strategy was killed by signal {signal}.",
        "This is usually a crash in native code (a library's C extension); its last output "
        "lines are below.",
    ),
    (
        r"^strategy: exited with code (?P<code>\d+)$",
        "Your strategy exited with code {code}{last_line}.",
        "Its last output lines are below: fix what they say (a parameter, say) and run it "
        "again.",
    ),
    (  # the shim's refusal: runtimes/sandbox/shim.py
        r"^strategy: (?P<what>the hosted runtime serves the tektii SDK .+)$",
        "The strategy could not start: {what}.",
        "This is the platform's setup, not your code: ask its operator to install a supported "
        "tektii SDK version.",
    ),
    (
        r"^strategy: sandbox failed to start: (?P<what>.+)$",
        "The sandbox could not start: {what}.",
        "This is the platform's machine, not your code: ask its operator, then run it again.",
    ),
    (
        r"^strategy: stopped by the platform$",
        "The platform stopped your strategy.",
        "Run it again; if it happens again, ask the platform's operator.",
    ),
    (  # runtimes/sandbox/runner.py (SandboxUnavailable)
        r"^refused: (?P<what>.+?); unsandboxed development runs are not allowed$",
        "Hosted runs are refused on this machine: {what}.",
        "Ask the platform's operator to install bubblewrap (see docs/hosted-runs.md).",
    ),
    (  # runtimes/hosting/host.py, runtimes/hosting/dispatch.py
        r"^no strategy connected within (?P<seconds>\d+) s$",
        "No strategy connected within {seconds} s.",
        "A remote strategy must connect to the session's URL with an API key before then; a "
        "hosted one must start the tektii gateway (its output is below).",
    ),
    (
        r"^strategy stopped acknowledging for (?P<seconds>\d+) s$",
        "The strategy stopped answering the stream for {seconds} s.",
        "Keep each event handler short: a long computation or a sleep in a handler stalls "
        "the backtest.",
    ),
    (  # runtimes/hosting/host.py (the dataset's files)
        r"^dataset: (?P<what>.+)$",
        "The dataset could not be read: {what}.",
        "Fix the file and upload the dataset again.",
    ),
    (  # runtimes/hosting/leases.py
        r"^the worker running this session stopped(?P<what>.*)$",
        "The worker running this backtest stopped{what}.",
        "Run it again; if it happens again, ask the platform's operator.",
    ),
    (  # runtimes/hosting/hosted.py (PlatformNotFound)
        r"^(?P<what>PLATFORM_INTERNAL_URL .+)$",
        "The platform could not reach itself: {what}.",
        "This is the platform's setup, not your code: ask its operator.",
    ),
]]


@dataclass(frozen=True)
class Failure:
    """A failed session explained: `sentence` says what happened, `advice` what to do;
    `traceback` is the strategy's last traceback (empty when its output has none)."""

    sentence: str
    advice: str
    traceback: str

    @property
    def message(self) -> str:
        return f"{self.sentence} {self.advice}".strip()


def explain_failure(*, reason: str, output_tail: str = "", truncated_bytes: int = 0) -> Failure:
    """The sentence and advice for a failure `reason`, and the traceback in `output_tail`.
    A reason no pattern knows is shown as it is, with no advice."""
    traceback = last_traceback(output_tail)
    text, advice = _sentence_and_advice(reason, output_tail)
    if truncated_bytes:
        advice = (f"{advice} It printed more than its output limit: {truncated_bytes} bytes "
                  "were dropped; print less.").strip()
    return Failure(sentence=text, advice=advice, traceback=traceback)


def _sentence_and_advice(reason: str, output_tail: str) -> tuple[str, str]:
    for pattern, sentence, advice in _EXPLAINED:
        match = pattern.match(reason)
        if match is not None:
            fields = {**match.groupdict(), "last_line": _last_line(output_tail)}
            return sentence.format(**fields), advice
    return (f"The backtest failed: {reason}." if reason else "The backtest failed; no reason "
            "was recorded."), ""


def last_traceback(output_tail: str) -> str:
    """The last "Traceback (most recent call last):" block of the output and what follows it
    (at most MAX_TRACEBACK_LINES lines, its end kept), or "" when there is none."""
    lines = output_tail.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return ""
    return "\n".join(lines[starts[-1]:][-MAX_TRACEBACK_LINES:])


def _last_line(output_tail: str) -> str:
    lines = [line.strip() for line in output_tail.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if len(lines[-1]) <= 160 else lines[-1][:159] + "…"
    return f" after printing “{line}”"
