"""Backoff with full jitter, and a retry budget so retries cannot become a storm.

ARM's write limit is a per-principal token bucket, and retries spend the same tokens as real
work. Backoff without jitter keeps colliding clients in lockstep (AWS "Exponential Backoff And
Jitter"); a per-request attempt cap alone still lets retries triple the load. So armguard uses
*full jitter* — ``uniform(0, min(cap, base · 2^n))`` — never shorter than ARM's ``Retry-After``,
and a per-worker :class:`RetryBudget` in the style of the SRE book: extra calls may be at most
``ratio`` × real writes plus a small floor, counted over a sliding window.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

from armguard.clock import Clock

__all__ = ["Backoff", "RetryBudget"]


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 120.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        ARM's ``Retry-After`` is a floor: sending earlier is not processed and earns a fresh
        one. The jitter sits on top of it so clients told the same value still spread out.
        """
        window = min(self.cap, self.base * (2 ** max(0, attempt)))
        if retry_after is not None and retry_after > 0:
            return retry_after + self.rng.uniform(0.0, min(window, retry_after))
        return self.rng.uniform(0.0, window)


class RetryBudget:
    """Thread-safe budget of extra ARM calls: ``floor + ratio × work`` within a sliding window.

    ``record_work`` counts calls that do real work (the first attempt of each write);
    ``try_spend`` admits a retry only while the budget has room, so a burst of 429s or 5xx
    ends in a failed job instead of a retry storm. With a clock, both count only over the last
    ``window`` seconds (Finagle's retry budget works the same way): otherwise a day of quiet
    work would bank thousands of retries for the first bad minute.
    """

    def __init__(
        self,
        ratio: float = 0.1,
        floor: int = 10,
        *,
        clock: Clock | None = None,
        window: float = 60.0,
    ) -> None:
        if ratio < 0 or floor < 0:
            raise ValueError("a retry budget needs ratio >= 0 and floor >= 0")
        if not window > 0:
            raise ValueError("a retry budget's window must be positive")
        self.ratio = ratio
        self.floor = floor
        self.window = window
        self._clock = clock
        self._work: deque[float] = deque()
        self._spent: deque[float] = deque()
        self._total_spent = 0
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else 0.0

    def _prune(self, now: float) -> None:
        if self._clock is None:
            return
        horizon = now - self.window
        for stamps in (self._work, self._spent):
            while stamps and stamps[0] <= horizon:
                stamps.popleft()

    def record_work(self, calls: int = 1) -> None:
        with self._lock:
            now = self._now()
            self._prune(now)
            self._work.extend([now] * calls)

    def try_spend(self) -> bool:
        with self._lock:
            now = self._now()
            self._prune(now)
            if len(self._spent) + 1 > self.floor + self.ratio * len(self._work):
                return False
            self._spent.append(now)
            self._total_spent += 1
            return True

    def admits_in(self) -> float | None:
        """Seconds until :meth:`try_spend` would admit a retry if no new work came in: 0 when
        it would now; None when only new work can make room (no clock, or a budget whose
        floor is 0 and whose window holds too little work)."""
        with self._lock:
            now = self._now()
            self._prune(now)
            if len(self._spent) + 1 <= self.floor + self.ratio * len(self._work):
                return 0.0
            if self._clock is None:
                return None
            # Room appears only as old retries leave the window (work leaving it takes room
            # away): look at each moment stamps leave, in time order (both deques are).
            spent, work = list(self._spent), list(self._work)
            i = j = 0
            while i < len(spent) or j < len(work):
                at = min(
                    spent[i] if i < len(spent) else float("inf"),
                    work[j] if j < len(work) else float("inf"),
                )
                while i < len(spent) and spent[i] <= at:
                    i += 1
                while j < len(work) and work[j] <= at:
                    j += 1
                if len(spent) - i + 1 <= self.floor + self.ratio * (len(work) - j):
                    return max(0.0, at + self.window - now)
            return None

    @property
    def spent(self) -> int:
        """Retries admitted over the budget's life."""
        with self._lock:
            return self._total_spent

    @property
    def work(self) -> int:
        """Real calls in the current window."""
        with self._lock:
            self._prune(self._now())
            return len(self._work)

    @property
    def remaining(self) -> float:
        with self._lock:
            self._prune(self._now())
            return self.floor + self.ratio * len(self._work) - len(self._spent)
