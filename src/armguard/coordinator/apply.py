"""Applying a plan: set up its world (on the emulator), queue its jobs, and account for them.

The accounting is the point of ``armguard apply``: after the worker drains the queue it reads
every job's events and the live state of every resource, and reports

* what ARM threw at the writers and armguard absorbed (conflicts by kind, waits on running
  operations instead of sleeps, prerequisite transitions, stale baselines rebased or dropped,
  intents already satisfied, writes saved by coalescing);
* what still reached a writer (jobs that ended failed or blocked), and
* **lost intents**: an applied intent whose effect is not in the final state although no later
  job on the same resource touched the same fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.classify import ConflictKind
from armguard.arm.client import ArmResponse
from armguard.arm.ids import ResourceId
from armguard.coordinator.gates import (
    GateFailed,
    Pacer,
    Requester,
    wait_for_operation,
    wait_for_provisioning,
)
from armguard.coordinator.intents import BodyIntent, Intent
from armguard.coordinator.model import Job, Outcome
from armguard.coordinator.plan import Plan, PlannedJob, UnguardedWrite
from armguard.coordinator.resource_types import api_version_for, type_info
from armguard.coordinator.store import Store
from armguard.coordinator.submit import build_spec
from armguard.events import EventType, JobEvent

__all__ = [
    "ApplySummary",
    "LostIntent",
    "WorldError",
    "build_world",
    "final_states",
    "find_lost",
    "lost_effects",
    "queue_plan",
    "summarise",
]

LOCKS_API = "2020-05-01"
_CONFLICT_KINDS = frozenset(
    {
        ConflictKind.STALE_VERSION.value,
        ConflictKind.OPERATION_IN_PROGRESS.value,
        ConflictKind.STATE_PREREQUISITE.value,
        ConflictKind.THROTTLED.value,
        ConflictKind.LOCKED.value,
    }
)


class WorldError(Exception):
    """The plan's world could not be built on the emulator (a seed resource was refused)."""


def _follow(arm: Requester, response: ArmResponse, path: str, api: str, pacer: Pacer) -> None:
    """Wait for a request's own long-running operation, as the SDK pollers would."""
    url = response.header("azure-asyncoperation") or response.header("location")
    if url:
        outcome = wait_for_operation(arm, url, pacer, first=response)
        if not outcome.succeeded:
            detail = outcome.error.message if outcome.error else outcome.status
            raise WorldError(f"{path}: the operation ended {outcome.status}: {detail}")
    elif response.status in (200, 201) and response.body is not None:
        wait_for_provisioning(arm, path, api, pacer, first=response)


def _send(arm: Requester, write: UnguardedWrite) -> tuple[ArmResponse, str, str]:
    path = str(write.id) + write.suffix
    api = write.api_version or api_version_for(write.id)
    response = arm.request(write.method, path, api_version=api, body=write.body)
    return response, path, api


def build_world(
    client_for: Callable[[str], Requester],
    plan: Plan,
    pacer: Pacer,
    on_step: Callable[[str], None] | None = None,
) -> list[str]:
    """Create the plan's resources and locks, then send its unguarded writes.

    Unguarded writes marked ``wait`` finish before the jobs run; the others are left running,
    exactly as another tool's operation would be when armguard's writers arrive. ``on_step``
    hears of each step before it starts (on the caller's thread): seeding waits on each
    resource's operation, which takes seconds that would otherwise pass in silence.
    """
    notes: list[str] = []
    setup = client_for("world-setup")
    steps = len(plan.resources) + len(plan.locks) + len(plan.unguarded)
    done = 0

    def step(text: str) -> None:
        nonlocal done
        done += 1
        if on_step is not None:
            on_step(f"[{done}/{steps}] {text}")

    for resource in plan.resources:
        api = resource.api_version or api_version_for(resource.id)
        path = str(resource.id)
        step(f"creating {resource.id.name} ({resource.id.type})")
        response = setup.request("PUT", path, api_version=api, body=dict(resource.body))
        if not response.ok:
            c = response.classification()
            raise WorldError(f"{path}: ARM refused the seed resource: ({c.code}) {c.message}")
        try:
            _follow(setup, response, path, api, pacer)
        except GateFailed as exc:
            raise WorldError(f"{path}: could not follow its operation: {exc}") from exc
    for lock in plan.locks:
        path = f"{lock.scope}/providers/Microsoft.Authorization/locks/{lock.name}"
        step(f"locking {lock.scope.name} ({lock.level} lock {lock.name})")
        body = {"properties": {"level": lock.level, "notes": lock.notes}}
        response = setup.request("PUT", path, api_version=LOCKS_API, body=body)
        if not response.ok:
            raise WorldError(f"{path}: ARM refused the lock: {response.classification().message}")
    for write in plan.unguarded:
        step(f"{write.writer}: {write.method} {write.id.name}{write.suffix}")
        arm = client_for(write.writer)
        response, path, api = _send(arm, write)
        verb = f"{write.method} {write.id.name}{write.suffix}"
        if not response.ok:
            c = response.classification()
            notes.append(f"{write.writer}: {verb} → {response.status} {c.code}")
            continue
        if write.wait:
            try:
                _follow(arm, response, path, api, pacer)
            except GateFailed as exc:
                raise WorldError(f"{path}: could not follow its operation: {exc}") from exc
            notes.append(f"{write.writer}: {verb} → done")
        else:
            notes.append(f"{write.writer}: {verb} → {response.status}, still running")
    return notes


