"""(d) armguard: every intent submitted to a SQLite store (``open_store``) by its writer's thread,
drained by the real :class:`~armguard.coordinator.worker.Worker` running at the same time.

The run ends when the store reports every job done; the benchmark polls the store for that
(the observable end), then stops the worker. Job events are counted from the store."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from armguard.coordinator.model import Job, JobState, Outcome
from armguard.coordinator.stores import open_store
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.emulator.activity import parse_timestamp
from armguard.events import JobEvent

from .common import IntentOutcome, RunContext, StrategyResult
from .workloads import WorkIntent

__all__ = ["run"]

_OK = frozenset({Outcome.APPLIED, Outcome.ALREADY_SATISFIED})
_ENDS = frozenset({"applied", "already_satisfied", "dropped_stale", "failed", "blocked"})
_CONFLICT_KINDS = {"stale_version": 412, "operation_in_progress": 409, "state_prerequisite": 409}


def _outcome(intent: WorkIntent, job: Job | None) -> IntentOutcome:
    if job is None or job.state is not JobState.DONE or job.outcome is None:
        return IntentOutcome(
            intent, False, None, "Unfinished", "unfinished", job.attempts if job else 0
        )
    if job.outcome in _OK:
        return IntentOutcome(intent, True, attempts=max(1, job.attempts))
    # A job that ends on a conflict kind is a conflict surfaced to its writer.
    status = _CONFLICT_KINDS.get(job.kind or "")
    return IntentOutcome(
        intent, False, status, job.outcome.value, job.kind or job.outcome.value, job.attempts
    )


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def timeline(events: list[JobEvent], start: float, scale: float) -> dict[str, Any]:
    """Where a job's time went, in real seconds (event stamps are on the scaled clock)."""
    by_job: dict[str, list[tuple[float, str]]] = {}
    for e in events:
        by_job.setdefault(e.job_id, []).append(((parse_timestamp(e.ts) - start) * scale, e.event))
    claimed: list[float] = []
    claim_to_write: list[float] = []
    write_to_end: list[float] = []
    for steps in by_job.values():
        claims = [t for t, kind in steps if kind == "claimed"]
        writes = [t for t, kind in steps if kind == "write"]
        ends = [t for t, kind in steps if kind in _ENDS]
        if claims:
            claimed.append(min(claims))
        if writes:
            before = [c for c in claims if c <= min(writes)]
            if before:
                claim_to_write.append(min(writes) - max(before))
        if writes and ends:
            write_to_end.append(max(ends) - min(writes))
    return {
        "firstClaimAfterS": round(min(claimed), 4) if claimed else None,
        "meanClaimAfterS": _mean(claimed),
        "meanClaimToFirstWriteS": _mean(claim_to_write),
        "meanFirstWriteToOutcomeS": _mean(write_to_end),
    }


def run(
    ctx: RunContext, writers: tuple[tuple[WorkIntent, ...], ...], workdir: Path
) -> StrategyResult:
    path = str(workdir / "armguard-jobs.db")
    clock = ctx.clock
    watcher = open_store(path, clock=clock)
    worker = Worker(
        lambda: open_store(path, clock=clock),
        ctx.clients,
        clock,
        settings=WorkerSettings(
            concurrency=int(ctx.options["concurrency"]),
            lease_ttl=float(ctx.options["lease_ttl"]),
            linger=float(ctx.options["linger"]),
            linger_max=float(ctx.options["linger_max"]),
            max_batch=int(ctx.options["max_batch"]),
        ),
    )
    failures: list[BaseException] = []

    def work() -> None:
        try:
            worker.run_forever()
        except BaseException as exc:
            failures.append(exc)

    job_ids: list[list[str]] = [[] for _ in writers]
    gate = threading.Barrier(len(writers) + 1)

    def writer(n: int) -> None:
        store = open_store(path, clock=clock)
        try:
            gate.wait()
            for intent in writers[n]:
                job = submit(
                    store,
                    intent.resource_id,
                    intent.to_armguard(),
                    intent.writer,
                    baseline_etag=intent.baseline_etag,
                    # What the writer read: a moved ETag is rebased three-way on it.
                    baseline=intent.baseline_body,
                )
                job_ids[n].append(job.id)
        except BaseException as exc:
            failures.append(exc)
        finally:
            store.close()

    loop = threading.Thread(target=work, daemon=True)
    submitters = [
        threading.Thread(target=writer, args=(n,), daemon=True) for n in range(len(writers))
    ]
    loop.start()
    for t in submitters:
        t.start()
    gate.wait()
    start = time.perf_counter()
    start_emulated = clock.now()
    for t in submitters:
        t.join()
    submitted_s = time.perf_counter() - start
    try:
        # The end of the run is observable in the store: every job submitted, none queued or
        # running (or the run's bound). Two indexed reads after each completion the store
        # announces (a 10 ms poll added up to 10 ms to a burst that takes ARM 4).
        while not failures and time.monotonic() < ctx.deadline:
            if watcher.queue_depth() == 0 and not watcher.jobs(JobState.RUNNING, limit=1):
                break
            watcher.watch_changes(0.01)
        seconds = time.perf_counter() - start
    finally:
        worker.stop()
        loop.join(timeout=120)
    if failures:
        raise failures[0]
    outcomes = [
        _outcome(intent, watcher.get(job_id))
        for n, ids in enumerate(job_ids)
        for intent, job_id in zip(writers[n], ids, strict=True)
    ]
    events = watcher.events()
    watcher.close()
    counts = Counter(e.event for e in events)
    conflicts = Counter(f"{e.status} {e.code}" for e in events if e.event == "conflict")
    stats = worker.stats
    details: dict[str, Any] = {
        "submitSeconds": round(submitted_s, 3),
        "workerBatches": stats.batches,
        "workerWrites": stats.writes,
        "leasesLost": stats.leases_lost,
        "retryBudgetSpent": worker.budget.spent,
        "jobEvents": dict(sorted(counts.items())),
        "conflictsAbsorbed": dict(sorted(conflicts.items())),
        "timelineRealS": timeline(events, start_emulated, clock.scale),
    }
    return StrategyResult(outcomes, seconds, details)
