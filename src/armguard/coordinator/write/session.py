"""What every step of a batch shares: the lease, the buffered events, the outcomes, and ARM
calls that keep the lease alive, are counted, and go out as the right writer.

Events are buffered and written with the store calls the batch makes anyway: a batch that
only reads costs the store two commits (claim and complete; one, when the worker's next claim
carries the completion) however many steps it records, and each ARM call or wait that follows
new events adds one. What is durable when:

* ``claimed`` commits with the claim itself (the store writes it), and the outcomes' closing
  events (``verified``, ``applied``, ``failed``, ``released``…) commit with the outcomes in
  ``complete`` / ``release`` — a job is never done without its history, nor the reverse. A
  worker defers the completion so that its next claim carries it: outcomes and events then
  commit in that claim's transaction, a moment later.
* Before every ARM call and every wait (a backoff, polling an operation or a state) the buffer
  is flushed first, so a worker that dies — while ARM works or while it sleeps — leaves its
  timeline complete up to its last ARM call. What only a crash can lose is the bookkeeping of
  that last call's answer (a ``read``, a decision, a ``conflict``): those jobs have no outcome
  yet either, and the worker that takes the lease over reads and decides again.
* On a lost lease the buffer is appended on its own, with ``lease_lost``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.classify import Classification, ConflictKind
from armguard.arm.client import ArmResponse, ArmTransportError
from armguard.arm.ids import ResourceId
from armguard.arm.urls import redact_url
from armguard.clock import Clock, isoformat
from armguard.coordinator.backoff import Backoff, RetryBudget
from armguard.coordinator.fencing import HEADER as REQUEST_ID_HEADER
from armguard.coordinator.fencing import client_request_id
from armguard.coordinator.gates import GateFailed, Pacer, Requester
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import Job, JobResult, Lease, LeaseLost, Outcome
from armguard.coordinator.reachability import Reachability
from armguard.coordinator.store import Store
from armguard.coordinator.write.items import Item
from armguard.events import EventType, JobEvent
from armguard.text import clip as clip_text

__all__ = ["BatchReport", "Finish", "Requeue", "Session", "WriterSettings", "clip"]

# ARM's messages name scopes and resource IDs; a job's reason keeps them whole, within reason.
_MESSAGE_LIMIT = 2000


def clip(text: str) -> str:
    return clip_text(text, _MESSAGE_LIMIT)


@dataclass(frozen=True)
class WriterSettings:
    max_rounds: int = 12
    """Rounds of read → write per batch before giving up on a resource that keeps changing."""
    poll_interval: float = 10.0
    max_wait: float = 3600.0
    backoff_base: float = 1.0
    backoff_cap: float = 120.0
    max_requeues: int = 20
    """Times a job may go back to the queue because a throttling or transient storm outlasted
    the worker's retry budget (or the batch's rounds); the next time, it fails with that kind.
    The worker backs off before each requeue, so this bounds how long a permanent storm keeps
    a job (with the default budget, at least a minute per requeue and worker). 0: never
    requeue, fail at once."""

    def __post_init__(self) -> None:
        if self.max_requeues < 0:
            raise ValueError("max_requeues must be >= 0")


@dataclass
class BatchReport:
    """What one batch did: outcomes handed to the store and the ARM writes it cost."""

    results: list[JobResult] = field(default_factory=list)
    writes: int = 0
    lease_lost: bool = False
    released: bool = False
    requeued: int = 0
    """Jobs put back in the queue after a storm outlasted the retry budget."""
    resume_after: float | None = None
    """After a storm outlasted the retry budget: seconds (worker clock) before the worker
    should claim again."""


class Finish(Exception):
    """Ends every still-active job of the batch with one outcome."""

    def __init__(
        self,
        outcome: Outcome,
        kind: ConflictKind | None,
        reason: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.kind = kind
        self.reason = reason
        self.detail = dict(detail or {})


class Requeue(Exception):
    """Ends the batch by putting its unfinished jobs back in the queue, in order, after a
    throttling or transient failure the worker may not retry now; the worker claims nothing
    more for ``delay`` seconds."""

    def __init__(
        self, c: Classification, cause: str, delay: float, facts: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(cause)
        self.classification = c
        self.cause = cause
        """A few words: ``retry budget exhausted``."""
        self.delay = delay
        self.facts = dict(facts or {})

    @property
    def failure(self) -> str:
        """The refusal that could not be retried, as ARM gave it."""
        c = self.classification
        return f"{c.reason} ({c.code or c.status}: {clip(c.message)})"


class Session:
    """One lease's run: plumbing shared by reading, writing, following, recovering, verifying."""

    def __init__(
        self,
        store: Store,
        clients: Callable[[str], Requester],
        clock: Clock,
        *,
        ttl: float,
        budget: RetryBudget,
        backoff: Backoff | None,
        metrics: CoordinatorMetrics | None,
        settings: WriterSettings,
        should_stop: Callable[[], bool],
        reach: Reachability | None,
    ) -> None:
        self.store = store
        self._clients = clients
        self._by_writer: dict[str, Requester] = {}
        self.clock = clock
        self.ttl = ttl
        self.budget = budget
        self.settings = settings
        self.backoff = backoff or Backoff(settings.backoff_base, settings.backoff_cap)
        self.metrics = metrics
        self.should_stop = should_stop
        self.reach = reach
        self.report = BatchReport()
        self.lease: Lease | None = None
        self.last_beat = 0.0
        self.round = 0
        self.results: dict[str, JobResult] = {}
        self.own_etags: set[str] = set()
        self.committed = False
        self.pending: list[JobEvent] = []
        self.writer_name = ""
        self.last_transport = Classification(ConflictKind.TRANSIENT, "no response")
        self.pacer = Pacer(
            clock,
            self.before_arm,
            self.stop_now,
            # One-second slices: a stop (Ctrl-C, SIGTERM) before the first write is seen within
            # a second, whatever the TTL; the lease is still heartbeated only every ttl / 3.
            slice=1.0,
            poll_interval=settings.poll_interval,
            max_wait=settings.max_wait,
        )

    # -- identity -----------------------------------------------------------------------------

    def act_as(self, items: Sequence[Item]) -> None:
        """Send the next calls as the writer whose intent the write carries last, so the
        Activity Log names who asked for what is written."""
        if items:
            self.writer_name = items[-1].job.writer

    @property
    def arm(self) -> Requester:
        client = self._by_writer.get(self.writer_name)
        if client is None:
            client = self._by_writer[self.writer_name] = self._clients(self.writer_name)
        return client

    # -- ARM calls ----------------------------------------------------------------------------

    def stop_now(self) -> bool:
        """Stop only before the first write: once ARM has our write, finishing the batch (and
        its operation) is safer than handing a busy resource to the next worker."""
        return not self.committed and self.should_stop()

    def call(
        self,
        verb: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ArmResponse | None:
        """One ARM call, lease checked first. None when no answer came (transport failure)."""
        self.before_arm()
        try:
            response = self.arm.request(
                verb, path, api_version=api_version, body=body, headers=self.stamped(headers)
            )
        except ArmTransportError as exc:
            self.last_transport = exc.classification()
            self._no_answer(verb, str(exc))
            return None
        self._answered(verb, response.status)
        return response

    def stamped(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """``headers`` plus a request id naming this lease's fence, so the Activity Log shows
        which lease sent each write (``fencing.py``)."""
        out = dict(headers or {})
        lease = self.lease
        if lease is not None and not any(k.lower() == REQUEST_ID_HEADER for k in out):
            out[REQUEST_ID_HEADER] = client_request_id(lease.fence)
        return out

    def counted(self) -> Requester:
        """A client for gates: lease kept alive, every call counted, no answer as a 503."""
        return _CountingRequester(self)

    def _answered(self, verb: str, status: int) -> None:
        if self.reach is not None:
            self.reach.answered()
        self.count(verb, status)

    def _no_answer(self, verb: str, why: str) -> None:
        if self.reach is not None:
            self.reach.no_answer(why)
        self.count(verb, None)

    def count(self, verb: str, status: int | None) -> None:
        if self.metrics is not None:
            self.metrics.arm_call(verb, status)

    def before_arm(self) -> None:
        """Before any ARM call or wait: the buffered events durable, the lease alive."""
        self.flush()
        self.keep_alive()

    def flush(self) -> None:
        if self.pending:
            self.store.append_events(self.pending)
            self.pending = []

    def keep_alive(self) -> None:
        lease = self.lease
        assert lease is not None
        # On this worker's clock only: the lease's expires_at may be the database server's
        # time (PostgreSQL), which this clock need not agree with.
        now = self.clock.now()
        if now - self.last_beat >= self.ttl / 3:
            self.lease = self.store.heartbeat(lease, self.ttl)
            self.last_beat = now

    # -- retries ------------------------------------------------------------------------------

    def backoff_or_finish(self, jobs: Sequence[Job], c: Classification) -> None:
        """A jittered pause before retrying a throttled or transient call, paid from the retry
        budget; an exhausted budget, or an endpoint silent past the worker's limit, fails."""
        reach = self.reach
        if reach is not None and reach.exhausted():
            raise Finish(
                Outcome.FAILED,
                ConflictKind.TRANSIENT,
                f"ARM gave no answer for {reach.silent_for():.0f} s (the worker's limit is "
                f"{reach.limit:.0f} s): {clip(reach.why)}",
            )
        if not self.budget.try_spend():
            if self.metrics is not None:
                self.metrics.retry_budget_exhausted.inc()
            raise self.requeue(
                c,
                "retry budget exhausted",
                {"retries": self.budget.spent, "writes_in_window": self.budget.work},
            )
        if self.metrics is not None:
            self.metrics.retry_budget_spent.inc()
        delay = self.backoff.delay(self.round - 1, c.retry_after)
        if reach is not None and reach.silent_for() > 0:
            # Look again before the worker's limit runs out, so the give-up is on time.
            delay = min(delay, max(1.0, reach.remaining()))
        self.emit(
            EventType.BACKOFF,
            jobs,
            kind=str(c.kind),
            delay=round(delay, 3),
            status=c.status,
            detail={"retry_after": c.retry_after, "budget_left": self.budget.remaining},
        )
        self.pacer.pause(delay)

    def requeue(
        self, c: Classification, cause: str, facts: Mapping[str, Any] | None = None
    ) -> Requeue:
        """The requeue for a throttled or transient failure that may not be retried now: the
        worker waits until its budget admits a retry again, never less than ARM's
        Retry-After, plus jitter so workers that ran dry together do not come back together."""
        admits = self.budget.admits_in()
        floor = max(self.budget.window if admits is None else admits, c.retry_after or 0.0)
        if floor > 0:
            # A tenth of the wait (at least the backoff's base) spreads the workers out; the
            # backoff's own jitter, up to the whole floor again, would double a minute's wait.
            spread = min(self.backoff.cap, max(self.backoff.base, floor / 10))
            delay = floor + self.backoff.rng.uniform(0.0, spread)
        else:
            delay = self.backoff.delay(max(0, self.round - 1))
        return Requeue(c, cause, delay, facts)

    def retry_or_finish(self, jobs: Sequence[Job], response: ArmResponse | None, what: str) -> None:
        """A read that failed: back off and let the caller read again, or end the jobs."""
        c = self.last_transport if response is None else response.classification()
        self.emit(
            EventType.CONFLICT,
            jobs,
            kind=str(c.kind),
            status=c.status,
            code=c.code or None,
            message=c.message[:500] or None,
            detail={"during": what},
        )
        if c.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
            self.round += 1
            if self.round > self.settings.max_rounds:
                raise self.requeue(c, f"{what} failed {self.settings.max_rounds} times in a row")
            self.backoff_or_finish(jobs, c)
            return
        outcome = Outcome.BLOCKED if c.kind is ConflictKind.LOCKED else Outcome.FAILED
        raise Finish(
            outcome, c.kind, f"{what} failed: {c.reason} ({c.code or c.status}: {clip(c.message)})"
        )

    def conflict(self, rid: ResourceId, items: Sequence[Item], c: Classification) -> Classification:
        """Record a refusal on the jobs' timelines and in the metrics."""
        self.emit(
            EventType.CONFLICT,
            [i.job for i in items],
            kind=str(c.kind),
            status=c.status,
            code=c.code or None,
            message=c.message[:500] or None,
            etag_sent=c.etag_sent,
            etag_live=c.etag_live,
            operation_url=redact_url(c.operation_url) if c.operation_url else None,
        )
        if self.metrics is not None:
            for item in items:
                self.metrics.conflict(
                    str(c.kind), rid.type, item.job.writer, item.intent.fields(), self.round
                )
        return c

    # -- outcomes -----------------------------------------------------------------------------

    def finish(
        self,
        jobs: Sequence[Job],
        outcome: Outcome,
        kind: ConflictKind | None,
        reason: str | None,
        *,
        result: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record each job's one outcome (first one wins) and its closing event."""
        newly = [j for j in jobs if j.id not in self.results]
        for job in newly:
            self.results[job.id] = JobResult(
                job.id, outcome, str(kind) if kind else None, reason, dict(result or {})
            )
        closing = {Outcome.FAILED: EventType.FAILED, Outcome.BLOCKED: EventType.BLOCKED}
        if outcome in closing:
            self.emit(
                closing[outcome],
                newly,
                kind=str(kind) if kind else None,
                message=(reason or "")[:500] or None,
                detail=dict(detail or {}),
            )

    def outcomes(self, jobs: Sequence[Job]) -> list[JobResult]:
        return [self.results[j.id] for j in jobs if j.id in self.results]

    def complete(self, jobs: Sequence[Job]) -> BatchReport:
        lease = self.lease
        assert lease is not None
        results = self.outcomes(jobs)
        try:
            self.store.complete(lease, results, self.pending)
        except LeaseLost as lost:
            self.lease_lost(jobs, lost)
            return self.report
        self.pending = []
        return self.recorded(results)

    def recorded(self, results: list[JobResult]) -> BatchReport:
        self.report.results = results
        if self.metrics is not None:
            for r in results:
                self.metrics.job(str(r.outcome), r.kind)
        return self.report

    def lease_lost(self, jobs: Sequence[Job], lost: LeaseLost) -> None:
        self.report.lease_lost = True
        self.emit(EventType.LEASE_LOST, jobs, message=lost.why[:300])
        self.flush()  # no lease to ride with any more

    def requeue_unfinished(self, jobs: Sequence[Job], rq: Requeue) -> bool:
        """Put the jobs without an outcome back in the queue (fenced, with their events, as
        ``release`` does), except those requeued ``max_requeues`` times already: they fail
        with the storm's kind. A write the batch sent is accounted for as on a takeover: the
        next lease reads the live state and decides again (``decide.py``), and a VM owed its
        start says so in the jobs' events (``recover.restore_pending``). False when no job
        went back (each has an outcome now): the caller completes the batch."""
        c = rq.classification
        limit = self.settings.max_requeues
        back: list[Job] = []
        for job in jobs:
            if job.id in self.results:
                continue
            before = sum(1 for e in self.store.events(job.id) if e.event == EventType.REQUEUED)
            if before >= limit:
                self.finish(
                    [job],
                    Outcome.FAILED,
                    c.kind,
                    f"{rq.cause} and requeued {before} times already (the limit is {limit}), "
                    f"so it fails instead of waiting out the storm again: {rq.failure}",
                    detail={"requeues": before, "max_requeues": limit, **rq.facts},
                )
            else:
                back.append(job)
                self.pending += self.events(
                    EventType.REQUEUED,
                    [job],
                    kind=str(c.kind),
                    status=c.status,
                    code=c.code or None,
                    delay=round(rq.delay, 3),
                    message=(
                        f"requeued: {rq.cause}, resumes after {rq.delay:.0f} s — {rq.failure}"
                    )[:500],
                    detail={
                        "requeues": before + 1,
                        "max_requeues": limit,
                        "retry_after": c.retry_after,
                        **rq.facts,
                    },
                )
        # The budget is dry whatever became of the jobs: the worker waits either way.
        self.report.resume_after = rq.delay
        if not back:
            return False  # every job has its outcome: the batch completes as usual
        self.release(jobs, closing=None)
        if self.report.released:
            self.report.requeued = len(back)
            if self.metrics is not None:
                self.metrics.requeued.labels(kind=str(c.kind)).inc(len(back))
        return True

    def release(self, jobs: Sequence[Job], closing: EventType | None = EventType.RELEASED) -> None:
        """Complete the jobs that have an outcome, return the others to the queue with a
        ``closing`` event each (none: the caller buffered its own)."""
        lease = self.lease
        assert lease is not None
        finished = self.outcomes(jobs)
        unfinished = [j for j in jobs if j.id not in self.results]
        released = self.events(closing, unfinished) if closing is not None else []
        try:
            if finished:
                self.store.complete(lease, finished)
            self.store.release(lease, [*self.pending, *released])
        except LeaseLost as lost:
            self.lease_lost(jobs, lost)
            return
        self.pending = []
        self.report.released = True
        self.report.results = finished

    # -- events -------------------------------------------------------------------------------

    def emit(self, event: EventType, jobs: Sequence[Job], **fields: Any) -> None:
        """Buffer one event per job; see the module docstring for when they become durable."""
        self.pending += self.events(event, jobs, **fields)

    def events(self, event: EventType, jobs: Sequence[Job], **fields: Any) -> list[JobEvent]:
        if not jobs:
            return []
        lease = self.lease
        ts = isoformat(self.clock.now())
        return [
            JobEvent(
                ts=ts,
                job_id=job.id,
                resource_id=job.resource_id,
                writer=job.writer,
                event=str(event),
                attempt=self.round,
                fence=lease.fence if lease is not None else None,
                **fields,
            )
            for job in jobs
        ]


@dataclass
class _CountingRequester:
    session: Session

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ArmResponse:
        s = self.session
        s.before_arm()
        try:
            response = s.arm.request(
                method,
                path,
                api_version=api_version,
                body=body,
                headers=s.stamped(headers),
                params=params,
            )
        except ArmTransportError as exc:
            s._no_answer(method, str(exc))
            raise GateFailed(
                ArmResponse(
                    method,
                    path,
                    503,
                    {},
                    {"error": {"code": "ServiceUnavailable", "message": str(exc)}},
                )
            ) from exc
        s._answered(method, response.status)
        return response