def queue_plan(store: Store, plan: Plan) -> dict[int, Job]:
    """Submit every job of the plan in order, one transaction per thousand jobs, every spec
    checked before any is written; the plan index maps to its job."""
    specs = [
        build_spec(
            str(planned.resource),
            planned.intent,
            planned.writer,
            baseline_etag=planned.baseline_etag,
            on_stale=planned.on_stale,
            idempotency_key=planned.idempotency_key,
            baseline=planned.baseline,
        )
        for planned in plan.jobs
    ]
    queued = store.submit_many(specs)
    return {planned.index: job for planned, job in zip(plan.jobs, queued, strict=True)}


def final_states(
    arm: Requester,
    resources: Sequence[ResourceId],
    api_versions: Mapping[str, str] | None = None,
) -> dict[str, Mapping[str, Any] | None]:
    """The live body of each resource (None when absent), with the VM instance view.

    ``api_versions`` (by resource key) are the ones the jobs named: a type armguard has no
    default for is read back with the api-version it was written with."""
    out: dict[str, Mapping[str, Any] | None] = {}
    for rid in resources:
        if rid.key in out:
            continue
        params = {"$expand": "instanceView"} if type_info(rid).needs_instance_view else None
        api = api_version_for(rid, (api_versions or {}).get(rid.key))
        response = arm.request("GET", str(rid), api_version=api, params=params)
        body = response.body if response.ok and isinstance(response.body, Mapping) else None
        out[rid.key] = body
    return out


@dataclass(frozen=True)
class LostIntent:
    job_id: str
    writer: str
    resource_id: str
    intent: Mapping[str, Any]


def _superseded(intent: Intent, later: Sequence[Intent]) -> bool:
    if not later:
        return False
    if not isinstance(intent, BodyIntent):
        return True  # a later write or action on the resource may legitimately change it
    mine = intent.fields()
    return any(not isinstance(i, BodyIntent) or (i.fields() & mine) for i in later)


def lost_effects(
    plan: Plan, landed: Mapping[int, int], final: Mapping[str, Mapping[str, Any] | None]
) -> list[PlannedJob]:
    """Planned jobs that took effect but whose effect is missing from ``final`` although no
    job that landed after them on the same resource touched the same fields.

    ``landed`` maps a plan index to the order its write took effect in (any increasing
    number); jobs absent from it never took effect, so they cannot be lost, only surfaced.
    Whoever ran the jobs (armguard's queue or writers on their own) is judged the same way.
    """
    by_resource: dict[str, list[tuple[PlannedJob, int]]] = {}
    for planned in plan.jobs:
        order = landed.get(planned.index)
        if order is not None:
            by_resource.setdefault(planned.resource.key, []).append((planned, order))
    lost: list[PlannedJob] = []
    for key, entries in by_resource.items():
        entries.sort(key=lambda e: e[1])
        for i, (planned, _) in enumerate(entries):
            later = [p.intent for p, _ in entries[i + 1 :]]
            if _superseded(planned.intent, later):
                continue
            if not planned.intent.satisfied_by(final.get(key)):
                lost.append(planned)
    return sorted(lost, key=lambda p: p.index)


def find_lost(
    plan: Plan, jobs: Mapping[int, Job], final: Mapping[str, Mapping[str, Any] | None]
) -> list[LostIntent]:
    """Applied intents whose effect is missing although nothing later overwrote their fields."""
    done = (Outcome.APPLIED, Outcome.ALREADY_SATISFIED)
    landed = {i: job.seq for i, job in jobs.items() if job.outcome in done}
    return [
        LostIntent(job.id, job.writer, job.resource_id, planned.intent.to_json())
        for planned in lost_effects(plan, landed, final)
        for job in (jobs[planned.index],)
    ]


