"""The checker: what the record proves, from data it read and nothing it was told.

Inputs are plain data: the load as submitted (each intent's index, resource, JSON form, job
id), the store's jobs and job events, the emulator's Activity Log (oldest first) and the final
bodies. Nothing here calls armguard's coordinator: the expected state is folded again from
the intents' JSON by this module's own rules, so a bug in the coordinator's folding cannot
hide itself.

Per resource it checks:

* every accepted intent ends in exactly one outcome (a job done, with one outcome; nothing
  queued or running after the drain);
* every ``applied`` effect is in the final state unless a later job on the same fields
  replaced it — a field holding an *older* job's value is a stale overwrite, a field missing
  is a lost update (values are load indexes, so the final state names its writer);
* no write was sent by a lease that had lost its keys: in the Activity Log's order, the
  fences of the writes to one resource never go down (a lower fence after a higher one is a
  zombie; it *landed* if ARM accepted it);
* no action or delete was written by two leases that both landed (double-applied; a body
  intent written again by a lease that took over is counted apart, as it changes nothing);
* no write was sent with an ETag a write had already been refused with (412);
* retries stayed within the budget: backoffs in any window at most
  ``workers × floor + ratio × writes``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from armguard.coordinator.fencing import fence_of

__all__ = ["Budget", "CheckReport", "Evidence", "check", "expected_state", "resource_key"]

JSON = dict[str, Any]
INJECTED = "Chaos:"
"""Every error the nemesis injects says so in its message; any other 5xx is the emulator's."""
_TAGS_SUFFIX = "/providers/microsoft.resources/tags/default"
_DONE = "done"
_LANDS = ("applied", "already_satisfied")
_POWER = {"start": "running", "poweroff": "stopped", "deallocate": "deallocated"}
_WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})


@dataclass(frozen=True)
class Budget:
    workers: int
    floor: int = 10
    ratio: float = 0.1
    window: float = 60.0


@dataclass(frozen=True)
class Evidence:
    """Everything the checker reads. ``planned``: ``{index, resource_id, intent, job_id}``;
    ``jobs``: ``{id, seq, resource_id, state, outcome, kind, reason, intent, has_baseline}``;
    ``events``: job events as JSON objects in append order; ``activity``: Activity Log
    events oldest first; ``initial``/``final``: bodies by resource ID (None: absent)."""

    planned: Sequence[Mapping[str, Any]]
    jobs: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any]]
    activity: Sequence[Mapping[str, Any]]
    initial: Mapping[str, Mapping[str, Any] | None]
    final: Mapping[str, Mapping[str, Any] | None]
    budget: Budget


@dataclass
class CheckReport:
    intents: int = 0
    accepted: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    unfinished: int = 0
    double_applied: int = 0
    rewritten_after_takeover: int = 0
    stale_overwrites: int = 0
    zombie_writes_rejected: int = 0
    zombie_writes_landed: int = 0
    stale_token_resent: int = 0
    conflicts_surfaced: int = 0
    stale_handed_back: int = 0
    conflicts_by_kind: dict[str, int] = field(default_factory=dict)
    failed_but_landed: int = 0
    server_errors: int = 0
    injected_errors_seen: int = 0
    budget_exceeded_windows: int = 0
    requeues: int = 0
    """Times a job went back to the queue because a storm outlasted a worker's retry budget
    (not a violation: how storms are absorbed)."""
    requeued_jobs: int = 0
    peak_writes_per_second: int = 0
    violations: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not (
            self.lost
            or self.unfinished
            or self.double_applied
            or self.stale_overwrites
            or self.zombie_writes_landed
            or self.stale_token_resent
            or self.conflicts_surfaced
            or self.server_errors
            or self.budget_exceeded_windows
        )

    def note(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)

    def to_json(self) -> JSON:
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items()}
        out["ok"] = self.ok()
        return out


def resource_key(resource_id: str) -> str:
    """One key per resource: case-folded, its tags extension resource folded into it."""
    key = resource_id.lower().rstrip("/")
    return key[: -len(_TAGS_SUFFIX)] if key.endswith(_TAGS_SUFFIX) else key


