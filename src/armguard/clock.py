"""Time, injected. Nothing in armguard reads the wall clock or sleeps except through a Clock,
so tests drive time with :class:`ManualClock` and never sleep for real."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "isoformat"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told. ``sleep`` advances it instead of waiting, so code
    under test that waits on something observable runs instantly and deterministically."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._mono = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def advance_to(self, monotonic: float) -> float:
        """Advance until ``monotonic()`` reaches ``monotonic``; return the step (0 if already
        there). One locked step, so waiters sharing the clock never push it past a deadline."""
        with self._lock:
            step = max(0.0, monotonic - self._mono)
            self._now += step
            self._mono += step
        return step

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


def isoformat(ts: float) -> str:
    """ARM's timestamp shape: ``2026-04-27T10:16:42.1234567Z`` (7 fractional digits)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    # Not strftime's %Y: glibc does not pad years below 1000 to four digits.
    return f"{dt.year:04d}-" + dt.strftime("%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"
