"""Timeline analysis: events from every writer → operations → who overlapped whom.

The seeds' diagnosis step "lay every writer touching the resource on a timeline" made
mechanical. Activity Log events (BeginRequest/Started … EndRequest/Accepted … Succeeded/Failed)
and armguard job events (write … conflict/applied) become :class:`Operation` intervals per
resource and caller; the analysis then finds

* overlapping writers: two callers with writes in flight on one resource, or on a parent and
  its child (ARM serialises subnets through their VNet), at the same time;
* each conflict and the write that caused it: the other operation in flight on the resource or
  its parent (409/429 AnotherOperationInProgress), the write that advanced the ETag (412), the
  lock that was put in place (ScopeLocked);
* retry storms: one caller retrying one failing operation many times in a short window;
* stale replays: an ETag sent again after ARM rejected it with 412;
* tokenless writers: writes on ETag-bearing types without a concurrency token, as far as the
  logs can show it (the Activity Log never records request headers, so If-Match is invisible
  there; job events and logged request bodies are the evidence).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.classify import ConflictKind, classify, classify_error
from armguard.arm.errors import ErrorDetail, parse_error_body
from armguard.arm.ids import InvalidResourceId, ProviderLevel, ResourceId, parse_resource_id
from armguard.clock import Clock, isoformat
from armguard.diagnose.sources import (
    ActivityEvent,
    JobRecord,
    Record,
    SkippedEvent,
    check_time_range,
    parse_time,
    read_records,
)
from armguard.diagnose.story import JobStory, Mark
from armguard.diagnose.sweep import (
    CauseQuery,
    Interval,
    Pool,
    Steps,
    find_causes,
    find_root,
    overlap_groups,
)
from armguard.events import EventType

__all__ = [
    "CONFLICT_KINDS",
    "Conflict",
    "Mark",
    "Operation",
    "Overlap",
    "RetryStorm",
    "StaleReplay",
    "Timeline",
    "TimelineOptions",
    "TokenlessWriter",
    "analyse",
    "fit_resource_ids",
    "load_timeline",
    "parse_time_bound",
    "short_resource_id",
]

CONFLICT_KINDS = frozenset(
    {
        ConflictKind.STALE_VERSION,
        ConflictKind.OPERATION_IN_PROGRESS,
        ConflictKind.STATE_PREREQUISITE,
        ConflictKind.LOCKED,
    }
)
"""Failures caused by another writer or by the resource's state, not by the request itself."""

_TERMINAL = {"succeeded": "Succeeded", "failed": "Failed", "canceled": "Canceled"}
_WRITE_VERBS = frozenset({"write", "delete", "action"})
_MESSAGE_LIMIT = 2000
_MERGE_SECONDS = 2.0
"""A job's write and ARM's record of it start within this long of each other."""
_ETAG_RE = re.compile(r'"etag"\s*:\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_RELATIVE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# Types whose writes carry ETags (arm-protocol §3.2): every Microsoft.Network resource, VMs and
# scale sets (and their instances). Storage accounts, groups, tags, locks, deployments: none.
_ETAG_TYPES = (
    "microsoft.compute/virtualmachines",
    "microsoft.compute/virtualmachinescalesets",
    "microsoft.compute/virtualmachinescalesets/virtualmachines",
)

_TOKEN_NOTES = {
    "job_events": "the job events record every token armguard sent, and these writes sent none",
    "request_body": (
        "the logged request body carries no etag; an If-Match header is not recorded in the "
        "Activity Log, so a header token cannot be ruled out"
    ),
}


@dataclass(frozen=True)
class TimelineOptions:
    resource: ResourceId | None = None
    """Keep operations on this resource, the resources within it and its parent resources."""
    since: float | None = None
    until: float | None = None
    storm_retries: int = 5
    """A storm is at least this many retries of one operation by one caller …"""
    storm_window: float = 120.0
    """… within this many seconds."""


@dataclass(slots=True)
class Operation:
    """One request by one caller on one resource, from its start to its terminal event."""

    id: str
    source: str
    """``activity_log``, ``job_events`` or ``both`` (a job's write matched to ARM's record)."""
    resource_id: str
    caller: str
    operation: str
    verb: str
    start: float
    end: float | None
    """None: no terminal event in the log; the operation was still running when it ends."""
    status: str
    http_status: int | None = None
    code: str | None = None
    kind: str | None = None
    message: str | None = None
    etag_sent: str | None = None
    etag_live: str | None = None
    token: str = "unknown"
    """``sent``, ``none`` (job events), ``not_in_body`` (request body without etag), ``unknown``."""
    correlation_id: str | None = None
    operation_url: str | None = None
    job_id: str | None = None
    attempt: int | None = None
    files: tuple[str, ...] = ()
    own: bool = False
    """armguard's own request: a job's write, or ARM's record of one by the job's writer."""
    coalesced: tuple[tuple[str, str], ...] = ()
    """(job ID, writer) of the other intents this one ARM write carried."""

    @property
    def outcome(self) -> str:
        """``succeeded``, ``conflict``, ``failed``, ``canceled`` or ``running``."""
        if self.end is None:
            return "running"
        if self.status == "Succeeded":
            return "succeeded"
        if self.status == "Canceled":
            return "canceled"
        if self.kind is not None and self.kind in CONFLICT_KINDS:
            return "conflict"
        return "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource_id": self.resource_id,
            "caller": self.caller,
            "operation": self.operation,
            "verb": self.verb,
            "start": isoformat(self.start),
            "end": None if self.end is None else isoformat(self.end),
            "status": self.status,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "code": self.code,
            "kind": self.kind,
            "message": self.message,
            "etag_sent": self.etag_sent,
            "token": self.token,
            "correlation_id": self.correlation_id,
            "operation_url": self.operation_url,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "own": self.own,
            "coalesced": [{"job_id": j, "writer": w} for j, w in self.coalesced],
            "source": self.source,
            "files": list(self.files),
        }


