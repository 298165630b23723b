"""Failure reasons explained (runtimes/failures.py): each reason the platform records gets its
sentence and what to do, the traceback is folded out of the output, unknown reasons stay as
they are."""

from __future__ import annotations

import pytest

from runtimes.failures import MAX_TRACEBACK_LINES, Failure, explain_failure, last_traceback

TAIL = """\
starting
Traceback (most recent call last):
  File "/strategy/main.py", line 10, in <module>
    asyncio.run(Strategy().on_candle(3))
  File "/strategy/main.py", line 8, in on_candle
    return close / self.trades
ZeroDivisionError: division by zero"""


def test_a_strategys_exception_reads_as_a_sentence_with_its_traceback_folded_below():
    failure = explain_failure(
        reason="strategy: raised ZeroDivisionError: division by zero at main.py line 8, "
               "in on_candle", output_tail=TAIL)

    assert failure == Failure(
        sentence="Your strategy raised ZeroDivisionError: division by zero at main.py line 8, "
                 "in on_candle.",
        advice="Fix the code at that line (its traceback is below) and upload a new version.",
        traceback=TAIL.split("\n", 1)[1])


@pytest.mark.parametrize(("reason", "sentence", "advice_starts"), [
    ("strategy: killed: memory limit of 128 MiB exceeded",
     "Your strategy used more memory than its limit of 128 MiB and was stopped.",
     "Keep less in memory"),
    ("strategy: CPU time limit of 2 s exceeded",
     "Your strategy used more CPU time than its limit of 2 s and was stopped.",
     "Do less work per bar"),
    ("strategy: wall time limit of 8 s exceeded",
     "The run took longer than its wall time limit of 8 s and was stopped.",
     "Run a shorter date range"),
    ("strategy: process limit of 64 reached; stopped at its wall time limit of 8 s",
     "Your strategy started more processes or threads than its limit of 64.",
     "Start fewer processes"),
    ("strategy: the hosted runtime serves the tektii SDK 1.9.1 over its local channel; this "
     "runtime has tektii 9.0.0, which it has not been tested with",
     "The strategy could not start: the hosted runtime serves the tektii SDK 1.9.1 over its "
     "local channel; this runtime has tektii 9.0.0, which it has not been tested with.",
     "This is the platform's setup"),
    ("refused: bubblewrap is not installed; unsandboxed development runs are not allowed",
     "Hosted runs are refused on this machine: bubblewrap is not installed.",
     "Ask the platform's operator to install bubblewrap"),
    ("strategy: sandbox failed to start: bwrap: No permissions",
     "The sandbox could not start: bwrap: No permissions.", "This is the platform's machine"),
    ("no strategy connected within 60 s", "No strategy connected within 60 s.",
     "A remote strategy must connect"),
    ("dataset: BTCUSDT.csv row 1: timestamp 'yesterday' is not a date or time",
     "The dataset could not be read: BTCUSDT.csv row 1: timestamp 'yesterday' is not a date "
     "or time.", "Fix the file"),
    ("the worker running this session stopped (lost at batch 3 of 10)",
     "The worker running this backtest stopped (lost at batch 3 of 10).", "Run it again"),
], ids=["memory", "cpu", "wall", "fork-bomb", "sdk", "no-sandbox", "sandbox-start", "connect",
        "dataset", "worker"])
def test_each_failure_says_what_happened_and_what_to_do(reason, sentence, advice_starts):
    failure = explain_failure(reason=reason)

    assert (failure.sentence, failure.advice.startswith(advice_starts)) == (sentence, True)
    assert failure.message == f"{sentence} {failure.advice}"


def test_a_plain_exit_quotes_the_last_line_printed_which_names_a_bad_parameter():
    failure = explain_failure(reason="strategy: exited with code 1",
                              output_tail="starting\nneed 0 < fast < slow\n\n")

    assert failure.sentence == ("Your strategy exited with code 1 after printing "
                                "“need 0 < fast < slow”.")
    assert failure.traceback == ""


def test_output_past_the_limit_adds_what_to_do_about_it():
    failure = explain_failure(reason="strategy: CPU time limit of 2 s exceeded",
                              truncated_bytes=5_000_000)

    assert failure.advice == ("Do less work per bar, or run it over a shorter date range or "
                              "fewer symbols. It printed more than its output limit: 5000000 "
                              "bytes were dropped; print less.")


def test_an_unknown_reason_is_shown_as_it_is():
    assert explain_failure(reason="provider: gone") == Failure(
        sentence="The backtest failed: provider: gone.", advice="", traceback="")


def test_only_the_last_traceback_and_its_last_lines_are_kept():
    first = "Traceback (most recent call last):\nValueError: handled and logged"
    frames = "\n".join(f'  File "/strategy/main.py", line {n}, in f' for n in range(100))
    last = f"Traceback (most recent call last):\n{frames}\nRecursionError: too deep"

    kept = last_traceback(f"{first}\nmore output\n{last}")

    assert kept.splitlines() == last.splitlines()[-MAX_TRACEBACK_LINES:]
