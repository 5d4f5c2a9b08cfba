"""Jobs, leases and outcomes: the coordinator's durable vocabulary.

A *job* is one writer's intent against one resource. It ends in exactly one durable
:class:`Outcome`. A *lease* is a worker's exclusive, expiring hold on a set of lock keys with a
*fencing token* that the store checks on every completion, so a worker that paused past its
TTL cannot complete work another worker has taken over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from armguard.events import JobEvent

__all__ = [
    "Completion",
    "Job",
    "JobResult",
    "JobSpec",
    "JobState",
    "LearnedScope",
    "Lease",
    "LeaseLost",
    "Outcome",
    "StalePolicy",
]


class Outcome(StrEnum):
    APPLIED = "applied"
    ALREADY_SATISFIED = "already_satisfied"
    DROPPED_STALE = "dropped_stale"
    FAILED = "failed"
    BLOCKED = "blocked"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class StalePolicy(StrEnum):
    """What to do when a job's baseline ETag is older than the live resource."""

    REBASE = "rebase"  # recompute the intent on live state and write it
    DROP = "drop"  # the intent encodes obsolete assumptions: end as dropped_stale
    FAIL = "fail"  # end as failed(stale_version) so the writer regenerates it


@dataclass(frozen=True)
class JobSpec:
    """What a writer submits. ``intent`` is the JSON form of an intent (see ``intents``)."""

    resource_id: str
    intent: Mapping[str, Any]
    writer: str
    lock_keys: tuple[str, ...]
    """Case-folded keys this job must hold: the resource, its top-level parent, references."""
    baseline_etag: str | None = None
    on_stale: StalePolicy = StalePolicy.REBASE
    idempotency_key: str | None = None
    barrier: bool = False
    """Actions and deletes: never folded with neighbours; they run alone and in order."""
    baseline: Mapping[str, Any] | None = None
    """The body the writer read before building the intent (with its ``etag``): what a stale
    job is rebased against, three-way. Without it a moved ETag cannot be rebased safely."""


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    """Submission order, store-wide and monotonic: the order writes to a key are applied in."""
    spec: JobSpec
    state: JobState
    attempts: int = 0
    """Leases that expired while holding it (takeovers): 0 for a job one worker ran through."""
    outcome: Outcome | None = None
    kind: str | None = None
    """The ConflictKind of a failed or blocked job."""
    reason: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    result: Mapping[str, Any] = field(default_factory=dict)
    """Small facts about the outcome: final ETag, ARM writes made, verification."""

    @property
    def resource_id(self) -> str:
        return self.spec.resource_id

    @property
    def writer(self) -> str:
        return self.spec.writer


@dataclass(frozen=True)
class Lease:
    id: str
    owner: str
    keys: tuple[str, ...]
    fence: int
    """Store-wide monotonic fencing token; a newer lease on any of these keys has a larger one."""
    expires_at: float
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class JobResult:
    job_id: str
    outcome: Outcome
    kind: str | None = None
    reason: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """Outcomes a worker owes the store for a lease it ran: what ``Store.complete`` takes, held
    so the worker's next claim can carry it (one transaction and one commit instead of two)."""

    lease: Lease
    results: Sequence[JobResult]
    events: Sequence[JobEvent] = ()


@dataclass(frozen=True)
class LearnedScope:
    """A dependency ARM revealed: a write to ``key`` was refused because of work on ``other``."""

    key: str
    other: str
    reason: str
    seen: int
    first_seen: float
    last_seen: float


class LeaseLost(Exception):
    """The lease expired or was taken over; the fence no longer admits this holder."""

    def __init__(self, lease_id: str, fence: int, why: str) -> None:
        super().__init__(f"lease {lease_id} (fence {fence}) is no longer valid: {why}")
        self.lease_id = lease_id
        self.fence = fence
        self.why = why