@dataclass(frozen=True)
class Overlap:
    """Writes of two or more callers in flight together on one resource, or on a parent and its
    child, joined into one group: each of its operations was in flight with another caller's."""

    resource_id: str
    callers: tuple[str, ...]
    resources: tuple[str, ...]
    relation: str
    """``same`` resource, or ``parent/child``."""
    start: float
    end: float
    operations: tuple[str, ...]
    windows: tuple[tuple[float, float], ...] = ()
    """When writes of different callers were in flight together; ``start``…``end`` spans them."""

    @property
    def seconds(self) -> float:
        """Time during which writes of different callers were in flight together."""
        spans = self.windows or ((self.start, self.end),)
        return round(sum(e - s for s, e in spans), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "callers": list(self.callers),
            "resources": list(self.resources),
            "relation": self.relation,
            "start": isoformat(self.start),
            "end": isoformat(self.end),
            "seconds": self.seconds,
            "windows": [{"start": isoformat(s), "end": isoformat(e)} for s, e in self.windows],
            "operations": list(self.operations),
        }


@dataclass(frozen=True)
class Conflict:
    operation: Operation
    cause: Operation | None
    relation: str | None
    """How the cause relates: ``in_flight``, ``completed_before``, ``lock``; ``state`` when
    the resource's own state refused the write (no write is the cause)."""
    explanation: str
    handled: str | None = None
    """For armguard's own writes: ``absorbed`` (the job went on and ended well) or
    ``surfaced`` (the conflict ended the job); None for other writers."""

    def to_json(self) -> dict[str, Any]:
        op = self.operation
        cause = self.cause
        return {
            "operation": op.id,
            "resource_id": op.resource_id,
            "caller": op.caller,
            "time": isoformat(op.end if op.end is not None else op.start),
            "http_status": op.http_status,
            "code": op.code,
            "kind": op.kind,
            "message": op.message,
            "cause": None
            if cause is None
            else {
                "operation": cause.id,
                "caller": cause.caller,
                "resource_id": cause.resource_id,
                "operation_name": cause.operation,
                "relation": self.relation,
                "start": isoformat(cause.start),
                "end": None if cause.end is None else isoformat(cause.end),
                "outcome": cause.outcome,
            },
            "relation": self.relation,
            "handled": self.handled,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class RetryStorm:
    caller: str
    resource_id: str
    operation: str
    retries: int
    start: float
    end: float
    kinds: Mapping[str, int]
    operations: tuple[str, ...]

    @property
    def rate_per_minute(self) -> float:
        return round(self.retries * 60.0 / max(self.end - self.start, 1.0), 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "caller": self.caller,
            "resource_id": self.resource_id,
            "operation": self.operation,
            "retries": self.retries,
            "attempts": len(self.operations),
            "start": isoformat(self.start),
            "end": isoformat(self.end),
            "seconds": round(self.end - self.start, 3),
            "rate_per_minute": self.rate_per_minute,
            "kinds": dict(sorted(self.kinds.items())),
            "operations": list(self.operations),
        }


@dataclass(frozen=True)
class StaleReplay:
    operation: Operation
    rejected: Operation
    etag: str

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation.id,
            "resource_id": self.operation.resource_id,
            "caller": self.operation.caller,
            "time": isoformat(self.operation.start),
            "etag": self.etag,
            "rejected_operation": self.rejected.id,
            "rejected_caller": self.rejected.caller,
            "rejected_at": isoformat(
                self.rejected.end if self.rejected.end is not None else self.rejected.start
            ),
        }


@dataclass(frozen=True)
class TokenlessWriter:
    caller: str
    resource_id: str
    writes: int
    evidence: str
    """``job_events`` (certain) or ``request_body`` (no etag in the body; header unknown)."""
    operations: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "caller": self.caller,
            "resource_id": self.resource_id,
            "writes": self.writes,
            "evidence": self.evidence,
            "determination": _TOKEN_NOTES[self.evidence],
            "operations": list(self.operations),
        }


