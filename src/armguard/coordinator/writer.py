"""The write loop for one claimed batch: read → decide per job → one conditional write → recover.

Per round:

1. **Read** the live state (404 means absent).
2. **Decide per job, in submission order**: a job whose baseline ETag is older than the live one
   follows its stale policy (rebase | drop | fail); a job whose effect is already there (on the
   live state with the earlier jobs folded in) completes with no write; the rest fold into one
   desired body, later jobs winning per field.
3. **Write once**, conditionally: ``If-Match`` with the live ETag where the resource has one,
   ``If-None-Match: *`` for a create. Tag-only batches on types without ETags go through the
   tags extension resource (``Merge`` / ``Delete``), which changes only the named keys.
4. **Recover by class** (``arm.classify``): ``stale_version`` → next round re-reads and rebases
   (the failed token and body are never resent); ``operation_in_progress`` → wait on the named
   status URL or the provisioningState, then next round; ``state_prerequisite`` → run the
   intent's declared transition or fail naming what is needed; ``locked`` → blocked;
   ``throttled``/``transient`` → jittered backoff inside the worker's retry budget; anything
   else → failed with kind and reason.
5. **Follow our own LRO** to a terminal state, then **verify** the live state satisfies every job.

Every step is a :class:`JobEvent`. The lease is heartbeated during waits; once it is lost the
batch stops touching ARM at once.

Events are buffered and written with the store calls the batch makes anyway: a batch that
only reads costs the store two commits (claim and complete; one, when the worker's next claim
carries the completion) however many steps it records, and
each ARM call or wait that follows new events adds one. What is durable when:

* ``claimed`` commits with the claim itself (the store writes it), and the outcomes' closing
  events (``verified``, ``applied``, ``failed``, ``released``…) commit with the outcomes in
  ``complete`` / ``release`` — a job is never done without its history, nor the reverse. A
  worker defers the completion (``run(defer_completion=True)``) so that its next claim carries
  it: outcomes and events then commit in that claim's transaction, a moment later.
* Before every ARM call and every wait (a backoff, polling an operation or a state) the buffer
  is flushed first, so a worker that dies — while ARM works or while it sleeps — leaves its
  timeline complete up to its last ARM call. What only a crash can lose is the bookkeeping of
  that last call's answer (a ``read``, a decision, a ``conflict``): those jobs have no outcome
  yet either, and the worker that takes the lease over reads and decides again.
* On a lost lease the buffer is appended on its own, with ``lease_lost``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from armguard.arm.classify import Classification, ConflictKind, classify_error
from armguard.arm.client import ArmResponse, ArmTransportError
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.arm.states import is_terminal
from armguard.arm.urls import redact_url
from armguard.clock import Clock, isoformat
from armguard.coordinator.backoff import Backoff, RetryBudget
from armguard.coordinator.gates import (
    GateFailed,
    GateTimeout,
    Pacer,
    Requester,
    Stopped,
    read_instance_view,
    wait_for_operation,
    wait_for_power_state,
    wait_for_provisioning,
)
from armguard.coordinator.intents import (
    ActionIntent,
    BodyIntent,
    DeleteIntent,
    Intent,
    IntentError,
    PutIntent,
    Request,
    TagsIntent,
    fold,
    intent_from_json,
    live_power_state,
    strip_read_only,
)
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import (
    Completion,
    Job,
    JobResult,
    Lease,
    LeaseLost,
    Outcome,
    StalePolicy,
)
from armguard.coordinator.resource_types import (
    TAGS_API_VERSION,
    ApiVersionRequired,
    TagsVia,
    TypeInfo,
    api_version_for,
    type_info,
)
from armguard.coordinator.scopes import learned_dependency
from armguard.coordinator.store import Store
from armguard.events import EventType, JobEvent

__all__ = ["BatchReport", "BatchWriter", "WriterSettings"]

JSON = dict[str, Any]
_WRITE_VERBS = ("PUT", "PATCH", "POST", "DELETE")
# A VM that is starting counts as running for "start it again after the resize".
_RUNNING_STATES = frozenset({"running", "starting"})


_T = TypeVar("_T")


@dataclass(frozen=True)
class WriterSettings:
    max_rounds: int = 12
    """Rounds of read → write per batch before giving up on a resource that keeps changing."""
    poll_interval: float = 10.0
    max_wait: float = 3600.0
    backoff_base: float = 1.0
    backoff_cap: float = 120.0


@dataclass
class BatchReport:
    """What one batch did: outcomes handed to the store and the ARM writes it cost."""

    results: list[JobResult] = field(default_factory=list)
    writes: int = 0
    lease_lost: bool = False
    released: bool = False


class _Finish(Exception):
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


@dataclass
class _Item:
    job: Job
    intent: Intent
    rebased_on: str | None = None
    baseline_honoured: bool = False
    """Its baseline was current when a write carrying it was accepted: what moved the ETag
    since is that write or a later writer, never a reason to call this job stale."""


def _norm_etag(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if text[:2].upper() == "W/":
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text


def _provisioning_state(body: Mapping[str, Any]) -> str | None:
    props = body.get("properties")
    state = props.get("provisioningState") if isinstance(props, Mapping) else None
    return state if isinstance(state, str) else None


def _etag_of(body: Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    value = body.get("etag")
    return value if isinstance(value, str) else None


def _segments(items: Sequence[_Item]) -> list[list[_Item]]:
    """Runs of foldable intents, with every barrier (action, delete) alone and in order. The
    store already claims barriers alone; this keeps the writer right whatever it is handed."""
    out: list[list[_Item]] = []
    for item in items:
        if _alone(item) or not out or _alone(out[-1][-1]):
            out.append([item])
        else:
            out[-1].append(item)
    return out


def _alone(item: _Item) -> bool:
    # Only body intents fold into a write; anything else would be left out of it.
    return item.intent.barrier or not isinstance(item.intent, BodyIntent)


class BatchWriter:
    """Runs one lease's batch to durable outcomes. One instance per batch; not thread-safe."""

    def __init__(
        self,
        store: Store,
        arm: Requester,
        clock: Clock,
        *,
        ttl: float,
        budget: RetryBudget,
        backoff: Backoff | None = None,
        metrics: CoordinatorMetrics | None = None,
        settings: WriterSettings | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.arm = arm
        self.clock = clock
        self.ttl = ttl
        self.budget = budget
        self.settings = settings or WriterSettings()
        self.backoff = backoff or Backoff(self.settings.backoff_base, self.settings.backoff_cap)
        self.metrics = metrics
        self.should_stop = should_stop
        self.report = BatchReport()
        self._lease: Lease | None = None
        self._last_beat = 0.0
        self._round = 0
        self._results: dict[str, JobResult] = {}
        self._own_etags: set[str] = set()
        self._committed = False
        self._pending: list[JobEvent] = []
        self._owed: Completion | None = None
        self._owed_jobs: Sequence[Job] = ()
        self._pacer = Pacer(
            clock,
            self._before_arm,
            self._stop_now,
            slice=max(1.0, ttl / 3),
            poll_interval=self.settings.poll_interval,
            max_wait=self.settings.max_wait,
        )

    def _stop_now(self) -> bool:
        """Stop only before the first write: once ARM has our write, finishing the batch (and
        its operation) is safer than handing a busy resource to the next worker."""
        return not self._committed and self.should_stop()

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
        self._lease = lease
        self._last_beat = self.clock.now() if claimed_at is None else claimed_at
        jobs = list(lease.jobs)  # their ``claimed`` events were written by the claim
        try:
            items = self._load(jobs)
            for segment in _segments(items):
                self._round = 0
                self._process(segment)
        except LeaseLost as lost:
            self._lease_lost(jobs, lost)
            return self.report
        except Stopped:
            self._release(jobs)
            return self.report
        except BaseException:
            # A bug or a broken store: keep what the batch did on its timeline if the store
            # still takes it; the error itself is what the caller must see.
            with suppress(Exception):
                self._flush()
            raise
        if defer_completion:
            self._owed = Completion(lease, self._outcomes(jobs), list(self._pending))
            self._owed_jobs = jobs
            return self.report
        return self._complete(jobs)

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
            self._lease_lost(self._owed_jobs, lost)
            return self.report, None
        self._pending = []
        return self._recorded(list(owed.results)), value

    # -- loading ----------------------------------------------------------------------------

    def _load(self, jobs: Sequence[Job]) -> list[_Item]:
        items: list[_Item] = []
        for job in jobs:
            try:
                rid = parse_resource_id(job.resource_id)
                intent = intent_from_json(job.spec.intent)
                api_version_for(rid, intent.api_version)
            except (InvalidResourceId, IntentError, ApiVersionRequired) as exc:
                self._finish([job], Outcome.FAILED, ConflictKind.INVALID, str(exc))
                continue
            items.append(_Item(job, intent))
        return items

    # -- the loop -----------------------------------------------------------------------------

    def _process(self, items: list[_Item]) -> None:
        rid = parse_resource_id(items[0].job.resource_id)
        info = type_info(rid)
        api = api_version_for(
            rid, next((i.intent.api_version for i in items if i.intent.api_version), None)
        )
        active = items
        # A worker that deallocated a running VM and then lost its lease left the promise to
        # start it again in the jobs' events; honour it, or a takeover leaves the VM down.
        restart_after = self._restore_pending(items)
        if restart_after:
            # Carry the promise onto every job of this batch: if this worker dies too, whichever
            # of them is claimed next still owes the VM its start.
            self._emit(
                EventType.PREREQUISITE,
                [i.job for i in items],
                detail={"action": "restore", "restore": "running"},
            )
        prerequisites_run: set[str] = set()
        last: Classification | None = None
        verify_misses = 0
        try:
            while active:
                self._round += 1
                if self._round > self.settings.max_rounds:
                    kind = last.kind if last is not None else ConflictKind.UNKNOWN
                    raise _Finish(
                        Outcome.FAILED,
                        kind,
                        f"gave up after {self.settings.max_rounds} rounds: the resource kept "
                        f"changing or staying busy (last: {last.reason if last else 'none'})",
                    )
                needs_view = info.needs_instance_view and any(
                    isinstance(i.intent, ActionIntent) for i in active
                )
                live = self._read(rid, api, active, needs_view)
                active = self._decide(active, live)
                requests = self._plan(rid, info, api, active, live) if active else []
                if not requests:
                    if active:
                        # Folding left the resource exactly as it is: every effect is there.
                        self._finish([i.job for i in active], Outcome.ALREADY_SATISFIED, None, None)
                        self._emit(
                            EventType.ALREADY_SATISFIED,
                            [i.job for i in active],
                            detail={"folded": True},
                        )
                    if restart_after:
                        # Nothing left to write, but a VM this job deallocated is still owed
                        # its start (an earlier attempt died between resize and start).
                        restart_after = False
                        self._transition(rid, api, items, "start", "running")
                    return
                failure = self._send_all(rid, active, requests)
                if failure is None:
                    if restart_after:
                        restart_after = False  # one attempt; a failure is reported, not retried
                        self._transition(rid, api, active, "start", "running")
                    missing = self._verify(rid, api, info, active, last_try=verify_misses >= 1)
                    if not missing:
                        return
                    # ARM took the write, yet the live state lacks its effect: most likely an
                    # unguarded writer replaced the body right after us. Write once more, on
                    # what is there now; a second miss fails instead of fighting that writer.
                    verify_misses += 1
                    for item in missing:
                        item.baseline_honoured = True
                    active = missing
                    last = Classification(
                        ConflictKind.UNKNOWN, "the live state did not show the accepted write"
                    )
                    continue
                last = failure
                restart_after = (
                    self._recover(rid, api, active, failure, prerequisites_run) or restart_after
                )
        except _Finish as fin:
            if restart_after:
                self._restore_power(rid, api, active, fin)
            self._finish(
                [i.job for i in active], fin.outcome, fin.kind, fin.reason, detail=fin.detail
            )

    # -- step 1: read -------------------------------------------------------------------------

    def _read(
        self, rid: ResourceId, api: str, items: Sequence[_Item], with_view: bool
    ) -> JSON | None:
        jobs = [i.job for i in items]
        while True:
            response = self._call("GET", rid.format(), api_version=api)
            if response is not None and response.status == 404:
                self._emit(EventType.READ, jobs, status=404, detail={"exists": False})
                return None
            if response is not None and response.ok and isinstance(response.body, Mapping):
                live = dict(response.body)
                state = _provisioning_state(live)
                if state is not None and not is_terminal(state):
                    # Gate before deciding: a body that is still provisioning may yet fail or be
                    # replaced, and a write now would only meet AnotherOperationInProgress.
                    self._emit(
                        EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state}
                    )
                    self._gate_provisioning(rid, api, jobs, response)
                    continue
                if with_view:
                    view = self._call_view(rid, api)
                    if view is not None:
                        props = dict(live.get("properties") or {})
                        props["instanceView"] = view
                        live["properties"] = props
                self._emit(EventType.READ, jobs, status=response.status, etag_live=_etag_of(live))
                return live
            self._retry_or_finish(jobs, response, self._last_transport, "read")

    def _gate_provisioning(
        self, rid: ResourceId, api: str, jobs: Sequence[Job], first: ArmResponse
    ) -> None:
        try:
            wait_for_provisioning(self._counted(), rid.format(), api, self._pacer, first=first)
        except GateFailed as failed:
            self._retry_or_finish(jobs, failed.response, self._last_transport, "read")
        except GateTimeout as timeout:
            raise _Finish(
                Outcome.FAILED, ConflictKind.OPERATION_IN_PROGRESS, str(timeout)
            ) from timeout

    def _call_view(self, rid: ResourceId, api: str) -> Any:
        self._before_arm()
        response = read_instance_view(self.arm, rid.format(), api)
        self._count("GET", response.status)
        return response.body if response.ok else None

    # -- step 2: decide per job ------------------------------------------------------------

    def _decide(self, items: Sequence[_Item], live: JSON | None) -> list[_Item]:
        live_etag = _norm_etag(_etag_of(live))
        state: JSON | None = live
        folded = False
        touched: set[str] = set()
        replaced = False
        planned: list[_Item] = []
        for item in items:
            baseline = _norm_etag(item.job.spec.baseline_etag)
            stale = (
                baseline is not None
                and not item.baseline_honoured
                and baseline != live_etag
                and live_etag not in self._own_etags
            )
            if stale:
                policy = item.job.spec.on_stale
                detail = {"baseline": item.job.spec.baseline_etag, "policy": str(policy)}
                if policy is StalePolicy.DROP:
                    self._emit(
                        EventType.DROPPED_STALE, [item.job], etag_live=_etag_of(live), detail=detail
                    )
                    self._finish(
                        [item.job],
                        Outcome.DROPPED_STALE,
                        ConflictKind.STALE_VERSION,
                        f"the live resource moved past the baseline ETag {item.job.spec.baseline_etag}",
                    )
                    continue
                if policy is StalePolicy.FAIL:
                    self._finish(
                        [item.job],
                        Outcome.FAILED,
                        ConflictKind.STALE_VERSION,
                        f"the live ETag {_etag_of(live)} is not the baseline "
                        f"{item.job.spec.baseline_etag}; regenerate the change from the live state",
                    )
                    continue
                if live is None and not isinstance(item.intent, PutIntent | DeleteIntent):
                    # Read with an ETag, gone now: someone deleted it. Rebasing a patch on
                    # nothing would create a resource from a fragment of a body.
                    self._finish(
                        [item.job],
                        Outcome.FAILED,
                        ConflictKind.NOT_FOUND,
                        f"the resource was deleted after the baseline ETag "
                        f"{item.job.spec.baseline_etag} was read; a {item.intent.kind} intent "
                        "does not recreate it (submit a full put to do that)",
                    )
                    continue
                if item.rebased_on != live_etag:
                    item.rebased_on = live_etag
                    self._emit(
                        EventType.REBASED, [item.job], etag_live=_etag_of(live), detail=detail
                    )
            if item.intent.satisfied_by(state):
                # Already there on the live resource, and no earlier job of this batch changes
                # those fields: nothing to write for it, whatever its neighbours write.
                # A full PUT earlier in the batch removes whatever it leaves out, so it counts as
                # touching everything.
                if not folded or (
                    not replaced
                    and item.intent.satisfied_by(live)
                    and not (item.intent.fields() & touched)
                ):
                    self._emit(EventType.ALREADY_SATISFIED, [item.job], etag_live=_etag_of(live))
                    self._finish([item.job], Outcome.ALREADY_SATISFIED, None, None)
                    continue
                # Satisfied only by an earlier job's pending change: it rides that write and
                # shares its outcome, so a blocked or failed write never reports it done.
                self._emit(EventType.COALESCED, [item.job], detail={"into": planned[0].job.id})
            planned.append(item)
            if isinstance(item.intent, BodyIntent):
                state = item.intent.apply(state)
                folded = True
                touched |= item.intent.fields()
                replaced = replaced or isinstance(item.intent, PutIntent)
        return planned

    # -- step 3: plan and write -------------------------------------------------------------

    def _plan(
        self, rid: ResourceId, info: TypeInfo, api: str, items: Sequence[_Item], live: JSON | None
    ) -> list[tuple[str, str, str, Any, dict[str, str]]]:
        """The writes for this round as (verb, path, api-version, body, headers)."""
        path = rid.format()
        etag = _etag_of(live)
        if len(items) == 1 and not isinstance(items[0].intent, BodyIntent):
            req = items[0].intent.rebase(live)
            assert isinstance(req, Request)
            headers = {"If-Match": etag} if etag and req.method == "DELETE" else {}
            return [(req.method, path + req.suffix, api, req.body, headers)]
        body_intents = [i.intent for i in items if isinstance(i.intent, BodyIntent)]
        if (
            live is not None
            and etag is None
            and info.tags_via is TagsVia.TAGS_API
            and all(isinstance(i, TagsIntent) for i in body_intents)
        ):
            return self._tags_plan(rid, live, body_intents)
        desired = strip_read_only(fold(body_intents, live))
        if live is not None and desired == strip_read_only(live):
            return []
        headers = {"If-Match": etag} if etag else {}
        if live is None:
            headers = {"If-None-Match": "*"}
        return [("PUT", path, api, desired, headers)]

    def _tags_plan(
        self, rid: ResourceId, live: JSON, intents: Sequence[BodyIntent]
    ) -> list[tuple[str, str, str, Any, dict[str, str]]]:
        before = dict(live.get("tags") or {})
        after = fold(intents, {"tags": before}).get("tags") or {}
        merge = {k: v for k, v in after.items() if before.get(k) != v}
        remove = {k: v for k, v in before.items() if k not in after}
        path = f"{rid.format()}/providers/Microsoft.Resources/tags/default"
        out: list[tuple[str, str, str, Any, dict[str, str]]] = []
        if merge:
            out.append(
                (
                    "PATCH",
                    path,
                    TAGS_API_VERSION,
                    {"operation": "Merge", "properties": {"tags": merge}},
                    {},
                )
            )
        if remove:
            # Name/value pairs, so the delete removes exactly the values we saw.
            out.append(
                (
                    "PATCH",
                    path,
                    TAGS_API_VERSION,
                    {"operation": "Delete", "properties": {"tags": remove}},
                    {},
                )
            )
        return out

    def _send_all(
        self,
        rid: ResourceId,
        items: Sequence[_Item],
        requests: Sequence[tuple[str, str, str, Any, dict[str, str]]],
    ) -> Classification | None:
        jobs = [i.job for i in items]
        for verb, path, api, body, headers in requests:
            if self._stop_now():
                raise Stopped()
            self._committed = True
            self._emit(
                EventType.WRITE,
                jobs,
                verb=verb,
                etag_sent=headers.get("If-Match"),
                detail={"path": path, "conditional": sorted(headers)},
            )
            if self._round == 1:
                # Real work is the batch's first write; a rewrite after a conflict is an extra
                # call, and must not widen the budget that limits extra calls.
                self.budget.record_work()
            self.report.writes += 1
            response = self._call(verb, path, api_version=api, body=body, headers=headers)
            if response is None:
                return self._last_transport
            if not response.ok:
                return self._conflict(rid, items, response.classification(), response)
            failure = self._follow(rid, items, response, api=api, path=path, verb=verb)
            if failure is not None:
                return failure
        return None

    def _follow(
        self,
        rid: ResourceId,
        items: Sequence[_Item],
        response: ArmResponse,
        *,
        api: str,
        path: str,
        verb: str,
    ) -> Classification | None:
        """Follow our own long-running operation to a terminal state. As the SDKs do, the first
        poll goes out at once; later ones honour Retry-After."""
        url = response.header("azure-asyncoperation") or response.header("location")
        jobs = [i.job for i in items]
        try:
            if url:
                self._emit(
                    EventType.WAITING,
                    jobs,
                    operation_url=redact_url(url),
                    detail={"on": "own operation"},
                )
                outcome = wait_for_operation(self._counted(), url, self._pacer)
                if not outcome.succeeded:
                    error = outcome.error
                    assert error is not None
                    return self._conflict(rid, items, classify_error(None, error), outcome.response)
                return None
            body = response.body if isinstance(response.body, Mapping) else {}
            props = body.get("properties")
            state = props.get("provisioningState") if isinstance(props, Mapping) else None
            if (
                verb in ("PUT", "PATCH")
                and path == rid.format()
                and isinstance(state, str)
                and not is_terminal(state)
            ):
                self._emit(
                    EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state}
                )
                final = wait_for_provisioning(
                    self._counted(), path, api, self._pacer, first=response
                )
                final_state = (
                    ((final.body or {}).get("properties") or {}).get("provisioningState")
                    if final
                    else None
                )
                if isinstance(final_state, str) and final_state.lower() != "succeeded":
                    return self._conflict(
                        rid,
                        items,
                        Classification(
                            ConflictKind.UNKNOWN,
                            f"the write ended in provisioningState {final_state}",
                        ),
                        None,
                    )
        except GateFailed as failed:
            return self._conflict(rid, items, failed.response.classification(), failed.response)
        except GateTimeout as timeout:
            raise _Finish(
                Outcome.FAILED, ConflictKind.OPERATION_IN_PROGRESS, str(timeout)
            ) from timeout
        return None

    # -- step 4: recover ----------------------------------------------------------------------

    def _conflict(
        self,
        rid: ResourceId,
        items: Sequence[_Item],
        c: Classification,
        response: ArmResponse | None,
    ) -> Classification:
        jobs = [i.job for i in items]
        self._emit(
            EventType.CONFLICT,
            jobs,
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
                    str(c.kind), rid.type, item.job.writer, item.intent.fields(), self._round
                )
        return c

    def _recover(
        self,
        rid: ResourceId,
        api: str,
        items: Sequence[_Item],
        c: Classification,
        prerequisites_run: set[str],
    ) -> bool:
        """Act on a classified failure; True if a VM was deallocated and must be started after."""
        jobs = [i.job for i in items]
        kind = c.kind
        if kind is ConflictKind.STALE_VERSION:
            return False  # the next round re-reads and rebases; the failed token is dropped
        if kind is ConflictKind.OPERATION_IN_PROGRESS:
            self._wait_in_progress(rid, api, items, c)
            return False
        if kind is ConflictKind.STATE_PREREQUISITE:
            return self._prerequisite(rid, api, items, c, prerequisites_run)
        if kind is ConflictKind.LOCKED:
            scopes = ", ".join(c.locked_scopes) or "a parent scope"
            raise _Finish(
                Outcome.BLOCKED,
                kind,
                f"a management lock on {scopes} blocks this write; a person must decide "
                f"({c.code}: {c.message[:300]})",
                {"locked_scopes": list(c.locked_scopes)},
            )
        if kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
            self._backoff(jobs, c)
            return False
        raise _Finish(Outcome.FAILED, kind, f"{c.reason} ({c.code or c.status}: {c.message[:300]})")

    def _wait_in_progress(
        self, rid: ResourceId, api: str, items: Sequence[_Item], c: Classification
    ) -> None:
        jobs = [i.job for i in items]
        other = learned_dependency(rid, c)
        if other is not None:
            self.store.learn_scope(rid.key, other, f"{c.code or 'conflict'}: {c.message[:200]}")
        try:
            if c.operation_url and self._follow_named(rid, api, jobs, c):
                return
            self._wait_unnamed(rid, api, jobs, c)
        except GateFailed as failed:
            cls = failed.response.classification()
            if cls.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                self._backoff(jobs, cls)
            elif cls.kind is not ConflictKind.NOT_FOUND:
                raise _Finish(
                    Outcome.FAILED,
                    cls.kind,
                    f"could not watch the blocking operation: {cls.reason}",
                ) from failed
        except GateTimeout as timeout:
            raise _Finish(
                Outcome.FAILED, ConflictKind.OPERATION_IN_PROGRESS, str(timeout)
            ) from timeout

    def _follow_named(
        self, rid: ResourceId, api: str, jobs: Sequence[Job], c: Classification
    ) -> bool:
        """Poll the operation ARM named to its end (or until it is gone); False if its status
        cannot be read (not ours to read, or on a host armguard sends no token to), so the
        caller watches the resource instead. Throttling and transient failures propagate as
        GateFailed."""
        assert c.operation_url is not None
        self._emit(
            EventType.WAITING,
            jobs,
            operation_url=redact_url(c.operation_url),
            detail={"on": "named operation"},
        )
        if c.retry_after:
            # The refusal said when to look again; the first poll honours it too.
            self._pacer.pause(max(1.0, c.retry_after))
        try:
            wait_for_operation(self._counted(), c.operation_url, self._pacer)
        except GateFailed as failed:
            kind = failed.response.classification().kind
            if kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                raise
            return kind is ConflictKind.NOT_FOUND
        return True

    def _wait_unnamed(
        self, rid: ResourceId, api: str, jobs: Sequence[Job], c: Classification
    ) -> None:
        """ARM named no operation: gate on the target's own provisioningState if it is the one
        busy; otherwise a dependent resource holds it and nothing observable says when it is
        done, so back off with jitter (bounded by max_rounds) instead of retrying at once."""
        probe = self._counted().request("GET", rid.format(), api_version=api)
        body = probe.body if probe.ok and isinstance(probe.body, Mapping) else {}
        state = _provisioning_state(body)
        if state is not None and not is_terminal(state):
            self._emit(EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state})
            wait_for_provisioning(self._counted(), rid.format(), api, self._pacer, first=probe)
            return
        delay = self.backoff.delay(self._round - 1, c.retry_after)
        self._emit(
            EventType.BACKOFF,
            jobs,
            kind=str(c.kind),
            delay=round(delay, 3),
            detail={"why": "a dependent resource is busy and ARM named no operation to follow"},
        )
        self._pacer.pause(delay)

    def _prerequisite(
        self, rid: ResourceId, api: str, items: Sequence[_Item], c: Classification, done: set[str]
    ) -> bool:
        needed = c.prerequisite or "unknown"
        plans = [i.intent.prerequisite(needed) for i in items]
        if any(p is None for p in plans) or needed in done:
            raise _Finish(
                Outcome.FAILED,
                ConflictKind.STATE_PREREQUISITE,
                f"ARM requires '{needed}' first and this intent does not declare that transition "
                f"({c.code}: {c.message[:300]})",
            )
        done.add(needed)
        was_running = False
        if needed == "deallocate":
            view = read_instance_view(self._counted(), rid.format(), api)
            state = (
                live_power_state({"properties": {"instanceView": view.body}}) if view.ok else None
            )
            was_running = state in _RUNNING_STATES
        for action in dict.fromkeys(a for p in plans if p for a in p):
            target = {"deallocate": "deallocated", "start": "running", "powerOff": "stopped"}.get(
                action
            )
            restore = "running" if was_running and action == "deallocate" else None
            self._transition(rid, api, items, action, target, restore=restore)
        return was_running

    def _restore_pending(self, items: Sequence[_Item]) -> bool:
        """Whether an earlier attempt deallocated this running VM and never started it again."""
        pending = False
        for item in items:
            if item.intent.prerequisite("deallocate") is None:
                continue  # only intents that may deallocate can owe a restart
            for event in self.store.events(item.job.id):
                if event.event != EventType.PREREQUISITE:
                    continue
                if event.detail.get("restore") == "running":
                    pending = True
                elif event.detail.get("reached") == "running":
                    pending = False  # only a start that finished settles it, not one begun
        return pending

    def _transition(
        self,
        rid: ResourceId,
        api: str,
        items: Sequence[_Item],
        action: str,
        target: str | None,
        *,
        restore: str | None = None,
    ) -> None:
        """Run a declared transition (deallocate, start…) and wait for the state it leads to.

        ``restore`` records, durably before the POST (events flush before every ARM call),
        the power state to bring the VM back to, so a worker taking over can finish the job.
        """
        jobs = [i.job for i in items]
        detail: dict[str, Any] = {"action": action, "until": target}
        if restore is not None:
            detail["restore"] = restore
        self._emit(EventType.PREREQUISITE, jobs, verb="POST", detail=detail)
        tries = 0
        while True:
            tries += 1
            if tries > self.settings.max_rounds:
                raise _Finish(
                    Outcome.FAILED,
                    ConflictKind.OPERATION_IN_PROGRESS,
                    f"the '{action}' transition was refused {self.settings.max_rounds} times: "
                    "the VM kept being busy",
                )
            if tries == 1:
                self.budget.record_work()  # retries of it are extra calls, not more work
            self.report.writes += 1
            response = self._call("POST", f"{rid.format()}/{action}", api_version=api)
            if response is not None and response.ok:
                break
            c = (
                self._last_transport
                if response is None
                else self._conflict(rid, items, response.classification(), response)
            )
            if c.kind is ConflictKind.OPERATION_IN_PROGRESS:
                self._wait_in_progress(rid, api, items, c)
                continue
            if c.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                self._backoff(jobs, c)
                continue
            raise _Finish(
                Outcome.BLOCKED if c.kind is ConflictKind.LOCKED else Outcome.FAILED,
                c.kind,
                f"the '{action}' transition failed: {c.reason} ({c.code}: {c.message[:300]})",
            )
        try:
            url = response.header("azure-asyncoperation") or response.header("location")
            if url:
                outcome = wait_for_operation(self._counted(), url, self._pacer)
                if not outcome.succeeded:
                    err = outcome.error
                    raise _Finish(
                        Outcome.FAILED,
                        ConflictKind.STATE_PREREQUISITE,
                        f"the '{action}' transition ended {outcome.status}: {err.message if err else ''}",
                    )
            if target is not None:
                self._emit(EventType.WAITING, jobs, detail={"on": "powerState", "state": target})
                wait_for_power_state(self._counted(), rid.format(), api, target, self._pacer)
        except GateFailed as failed:
            c = failed.response.classification()
            raise _Finish(
                Outcome.FAILED, c.kind, f"could not follow '{action}': {c.reason}"
            ) from failed
        except GateTimeout as timeout:
            raise _Finish(
                Outcome.FAILED, ConflictKind.STATE_PREREQUISITE, str(timeout)
            ) from timeout
        if target is not None:
            self._emit(EventType.PREREQUISITE, jobs, detail={"action": action, "reached": target})
        fresh = self._call("GET", rid.format(), api_version=api)
        if fresh is not None and fresh.ok:
            own = _norm_etag(fresh.etag)
            if own is not None:
                self._own_etags.add(own)

    def _restore_power(
        self, rid: ResourceId, api: str, items: Sequence[_Item], fin: _Finish
    ) -> None:
        """The VM was running before our deallocate and the write failed: start it again."""
        try:
            self._transition(rid, api, items, "start", "running")
        except _Finish as second:
            fin.reason += f"; starting the VM again also failed: {second.reason}"
        else:
            fin.reason += "; the VM was started again"

    def _backoff(self, jobs: Sequence[Job], c: Classification) -> None:
        if not self.budget.try_spend():
            if self.metrics is not None:
                self.metrics.retry_budget_exhausted.inc()
            raise _Finish(
                Outcome.FAILED,
                c.kind,
                f"retry budget exhausted ({self.budget.spent} retries for {self.budget.work} "
                f"writes): {c.reason} ({c.code or c.status}: {c.message[:200]})",
            )
        if self.metrics is not None:
            self.metrics.retry_budget_spent.inc()
        delay = self.backoff.delay(self._round - 1, c.retry_after)
        self._emit(
            EventType.BACKOFF,
            jobs,
            kind=str(c.kind),
            delay=round(delay, 3),
            status=c.status,
            detail={"retry_after": c.retry_after, "budget_left": self.budget.remaining},
        )
        self._pacer.pause(delay)

    def _retry_or_finish(
        self,
        jobs: Sequence[Job],
        response: ArmResponse | None,
        transport: Classification,
        what: str,
    ) -> None:
        c = transport if response is None else response.classification()
        self._emit(
            EventType.CONFLICT,
            jobs,
            kind=str(c.kind),
            status=c.status,
            code=c.code or None,
            message=c.message[:500] or None,
            detail={"during": what},
        )
        if c.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
            self._round += 1
            if self._round > self.settings.max_rounds:
                raise _Finish(Outcome.FAILED, c.kind, f"{what} kept failing: {c.reason}")
            self._backoff(jobs, c)
            return
        outcome = Outcome.BLOCKED if c.kind is ConflictKind.LOCKED else Outcome.FAILED
        raise _Finish(
            outcome, c.kind, f"{what} failed: {c.reason} ({c.code or c.status}: {c.message[:300]})"
        )

    # -- step 5: verify -----------------------------------------------------------------------

    def _verify(
        self,
        rid: ResourceId,
        api: str,
        info: TypeInfo,
        items: Sequence[_Item],
        *,
        last_try: bool,
    ) -> list[_Item]:
        """Read back after the write. Jobs the live state shows (or that cannot be checked) end
        ``applied``; the ones it contradicts are returned for another round, or fail on the
        last try. ``applied`` therefore never covers an effect the live state is seen to lack."""
        needs_view = info.needs_instance_view and any(
            isinstance(i.intent, ActionIntent) for i in items
        )
        unread: str | None = None  # why the read-back failed, if it did
        try:
            live = self._read(rid, api, items, needs_view)
        except _Finish as fin:
            # ARM reported the write's operation Succeeded; only the read-back is missing.
            live = None
            checks: dict[str, bool | None] = {i.job.id: None for i in items}
            unread = fin.reason
        else:
            checks = self._check(items, live)
        missing = [i for i in items if checks[i.job.id] is False]
        done = [i for i in items if checks[i.job.id] is not False]
        for item in done:
            self._finish(
                [item.job],
                Outcome.APPLIED,
                None,
                None,
                result={
                    "verified": checks[item.job.id],
                    "etag": _etag_of(live),
                    "writes": self.report.writes,
                    "batch": len(items),
                },
            )
        if missing:
            self._emit(
                EventType.VERIFIED,
                [i.job for i in missing],
                etag_live=_etag_of(live),
                detail={"verified": False, "retry": not last_try, "writes": self.report.writes},
            )
            if last_try:
                for item in missing:
                    self._finish(
                        [item.job],
                        Outcome.FAILED,
                        ConflictKind.UNKNOWN,
                        "ARM accepted the write twice, but the live state does not show "
                        f"{', '.join(sorted(item.intent.fields())) or 'its effect'} afterwards: "
                        "another writer keeps replacing it, or the resource provider changes "
                        "the value it is given (compare with `armguard inspect`)",
                        result={"verified": False, "etag": _etag_of(live)},
                    )
        if done:
            # One verdict per job: True when the live state shows every effect, None when some
            # could not be checked (no read-back, or an intent that cannot tell).
            shown = all(checks[i.job.id] is True for i in done)
            self._emit(
                EventType.VERIFIED,
                [i.job for i in done],
                etag_live=_etag_of(live),
                detail={
                    "verified": True if shown else None,
                    "writes": self.report.writes,
                    **({"why": unread} if unread is not None else {}),
                },
            )
            self._emit(EventType.APPLIED, [i.job for i in done], etag_live=_etag_of(live))
        return [] if last_try else missing

    def _check(self, items: Sequence[_Item], live: JSON | None) -> dict[str, bool | None]:
        out: dict[str, bool | None] = {}
        for n, item in enumerate(items):
            intent = item.intent
            later = (
                set().union(*(i.intent.fields() for i in items[n + 1 :]))
                if n + 1 < len(items)
                else set()
            )
            if intent.fields() & later:
                # A later job in the same write owns an overlapping field; check it instead.
                out[item.job.id] = True
            else:
                out[item.job.id] = intent.verify(live)
        return out

    # -- plumbing -----------------------------------------------------------------------------

    _last_transport: Classification = Classification(ConflictKind.TRANSIENT, "no response")

    def _call(
        self,
        verb: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ArmResponse | None:
        """One ARM call, lease checked first. None when no answer came (transport failure)."""
        self._before_arm()
        try:
            response = self.arm.request(
                verb, path, api_version=api_version, body=body, headers=headers
            )
        except ArmTransportError as exc:
            self._last_transport = exc.classification()
            self._count(verb, None)
            return None
        self._count(verb, response.status)
        return response

    def _counted(self) -> Requester:
        return _CountingRequester(self)

    def _count(self, verb: str, status: int | None) -> None:
        if self.metrics is not None:
            self.metrics.arm_call(verb, status)

    def _before_arm(self) -> None:
        """Before any ARM call or wait: the buffered events durable, the lease alive."""
        self._flush()
        self._keep_alive()

    def _flush(self) -> None:
        if self._pending:
            self.store.append_events(self._pending)
            self._pending = []

    def _keep_alive(self) -> None:
        lease = self._lease
        assert lease is not None
        # On this worker's clock only: the lease's expires_at may be the database server's
        # time (PostgreSQL), which this clock need not agree with.
        now = self.clock.now()
        if now - self._last_beat >= self.ttl / 3:
            self._lease = self.store.heartbeat(lease, self.ttl)
            self._last_beat = now

    def _finish(
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
        newly = [j for j in jobs if j.id not in self._results]
        for job in newly:
            self._results[job.id] = JobResult(
                job.id, outcome, str(kind) if kind else None, reason, dict(result or {})
            )
        closing = {Outcome.FAILED: EventType.FAILED, Outcome.BLOCKED: EventType.BLOCKED}
        if outcome in closing:
            self._emit(
                closing[outcome],
                newly,
                kind=str(kind) if kind else None,
                message=(reason or "")[:500] or None,
                detail=dict(detail or {}),
            )

    def _outcomes(self, jobs: Sequence[Job]) -> list[JobResult]:
        return [self._results[j.id] for j in jobs if j.id in self._results]

    def _complete(self, jobs: Sequence[Job]) -> BatchReport:
        lease = self._lease
        assert lease is not None
        results = self._outcomes(jobs)
        try:
            self.store.complete(lease, results, self._pending)
        except LeaseLost as lost:
            self._lease_lost(jobs, lost)
            return self.report
        self._pending = []
        return self._recorded(results)

    def _recorded(self, results: list[JobResult]) -> BatchReport:
        self.report.results = results
        if self.metrics is not None:
            for r in results:
                self.metrics.job(str(r.outcome), r.kind)
        return self.report

    def _lease_lost(self, jobs: Sequence[Job], lost: LeaseLost) -> None:
        self.report.lease_lost = True
        self._emit(EventType.LEASE_LOST, jobs, message=lost.why[:300])
        self._flush()  # no lease to ride with any more

    def _release(self, jobs: Sequence[Job]) -> None:
        lease = self._lease
        assert lease is not None
        finished = self._outcomes(jobs)
        released = self._events(EventType.RELEASED, [j for j in jobs if j.id not in self._results])
        try:
            if finished:
                self.store.complete(lease, finished)
            self.store.release(lease, [*self._pending, *released])
        except LeaseLost as lost:
            self._lease_lost(jobs, lost)
            return
        self._pending = []
        self.report.released = True
        self.report.results = finished

    def _emit(self, event: EventType, jobs: Sequence[Job], **fields: Any) -> None:
        """Buffer one event per job; see the module docstring for when they become durable."""
        self._pending += self._events(event, jobs, **fields)

    def _events(self, event: EventType, jobs: Sequence[Job], **fields: Any) -> list[JobEvent]:
        if not jobs:
            return []
        lease = self._lease
        ts = isoformat(self.clock.now())
        return [
            JobEvent(
                ts=ts,
                job_id=job.id,
                resource_id=job.resource_id,
                writer=job.writer,
                event=str(event),
                attempt=self._round,
                fence=lease.fence if lease is not None else None,
                **fields,
            )
            for job in jobs
        ]


@dataclass
class _CountingRequester:
    """The writer's client for gates: lease kept alive and every call counted."""

    writer: BatchWriter

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
        self.writer._before_arm()
        try:
            response = self.writer.arm.request(
                method, path, api_version=api_version, body=body, headers=headers, params=params
            )
        except ArmTransportError as exc:
            self.writer._count(method, None)
            raise GateFailed(
                ArmResponse(
                    method,
                    path,
                    503,
                    {},
                    {"error": {"code": "ServiceUnavailable", "message": str(exc)}},
                )
            ) from exc
        self.writer._count(method, response.status)
        return response
