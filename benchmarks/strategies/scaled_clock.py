"""Emulated seconds on the wall clock, for clients of an emulator running at a time scale.

The emulator shrinks every operation's duration by ``--time-scale``. Clients that wait (Retry-After
polls, backoff, fixed sleeps, lease TTLs) must shrink their waits by the same factor, or a 1 s
poll floor meant for a 4 s operation would dominate a run where that operation lasts 40 ms. This
clock keeps every party on one time line: ``sleep(s)`` sleeps ``s × scale`` real seconds and
``now()`` advances ``1 / scale`` emulated seconds per real second. Nothing here is simulated:
every wait is a real wait, only shorter.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["ScaledClock"]


class ScaledClock:
    def __init__(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError("the time scale must be positive")
        self.scale = scale
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.time() - self._wall0) / self.scale

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) / self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds * self.scale)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds * self.scale))
