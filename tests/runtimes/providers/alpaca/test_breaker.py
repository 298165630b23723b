"""The adapter circuit breaker: 3 failures in 300 s open it for 30 s, then one trial call."""

from __future__ import annotations

from runtimes.providers.alpaca.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_three_failures_within_the_window_open_it_for_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    assert [breaker.failed(), breaker.failed()] == [False, False]
    assert breaker.admit() == 0.0
    assert breaker.failed() is True
    assert breaker.as_json() == {"state": "open", "failure_count": 3}
    clock.t += 10
    assert breaker.admit() == 20.0


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    breaker.failed()
    breaker.failed()
    clock.t += 301
    assert breaker.failed() is False
    assert breaker.as_json() == {"state": "closed", "failure_count": 1}


def test_after_the_cooldown_one_trial_goes_through_and_its_outcome_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    for _ in range(3):
        breaker.failed()
    clock.t += 30
    assert breaker.admit() == 0.0  # the trial
    assert breaker.admit() == 1.0  # the others wait for it
    assert breaker.failed() is True  # the trial failed: open again, a new cooldown
    assert breaker.admit() == 30.0
    clock.t += 30
    assert breaker.admit() == 0.0
    assert breaker.succeeded() is True
    assert breaker.as_json() == {"state": "closed", "failure_count": 0}
