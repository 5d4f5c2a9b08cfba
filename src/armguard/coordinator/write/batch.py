"""The write loop for one claimed batch: read → decide per job → one conditional write →
follow → verify, recovering by class in between.

Per round:

1. **Read** the live state (``read.py``; 404 means absent).
2. **Decide per job, in submission order** (``decide.py``): stale jobs follow their policy
   (a rebase is three-way, on the baseline body the job carries); satisfied jobs complete
   with no write; the rest fold into one desired body, later jobs winning per field.
3. **Write once**, conditionally (``plan.py``), sent as the writer whose intent it carries last.
4. **Recover by class** (``recover.py``) when ARM refuses.
5. **Follow** our own operation to its end (``follow.py``), then **verify** (``verify.py``):
   the live state must equal applying the jobs one by one in submission order. A job it
   contradicts is written again with every later job of the write, in order, on what is live
   then (an unguarded writer most likely replaced the body right after ours); a second miss
   fails instead of fighting that writer.

Every step is a :class:`JobEvent` (``session.py`` says when they become durable). The lease is
heartbeated during waits; once it is lost the batch stops touching ARM at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from armguard.arm.classify import Classification, ConflictKind
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.clock import Clock
from armguard.coordinator.backoff import Backoff, RetryBudget
from armguard.coordinator.gates import Requester, Stopped
from armguard.coordinator.intents import ActionIntent, BodyIntent, IntentError, intent_from_json
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import Completion, Job, Lease, LeaseLost, Outcome
from armguard.coordinator.reachability import Reachability
from armguard.coordinator.resource_types import (
    ApiVersionRequired,
    TypeInfo,
    api_version_for,
    type_info,
)
from armguard.coordinator.store import Store
from armguard.coordinator.write.decide import Verdict, decide
from armguard.coordinator.write.follow import follow_write
from armguard.coordinator.write.items import Item, baseline_etag_of, etag_of, norm_etag, segments
from armguard.coordinator.write.plan import WriteRequest, plan_writes
from armguard.coordinator.write.read import read_live
from armguard.coordinator.write.recover import Recovery
from armguard.coordinator.write.session import (
    BatchReport,
    Finish,
    Requeue,
    Session,
    WriterSettings,
)
from armguard.coordinator.write.verify import check
from armguard.events import EventType

__all__ = ["BatchWriter"]

JSON = dict[str, Any]
_T = TypeVar("_T")


class BatchWriter:
    """Runs one lease's batch to durable outcomes. One instance per batch; not thread-safe.

    ``clients`` gives the ARM client for a writer's name: each write goes out as the writer
    whose intent it carries last."""

    def __init__(
        self,
        store: Store,
        clients: Callable[[str], Requester],
        clock: Clock,
        *,
        ttl: float,
        budget: RetryBudget,
        backoff: Backoff | None = None,
        metrics: CoordinatorMetrics | None = None,
        settings: WriterSettings | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        reach: Reachability | None = None,
    ) -> None:
        self.s = Session(
            store,
            clients,
            clock,
            ttl=ttl,
            budget=budget,
            backoff=backoff,
            metrics=metrics,
            settings=settings or WriterSettings(),
            should_stop=should_stop,
            reach=reach,
        )
        self.recovery = Recovery(self.s)
        self._owed: Completion | None = None
        self._owed_jobs: Sequence[Job] = ()
        self._unread: str | None = None

    @property
    def report(self) -> BatchReport:
        return self.s.report

    # -- entry point ----------------------------------------------------------------------

    def run(
        self, lease: Lease, *, claimed_at: float | None = None, defer_completion: bool = False
    ) -> BatchReport:
        """``claimed_at``: when this worker got the lease, on its own clock (default: now). The
        lease is heartbeated once a third of its TTL has passed since then, so a worker that
        stalled between claim and run finds out before its first ARM call.

        ``defer_completion``: a batch that ran to its outcomes does not complete them itself
        but leaves them in :meth:`owed`, for the worker's next claim to carry (one commit
        instead of two); the worker then hands them over with :meth:`pay`. A lost or released
        lease is settled here either way."""
        s = self.s
        s.lease = lease
        s.last_beat = s.clock.now() if claimed_at is None else claimed_at
        jobs = list(lease.jobs)  # their ``claimed`` events were written by the claim
        try:
            items = self._load(jobs)
            for segment in segments(items):
                s.round = 0
                self._process(segment)
        except LeaseLost as lost:
            s.lease_lost(jobs, lost)
            return s.report
        except Stopped:
            s.release(jobs)
            return s.report
        except Requeue as rq:
            if s.requeue_unfinished(jobs, rq):
                return s.report
        except BaseException:
            # A bug or a broken store: keep what the batch did on its timeline if the store
            # still takes it; the error itself is what the caller must see.
            with suppress(Exception):
                s.flush()
            raise
        if defer_completion:
            self._owed = Completion(lease, s.outcomes(jobs), list(s.pending))
            self._owed_jobs = jobs
            return s.report
        return s.complete(jobs)

    def owed(self) -> Completion | None:
        """The completion a deferred run still owes the store, until it is settled."""
        return self._owed

    def pay(self, record: Callable[[Completion], _T]) -> tuple[BatchReport, _T | None]:
        """Hand :meth:`owed` to ``record`` (a claim that carries it, or ``Store.complete``).
        Returns the batch's report and what ``record`` returned once the store has the
        outcomes, or, when the store refused them because the lease was lost first, the report
        of a lost lease and None. Any other error leaves the batch owing nothing: its lease
        expires and a takeover completes its jobs."""
        owed = self._owed
        if owed is None:
            raise RuntimeError("this batch owes the store no completion")
        self._owed = None
        try:
            value = record(owed)
        except LeaseLost as lost:
            self.s.lease_lost(self._owed_jobs, lost)
            return self.s.report, None
        self.s.pending = []
        return self.s.recorded(list(owed.results)), value

    def _load(self, jobs: Sequence[Job]) -> list[Item]:
        items: list[Item] = []
        for job in jobs:
            try:
                rid = parse_resource_id(job.resource_id)
                intent = intent_from_json(job.spec.intent)
                api_version_for(rid, intent.api_version)
            except (InvalidResourceId, IntentError, ApiVersionRequired) as exc:
                self.s.finish([job], Outcome.FAILED, ConflictKind.INVALID, str(exc))
                continue
            items.append(Item(job, intent))
        return items

    # -- the loop -----------------------------------------------------------------------------

    def _process(self, items: list[Item]) -> None:
        s = self.s
        rid = parse_resource_id(items[0].job.resource_id)
        info = type_info(rid)
        api = api_version_for(
            rid, next((i.intent.api_version for i in items if i.intent.api_version), None)
        )
        active = items
        # A worker that deallocated a running VM and then lost its lease left the promise to
        # start it again in the jobs' events; honour it, or a takeover leaves the VM down.
        restart_after = self.recovery.restore_pending(items)
        if restart_after:
            # Carry the promise onto every job of this batch: if this worker dies too, whichever
            # of them is claimed next still owes the VM its start.
            s.emit(
                EventType.PREREQUISITE,
                [i.job for i in items],
                detail={"action": "restore", "restore": "running"},
            )
        prerequisites_run: set[str] = set()
        last: Classification | None = None
        verify_misses = 0
        try:
            while active:
                s.round += 1
                if s.round > s.settings.max_rounds:
                    kind = last.kind if last is not None else ConflictKind.UNKNOWN
                    if last is not None and kind in (
                        ConflictKind.THROTTLED,
                        ConflictKind.TRANSIENT,
                    ):
                        # A storm, not a resource that keeps changing: wait it out queued.
                        raise s.requeue(
                            last, f"{s.settings.max_rounds} rounds met throttling or 5xx"
                        )
                    raise Finish(
                        Outcome.FAILED,
                        kind,
                        f"gave up after {s.settings.max_rounds} rounds: the resource kept "
                        f"changing or staying busy (last: {last.reason if last else 'none'})",
                    )
                s.act_as(active)
                needs_view = info.needs_instance_view and any(
                    isinstance(i.intent, ActionIntent) for i in active
                )
                live = read_live(s, rid, api, active, needs_view)
                active = self._settle(decide(active, live, s.own_etags, self._siblings), live)
                s.act_as(active)
                requests = plan_writes(rid, info, api, active, live) if active else []
                if not requests:
                    if active:
                        # Folding left the resource exactly as it is: every effect is there.
                        for item in active:
                            self._satisfied(item, live, folded=True)
                    if restart_after:
                        # Nothing left to write, but a VM this job deallocated is still owed
                        # its start (an earlier attempt died between resize and start).
                        restart_after = False
                        self.recovery.transition(rid, api, items, "start", "running")
                    return
                failure = self._send_all(rid, api, active, requests)
                if failure is None:
                    if restart_after:
                        restart_after = False  # one attempt; a failure is reported, not retried
                        self.recovery.transition(rid, api, active, "start", "running")
                    again = self._verify(
                        rid, api, info, active, planned_on=live, last_try=verify_misses >= 1
                    )
                    if not again:
                        return
                    verify_misses += 1
                    for item in again:
                        item.baseline_honoured = True
                    active = again
                    last = Classification(
                        ConflictKind.UNKNOWN, "the live state did not show the accepted write"
                    )
                    continue
                last = failure
                restart_after = (
                    self.recovery.recover(rid, api, active, failure, prerequisites_run)
                    or restart_after
                )
        except Finish as fin:
            if restart_after:
                self.recovery.restore_power(rid, api, active, fin)
            s.finish([i.job for i in active], fin.outcome, fin.kind, fin.reason, detail=fin.detail)

    def _siblings(self, item: Item) -> list[BodyIntent]:
        """The body intents its writer built on the same read and that already ended, oldest
        first: changes that writer knew of when it built this one."""
        read = norm_etag(baseline_etag_of(item.job.spec))
        found: list[BodyIntent] = []
        for job in self.s.store.history(item.job.resource_id, item.job.seq):
            if (
                job.writer != item.job.writer
                or job.outcome not in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED)
                or norm_etag(baseline_etag_of(job.spec)) != read
            ):
                continue
            try:
                intent = intent_from_json(job.spec.intent)
            except IntentError:
                continue
            if isinstance(intent, BodyIntent):
                found.append(intent)
        return found[::-1]

    def _settle(self, verdicts: Sequence[Verdict], live: JSON | None) -> list[Item]:
        """Record what the verdicts end; return the jobs the write carries, in order."""
        s = self.s
        writes: list[Item] = []
        for v in verdicts:
            job = v.item.job
            if v.rebased is not None:
                s.emit(EventType.REBASED, [job], etag_live=etag_of(live), detail=v.rebased)
            if v.action == "drop":
                s.emit(EventType.DROPPED_STALE, [job], etag_live=etag_of(live), detail=v.detail)
                s.finish([job], Outcome.DROPPED_STALE, v.kind, v.reason)
            elif v.action == "fail":
                s.finish([job], Outcome.FAILED, v.kind, v.reason, detail=v.detail)
            elif v.action in ("satisfied", "applied"):
                self._satisfied(v.item, live, reason=v.reason, detail=v.detail)
            else:
                if v.rides is not None:
                    s.emit(EventType.COALESCED, [job], detail={"into": v.rides})
                writes.append(v.item)
        return writes

    def _satisfied(
        self,
        item: Item,
        live: JSON | None,
        *,
        folded: bool = False,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """No write needed now: ``applied`` if an earlier write of this batch put the effect
        there, else ``already_satisfied``."""
        s = self.s
        job = item.job
        extra = {**(detail or {}), **({"folded": True} if folded else {})}
        if item.wrote:
            s.emit(
                EventType.VERIFIED,
                [job],
                etag_live=etag_of(live),
                detail={"verified": True, "writes": s.report.writes, "by": "an earlier write"},
            )
            s.emit(EventType.APPLIED, [job], etag_live=etag_of(live))
            s.finish(
                [job],
                Outcome.APPLIED,
                None,
                None,
                result={"verified": True, "etag": etag_of(live), "writes": s.report.writes},
            )
            return
        s.emit(EventType.ALREADY_SATISFIED, [job], etag_live=etag_of(live), detail=extra or None)
        s.finish([job], Outcome.ALREADY_SATISFIED, None, reason)

    # -- step 3: write ------------------------------------------------------------------------

    def _send_all(
        self, rid: ResourceId, api: str, items: Sequence[Item], requests: Sequence[WriteRequest]
    ) -> Classification | None:
        s = self.s
        jobs = [i.job for i in items]
        self._unread = None
        for req in requests:
            if s.stop_now():
                raise Stopped()
            s.committed = True
            s.emit(
                EventType.WRITE,
                jobs,
                verb=req.verb,
                etag_sent=req.headers.get("If-Match"),
                detail={"path": req.path, "conditional": sorted(req.headers)},
            )
            if s.round == 1:
                # Real work is the batch's first write; a rewrite after a conflict is an extra
                # call, and must not widen the budget that limits extra calls.
                s.budget.record_work()
            s.report.writes += 1
            response = s.call(
                req.verb,
                req.path,
                api_version=req.api_version,
                body=req.body,
                headers=req.headers,
            )
            if response is None or response.status >= 500:
                # No answer, or a server error: ARM may have applied it all the same.
                self._mark_written(items)
            if response is None:
                return s.last_transport
            if not response.ok:
                return s.conflict(rid, items, response.classification())
            followed = follow_write(s, rid, items, response, api=api, path=req.path, verb=req.verb)
            if followed.failure is not None:
                return followed.failure
            self._mark_written(items)
            if followed.unread is not None:
                self._unread = followed.unread
        return None

    @staticmethod
    def _mark_written(items: Sequence[Item]) -> None:
        for item in items:
            item.wrote = True

    # -- step 5: verify -----------------------------------------------------------------------

    def _verify(
        self,
        rid: ResourceId,
        api: str,
        info: TypeInfo,
        items: Sequence[Item],
        *,
        planned_on: JSON | None,
        last_try: bool,
    ) -> list[Item]:
        """Read back after the write. Jobs the live state shows (or that cannot be checked) end
        ``applied``; from the first one it contradicts on, every job of the write is returned
        to be written again in order — or, on the last try, each ends by its own check.
        ``applied`` therefore never covers an effect the live state is seen to lack."""
        s = self.s
        needs_view = info.needs_instance_view and any(
            isinstance(i.intent, ActionIntent) for i in items
        )
        unread: str | None = None
        try:
            live = read_live(s, rid, api, items, needs_view)
        except Finish as fin:
            # ARM accepted the write; only the read-back is missing.
            live = None
            checks: dict[str, bool | None] = {i.job.id: None for i in items}
            unread = fin.reason
        else:
            checks = check(items, planned_on, live)
        op_unread = self._unread
        first_miss = next((n for n, i in enumerate(items) if checks[i.job.id] is False), None)
        if first_miss is None or last_try or op_unread is not None:
            done = [i for i in items if checks[i.job.id] is not False]
            missing = [i for i in items if checks[i.job.id] is False]
            again: list[Item] = []
        else:
            done = list(items[:first_miss])
            missing = [i for i in items[first_miss:] if checks[i.job.id] is False]
            again = list(items[first_miss:])
        etag = etag_of(live)
        for item in done:
            result: dict[str, Any] = {
                "verified": checks[item.job.id],
                "etag": etag,
                "writes": s.report.writes,
                "batch": len(items),
            }
            if op_unread is not None:
                result["operation"] = "unobserved"
            s.finish([item.job], Outcome.APPLIED, None, None, result=result)
        if missing:
            s.emit(
                EventType.VERIFIED,
                [i.job for i in missing],
                etag_live=etag,
                detail={"verified": False, "retry": bool(again), "writes": s.report.writes},
            )
            if not again:
                for item in missing:
                    s.finish(
                        [item.job],
                        Outcome.FAILED,
                        ConflictKind.UNKNOWN,
                        self._missing_reason(item, op_unread),
                        result={"verified": False, "etag": etag},
                    )
        if done:
            # One verdict per job: True when the live state shows every effect, None when some
            # could not be checked (no read-back, or an intent that cannot tell).
            shown = all(checks[i.job.id] is True for i in done)
            why = unread or op_unread
            s.emit(
                EventType.VERIFIED,
                [i.job for i in done],
                etag_live=etag,
                detail={
                    "verified": True if shown else None,
                    "writes": s.report.writes,
                    **({"why": why} if why is not None else {}),
                },
            )
            s.emit(EventType.APPLIED, [i.job for i in done], etag_live=etag)
        return again

    @staticmethod
    def _missing_reason(item: Item, op_unread: str | None) -> str:
        fields = ", ".join(sorted(item.intent.fields())) or "its effect"
        if op_unread is not None:
            return (
                f"ARM accepted the write, but its operation's end could not be observed "
                f"({op_unread}) and the live state does not show {fields}: the outcome is "
                "unknown (compare with `armguard inspect`)"
            )
        return (
            f"ARM accepted the write twice, but the live state does not show {fields} "
            "afterwards: another writer keeps replacing it, or the resource provider changes "
            "the value it is given (compare with `armguard inspect`)"
        )
