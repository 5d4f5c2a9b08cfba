"""Whether the ARM endpoint answers at all, shared by every loop of a worker.

A 5xx or a 429 is an answer: ARM is there and says when to come back. No answer at all —
connection refused, DNS, TLS, a timeout — may be a blip or an endpoint that is gone. Each
loop retries it within its retry budget, but the *worker* keeps one clock on it: once ARM has
given no answer for ``limit`` seconds, every job that meets the silence fails ``transient``
at once instead of backing off again, so ``worker --until-idle`` and ``apply`` end in bounded
time against a dead endpoint, and a long-running worker stops burning leases on it. The first
silence, the give-up and the recovery are reported through ``on_change`` as they happen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from armguard.clock import Clock

__all__ = ["Reachability", "ReachabilityChange"]


@dataclass(frozen=True)
class ReachabilityChange:
    state: str
    """``silent`` (the first call with no answer), ``gave_up`` (silent past the limit) or
    ``answering`` (an answer after a silence)."""
    why: str
    silent_for: float
    limit: float


class Reachability:
    def __init__(
        self,
        clock: Clock,
        limit: float = 60.0,
        on_change: Callable[[ReachabilityChange], None] | None = None,
    ) -> None:
        if limit < 0:
            raise ValueError("the ARM outage limit must be >= 0")
        self.clock = clock
        self.limit = limit
        self._on_change = on_change
        self._lock = threading.Lock()
        self._since: float | None = None
        self._why = ""
        self._gave_up = False

    def answered(self) -> None:
        if self._since is None:  # the hot path: no lock while ARM answers
            return
        with self._lock:
            if self._since is None:
                return
            change = ReachabilityChange(
                "answering", self._why, self.clock.monotonic() - self._since, self.limit
            )
            self._since = None
            self._gave_up = False
        self._report(change)

    def no_answer(self, why: str) -> None:
        change = None
        with self._lock:
            now = self.clock.monotonic()
            self._why = why
            if self._since is None:
                self._since = now
                change = ReachabilityChange("silent", why, 0.0, self.limit)
            elif not self._gave_up and now - self._since >= self.limit:
                self._gave_up = True
                change = ReachabilityChange("gave_up", why, now - self._since, self.limit)
        if change is not None:
            self._report(change)

    def silent_for(self) -> float:
        since = self._since
        return 0.0 if since is None else max(0.0, self.clock.monotonic() - since)

    def exhausted(self) -> bool:
        """Silent for the whole limit: stop retrying."""
        return self._since is not None and self.silent_for() >= self.limit

    def remaining(self) -> float:
        return max(0.0, self.limit - self.silent_for())

    @property
    def why(self) -> str:
        return self._why

    def _report(self, change: ReachabilityChange) -> None:
        if self._on_change is not None:
            self._on_change(change)
