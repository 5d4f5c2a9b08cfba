"""The store contract: a durable queue of jobs plus multi-key leases with fencing.

Two backends implement it (``sqlite_store`` for one machine, ``postgres_store`` for many) and
one semantics suite (``tests/coordinator``) runs against both. Claim rules, which both follow:

* A job is claimable when every one of its lock keys (plus keys learned for them) is free — no
  unexpired lease holds it — and no *older* queued job shares a key with it, so writes to a key
  are applied in submission order and nothing starves.
* A claim takes all of a batch's keys at once or none: no lease ever waits holding a key, so
  there are no deadlocks.
* The batch is the claimable head job plus the queued jobs after it on the same resource, in
  order, up to (not including) the first barrier, at most ``max_batch``. A barrier job (action,
  delete) is always claimed alone. A follower may pass an older queued job on another resource
  when the two only share a key that is neither one's own resource (two subnets of one VNet):
  ARM makes such writes take turns, but their order changes neither result. It never passes
  a job whose resource it locks, or one that locks its resource.
* Every claim draws a new fencing token from one store-wide counter; ``complete``,
  ``heartbeat`` and ``release`` raise :class:`LeaseLost` unless the lease is unexpired and still
  the newest holder of its keys.
* A lease that expires returns its jobs to the queue for another worker (takeover), attempts
  counted, with their events kept.

Events: ``claim``, ``complete`` and ``release`` take the caller's events and append them in the
same transaction as the state change (all or nothing, and one commit instead of two), and a
claim records one ``claimed`` event per job it leases, so no lease exists without its record.
``append_events`` is for events that have no state change to ride with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from armguard.coordinator.model import (
    Completion,
    Job,
    JobResult,
    JobSpec,
    JobState,
    LearnedScope,
    Lease,
)
from armguard.events import JobEvent

__all__ = ["Change", "Store"]

Change = Literal["submitted", "freed"]


class Store(Protocol):
    def submit(self, spec: JobSpec) -> Job:
        """Queue a job. With an idempotency key already used, return that job unchanged."""
        ...

    def submit_many(self, specs: Sequence[JobSpec]) -> list[Job]:
        """Queue jobs in the order given, as ``submit`` would one by one, in as few round
        trips and commits as the backend can (one per thousand jobs). Every spec is checked
        before anything is written."""
        ...

    def claim(
        self,
        owner: str,
        ttl: float,
        max_batch: int = 64,
        events: Sequence[JobEvent] = (),
        *,
        linger: float = 0.0,
        linger_max: float = 0.0,
        completing: Completion | None = None,
    ) -> Lease | None:
        """Lease the oldest claimable batch, or None if nothing is claimable now. ``events``
        are appended either way, before the ``claimed`` events of the batch. With ``linger``
        (store-clock seconds), a resource's jobs wait until none has joined them for that long,
        or until the oldest has waited ``linger_max``; until then they block their keys.

        ``completing``: first record that completion exactly as ``complete`` would, in the same
        transaction, so the claim sees its keys free — a worker finishing one batch and taking
        the next pays one commit, not two. If the completion is refused, it raises as
        ``complete`` does and neither records nor claims anything."""
        ...

    def heartbeat(self, lease: Lease, ttl: float) -> Lease:
        """Extend the lease; same fence. Raises LeaseLost."""
        ...

    def complete(
        self, lease: Lease, results: Sequence[JobResult], events: Sequence[JobEvent] = ()
    ) -> None:
        """Record outcomes for (some of) the lease's jobs and append ``events``, atomically;
        fenced. Jobs of the lease without a result stay running under it. Raises LeaseLost
        (and then appends nothing)."""
        ...

    def release(self, lease: Lease, events: Sequence[JobEvent] = ()) -> None:
        """Give the keys back, return unfinished jobs to the queue (graceful shutdown) and
        append ``events``, atomically; fenced. Raises LeaseLost."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def jobs(self, state: JobState | None = None, limit: int = 1000) -> list[Job]:
        """Jobs in submission order."""
        ...

    def history(self, resource_id: str, before_seq: int, limit: int = 200) -> list[Job]:
        """Finished jobs on one resource submitted before ``before_seq``, newest first (at
        most ``limit``): what a stale job's own writer already had applied."""
        ...

    def queue_depth(self) -> int: ...

    def append_events(self, events: Sequence[JobEvent]) -> None: ...

    def events(self, job_id: str | None = None) -> list[JobEvent]:
        """A job's events (or all) in the order they were appended."""
        ...

    def learn_scope(self, key: str, other: str, reason: str) -> None:
        """Record that ``key`` depends on ``other``; later claims on either take both."""
        ...

    def learned_scopes(self) -> list[LearnedScope]: ...

    def watch_changes(self, timeout: float) -> Change | None:
        """Block up to ``timeout`` real seconds for a submit, completion or release committed by
        anyone (this process or another) since the previous call, and say which: ``freed``
        (a completion or release, or a commit of unknown kind: keys may be free) wins over
        ``submitted``. None when nothing came. Idle workers wait on this instead of polling."""
        ...

    def close(self) -> None: ...