@dataclass
class Timeline:
    options: TimelineOptions
    operations: list[Operation]
    overlaps: list[Overlap]
    conflicts: list[Conflict]
    storms: list[RetryStorm]
    stale_replays: list[StaleReplay]
    tokenless: list[TokenlessWriter]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    unknown_tokens: dict[str, int] = field(default_factory=dict)
    """ETag-bearing resource → writes whose token the logs cannot show."""
    steps: dict[str, int] = field(default_factory=dict)
    """Inner-loop work of each finding, for tests of growth; not part of the output."""
    marks: list[Mark] = field(default_factory=list)
    """Steps of armguard's jobs to draw on the bars: rebases, drops, prerequisites…"""
    story: JobStory = field(default_factory=JobStory, repr=False)
    _resources: _Resources = field(default_factory=lambda: _Resources(), repr=False)  # noqa: PLW0108 (defined below)

    @property
    def start(self) -> float | None:
        return min((o.start for o in self.operations), default=None)

    @property
    def end(self) -> float | None:
        ends = [o.end if o.end is not None else o.start for o in self.operations]
        return max(ends, default=None)

    def summary(self) -> list[dict[str, Any]]:
        """One row per resource: writers, writes, conflicts by kind, storms, replays, tokenless."""
        rows: dict[str, dict[str, Any]] = {}
        display: dict[str, str] = {}
        for op in self.operations:
            key = op.resource_id.lower()
            display.setdefault(key, op.resource_id)
            row = rows.setdefault(
                key,
                {
                    "writers": set(),
                    "writes": 0,
                    "conflicts": defaultdict(int),
                    "failed": 0,
                    "overlaps": 0,
                    "retry_storms": 0,
                    "stale_replays": 0,
                    "tokenless_writers": set(),
                },
            )
            if op.verb in _WRITE_VERBS:
                row["writers"].add(op.caller)
                row["writes"] += 1
            if op.outcome == "conflict" and op.kind:
                row["conflicts"][op.kind] += 1
            elif op.outcome == "failed":
                row["failed"] += 1
        for overlap in self.overlaps:
            for res in {r.lower() for r in overlap.resources}:
                if res in rows:
                    rows[res]["overlaps"] += 1
        for storm in self.storms:
            rows[storm.resource_id.lower()]["retry_storms"] += 1
        for replay in self.stale_replays:
            rows[replay.operation.resource_id.lower()]["stale_replays"] += 1
        for writer in self.tokenless:
            rows[writer.resource_id.lower()]["tokenless_writers"].add(writer.caller)
        out = []
        for key in sorted(rows):
            row = rows[key]
            out.append(
                {
                    "resource_id": display[key],
                    "writers": sorted(row["writers"]),
                    "writes": row["writes"],
                    "conflicts": dict(sorted(row["conflicts"].items())),
                    "failed": row["failed"],
                    "overlaps": row["overlaps"],
                    "retry_storms": row["retry_storms"],
                    "stale_replays": row["stale_replays"],
                    "tokenless_writers": sorted(row["tokenless_writers"]),
                    "tokens_unknown": self.unknown_tokens.get(key, 0),
                }
            )
        return out

    def headline(self) -> dict[str, Any]:
        """The run in numbers: intents and how they ended, conflicts by who met them, lost."""
        absorbed: Counter[str] = Counter()
        surfaced: Counter[str] = Counter()
        others: Counter[str] = Counter()
        for c in self.conflicts:
            kind = c.operation.kind or "unknown"
            {"absorbed": absorbed, "surfaced": surfaced}.get(c.handled or "", others)[kind] += 1
        steps: dict[str, set[str]] = defaultdict(set)
        for m in self.marks:
            steps[m.event].update(m.job_ids)
        transitions = sum(1 for m in self.marks if m.event == "prerequisite")
        coalesced_writes = sum(1 for o in self.operations if o.coalesced)
        lost, lost_why = self.story.lost()
        intents = len(self.story.intents)
        outcomes = self.story.outcomes()
        own = [o for o in self.operations if o.own and o.verb in _WRITE_VERBS]
        callers = {o.caller for o in self.operations}
        return {
            "intents": intents,
            "outcomes": outcomes,
            "lost_intents": lost,
            "lost_intents_basis": lost_why,
            "operations": len(self.operations),
            "callers": len(callers),
            "armguard_requests": len(own),
            "conflicts_absorbed": dict(sorted(absorbed.items())),
            "conflicts_surfaced": dict(sorted(surfaced.items())),
            "conflicts_of_other_writers": dict(sorted(others.items())),
            "rebased": len(steps["rebased"]),
            "dropped_stale": len(steps["dropped_stale"]),
            "already_satisfied": len(steps["already_satisfied"]),
            "prerequisite_transitions": transitions,
            "coalesced_writes": coalesced_writes,
            "text": _headline_text(
                intents=intents,
                outcomes=outcomes,
                absorbed=absorbed,
                surfaced=surfaced,
                others=others,
                lost=lost,
                operations=len(self.operations),
            ),
        }

    def families(self) -> list[tuple[str, list[Operation]]]:
        """Operations per top-level resource (a VNet with its subnets), by first activity."""
        groups: dict[str, tuple[str, list[Operation]]] = {}
        for op in self.operations:
            root = self._resources.family_root(op.resource_id)
            groups.setdefault(root.lower(), (root, []))[1].append(op)
        return list(groups.values())

    def family_of(self, resource_id: str) -> str:
        """The key of the top-level resource whose chart ``resource_id`` is drawn on."""
        return self._resources.family(resource_id)

    def notes(self) -> list[str]:
        notes = []
        if any(self.unknown_tokens.values()):
            notes.append(
                "Some writes on ETag-bearing resources have no logged request body: whether they "
                "sent a token (If-Match header or body etag) cannot be told from the Activity Log."
            )
        if any(o.source == "activity_log" and o.token == "not_in_body" for o in self.operations):
            notes.append(
                "The Activity Log records request bodies but never request headers: a write whose "
                "body has no etag may still have sent If-Match. Job events show tokens exactly."
            )
        skipped: dict[str, int] = defaultdict(int)
        for counts in self.inputs:
            for reason, n in (counts.get("skipped_events") or {}).items():
                skipped[reason] += n
        for reason, n in sorted(skipped.items()):
            notes.append(
                f"{n} event{'s' if n != 1 else ''} skipped ({reason}): an event that names no "
                "resource cannot be placed on a timeline."
            )
        if any(o.end is None for o in self.operations):
            notes.append(
                "Operations without a terminal event were still running when the log ends; they "
                "are drawn up to the end of the log."
            )
        return notes

    def to_json(self) -> dict[str, Any]:
        start, end = self.start, self.end
        return {
            "headline": self.headline(),
            "inputs": self.inputs,
            "window": {
                "start": None if start is None else isoformat(start),
                "end": None if end is None else isoformat(end),
            },
            "settings": {
                "resource": None if self.options.resource is None else str(self.options.resource),
                "since": None if self.options.since is None else isoformat(self.options.since),
                "until": None if self.options.until is None else isoformat(self.options.until),
                "storm_retries": self.options.storm_retries,
                "storm_window_seconds": self.options.storm_window,
            },
            "resources": self.summary(),
            "overlaps": [o.to_json() for o in self.overlaps],
            "conflicts": [c.to_json() for c in self.conflicts],
            "retry_storms": [s.to_json() for s in self.storms],
            "stale_replays": [r.to_json() for r in self.stale_replays],
            "tokenless_writers": [t.to_json() for t in self.tokenless],
            "operations": [o.to_json() for o in self.operations],
            "marks": [m.to_json() for m in self.marks],
            "notes": self.notes(),
        }


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def _headline_text(
    *,
    intents: int,
    outcomes: Mapping[str, int],
    absorbed: Mapping[str, int],
    surfaced: Mapping[str, int],
    others: Mapping[str, int],
    lost: int | None,
    operations: int,
) -> str:
    parts = []
    if intents:
        parts.append(f"{intents} intent{'s' if intents != 1 else ''}: {_counts(outcomes)}.")
        n = sum(absorbed.values())
        parts.append(
            f"armguard absorbed {n} conflict{'s' if n != 1 else ''}"
            + (f" ({_counts(absorbed)})" if n else "")
            + "; "
            + (f"{_counts(surfaced)} reached a writer." if surfaced else "none reached a writer.")
        )
        if lost is not None:
            parts.append(f"Lost intents: {lost}.")
    else:
        parts.append(f"{operations} operation{'s' if operations != 1 else ''}, no job events.")
    if others:
        n = sum(others.values())
        parts.append(
            f"{n} conflict{'s' if n != 1 else ''} met by writers outside armguard "
            f"({_counts(others)})."
        )
    return " ".join(parts)


def short_resource_id(resource_id: str) -> str:
    """``prod-rg/virtualNetworks/vnet-prod/subnets/subnet-app``: enough to tell rows apart."""
    try:
        rid = parse_resource_id(resource_id)
    except InvalidResourceId:
        return resource_id
    parts = [rid.resource_group or rid.subscription]
    for level in rid.levels:
        parts.extend(f"{t}/{n}" for t, n in level.pairs)
    return "/".join(parts)


