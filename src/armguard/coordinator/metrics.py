"""Prometheus metrics for the coordinator, on a registry of its own.

Conflicts are signal, not noise: they are counted by kind, resource type, writer, field and
attempt, so a hot resource or a lock scope that is too narrow shows up as a number instead of
an error log. Label values are resource *types* and writer names, never IDs, tokens or
connection strings, which keeps cardinality bounded and secrets out.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["CoordinatorMetrics"]

_ATTEMPT_CAP = 5
# Field names come from users' bodies and tag keys; past this many distinct ones, the rest are
# counted as "other" so a tag normalizer with a thousand keys cannot blow up the series count.
_FIELD_LABELS = 200
_OTHER_FIELD = "other"


class CoordinatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "armguard_jobs_total", "Jobs ended, by outcome.", ["outcome", "kind"], registry=r
        )
        self.conflicts = Counter(
            "armguard_conflicts_total",
            "Classified ARM refusals met while writing.",
            ["kind", "resource_type", "writer", "field", "attempt"],
            registry=r,
        )
        self.arm_calls = Counter(
            "armguard_arm_calls_total",
            "ARM requests sent, by verb and status.",
            ["verb", "status"],
            registry=r,
        )
        self.writes = Counter(
            "armguard_writes_total", "ARM writes (PUT/PATCH/POST/DELETE) sent.", registry=r
        )
        self.lease_wait = Histogram(
            "armguard_lease_wait_seconds",
            "Time from a job's submission to the claim of its lease.",
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=r,
        )
        self.queue_depth = Gauge(
            "armguard_queue_depth", "Jobs queued and not yet claimed.", registry=r
        )
        self.retry_budget_spent = Counter(
            "armguard_retry_budget_spent_total",
            "Retries admitted by the retry budget (throttled / transient).",
            registry=r,
        )
        self._fields: set[str] = set()
        self._fields_lock = threading.Lock()
        self.retry_budget_exhausted = Counter(
            "armguard_retry_budget_exhausted_total",
            "Retries refused because the budget was spent.",
            registry=r,
        )
        self.requeued = Counter(
            "armguard_jobs_requeued_total",
            "Jobs put back in the queue because a throttling or transient storm outlasted the "
            "retry budget, by the storm's kind.",
            ["kind"],
            registry=r,
        )
        self.claim_pauses = Counter(
            "armguard_claim_pause_seconds_total",
            "Seconds the worker claimed nothing after a requeue, waiting for its retry budget.",
            registry=r,
        )

    def job(self, outcome: str, kind: str | None) -> None:
        self.jobs.labels(outcome=outcome, kind=kind or "").inc()

    def conflict(
        self, kind: str, resource_type: str, writer: str, fields: set[str], attempt: int
    ) -> None:
        attempt_label = str(attempt) if attempt < _ATTEMPT_CAP else f"{_ATTEMPT_CAP}+"
        for name in sorted(fields) or [""]:
            self.conflicts.labels(
                kind=kind,
                resource_type=resource_type,
                writer=writer,
                field=self._field_label(name),
                attempt=attempt_label,
            ).inc()

    def _field_label(self, name: str) -> str:
        with self._fields_lock:
            if name in self._fields:
                return name
            if len(self._fields) < _FIELD_LABELS:
                self._fields.add(name)
                return name
        return _OTHER_FIELD

    def arm_call(self, verb: str, status: int | None) -> None:
        self.arm_calls.labels(verb=verb, status=str(status) if status is not None else "none").inc()
        if verb in ("PUT", "PATCH", "POST", "DELETE"):
            self.writes.inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on a daemon thread (prometheus-client's own server)."""
        start_http_server(port, addr=addr, registry=self.registry)