# -- the expected state ---------------------------------------------------------------------


@dataclass
class _Field:
    value: Any
    index: int | None  # the load index of the intent that set it (None: the initial body)


@dataclass
class _Expected:
    exists: bool
    tags: dict[str, _Field]
    size: _Field | None
    power: _Field | None
    power_known: bool = True


def _initial(body: Mapping[str, Any] | None) -> _Expected:
    if body is None:
        return _Expected(False, {}, None, None)
    tags = {k: _Field(v, None) for k, v in (body.get("tags") or {}).items()}
    size = ((body.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize")
    return _Expected(True, tags, _Field(size, None) if size else None, _Field("running", None))


def _fold(state: _Expected, intent: Mapping[str, Any], index: int) -> None:
    kind = intent.get("kind")
    if kind == "tags":
        state.exists = True
        for key in intent.get("remove") or ():
            state.tags.pop(key, None)
        for key, value in (intent.get("set") or {}).items():
            state.tags[key] = _Field(value, index)
    elif kind == "merge":
        state.exists = True
        for key, value in ((intent.get("patch") or {}).get("tags") or {}).items():
            if value is None:
                state.tags.pop(key, None)
            else:
                state.tags[key] = _Field(value, index)
    elif kind == "put":
        body = intent.get("body") or {}
        # Outside writers' keys are theirs; a PUT armguard makes replaces the rest.
        kept = {k: f for k, f in state.tags.items() if k.lower().startswith("outside")}
        state.tags = {**kept, **{k: _Field(v, index) for k, v in (body.get("tags") or {}).items()}}
        size = ((body.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize")
        if size:
            state.size = _Field(size, index)
        state.exists = True
    elif kind == "delete":
        state.exists, state.tags, state.size = False, {}, None
    elif kind == "resize":
        state.size = _Field(intent.get("size"), index)
        # A resize may deallocate first and start again only if the VM was running.
        state.power_known = False
    elif kind == "action":
        wanted = _POWER.get(str(intent.get("name", "")).lower())
        if wanted is not None:
            now = state.power.value if state.power and state.power_known else None
            if not (wanted == "stopped" and now == "deallocated"):
                state.power = _Field(wanted, index)
            state.power_known = True


def expected_state(
    initial: Mapping[str, Any] | None, jobs: Iterable[tuple[int, Mapping[str, Any]]]
) -> _Expected:
    """The state ``initial`` ends in after ``jobs`` (load index, intent), in order."""
    state = _initial(initial)
    for index, intent in jobs:
        _fold(state, intent, index)
    return state


def _power_of(body: Mapping[str, Any]) -> str | None:
    view = (body.get("properties") or {}).get("instanceView") or {}
    for status in view.get("statuses") or ():
        code = str(status.get("code", "")) if isinstance(status, Mapping) else ""
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


# -- the checks -----------------------------------------------------------------------------


def check(ev: Evidence) -> CheckReport:
    report = CheckReport(intents=len(ev.planned))
    jobs = {str(j["id"]): j for j in ev.jobs}
    index_of: dict[str, int] = {}
    job_of_index: dict[int, Mapping[str, Any]] = {}
    for p in ev.planned:
        job_id = p.get("job_id")
        if job_id is None:
            continue
        report.accepted += 1
        index_of[str(job_id)] = int(p["index"])
        job = jobs.get(str(job_id))
        if job is None:
            report.lost += 1
            report.note(f"intent {p['index']}: job {job_id} was accepted but is not in the store")
            continue
        job_of_index[int(p["index"])] = job
        if job.get("state") != _DONE or not job.get("outcome"):
            report.unfinished += 1
            report.note(f"intent {p['index']}: job {job_id} is {job.get('state')} after the drain")
            continue
        outcome = str(job["outcome"])
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        if outcome in ("failed", "blocked"):
            kind = str(job.get("kind") or "unknown")
            if kind in ("stale_version", "not_found") and job.get("has_baseline"):
                # Its baseline had moved and its policy (fail), a field someone else changed
                # since (rebase), or a delete since it was read hands it back: the promise,
                # not a conflict.
                report.stale_handed_back += 1
                continue
            report.conflicts_surfaced += 1
            report.conflicts_by_kind[kind] = report.conflicts_by_kind.get(kind, 0) + 1
            report.note(f"intent {p['index']}: {outcome} {kind}: {str(job.get('reason'))[:200]}")
    _check_final(ev, report, job_of_index)
    writes = _activity_writes(ev.activity)
    _check_fences(writes, report)
    _check_double(ev, writes, report)
    _check_tokens(ev.events, report)
    _check_errors(ev, report)
    _check_budget(ev, writes, report)
    requeued = [str(e.get("job_id")) for e in ev.events if e.get("event") == "requeued"]
    report.requeues = len(requeued)
    report.requeued_jobs = len(set(requeued))
    return report


def _check_final(
    ev: Evidence, report: CheckReport, job_of_index: Mapping[int, Mapping[str, Any]]
) -> None:
    by_resource: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in ev.planned:
        by_resource[resource_key(str(p["resource_id"]))].append(p)
    initial = {resource_key(k): v for k, v in ev.initial.items()}
    final = {resource_key(k): v for k, v in ev.final.items()}
    for key, planned in by_resource.items():
        landed: list[tuple[int, int, Mapping[str, Any]]] = []
        for p in planned:
            job = job_of_index.get(int(p["index"]))
            if job is not None and job.get("outcome") in _LANDS:
                landed.append((int(job["seq"]), int(p["index"]), p["intent"]))
        landed.sort()
        want = expected_state(initial.get(key), [(i, intent) for _, i, intent in landed])
        _compare(key, want, final.get(key), report, job_of_index)


def _setter(
    value: Any, job_of_index: Mapping[int, Mapping[str, Any]]
) -> tuple[int, Mapping[str, Any]] | None:
    try:
        index = int(value)
    except (TypeError, ValueError):
        return None
    job = job_of_index.get(index)
    return (index, job) if job is not None else None


def _compare(
    key: str,
    want: _Expected,
    live: Mapping[str, Any] | None,
    report: CheckReport,
    job_of_index: Mapping[int, Mapping[str, Any]],
) -> None:
    name = key.rsplit("/", 1)[-1]
    if not want.exists or live is None:
        if want.exists != (live is not None):
            report.lost += 1
            state = "absent" if live is None else "present"
            report.note(f"{name}: {state} at the end, the applied jobs leave it otherwise")
        return
    live_tags = dict((live.get("tags") or {}).items())
    expected = {k: f for k, f in want.tags.items() if not k.lower().startswith("outside")}
    for tag, f in expected.items():
        _compare_field(f"{name} tag {tag}", f, live_tags.get(tag), report, job_of_index)
    for tag, value in live_tags.items():
        if tag.lower().startswith("outside") or tag in expected:
            continue
        found = _setter(value, job_of_index)
        if found is not None and found[1].get("outcome") == "failed":
            report.failed_but_landed += 1
        else:
            report.stale_overwrites += 1
            report.note(f"{name} tag {tag}={value}: no applied job leaves it there")
    if want.size is not None:
        size = ((live.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize")
        if size != want.size.value:
            report.lost += 1
            report.note(f"{name}: vmSize {size}, the last applied resize asked {want.size.value}")
    if want.power is not None and want.power_known:
        power = _power_of(live)
        setter = job_of_index.get(want.power.index) if want.power.index is not None else None
        # A deallocated VM is stopped too: a powerOff that found it so had nothing to do.
        also = (
            power == "deallocated"
            and want.power.value == "stopped"
            and setter is not None
            and setter.get("outcome") == "already_satisfied"
        )
        if power is not None and power != want.power.value and not also:
            report.lost += 1
            report.note(
                f"{name}: power {power}, the last applied action leaves it {want.power.value}"
            )


def _compare_field(
    what: str,
    want: _Field,
    live: Any,
    report: CheckReport,
    job_of_index: Mapping[int, Mapping[str, Any]],
) -> None:
    if live == want.value:
        return
    if live is None:
        report.lost += 1
        report.note(f"{what}: missing; intent {want.index} applied it and nothing later removed it")
        return
    found = _setter(live, job_of_index)
    setter = job_of_index.get(want.index) if want.index is not None else None
    wanted_seq = int(setter["seq"]) if setter is not None else -1
    if (
        found is not None
        and int(found[1]["seq"]) > wanted_seq
        and found[1].get("outcome") == "failed"
    ):
        report.failed_but_landed += 1  # a write ARM took whose job could not be proven
        return
    report.stale_overwrites += 1
    report.note(f"{what}: {live!r} where intent {want.index} applied {want.value!r}")


# -- the Activity Log -----------------------------------------------------------------------


@dataclass
class _Write:
    request_id: str
    key: str
    fence: int | None
    caller: str
    method: str
    order: int
    landed: bool = False
    refused: bool = False
    status_message: str = ""
    status_code: str = ""


def _activity_writes(activity: Sequence[Mapping[str, Any]]) -> list[_Write]:
    """One entry per write request, in the order ARM received them, with how each ended."""
    writes: dict[str, _Write] = {}
    for n, event in enumerate(activity):
        http = event.get("httpRequest") or {}
        method = str(http.get("method", "")).upper()
        if method not in _WRITE_METHODS:
            continue
        request_id = str(http.get("clientRequestId") or f"#{n}")
        status = str((event.get("status") or {}).get("value", ""))
        props = event.get("properties") or {}
        write = writes.get(request_id)
        if write is None:
            write = writes[request_id] = _Write(
                request_id,
                resource_key(str(event.get("resourceId", ""))),
                fence_of(request_id),
                str(event.get("caller", "")),
                method,
                n,
            )
        # The last word counts: an operation ARM accepted and then ended Failed (stuck,
        # preempted) did not take effect.
        if status in ("Succeeded", "Accepted"):
            write.landed, write.refused = True, False
        elif status == "Failed":
            write.refused = not write.landed
            write.landed = False
            write.status_message = str(props.get("statusMessage", ""))
            write.status_code = str(props.get("statusCode", ""))
    return sorted(writes.values(), key=lambda w: w.order)


def _check_fences(writes: Sequence[_Write], report: CheckReport) -> None:
    highest: dict[str, int] = {}
    for w in writes:
        if w.fence is None:
            continue
        top = highest.get(w.key, -1)
        if w.fence < top:
            name = w.key.rsplit("/", 1)[-1]
            if w.landed:
                report.zombie_writes_landed += 1
                report.note(f"{name}: {w.method} by fence {w.fence} landed after fence {top}")
            else:
                report.zombie_writes_rejected += 1
        else:
            highest[w.key] = w.fence


def _check_double(ev: Evidence, writes: Sequence[_Write], report: CheckReport) -> None:
    """A job whose write (its verb, on its resource) landed for two different leases. A
    lease's other calls (a deallocate before a resize) are not the job's write.

    For an action or a delete that is an effect applied twice (a VM restarted twice, a
    re-created resource deleted). A body intent states what the body must hold, so a lease
    that took over and wrote the same fields again changed nothing a reader can see: that is
    counted apart (``rewritten_after_takeover``), not as a double application."""
    landed: set[tuple[str, int, str]] = {
        (w.key, w.fence, w.method) for w in writes if w.fence is not None and w.landed
    }
    kinds = {str(j["id"]): str((j.get("intent") or {}).get("kind")) for j in ev.jobs}
    written_by: dict[str, set[int]] = defaultdict(set)
    for e in ev.events:
        if e.get("event") != "write" or e.get("fence") is None:
            continue
        key = resource_key(str(e["resource_id"]))
        fence, verb = int(e["fence"]), str(e.get("verb") or "").upper()
        if (key, fence, verb) in landed:
            written_by[str(e["job_id"])].add(fence)
    for job_id, fences in written_by.items():
        if len(fences) < 2:
            continue
        if kinds.get(job_id) in ("action", "delete"):
            report.double_applied += 1
            report.note(f"job {job_id}: written by leases {sorted(fences)}, each landed")
        else:
            report.rewritten_after_takeover += 1


def _check_tokens(events: Sequence[Mapping[str, Any]], report: CheckReport) -> None:
    refused: dict[str, set[str]] = defaultdict(set)
    for e in events:
        key = resource_key(str(e.get("resource_id", "")))
        sent = e.get("etag_sent")
        if e.get("event") == "write" and sent and sent in refused[key]:
            report.stale_token_resent += 1
            report.note(f"job {e.get('job_id')}: wrote with ETag {sent} after it was refused")
        elif e.get("event") == "conflict" and e.get("kind") == "stale_version" and sent:
            refused[key].add(str(sent))


def _check_errors(ev: Evidence, report: CheckReport) -> None:
    seen: set[tuple[str, str]] = set()
    for e in ev.events:
        status = e.get("status")
        if e.get("event") == "conflict" and isinstance(status, int) and status >= 500:
            if str(e.get("message") or "").startswith(INJECTED):
                report.injected_errors_seen += 1
            else:
                report.server_errors += 1
                report.note(f"job {e.get('job_id')}: {status} {e.get('code')}: {e.get('message')}")
    for event in ev.activity:
        props = event.get("properties") or {}
        code = str(props.get("statusCode", ""))
        message = str(props.get("statusMessage", ""))
        if code in ("InternalServerError", "ServiceUnavailable", "BadGateway", "GatewayTimeout"):
            if INJECTED in message:
                continue
            ident = (str(event.get("eventDataId")), code)
            if ident not in seen:
                seen.add(ident)
                report.server_errors += 1
                report.note(f"Activity Log: {code} {message[:200]}")


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _calls(
    events: Sequence[Mapping[str, Any]], wanted: Callable[[Mapping[str, Any]], bool]
) -> list[float]:
    """When each ARM call (or budget spend) happened. A batch records one event per job for
    one call, so the events of one lease, round, instant and type are one call."""
    seen: set[tuple[Any, ...]] = set()
    out: list[float] = []
    for e in events:
        if not wanted(e):
            continue
        ident = (e.get("fence"), e.get("attempt"), e.get("ts"), e.get("event"), e.get("verb"))
        if ident not in seen:
            seen.add(ident)
            out.append(_seconds(str(e["ts"])))
    return sorted(out)


def _check_budget(ev: Evidence, writes: Sequence[_Write], report: CheckReport) -> None:
    b = ev.budget
    # Only the backoffs paid from the budget (a retry of a throttled or failed call); waits
    # on a busy resource and polls of an accepted write are not retries of a write.
    backoffs = _calls(
        ev.events,
        lambda e: e.get("event") == "backoff" and "budget_left" in (e.get("detail") or {}),
    )
    # Real work, as the budget counts it: writes and the transitions run before them.
    work = _calls(
        ev.events,
        lambda e: (
            e.get("event") == "write"
            or (e.get("event") == "prerequisite" and e.get("verb") == "POST")
        ),
    )
    lo = 0
    w_lo = w_hi = 0
    for hi, t in enumerate(backoffs):
        while backoffs[lo] < t - b.window:
            lo += 1
        while w_hi < len(work) and work[w_hi] <= t:
            w_hi += 1
        while w_lo < w_hi and work[w_lo] < t - b.window:
            w_lo += 1
        allowed = b.workers * b.floor + b.ratio * (w_hi - w_lo)
        if hi - lo + 1 > allowed:
            report.budget_exceeded_windows += 1
    per_second: dict[int, int] = defaultdict(int)
    for event in ev.activity:
        if str((event.get("status") or {}).get("value")) == "Started":
            stamp = event.get("eventTimestamp")
            if isinstance(stamp, str):
                per_second[int(_seconds(stamp))] += 1
    report.peak_writes_per_second = max(per_second.values(), default=0)