def fit_resource_ids(resource_ids: Iterable[str], width: int) -> dict[str, str]:
    """Each resource ID's short form, cut to ``width`` characters from the left.

    A table too narrow for an ID truncates it on the right, where IDs differ (three subnets of
    one VNet become three identical cells); the tail is what tells them apart, so that is what
    is kept, from a ``/`` when one is near. Cut IDs that would still look the same keep more
    characters until they differ.
    """
    shorts = {rid: short_resource_id(rid) for rid in resource_ids}

    def cut(text: str, keep: int) -> str:
        if len(text) <= keep:
            return text
        tail = text[-(keep - 1) :]
        slash = tail.find("/")
        if 0 <= slash < keep // 3:
            tail = tail[slash:]
        return "…" + tail

    keep = {rid: max(width, 8) for rid in shorts}
    while True:
        shown = {rid: cut(text, keep[rid]) for rid, text in shorts.items()}
        seen: dict[str, list[str]] = defaultdict(list)
        for rid, text in shown.items():
            seen[text.lower()].append(rid)
        clashes = [rids for rids in seen.values() if len(rids) > 1]
        grew = False
        for rids in clashes:
            for rid in rids:
                if keep[rid] < len(shorts[rid]):
                    keep[rid] = min(len(shorts[rid]), keep[rid] + 8)
                    grew = True
        if not grew:
            return shown


# --- time bounds -------------------------------------------------------------------------------


def parse_time_bound(text: str, clock: Clock) -> float:
    """``2026-04-27T10:00:00Z`` or a duration back from now: ``2h``, ``30m``, ``90s``, ``1d``."""
    m = _RELATIVE_RE.match(text.strip())
    if m:
        ts = clock.now() - float(m.group(1)) * _UNITS[m.group(2).lower()]
        return check_time_range(ts, f"'{text}' back from now")
    return parse_time(text)


# --- resource relations ------------------------------------------------------------------------


class _Resources:
    """Parsed IDs, cached: logs repeat a handful of resources thousands of times."""

    def __init__(self) -> None:
        self._cache: dict[str, ResourceId | None] = {}
        self._lineage: dict[str, tuple[str, ...]] = {}

    def get(self, text: str) -> ResourceId | None:
        key = text.lower()
        if key not in self._cache:
            try:
                self._cache[key] = parse_resource_id(text)
            except InvalidResourceId:
                self._cache[key] = None
        return self._cache[key]

    def lineage(self, text: str) -> tuple[str, ...]:
        """The resource's key, then the keys of the resources it nests in within its provider
        level (a subnet's VNet), nearest first: the resources ARM serialises it with."""
        key = text.lower()
        found = self._lineage.get(key)
        if found is not None:
            return found
        rid = self.get(text)
        if rid is None or not rid.levels:
            found = (key,)
        else:
            last = rid.levels[-1]
            keys = [rid.key]
            for k in range(len(last.pairs) - 1, 0, -1):
                level = ProviderLevel(last.namespace, last.pairs[:k])
                keys.append(
                    ResourceId(rid.subscription, rid.resource_group, (*rid.levels[:-1], level)).key
                )
            found = tuple(keys)
        self._lineage[key] = found
        return found

    def family(self, text: str) -> str:
        """The top-level resource whose timeline the resource belongs on (VNet for a subnet)."""
        return self.family_root(text).lower()

    def family_root(self, text: str) -> str:
        rid = self.get(text)
        if rid is None or not rid.levels:
            return text
        first = rid.levels[0]
        root = ResourceId(
            rid.subscription, rid.resource_group, (ProviderLevel(first.namespace, first.pairs[:1]),)
        )
        return str(root)

    def relation(self, a: str, b: str) -> str | None:
        """``same``, ``parent/child`` (one nests in the other's provider level), or None."""
        if a.lower() == b.lower():
            return "same"
        ra, rb = self.get(a), self.get(b)
        if ra is None or rb is None or not ra.levels or not rb.levels:
            return None
        if len(ra.levels) != len(rb.levels):
            return None  # an extension resource (a lock, tags) does not hold its scope
        if ra.is_within(rb) or rb.is_within(ra):
            return "parent/child"
        return None

    def matches_filter(self, text: str, wanted: ResourceId) -> bool:
        rid = self.get(text)
        if rid is None:
            return text.lower() == wanted.key
        if rid.is_within(wanted):
            return True
        return rid.is_resource and wanted.is_within(rid)

    def carries_etag(self, text: str) -> bool:
        rid = self.get(text)
        if rid is None or not rid.levels:
            return False
        type_ = rid.type.lower()
        return type_.startswith("microsoft.network/") or type_ in _ETAG_TYPES


# --- building operations -------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _one_file(source: str) -> tuple[str, ...]:
    """One shared tuple per input file: most operations come from one."""
    return (source,)


_VERBS = {v: v for v in ("write", "delete", "action", "read")}


def _verb(operation: str) -> str:
    # The constant, not the sliced text: every operation shares one string.
    return _VERBS.get(operation.rsplit("/", 1)[-1].lower(), "other")


def _classify(http_status: int | None, message: str | None) -> tuple[str | None, str | None, Any]:
    try:
        error = parse_error_body(http_status, message)
    except RecursionError:
        # JSON nested past what the decoder reads is no ARM body; its words still count.
        error = ErrorDetail("", (message or "")[:_MESSAGE_LIMIT])
    result = classify_error(http_status, error)
    return result.code or None, str(result.kind), result


def _body_etag(body: str | None) -> tuple[str, str | None]:
    """(token state, etag) from a logged request body."""
    if body is None:
        return "unknown", None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        m = _ETAG_RE.search(body)  # bodies are sometimes truncated in the log
        return ("sent", m.group(1)) if m else ("not_in_body", None)
    if isinstance(data, Mapping) and isinstance(data.get("etag"), str) and data["etag"]:
        return "sent", str(data["etag"])
    return "not_in_body", None


