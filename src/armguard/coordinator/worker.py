"""The worker: N batch loops over one store, each claiming a lease and running it to outcomes.

Threads are enough: a batch spends its life waiting on ARM. Each loop opens its own store
handle (SQLite and psycopg connections belong to one thread) and uses one ARM client per writer
identity, so the Activity Log shows who asked for each write. A loop's next claim carries the
outcomes of its last batch (``Store.claim(completing=...)``: one store transaction and commit
where there were two); a loop that is ending completes its last batch on its own.

Shutdown: :meth:`Worker.stop` (the CLI wires SIGTERM to it) lets each loop finish its current
batch; a batch that is waiting on ARM releases its lease instead, returning unfinished jobs to
the queue. A worker killed outright loses nothing either: its leases expire, another worker
claims the jobs, and the ETag guard plus ``satisfied_by`` keep the retry from applying twice.

Storms: a batch whose 429s or 5xx outlast the worker's retry budget goes back to the queue
(``write/session.py``, ``Session.requeue_unfinished``) and the worker's loops claim nothing until
the delay it chose is over — until the budget admits a retry, never before Retry-After.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from armguard.clock import Clock
from armguard.coordinator.backoff import Backoff, RetryBudget
from armguard.coordinator.gates import Pacer, Requester, Stopped
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import Completion, JobState, Lease
from armguard.coordinator.reachability import Reachability, ReachabilityChange
from armguard.coordinator.sql_store import StoreError
from armguard.coordinator.store import Change, Store
from armguard.coordinator.write import BatchReport, BatchWriter, WriterSettings

__all__ = ["Worker", "WorkerSettings", "WorkerStats"]

# How often the watcher checks a pending debounce deadline (real seconds).
_NUDGE_TICK_S = 0.01


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 1
    lease_ttl: float = 60.0
    max_batch: int = 64
    idle_poll: float = 0.25
    """Real seconds between claim attempts while nothing changes: that catches leases expiring
    (a takeover), which commit nothing. Submits, completions and releases — in this process or
    another — wake an idle loop at once through :meth:`Store.watch_changes`."""
    linger: float = 0.0
    """Debounce, in seconds of the worker's clock: a resource's queued jobs are claimed once no
    new job has joined them for this long, so a burst of writers becomes one ARM write instead
    of one write plus another for the stragglers. 0 claims at once."""
    linger_max: float = 0.0
    """The longest a job waits for its resource to settle (at least ``linger``)."""
    budget_ratio: float = 0.1
    budget_floor: int = 10
    budget_window: float = 60.0
    """Seconds over which retries are weighed against real writes."""
    store_outage: float = 300.0
    """How long a loop keeps reopening a store that failed (a database restart, a dropped
    connection) before the worker stops with the error. Leases it held expire meanwhile and
    are taken over, so nothing is lost either way."""
    arm_outage: float = 60.0
    """How long ARM may give no answer at all (connection refused, DNS, TLS, timeouts) before
    every job that meets the silence fails ``transient`` at once, so ``--until-idle`` and
    ``apply`` end against a dead endpoint. 5xx and 429 are answers and do not count."""
    writer: WriterSettings = field(default_factory=WriterSettings)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.lease_ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not (self.linger >= 0 and self.linger_max >= 0):
            raise ValueError("linger and linger_max must be >= 0")
        if self.linger > 0 and self.linger_max < self.linger:
            raise ValueError("linger_max must be at least linger")
        if self.store_outage < 0:
            raise ValueError("store_outage must be >= 0")
        if self.arm_outage < 0:
            raise ValueError("arm_outage must be >= 0")


@dataclass
class WorkerStats:
    batches: int = 0
    jobs: int = 0
    writes: int = 0
    leases_lost: int = 0
    released: int = 0
    requeued: int = 0
    """Jobs put back in the queue because a storm outlasted the retry budget."""
    store_reconnects: int = 0
    """Loops' store reopens after an error, and reconnects their handles made by themselves."""
    outcomes: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        open_store: Callable[[], Store],
        client_for: Callable[[str], Requester],
        clock: Clock,
        *,
        settings: WorkerSettings | None = None,
        metrics: CoordinatorMetrics | None = None,
        owner: str | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        backoff: Backoff | None = None,
        on_arm: Callable[[ReachabilityChange], None] | None = None,
    ) -> None:
        """``on_arm`` hears when ARM first gives no answer, when the worker gives up on it
        (``arm_outage``) and when it answers again: the CLI prints those as they happen."""
        self._open_store = open_store
        self._client_for = client_for
        self.clock = clock
        self.settings = settings or WorkerSettings()
        self.metrics = metrics
        self.owner = owner or f"worker-{uuid.uuid4().hex[:8]}"
        self.on_batch = on_batch
        self.backoff = backoff
        self.budget = RetryBudget(
            self.settings.budget_ratio,
            self.settings.budget_floor,
            clock=clock,
            window=self.settings.budget_window,
        )
        self.reach = Reachability(clock, self.settings.arm_outage, on_arm)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._generation = 0
        self._stop_watching = threading.Event()
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._resume_at = float("-inf")  # worker clock (monotonic): no claim before it

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish (or release) the current batches and return from the loops, for good."""
        self._stop.set()
        self._notify(everyone=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_until_idle(self) -> WorkerStats:
        """Run until no job is queued or running anywhere in the store (or until stopped)."""
        return self._run(until_idle=True)

    def run_forever(self) -> WorkerStats:
        """Run until :meth:`stop`."""
        return self._run(until_idle=False)

    def run_once(self) -> BatchReport | None:
        """Claim and run one batch on the calling thread; None if nothing was claimable."""
        store = self._open_store()
        try:
            claimed_at = self.clock.now()
            lease = self._claim(store, self.owner)
            if lease is None:
                return None
            return self._run_batch(store, lease, claimed_at)
        finally:
            store.close()

    # -- loops ----------------------------------------------------------------------------------

    def _run(self, *, until_idle: bool) -> WorkerStats:
        # A stop that arrives before the loops start (SIGTERM during start-up) still counts:
        # a stopped worker stays stopped.
        self._errors.clear()
        self._stop_watching.clear()
        threads = [
            threading.Thread(
                target=self._guarded, args=(n, until_idle), name=f"{self.owner}-{n}", daemon=True
            )
            for n in range(self.settings.concurrency)
        ]
        watcher = threading.Thread(target=self._watch, name=f"{self.owner}-watch", daemon=True)
        for t in threads:
            t.start()
        watcher.start()
        for t in threads:
            # A signal may be delivered to any thread; the main thread runs Python's handler
            # only when it wakes, and a bare join sleeps until the loop ends (say, after a
            # 12 s ARM call). Waking every 0.2 s keeps a second Ctrl-C immediate.
            while t.is_alive():
                t.join(0.2)
        self._stop_watching.set()
        watcher.join()
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _guarded(self, n: int, until_idle: bool) -> None:
        try:
            self._loop(n, until_idle)
        except BaseException as exc:
            with self._lock:
                self._errors.append(exc)
            self.stop()
        finally:
            with self._wake:
                # Loops waiting to see whether the queue ran dry must look again.
                self._generation += 1
                self._wake.notify_all()

    def _watch(self) -> None:
        """One thread per worker watches the store and wakes one idle loop per change (and one
        per ``idle_poll`` without a change, for expired leases). A loop that claims something
        wakes the next, so a burst of work fans out without every loop polling the store.

        With a linger, a submit cannot make anything claimable before its burst goes quiet
        (at the earliest ``linger / 10`` after it, at the latest ``linger``), so instead of
        waking a loop at once (for a claim that must come back empty) the watcher wakes one
        every ``linger / 10`` until the latest submit is ``linger`` old."""
        # Opened in the loop below: a store that cannot be opened yet (a database starting up
        # or shutting down, refusing connections) is an outage to wait out, not the end.
        store: Store | None = None
        linger = self.settings.linger
        step = linger / 10 * 1.05
        nudge_at: float | None = None  # worker clock
        nudge_until = 0.0
        last = time.monotonic()
        try:
            while not (self._stop.is_set() or self._stop_watching.is_set()):
                # Short waits, so a stopping worker never waits on its watcher for long.
                wait = _NUDGE_TICK_S if nudge_at is not None else min(self.settings.idle_poll, 0.25)
                change: Change | None
                try:
                    if store is None:
                        store = self._open_store()
                    change = store.watch_changes(wait)
                except Exception:
                    # The loops meet the same store error and reconnect themselves; the
                    # watcher reopens its own handle and, meanwhile, wakes one every idle_poll.
                    self._stop_watching.wait(self.settings.idle_poll)
                    if store is not None:
                        with suppress(Exception):
                            store.close()
                        store = None
                    change = "freed"
                if change == "submitted" and linger > 0:
                    nudge_at = self.clock.monotonic() + step
                    nudge_until = self.clock.monotonic() + linger * 1.05
                elif change is not None or time.monotonic() - last >= self.settings.idle_poll:
                    self._notify()
                    last = time.monotonic()
                if nudge_at is not None and self.clock.monotonic() >= nudge_at:
                    nudge_at = nudge_at + step if nudge_at < nudge_until else None
                    self._notify()
                    last = time.monotonic()
        finally:
            if store is not None:
                store.close()

    def _loop(self, n: int, until_idle: bool) -> None:
        owner = f"{self.owner}/{n}"
        outage = _Outage(self.clock, self.settings.store_outage, self._stop)
        owing = _Owing()
        store: Store | None = None
        counted = 0  # reconnects the current handle made by itself, already in the stats
        try:
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = self._open_store()
                        counted = 0
                    done = self._step(store, owner, until_idle, owing)
                    counted = self._count_reconnects(store, counted)
                    if done:
                        return
                    outage.over()
                except StoreError as exc:
                    # The store failed under us (a restart, a dropped connection). A batch in
                    # flight keeps its lease until the TTL, then any worker takes it over.
                    if store is not None:
                        with suppress(Exception):
                            store.close()
                        store = None
                    outage.wait_or_raise(exc)
                    with self._lock:
                        self.stats.store_reconnects += 1
        finally:
            if store is not None:
                # A stopping loop claims nothing more: what its last batch owes goes alone.
                with suppress(StoreError):
                    self._pay(store, owing)
                store.close()

    def _count_reconnects(self, store: Store, counted: int) -> int:
        # A PostgreSQL handle replaces a connection lost while idle by itself, before its next
        # call, so the loop sees no error: its own count is the outage's trace. Not part of
        # the Store protocol, hence getattr.
        made = int(getattr(store, "reconnects", 0))
        if made > counted:
            with self._lock:
                self.stats.store_reconnects += made - counted
        return made

    def _step(self, store: Store, owner: str, until_idle: bool, owing: _Owing) -> bool:
        """One claim (carrying what the last batch owes), and its batch if any; True when the
        loop is done."""
        if self._held(store, owing):
            return False
        with self._wake:
            seen = self._generation
        claimed_at = self.clock.now()  # before the claim: a lease is never older than this
        lease = self._claim(store, owner, owing)
        if self.metrics is not None:
            self.metrics.queue_depth.set(store.queue_depth())
        if lease is not None:
            self._notify()  # there may be more: let the next idle loop look
            self._run_batch(store, lease, claimed_at, owing)
            return False
        if until_idle and self._idle(store):
            return True
        with self._wake:
            if self._generation == seen and not self._stop.is_set():
                # The watcher wakes us; the timeout only guards against a dead one.
                self._wake.wait(self.settings.idle_poll * 4)
        return False

    def _held(self, store: Store, owing: _Owing) -> bool:
        """After a requeue, claim nothing until the retry budget admits a retry again (the
        delay the batch chose): a worker whose budget ran dry in a storm would only meet the
        storm again. What the loop's last batch owes is paid first, so its keys are free
        meanwhile. True if the loop waited (it looks again before claiming)."""
        wait = self._resume_at - self.clock.monotonic()
        if wait <= 0:
            return False
        self._pay(store, owing)
        started = self.clock.monotonic()
        # Slices short enough that a stop is seen within a second.
        pacer = Pacer(self.clock, lambda: None, self._stop.is_set, slice=1.0)
        with suppress(Stopped):  # the loop sees the stop itself
            pacer.pause(wait)
        if self.metrics is not None:
            self.metrics.claim_pauses.inc(max(0.0, self.clock.monotonic() - started))
        return True

    def _hold(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, self.clock.monotonic() + seconds)

    def _claim(self, store: Store, owner: str, owing: _Owing | None = None) -> Lease | None:
        cfg = self.settings

        def claim(completing: Completion | None = None) -> Lease | None:
            return store.claim(
                owner,
                cfg.lease_ttl,
                cfg.max_batch,
                linger=cfg.linger,
                linger_max=cfg.linger_max,
                completing=completing,
            )

        writer = owing.take() if owing is not None else None
        if writer is not None:
            report, lease = writer.pay(claim)
            self._settle(report)
            if not report.lease_lost:
                return lease
            # Refused: neither the outcomes nor a claim were recorded; claim alone.
        return claim()

    def _pay(self, store: Store, owing: _Owing) -> None:
        """Complete what the last batch owes on its own (a loop that is ending)."""
        writer = owing.take()
        if writer is not None:
            report, _ = writer.pay(lambda c: store.complete(c.lease, c.results, c.events))
            self._settle(report)

    def _idle(self, store: Store) -> bool:
        return store.queue_depth() == 0 and not store.jobs(JobState.RUNNING, limit=1)

    def _run_batch(
        self,
        store: Store,
        lease: Lease,
        claimed_at: float | None = None,
        owing: _Owing | None = None,
    ) -> BatchReport:
        """Run the batch; with ``owing``, a batch that ran to its outcomes leaves them there
        for the loop's next claim to carry, and is counted once the store has them."""
        if self.metrics is not None:
            # Both stamps on the store's clock (the server's, for PostgreSQL): the claim's time
            # is its lease's expiry less the TTL it was granted.
            granted_at = lease.expires_at - self.settings.lease_ttl
            for job in lease.jobs:
                self.metrics.lease_wait.observe(max(0.0, granted_at - job.created_at))
        writer = BatchWriter(
            store,
            self._client_for,
            self.clock,
            ttl=self.settings.lease_ttl,
            budget=self.budget,
            backoff=self.backoff,
            metrics=self.metrics,
            settings=self.settings.writer,
            should_stop=self._stop.is_set,
            reach=self.reach,
        )
        report = writer.run(lease, claimed_at=claimed_at, defer_completion=owing is not None)
        if report.resume_after is not None:
            self._hold(report.resume_after)
        if owing is not None and writer.owed() is not None:
            owing.writer = writer
            return report
        self._settle(report)
        return report

    def _settle(self, report: BatchReport) -> None:
        """Count a batch whose outcomes the store has (or whose lease ended without them)."""
        with self._lock:
            self.stats.batches += 1
            self.stats.jobs += len(report.results)
            self.stats.writes += report.writes
            self.stats.leases_lost += int(report.lease_lost)
            self.stats.released += int(report.released)
            self.stats.requeued += report.requeued
            for r in report.results:
                self.stats.outcomes[str(r.outcome)] = self.stats.outcomes.get(str(r.outcome), 0) + 1
        if self.on_batch is not None:
            self.on_batch(report)
        self._notify()

    def _notify(self, *, everyone: bool = False) -> None:
        with self._wake:
            self._generation += 1
            if everyone:
                self._wake.notify_all()
            else:
                self._wake.notify()


