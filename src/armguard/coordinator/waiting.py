"""Waiting for jobs' outcomes: woken by the store's change notifications, not a polling loop.

Every submit, completion and release is announced through :meth:`Store.watch_changes` (in this
process at once; from other processes through SQLite's ``data_version`` or PostgreSQL
``NOTIFY``), so a wait looks at its jobs again only when something committed. A recheck every
few seconds bounds a missed wake-up (a lease that expired commits nothing).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence

from armguard.clock import Clock, SystemClock
from armguard.coordinator.model import Job, JobState
from armguard.coordinator.store import Store

__all__ = ["ChangeFeed", "JobNotFound", "WaitTimeout", "wait_for", "wait_for_async"]

# Real seconds between looks at the jobs when no change is announced: only a missed wake-up
# waits this long.
RECHECK_SECONDS = 5.0
# An asyncio wait watches in a thread; a cancelled wait leaves that thread behind for at most
# one slice.
ASYNC_SLICE_SECONDS = 1.0


class JobNotFound(LookupError):
    """No job with this id in the store."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job '{job_id}' in this store")
        self.job_id = job_id


class WaitTimeout(TimeoutError):
    """A job had no outcome when the wait's time was up. ``job`` is the job as it was then."""

    def __init__(self, job: Job, timeout: float, pending: int = 1) -> None:
        what = f"job {job.id} ({job.spec.intent.get('kind')} on {job.resource_id})"
        if job.state is JobState.RUNNING:
            why = "a worker holds it; its outcome is not recorded yet"
        else:
            why = "is a worker running on this store?"
        others = f" ({pending - 1} more job(s) also pending)" if pending > 1 else ""
        super().__init__(f"{what} is still {job.state} after {timeout:g} s; {why}{others}")
        self.job = job
        self.timeout = timeout
        self.pending = pending


class ChangeFeed:
    """Many waiters on one store handle.

    ``Store.watch_changes`` reports a change once, to whichever call comes next, so two waits
    calling it on one handle would take each other's wake-ups (and a PostgreSQL handle has one
    listening connection). Here one waiter at a time watches for all of them, and every waiter
    sees every change.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._generation = 0
        self._watching = False

    @property
    def generation(self) -> int:
        """Changes seen so far; take it *before* looking at jobs, then :meth:`wait_past` it."""
        with self._cond:
            return self._generation

    def wait_past(self, seen: int, timeout: float) -> None:
        """Return once a change after generation ``seen`` came, or after ``timeout`` real s."""
        end = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                left = end - time.monotonic()
                if self._generation != seen or left <= 0:
                    return
                if not self._watching:
                    self._watching = True
                    break
                self._cond.wait(left)
        changed = False
        try:
            changed = self.store.watch_changes(left) is not None
        finally:
            with self._cond:
                self._watching = False
                self._generation += int(changed)
                # Also on a quiet return: a follower with time left becomes the watcher.
                self._cond.notify_all()


def _check(job_ids: Sequence[str], timeout: float | None) -> None:
    if timeout is not None and not (isinstance(timeout, int | float) and timeout >= 0):
        raise ValueError(
            f"timeout must be seconds >= 0, or None to wait without a limit; not {timeout!r}"
        )
    for job_id in job_ids:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ValueError(f"a job id is a non-empty string, not {job_id!r}")


def _look(store: Store, job_ids: Sequence[str], done: dict[str, Job]) -> list[Job]:
    """Record finished jobs in ``done``; return the ones still pending, in the given order."""
    pending = []
    for job_id in job_ids:
        if job_id in done:
            continue
        job = store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.state is JobState.DONE:
            done[job_id] = job
        else:
            pending.append(job)
    return pending


def _left(deadline: float | None, clock: Clock) -> float:
    return math.inf if deadline is None else deadline - clock.monotonic()


def _feed(source: Store | ChangeFeed) -> ChangeFeed:
    return source if isinstance(source, ChangeFeed) else ChangeFeed(source)


def wait_for(
    source: Store | ChangeFeed,
    job_ids: Sequence[str],
    *,
    timeout: float | None = 600.0,
    clock: Clock | None = None,
) -> list[Job]:
    """Block until every job in ``job_ids`` is done; return them in the order given.

    ``timeout`` is in seconds of ``clock`` (default: the system clock), shared by all the jobs;
    None waits without a limit. Raises :class:`WaitTimeout` naming the first job still pending
    and its state, :class:`JobNotFound` for an id the store does not have.
    """
    _check(job_ids, timeout)
    feed, clock = _feed(source), clock or SystemClock()
    deadline = None if timeout is None else clock.monotonic() + timeout
    done: dict[str, Job] = {}
    while True:
        seen = feed.generation
        pending = _look(feed.store, job_ids, done)
        if not pending:
            return [done[job_id] for job_id in job_ids]
        left = _left(deadline, clock)
        if left <= 0:
            raise WaitTimeout(pending[0], float(timeout or 0.0), len(pending))
        feed.wait_past(seen, min(RECHECK_SECONDS, left))


async def wait_for_async(
    source: Store | ChangeFeed,
    job_ids: Sequence[str],
    *,
    timeout: float | None = 600.0,
    clock: Clock | None = None,
) -> list[Job]:
    """:func:`wait_for` for asyncio: the store calls run in threads, the event loop stays free,
    and cancelling the task ends the wait."""
    _check(job_ids, timeout)
    feed, clock = _feed(source), clock or SystemClock()
    deadline = None if timeout is None else clock.monotonic() + timeout
    done: dict[str, Job] = {}
    while True:
        seen = feed.generation
        pending = await asyncio.to_thread(_look, feed.store, job_ids, done)
        if not pending:
            return [done[job_id] for job_id in job_ids]
        left = _left(deadline, clock)
        if left <= 0:
            raise WaitTimeout(pending[0], float(timeout or 0.0), len(pending))
        await asyncio.to_thread(feed.wait_past, seen, min(ASYNC_SLICE_SECONDS, left))