class _ActivityGroup:
    """The events of one operation, folded as they stream in (in any order: ``az`` lists the
    newest first) so that no event body outlives its line."""

    __slots__ = (
        "caller",
        "correlation_id",
        "files",
        "first_ts",
        "http_any",
        "last",
        "message",
        "operation",
        "resource_id",
        "terminal",
        "token",
    )

    def __init__(self, event: ActivityEvent) -> None:
        self.first_ts = event.ts
        self.resource_id = event.resource_id
        self.operation = event.operation
        self.caller = event.caller
        self.correlation_id = event.correlation_id
        self.files: tuple[str, ...] = _one_file(event.source)
        self.last: tuple[float, str, int | None] = (event.ts, event.status, event.http_status)
        self.terminal: tuple[float, str, int | None] | None = None
        self.http_any: int | None = None
        self.message: tuple[float, str] | None = None
        self.token: tuple[str, str | None] = ("unknown", None)
        self.add(event, first=True)

    def add(self, event: ActivityEvent, first: bool = False) -> None:
        if not first:
            if event.source not in self.files:
                self.files = tuple(sorted((*self.files, event.source)))
            if event.ts < self.first_ts:
                self.first_ts = event.ts
                self.resource_id = event.resource_id
            if event.ts >= self.last[0]:
                self.last = (event.ts, event.status, event.http_status)
        self.caller = self.caller or event.caller
        self.correlation_id = self.correlation_id or event.correlation_id
        if event.http_status is not None:
            self.http_any = event.http_status
        status = event.status.lower()
        if status in _TERMINAL and (self.terminal is None or event.ts >= self.terminal[0]):
            self.terminal = (event.ts, _TERMINAL[status], event.http_status)
        # Keep the failure's body: the newest message, unless a failed event already gave one.
        if event.status_message and (
            status == "failed" or self.message is None or event.ts >= self.message[0]
        ):
            self.message = (event.ts, event.status_message[:_MESSAGE_LIMIT])
        if event.request_body and self.token[0] == "unknown":
            self.token = _body_etag(event.request_body)

    def operation_record(self) -> Operation:
        terminal = self.terminal
        status = terminal[1] if terminal else (self.last[1] or "Started")
        if terminal is not None:
            http = terminal[2] if terminal[2] is not None else None
        else:
            http = self.last[2] if self.last[2] is not None else self.http_any
        if http is None and status == "Failed":
            http = self.http_any
        op = Operation(
            id="",
            source="activity_log",
            resource_id=self.resource_id,
            caller=self.caller or "(unknown caller)",
            operation=self.operation,
            verb=_verb(self.operation),
            start=self.first_ts,
            end=terminal[0] if terminal else None,
            status=status,
            http_status=http,
            correlation_id=self.correlation_id or None,
            files=self.files,
        )
        op.token, op.etag_sent = self.token
        if status == "Failed":
            message = self.message[1] if self.message else None
            op.message = message
            op.code, op.kind, result = _classify(http, message)
            op.operation_url = result.operation_url
            if op.etag_sent is None and result.etag_sent:
                op.etag_sent = result.etag_sent
            op.etag_live = result.etag_live
        return op


def _operation_name(resource_id: str, verb: str | None, resources: _Resources) -> str:
    rid = resources.get(resource_id)
    type_ = rid.type if rid is not None else "resource"
    v = (verb or "write").lower()
    if v in ("delete",):
        suffix = "delete"
    elif v in ("post", "action") or v.startswith("action"):
        suffix = "action"
    else:
        suffix = "write"
    return f"{type_}/{suffix}"


def _job_write(rec: JobRecord, resources: _Resources) -> Operation:
    """An operation started by a job's ARM write (or, in a partial log, by its conflict)."""
    ev = rec.event
    target = ev.resource_id
    path = ev.detail.get("path") if isinstance(ev.detail, Mapping) else None
    if isinstance(path, str) and path.lower() != target.lower():
        # The request went elsewhere than the intent's resource (tags go to .../tags/default):
        # ARM logs that ID, so the operation is placed there, where its record can join it.
        found = resources.get(path)
        if found is not None and found.is_within(resources.get(target) or found):
            target = str(found)
    name = _operation_name(target, ev.verb, resources)
    return Operation(
        id="",
        source="job_events",
        resource_id=target,
        caller=ev.writer,
        operation=name,
        verb=_verb(name),
        start=rec.ts,
        end=None,
        status="Started",
        etag_sent=ev.etag_sent,
        token="sent" if ev.etag_sent else "none",
        job_id=ev.job_id,
        attempt=ev.attempt,
        files=(rec.source,),
        own=True,
    )


def _job_operations(records: list[JobRecord], resources: _Resources) -> list[Operation]:
    by_job: dict[str, list[JobRecord]] = defaultdict(list)
    for rec in records:
        by_job[rec.event.job_id].append(rec)
    out: list[Operation] = []
    for job_records in by_job.values():
        job_records.sort(key=lambda r: r.ts)
        current: Operation | None = None
        for rec in job_records:
            ev = rec.event
            kind = ev.event
            if kind == EventType.WRITE:
                if current is not None:
                    out.append(current)
                current = _job_write(rec, resources)
            elif kind == EventType.WAITING and current is not None:
                current.operation_url = ev.operation_url or current.operation_url
                current.status = "Accepted"
            elif kind == EventType.CONFLICT or (
                kind in (EventType.FAILED, EventType.BLOCKED) and current is not None
            ):
                op = current
                if op is None:
                    # A conflict without its write event (a partial log): an instant attempt.
                    op = _job_write(rec, resources)
                op.end = rec.ts
                op.status = "Failed"
                op.http_status = ev.status
                op.code = ev.code
                op.message = ev.message[:_MESSAGE_LIMIT] if ev.message else None
                op.operation_url = ev.operation_url or op.operation_url
                op.etag_live = ev.etag_live
                result = classify(ev.status, ev.code, ev.message)
                op.kind = ev.kind or str(result.kind)
                if op.etag_sent is None and result.etag_sent:
                    op.etag_sent = result.etag_sent
                out.append(op)
                current = None
            elif (
                kind in (EventType.APPLIED, EventType.VERIFIED, EventType.ALREADY_SATISFIED)
                and current is not None
            ):
                current.end = rec.ts
                current.status = "Succeeded"
                out.append(current)
                current = None
        if current is not None:
            out.append(current)
    return _fold_batches(out)


def _fold_batches(ops: list[Operation]) -> list[Operation]:
    """One ARM write that carried several jobs' intents is one operation.

    The coordinator records a batch's write (and ARM's answer) on every job of the batch, with
    one timestamp: left apart, one coalesced write would read as several callers writing the
    same resource at the same moment.
    """
    batches: dict[tuple[Any, ...], Operation] = {}
    out: list[Operation] = []
    for op in ops:
        key = (op.start, op.end, op.resource_id.lower(), op.operation.lower(), op.status)
        first = batches.get(key)
        if first is None or op.job_id is None:
            batches[key] = op
            out.append(op)
            continue
        first.coalesced = (*first.coalesced, (op.job_id, op.caller))
        first.files = tuple(sorted({*first.files, *op.files}))
    return out