@dataclass
class ApplySummary:
    jobs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    arm_writes: int = 0
    conflicts_absorbed: Counter[str] = field(default_factory=Counter)
    """Distinct ARM refusals armguard recovered from, by kind."""
    conflicts_surfaced: int = 0
    """Jobs that ended failed or blocked on a conflict ARM answered (a 409/412, a throttle, a
    management lock): conflicts their writers see, not absorbed."""
    surfaced: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Every job that ended failed or blocked, by (outcome, kind): each is reported to its
    writer. A lock is surfaced on purpose (a person decides), but it is surfaced."""
    waits_on_operations: int = 0
    prerequisites_run: int = 0
    backoffs: int = 0
    rebased: int = 0
    coalesced_jobs: int = 0
    """Jobs whose effect rode on another job's write."""
    lost: list[LostIntent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        bad = self.outcomes.get(Outcome.FAILED.value, 0) + self.outcomes.get(
            Outcome.BLOCKED.value, 0
        )
        return bad == 0 and not self.lost

    def surfaced_line(self) -> str:
        """``0``, or the count and what it is made of: ``1 (1 blocked by a lock — a person
        must decide)``."""
        total = sum(self.surfaced.values())
        if not total:
            return "0"
        parts = []
        for (outcome, kind), n in sorted(self.surfaced.items()):
            if outcome == Outcome.BLOCKED.value and kind == ConflictKind.LOCKED.value:
                parts.append(f"{n} blocked by a lock — a person must decide")
            else:
                parts.append(f"{n} {outcome}" + (f" ({kind})" if kind else ""))
        return f"{total} ({', '.join(parts)})"

    def avoided(self) -> list[str]:
        """Plain sentences for the end of ``armguard apply``."""
        lines: list[str] = []
        total = sum(self.conflicts_absorbed.values())
        if total:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.conflicts_absorbed.items()))
            lines.append(f"absorbed {total} ARM conflicts ({kinds}) that no writer saw")
        if self.waits_on_operations:
            lines.append(
                f"waited {self.waits_on_operations} times on an operation's status, a "
                "provisioningState or a power state, never a fixed sleep"
            )
        if self.prerequisites_run:
            lines.append(
                f"ran {self.prerequisites_run} prerequisite transitions (deallocate, start)"
            )
        if self.rebased:
            lines.append(f"rebased {self.rebased} stale intents on live state instead of replaying")
        dropped = self.outcomes.get(Outcome.DROPPED_STALE.value, 0)
        if dropped:
            lines.append(f"dropped {dropped} stale intents whose baseline had moved")
        satisfied = self.outcomes.get(Outcome.ALREADY_SATISFIED.value, 0)
        if satisfied:
            lines.append(f"completed {satisfied} intents already satisfied, without a write")
        if self.jobs and self.arm_writes < self.jobs:
            lines.append(
                f"made {self.arm_writes} ARM writes for {self.jobs} intents "
                f"({self.coalesced_jobs} coalesced into another job's write)"
            )
        if self.backoffs:
            lines.append(f"backed off {self.backoffs} times with jitter inside the retry budget")
        return lines


def summarise(
    store: Store, jobs: Mapping[int, Job], arm_writes: int, lost: Sequence[LostIntent]
) -> ApplySummary:
    """Account for ``jobs`` as they ended (read back from the store after the run)."""
    summary = ApplySummary(jobs=len(jobs), arm_writes=arm_writes, lost=list(lost))
    ids = {j.id for j in jobs.values()}
    for job in jobs.values():
        summary.outcomes[job.outcome.value if job.outcome else job.state.value] += 1
        if job.outcome in (Outcome.FAILED, Outcome.BLOCKED):
            summary.surfaced[(job.outcome.value, job.kind or "")] += 1
            if job.kind in _CONFLICT_KINDS:
                summary.conflicts_surfaced += 1
    events = [e for e in store.events() if e.job_id in ids]
    # One ARM answer is recorded on every job of its batch: count it once.
    seen: set[tuple[str, ...]] = set()
    batch_of_write: Counter[tuple[str, str]] = Counter()
    for event in events:
        if event.event == EventType.WRITE:
            batch_of_write[(event.ts, event.resource_id)] += 1
        token = _distinct(event)
        if token is None or token in seen:
            continue
        seen.add(token)
        if event.event == EventType.CONFLICT and event.kind:
            summary.conflicts_absorbed[event.kind] += 1
        elif event.event == EventType.WAITING:
            summary.waits_on_operations += 1
        elif event.event == EventType.PREREQUISITE and "until" in event.detail:
            summary.prerequisites_run += 1
        elif event.event == EventType.BACKOFF:
            summary.backoffs += 1
    summary.rebased = len({e.job_id for e in events if e.event == EventType.REBASED})
    summary.coalesced_jobs = sum(n - 1 for n in batch_of_write.values() if n > 1)
    # Conflicts that ended a job were not absorbed.
    for job in jobs.values():
        if job.outcome in (Outcome.FAILED, Outcome.BLOCKED) and job.kind:
            summary.conflicts_absorbed[job.kind] -= 1
    summary.conflicts_absorbed = +summary.conflicts_absorbed  # drop zero and negative counts
    return summary


def _distinct(event: JobEvent) -> tuple[str, ...] | None:
    if event.event not in (
        EventType.CONFLICT,
        EventType.WAITING,
        EventType.PREREQUISITE,
        EventType.BACKOFF,
    ):
        return None
    return (
        event.event,
        event.ts,
        event.resource_id.lower(),
        str(event.status),
        str(event.code),
        str(event.operation_url),
    )