class _Owing:
    """A loop's last batch, while the store does not have its outcomes yet."""

    __slots__ = ("writer",)

    def __init__(self) -> None:
        self.writer: BatchWriter | None = None

    def take(self) -> BatchWriter | None:
        # Taken before the store call: if that fails, the outcomes are lost with its
        # transaction, the lease expires, and a takeover re-reads and completes the jobs.
        writer, self.writer = self.writer, None
        return writer


class _Outage:
    """Reopening a failed store: full-jitter waits on the worker's clock, up to a limit."""

    def __init__(self, clock: Clock, limit: float, stop: threading.Event) -> None:
        self._clock = clock
        self._limit = limit
        self._since: float | None = None
        self._attempt = 0
        self._backoff = Backoff(base=0.5, cap=15.0)
        # Slices short enough that a stop during an outage is not held up by the wait.
        self._pacer = Pacer(clock, lambda: None, stop.is_set, slice=0.25)

    def over(self) -> None:
        self._since = None
        self._attempt = 0

    def wait_or_raise(self, error: StoreError) -> None:
        now = self._clock.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since >= self._limit:
            raise error  # down for longer than the worker may wait
        delay = self._backoff.delay(self._attempt)
        self._attempt += 1
        with suppress(Stopped):  # the loop sees the stop itself
            self._pacer.pause(delay)