class _Unmatched:
    """ARM's records of one caller's writes on one resource, by start, each matched at most
    once: the nearest unmatched one to a time is found without rescanning matched ones."""

    def __init__(self, ops: list[Operation]) -> None:
        self.ops = sorted(ops, key=lambda o: o.start)
        self.starts = [o.start for o in self.ops]
        n = len(self.ops)
        # Union-find links to the nearest unmatched record: at or after index i (n: none), and,
        # shifted by one, at or before index i - 1 (0: none).
        self._right = list(range(n + 1))
        self._left = list(range(n + 1))

    def take_nearest(self, at: float, within: float) -> Operation | None:
        cut = bisect.bisect_left(self.starts, at)
        right = find_root(self._right, cut)
        left = find_root(self._left, cut) - 1  # the slot before the cut
        best: int | None = None
        for i in (left, right):
            if not 0 <= i < len(self.ops) or abs(self.starts[i] - at) > within:
                continue
            if best is None or abs(self.starts[i] - at) < abs(self.starts[best] - at):
                best = i
        if best is None:
            return None
        self._right[best] = best + 1
        self._left[best + 1] = best
        return self.ops[best]


def _merge_sources(activity: list[Operation], jobs: list[Operation]) -> list[Operation]:
    """A job's write that ARM also logged is one operation: ARM's record plus the job's token."""
    grouped: dict[tuple[str, str, str], list[Operation]] = defaultdict(list)
    for op in activity:
        grouped[(op.resource_id.lower(), op.caller.lower(), op.verb)].append(op)
    index = {key: _Unmatched(ops) for key, ops in grouped.items()}
    merged: list[Operation] = []
    for job in jobs:
        match = None
        # ARM logs a coalesced write under one of the writers it carried, any of them.
        for n, (_job_id, caller) in enumerate(((job.job_id, job.caller), *job.coalesced)):
            candidates = index.get((job.resource_id.lower(), caller.lower(), job.verb))
            match = candidates.take_nearest(job.start, _MERGE_SECONDS) if candidates else None
            if match is not None:
                if n:
                    lead = job.coalesced[n - 1]
                    job.coalesced = (
                        (str(job.job_id), job.caller),
                        *(c for c in job.coalesced if c != lead),
                    )
                    job.job_id = lead[0]
                break
        if match is None:
            merged.append(job)
            continue
        match.own = True
        match.coalesced = job.coalesced
        match.source = "both"
        match.token = job.token
        match.etag_sent = job.etag_sent or match.etag_sent
        match.job_id = job.job_id
        match.attempt = job.attempt
        match.operation_url = match.operation_url or job.operation_url
        match.files = tuple(sorted({*match.files, *job.files}))
        if match.kind is None and job.kind is not None and match.status == "Failed":
            match.kind = job.kind
    return activity + merged


# --- findings --------------------------------------------------------------------------------------


def _overlaps(
    ops: Sequence[Operation], resources: _Resources, log_end: float, steps: Steps
) -> list[Overlap]:
    """Writes of different callers in flight together on related resources, in connected
    groups: one long write met by a series of refused attempts is one overlap, however many
    callers took part (a pair-by-pair list grows with the square of a storm)."""
    writes = [op for op in ops if op.verb in _WRITE_VERBS]
    # armguard's jobs are one writer to the sweep: the coordinator orders them itself (a lease
    # per resource and its parents), so two of them in flight together are no finding.
    items = [
        Interval(
            op.start,
            _end(op, log_end),
            _OWN if op.own else op.caller,
            resources.lineage(op.resource_id),
        )
        for op in writes
    ]
    out: list[Overlap] = []
    for group in overlap_groups(items, steps):
        members = [writes[i] for i in group.members]
        res = sorted({o.resource_id for o in members}, key=lambda r: (len(r), r.lower()))
        out.append(
            Overlap(
                resource_id=res[0],
                callers=tuple(sorted({o.caller for o in members})),
                resources=tuple(res),
                relation="parent/child" if group.nested else "same",
                start=group.windows[0][0],
                end=group.windows[-1][1],
                windows=tuple(group.windows),
                operations=tuple(o.id for o in members),
            )
        )
    out.sort(key=lambda o: (o.start, o.resource_id.lower(), o.callers))
    return out


_OWN = "\x00armguard"
"""The sweep's caller key for every armguard job: no log names a caller with a NUL in it."""


def _end(op: Operation, log_end: float) -> float:
    return op.end if op.end is not None else max(log_end, op.start)


_CAUSE_QUERIES = {
    # The operation holding the resource: in flight at that moment and not itself refused.
    ConflictKind.OPERATION_IN_PROGRESS: ("holder", Pool.ACCEPTED),
    # The write that moved the ETag on: the latest successful (or still running) one.
    ConflictKind.STALE_VERSION: ("latest", Pool.ADVANCING),
    # No query for a state prerequisite (a running VM refusing a resize): the state is its
    # cause, and the write that created the resource or last changed it is not to blame.
}


def _conflicts(
    ops: Sequence[Operation], resources: _Resources, log_end: float, steps: Steps
) -> list[Conflict]:
    items: list[Interval] = []
    for op in ops:
        pools = 0
        if op.verb in _WRITE_VERBS:
            pools = Pool.ANY
            if op.outcome != "conflict":
                pools |= Pool.ACCEPTED
            if op.outcome in ("succeeded", "running"):
                pools |= Pool.ADVANCING
        items.append(
            Interval(
                op.start, _end(op, log_end), op.caller, resources.lineage(op.resource_id), pools
            )
        )
    queries: list[CauseQuery] = []
    for n, op in enumerate(ops):
        if op.outcome == "conflict" and op.kind in _CAUSE_QUERIES:
            mode, pool = _CAUSE_QUERIES[ConflictKind(op.kind)]
            queries.append(CauseQuery(n, mode, pool))
    answers = dict(zip((q.index for q in queries), find_causes(items, queries, steps), strict=True))
    locks = _LockIndex(ops, resources)
    out: list[Conflict] = []
    for n, op in enumerate(ops):
        if op.outcome != "conflict":
            continue
        cause: Operation | None = None
        relation: str | None = None
        if op.kind == ConflictKind.LOCKED:
            cause = locks.cause(op)
            relation = "lock" if cause else None
        elif op.kind == ConflictKind.STATE_PREREQUISITE:
            relation = "state"
        elif n in answers:
            found, in_flight = answers[n]
            if found is not None:
                cause = ops[found]
                relation = "in_flight" if in_flight else "completed_before"
        out.append(Conflict(op, cause, relation, _explain(op, cause, relation)))
    return out


