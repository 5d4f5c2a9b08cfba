"""Job events: the one JSON-lines shape the coordinator writes and ``armguard timeline`` reads.

Each line is one step of one job, so a job's whole history (claimed, read, rebased, wrote,
conflicted, waited, backed off, applied…) can be laid on a timeline next to the Activity Log.
Tokens and passwords never appear here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["EventType", "JobEvent"]


class EventType(StrEnum):
    SUBMITTED = "submitted"
    COALESCED = "coalesced"  # folded into another job's write
    CLAIMED = "claimed"  # lease taken; fence = the lease's fencing token
    READ = "read"  # live state read; etag_live set
    REBASED = "rebased"  # intent recomputed on live state (baseline moved)
    ALREADY_SATISFIED = "already_satisfied"
    DROPPED_STALE = "dropped_stale"
    WRITE = "write"  # ARM write sent; etag_sent set, verb set
    CONFLICT = "conflict"  # ARM answered a classified failure; kind/status/code set
    WAITING = "waiting"  # state gate: waiting on operation_url or a state
    BACKOFF = "backoff"  # delay chosen after throttling / transient failure
    PREREQUISITE = "prerequisite"  # a declared transition ran (deallocate before resize)
    LEASE_LOST = "lease_lost"
    RELEASED = "released"
    REQUEUED = "requeued"  # back in the queue: a storm outlasted the retry budget; delay set
    APPLIED = "applied"
    FAILED = "failed"
    BLOCKED = "blocked"
    VERIFIED = "verified"


@dataclass(frozen=True)
class JobEvent:
    ts: str  # ISO 8601 UTC
    job_id: str
    resource_id: str
    writer: str
    event: str  # an EventType value
    attempt: int = 0
    fence: int | None = None
    verb: str | None = None
    kind: str | None = None  # a ConflictKind value for conflicts and failures
    status: int | None = None
    code: str | None = None
    message: str | None = None
    etag_sent: str | None = None
    etag_live: str | None = None
    operation_url: str | None = None
    delay: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # The fields as they are, not ``asdict``'s deep copy (which costs more than the store's
        # INSERT): json.dumps writes the same text for plain JSON values. Only a value json
        # cannot take as it is (a dataclass inside ``detail``…) goes the ``asdict`` way.
        data = {k: v for k, v in self.__dict__.items() if v is not None and v != {}}
        try:
            return json.dumps(data, separators=(",", ":"), sort_keys=True)
        except TypeError:
            data = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
            return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str | Mapping[str, Any]) -> JobEvent:
        data = json.loads(line) if isinstance(line, str) else dict(line)
        known = set(cls.__dataclass_fields__)
        missing = {"ts", "job_id", "resource_id", "writer", "event"} - data.keys()
        if missing:
            raise ValueError(f"job event lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})
