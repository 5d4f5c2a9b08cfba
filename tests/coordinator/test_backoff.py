"""Full-jitter backoff honouring Retry-After, and the per-worker retry budget."""

from __future__ import annotations

import random
import threading

import pytest

from armguard.clock import ManualClock
from armguard.coordinator.backoff import Backoff, RetryBudget


def test_full_jitter_stays_inside_a_widening_capped_window() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    for attempt, window in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= window for d in delays)
        # Full jitter spreads over the whole window, not a narrow band around it.
        assert max(delays) - min(delays) > window * 0.6


def test_retry_after_is_a_floor_and_jitter_still_spreads_clients() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    delays = [backoff.delay(2, retry_after=5.0) for _ in range(100)]
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 50


def test_backoff_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="base"):
        Backoff(base=5, cap=1)


def test_budget_admits_floor_plus_ratio_of_work() -> None:
    budget = RetryBudget(ratio=0.1, floor=2)
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()
    budget.record_work(10)  # 10 writes earn one more retry
    assert budget.try_spend()
    assert not budget.try_spend()
    assert budget.spent == 3
    assert budget.work == 10


def test_budget_is_exact_under_concurrent_spending() -> None:
    budget = RetryBudget(ratio=0.5, floor=5)
    budget.record_work(100)  # room for 55 retries
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        for _ in range(50):
            ok = budget.try_spend()
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 55
    assert budget.remaining == 0


def test_budget_forgets_work_and_retries_outside_its_window() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.5, floor=1, clock=clock, window=60.0)
    budget.record_work(20)  # a busy quiet hour earns room for ten retries…
    clock.advance(61)
    # …that the first bad minute after it cannot draw on: only the floor is left.
    assert budget.work == 0
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.advance(30)
    budget.record_work(2)  # fresh work earns fresh room, the spent retry still counts
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.advance(31)  # the first retry left the window
    assert budget.try_spend()
    assert budget.spent == 3


def test_budget_says_when_it_admits_a_retry_again() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.0, floor=2, clock=clock, window=60.0)
    assert budget.admits_in() == 0.0
    assert budget.try_spend()
    clock.advance(10)
    assert budget.try_spend()
    clock.advance(10)
    assert not budget.try_spend()
    assert budget.admits_in() == pytest.approx(40.0)  # the first retry leaves at 60
    clock.advance(40)
    assert budget.admits_in() == 0.0
    assert budget.try_spend()


def test_work_leaving_the_window_takes_room_away_when_saying_when() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.5, floor=1, clock=clock, window=60.0)
    budget.record_work(2)  # room for 1 + 1 retries
    clock.advance(30)
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()
    # At 60 the work leaves (room 1, two spent); at 90 both retries leave.
    assert budget.admits_in() == pytest.approx(60.0)


def test_a_budget_only_new_work_can_reopen_says_so() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.5, floor=0, clock=clock, window=60.0)
    budget.record_work(1)
    assert not budget.try_spend()
    assert budget.admits_in() is None
    assert RetryBudget(ratio=0.0, floor=0).admits_in() is None  # no clock, no window