class _LockIndex:
    """Successful lock writes by the scope they lock, in time order."""

    def __init__(self, ops: Sequence[Operation], resources: _Resources) -> None:
        self._resources = resources
        self._by_scope: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self._ops = ops
        for n, op in enumerate(ops):
            if (
                op.operation.lower().startswith("microsoft.authorization/locks/write")
                and op.outcome == "succeeded"
            ):
                rid = resources.get(op.resource_id)
                if rid is not None:
                    self._by_scope[rid.scope.key].append((op.start, -n))
        for entries in self._by_scope.values():
            entries.sort()

    def cause(self, op: Operation) -> Operation | None:
        """The latest lock put in place, before the refusal, at the resource or above it."""
        target = self._resources.get(op.resource_id)
        if target is None:
            return None
        best: tuple[float, int] | None = None
        for scope in (target, *target.ancestors()):
            entries = self._by_scope.get(scope.key)
            if not entries:
                continue
            at = bisect.bisect_right(entries, (op.start, math.inf)) - 1
            if at >= 0 and (best is None or entries[at] > best):
                best = entries[at]
        return None if best is None else self._ops[-best[1]]


def _explain(op: Operation, cause: Operation | None, relation: str | None) -> str:
    what = f"{op.caller}'s {op.operation} got {op.http_status or ''} {op.code or op.kind}".replace(
        "  ", " "
    )
    if relation == "state":
        said = f" (ARM: {_first_sentence(op.message)})" if op.message else ""
        return (
            f"{what}: the resource's own state did not allow it{said}. The cause is the "
            "state, not an earlier write: change the state first (deallocate before a resize)."
        )
    if cause is None:
        reasons: dict[str, str] = {
            ConflictKind.LOCKED: "a lock set outside the log's window or scope",
            ConflictKind.STALE_VERSION: "a write not in these logs advanced the ETag",
            ConflictKind.OPERATION_IN_PROGRESS: "an operation not in these logs held it",
            ConflictKind.STATE_PREREQUISITE: "the resource's own state, not another writer",
        }
        reason = reasons.get(op.kind or "", "no known cause")
        return f"{what}; no causing write in the log ({reason})."
    when = {
        "in_flight": "which was in flight at that moment",
        "completed_before": "which had completed just before",
        "lock": "which put the lock in place",
    }.get(relation or "", "")
    where = (
        "" if cause.resource_id.lower() == op.resource_id.lower() else f" on {cause.resource_id}"
    )
    return f"{what}, caused by {cause.caller}'s {cause.operation}{where} ({cause.id}), {when}."


def _first_sentence(message: str) -> str:
    """The error's own words from an ARM body, cut to a sentence a tooltip can hold."""
    try:
        text = parse_error_body(None, message).message or message
    except RecursionError:
        text = message
    text = " ".join(text.split())
    cut = text.find(". ")
    text = text[: cut + 1] if 0 < cut < 200 else text
    return text if len(text) <= 200 else text[:199] + "…"


def _handled(conflicts: list[Conflict], story: JobStory) -> list[Conflict]:
    """Say which conflicts on armguard's own writes it absorbed and which ended a job.

    As ``armguard apply`` counts them: a conflict is surfaced when it is the last one of a job
    that ended failed or blocked, and absorbed otherwise (the job waited, rebased, ran a
    prerequisite, and ended well).
    """
    last: dict[str, int] = {}
    for n, c in enumerate(conflicts):
        for job_id in _jobs_of(c.operation):
            last[job_id] = n
    out = []
    for n, c in enumerate(conflicts):
        op = c.operation
        if not op.own:
            out.append(c)
            continue
        jobs = _jobs_of(op)
        surfaced = any(
            last.get(j) == n and story.outcome_of(j) in ("failed", "blocked") for j in jobs
        ) or (not jobs and story.failed_on(op.caller, op.resource_id))
        out.append(
            Conflict(
                op,
                c.cause,
                c.relation,
                c.explanation
                + (
                    " It ended the job: the writer was told."
                    if surfaced
                    else " armguard absorbed it: no writer saw it."
                ),
                "surfaced" if surfaced else "absorbed",
            )
        )
    return out


def _jobs_of(op: Operation) -> tuple[str, ...]:
    if op.job_id is None:
        return ()
    return (op.job_id, *(j for j, _ in op.coalesced))


def _storms(ops: Sequence[Operation], options: TimelineOptions) -> list[RetryStorm]:
    groups: dict[tuple[str, str, str], list[Operation]] = defaultdict(list)
    for op in ops:
        if op.verb in _WRITE_VERBS:
            groups[(op.caller, op.resource_id.lower(), op.operation.lower())].append(op)
    storms: list[RetryStorm] = []
    need = max(1, options.storm_retries)
    for attempts in groups.values():
        attempts.sort(key=lambda o: o.start)
        retries: list[tuple[Operation, Operation]] = []  # (retry, the failed attempt before it)
        for prev, cur in itertools.pairwise(attempts):
            if prev.outcome in ("conflict", "failed") and cur.start - prev.start <= (
                options.storm_window
            ):
                retries.append((cur, prev))
        # Sliding window over retries; qualifying windows merge into one storm.
        spans: list[tuple[int, int]] = []
        lo = 0
        for hi in range(len(retries)):
            while retries[hi][0].start - retries[lo][0].start > options.storm_window:
                lo += 1
            if hi - lo + 1 >= need:
                if spans and lo <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], hi)
                else:
                    spans.append((lo, hi))
        for lo, hi in spans:
            chunk = retries[lo : hi + 1]
            involved: dict[str, Operation] = {}
            for cur, prev in chunk:
                involved[prev.id] = prev
                involved[cur.id] = cur
            ordered = sorted(involved.values(), key=lambda o: o.start)
            kinds: dict[str, int] = defaultdict(int)
            for o in ordered:
                if o.outcome in ("conflict", "failed"):
                    kinds[o.kind or "unknown"] += 1
            storms.append(
                RetryStorm(
                    caller=ordered[0].caller,
                    resource_id=ordered[0].resource_id,
                    operation=ordered[0].operation,
                    retries=len(chunk),
                    start=ordered[0].start,
                    end=ordered[-1].start,
                    kinds=dict(kinds),
                    operations=tuple(o.id for o in ordered),
                )
            )
    storms.sort(key=lambda s: (s.start, s.caller))
    return storms


def _stale_replays(ops: Sequence[Operation]) -> list[StaleReplay]:
    rejected: dict[tuple[str, str], Operation] = {}
    out: list[StaleReplay] = []
    for op in sorted(ops, key=lambda o: o.start):
        if op.verb not in _WRITE_VERBS or not op.etag_sent:
            continue
        key = (op.resource_id.lower(), op.etag_sent)
        first = rejected.get(key)
        if first is not None:
            out.append(StaleReplay(op, first, op.etag_sent))
        elif op.kind == ConflictKind.STALE_VERSION:
            rejected[key] = op
    return out


def _tokenless(
    ops: Sequence[Operation], resources: _Resources
) -> tuple[list[TokenlessWriter], dict[str, int]]:
    found: dict[tuple[str, str, str], list[Operation]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    for op in ops:
        # armguard chose its own headers (If-Match where the type has ETags, none on a create
        # or a tags write): its writes are never a tokenless finding.
        if op.verb != "write" or op.own or not resources.carries_etag(op.resource_id):
            continue
        if op.token == "none":
            found[(op.resource_id, op.caller, "job_events")].append(op)
        elif op.token == "not_in_body":
            found[(op.resource_id, op.caller, "request_body")].append(op)
        elif op.token == "unknown":
            unknown[op.resource_id.lower()] += 1
    out = [
        TokenlessWriter(caller, rid, len(items), evidence, tuple(o.id for o in items))
        for (rid, caller, evidence), items in found.items()
    ]
    out.sort(key=lambda t: (t.resource_id.lower(), t.caller, t.evidence))
    return out, dict(unknown)


# --- entry points ------------------------------------------------------------------------------------


def analyse(
    records: Iterable[Record],
    options: TimelineOptions | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> Timeline:
    """Build operations from records and find overlaps, conflicts, storms, replays, tokenless."""
    opts = options or TimelineOptions()
    resources = _Resources()
    groups: dict[tuple[str, str, str], _ActivityGroup] = {}
    jobs: list[JobRecord] = []
    story = JobStory()
    for rec in records:
        resource = rec.resource_id if isinstance(rec, ActivityEvent) else rec.event.resource_id
        if opts.resource is not None and not resources.matches_filter(resource, opts.resource):
            continue
        if isinstance(rec, JobRecord):
            jobs.append(rec)
            story.add(rec)
            continue
        key = (
            rec.operation_id or rec.correlation_id or f"{rec.ts}:{rec.caller}",
            rec.resource_id.lower(),
            rec.operation.lower(),
        )
        group = groups.get(key)
        if group is None:
            groups[key] = _ActivityGroup(rec)
        else:
            group.add(rec)
    # Each group is dropped as its operation is built, so the two never all exist at once.
    activity: list[Operation] = []
    while groups:
        activity.append(groups.popitem()[1].operation_record())
    activity.reverse()
    ops = _merge_sources(activity, _job_operations(jobs, resources))
    jobs.clear()
    log_end = max((o.end if o.end is not None else o.start for o in ops), default=0.0)
    ops.sort(key=lambda o: (o.start, o.resource_id.lower(), o.caller, o.operation))
    marks = story.marks
    for n, op in enumerate(ops, 1):
        op.id = f"op{n}"
        if not op.own and story.is_own(op.caller, op.resource_id, op.start):
            op.own = True  # a prerequisite transition, or a write whose job event is missing
        if op.coalesced:
            writers = sorted({op.caller, *(w for _, w in op.coalesced)})
            count = len(op.coalesced) + 1
            marks.append(
                Mark(
                    op.start,
                    "coalesced",
                    f"{count} intents",
                    op.caller,
                    op.resource_id,
                    _jobs_of(op),
                    f"one ARM write carried {count} intents ({', '.join(writers)}): "
                    "armguard coalesced them instead of racing them",
                    op.id,
                )
            )
    marks.sort(key=lambda m: (m.ts, m.resource_id.lower(), m.writer))
    # Findings are computed on the whole log, then cut to the window: a 412 inside the window
    # keeps the write before it that moved the ETag, even when that write is outside.
    overlap_steps, cause_steps = Steps(), Steps()
    overlaps = _overlaps(ops, resources, log_end, overlap_steps)
    conflicts = _handled(_conflicts(ops, resources, log_end, cause_steps), story)
    storms = _storms(ops, opts)
    replays = _stale_replays(ops)
    if opts.since is not None or opts.until is not None:
        since = opts.since if opts.since is not None else float("-inf")
        until = opts.until if opts.until is not None else float("inf")
        inside = {o.id for o in ops if _end(o, log_end) >= since and o.start <= until}
        conflicts = [c for c in conflicts if c.operation.id in inside]
        overlaps = [o for o in overlaps if inside.intersection(o.operations)]
        storms = [s for s in storms if inside.intersection(s.operations)]
        replays = [r for r in replays if r.operation.id in inside]
        marks = [m for m in marks if since <= m.ts <= until]
        shown = inside | {c.cause.id for c in conflicts if c.cause is not None}
        ops = [o for o in ops if o.id in shown]
    tokenless, unknown = _tokenless(ops, resources)
    return Timeline(
        options=opts,
        operations=ops,
        overlaps=overlaps,
        conflicts=conflicts,
        storms=storms,
        stale_replays=replays,
        tokenless=tokenless,
        inputs=inputs or [],
        unknown_tokens=unknown,
        steps={"overlaps": overlap_steps.n, "causes": cause_steps.n},
        marks=marks,
        story=story,
    )


def load_timeline(
    paths: Sequence[str],
    options: TimelineOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Timeline:
    """Read every file (streaming) and analyse them together. Raises ``SourceError``."""
    inputs: list[dict[str, Any]] = []

    def records() -> Iterable[Record]:
        for path in paths:
            counts: dict[str, Any] = {
                "file": str(path),
                "activity_log_events": 0,
                "job_events": 0,
                "skipped_events": {},
            }
            inputs.append(counts)

            def skip(event: SkippedEvent, counts: dict[str, Any] = counts) -> None:
                counts["skipped_events"][event.reason] = (
                    counts["skipped_events"].get(event.reason, 0) + 1
                )

            for rec in read_records(path, on_progress, skip):
                counts[
                    "activity_log_events" if isinstance(rec, ActivityEvent) else "job_events"
                ] += 1
                yield rec

    return analyse(records(), options, inputs)
