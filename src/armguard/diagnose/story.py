"""What armguard's own jobs did, read from their job events: the story a timeline tells.

The Activity Log shows ARM's side of each write. The job events add what only armguard knows:
which intents a write carried (several when the coordinator coalesced them into one), which
intents were rebased on live state or dropped because their baseline had moved, which state
transitions ran first (deallocate before a resize), which intents needed no write at all, and
how each intent ended. :class:`JobStory` folds those events as they stream in, keeping a few
small values per job, so a job log costs little next to the operations built from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from armguard.clock import isoformat
from armguard.diagnose.sources import JobRecord
from armguard.events import EventType

__all__ = ["FINAL_OUTCOMES", "JobStory", "Mark"]

FINAL_OUTCOMES = {
    EventType.APPLIED: "applied",
    EventType.ALREADY_SATISFIED: "already_satisfied",
    EventType.DROPPED_STALE: "dropped_stale",
    EventType.FAILED: "failed",
    EventType.BLOCKED: "blocked",
}
"""Job events that end an intent, and the outcome each one records."""

_OWN_SLACK = 2.0
"""An Activity Log record of a job's write starts within this long of the job's own events."""


@dataclass(frozen=True, slots=True)
class Mark:
    """One step of an armguard job drawn on the writer's lane: no ARM write of its own, or
    (``coalesced``) a write that carried several intents."""

    ts: float
    event: str
    """``rebased``, ``dropped_stale``, ``prerequisite``, ``coalesced``, ``already_satisfied``,
    ``requeued``."""
    label: str
    """A word or two for the chart: ``rebased``, ``dropped``, ``deallocate``, ``2 intents``…"""
    writer: str
    resource_id: str
    job_ids: tuple[str, ...]
    text: str
    """What happened, in a sentence (the mark's tooltip)."""
    operation: str | None = None
    """The operation the mark sits on (a coalesced write), once operations have IDs."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": isoformat(self.ts),
            "event": self.event,
            "label": self.label,
            "writer": self.writer,
            "resource_id": self.resource_id,
            "jobs": list(self.job_ids),
            "operation": self.operation,
            "text": self.text,
        }


@dataclass(slots=True)
class _Intent:
    writer: str
    resource_id: str
    outcome: str | None = None
    kind: str | None = None
    verified: bool = False


@dataclass
class JobStory:
    """Intents, their outcomes and the marks of their steps, folded from job events."""

    intents: dict[str, _Intent] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)
    _spans: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def add(self, rec: JobRecord) -> None:
        ev = rec.event
        intent = self.intents.get(ev.job_id)
        if intent is None:
            intent = self.intents[ev.job_id] = _Intent(ev.writer, ev.resource_id)
        self._span(ev.writer, ev.resource_id, rec.ts)
        detail = ev.detail if isinstance(ev.detail, Mapping) else {}
        path = detail.get("path")
        if isinstance(path, str) and path:
            # A tags write goes to {id}/providers/Microsoft.Resources/tags/default: ARM logs
            # that ID, and it is still this job's write.
            self._span(ev.writer, path, rec.ts)
        kind = ev.event
        if kind in FINAL_OUTCOMES:
            intent.outcome = FINAL_OUTCOMES[EventType(kind)]
            intent.kind = ev.kind
        elif kind == EventType.VERIFIED:
            intent.verified = intent.verified or detail.get("verified") is True
        mark = self._mark(rec)
        if mark is not None:
            # One step of a batch is recorded on every job of the batch: draw it once.
            key = (mark.event, mark.label, rec.ts, ev.resource_id.lower(), ev.writer)
            if key in self._seen:
                return
            self._seen.add(key)
            self.marks.append(mark)

    def _span(self, writer: str, resource_id: str, ts: float) -> None:
        span = self._spans.setdefault((writer.lower(), resource_id.lower()), [ts, ts])
        span[0] = min(span[0], ts)
        span[1] = max(span[1], ts)

    def _mark(self, rec: JobRecord) -> Mark | None:
        ev = rec.event
        detail = ev.detail if isinstance(ev.detail, Mapping) else {}
        base = (ev.writer, ev.resource_id, (ev.job_id,))
        if ev.event == EventType.REBASED:
            changes = detail.get("changes")
            what = f" ({', '.join(map(str, changes))})" if isinstance(changes, list) else ""
            return Mark(
                rec.ts,
                ev.event,
                "rebased",
                *base,
                f"{ev.writer}'s intent was rebased on the live state{what} instead of "
                "replaying its old baseline",
            )
        if ev.event == EventType.DROPPED_STALE:
            baseline = detail.get("baseline")
            on = f" {baseline}" if isinstance(baseline, str) else ""
            return Mark(
                rec.ts,
                ev.event,
                "dropped",
                *base,
                f"{ev.writer}'s intent was dropped: the live resource had moved past its "
                f"baseline{on}, and its policy says drop rather than overwrite",
            )
        if ev.event == EventType.ALREADY_SATISFIED:
            return Mark(
                rec.ts,
                ev.event,
                "satisfied",
                *base,
                f"{ev.writer}'s intent was already true of the live resource: done without a write",
            )
        if ev.event == EventType.COALESCED:
            into = detail.get("into")
            return Mark(
                rec.ts,
                ev.event,
                "coalesced",
                *base,
                f"{ev.writer}'s intent was folded into another job's write"
                + (f" ({into})" if into is not None else ""),
            )
        if ev.event == EventType.REQUEUED:
            # The message reads "requeued: retry budget exhausted, resumes after 64 s — …".
            said = (ev.message or "requeued").split(" — ", 1)[0]
            return Mark(
                rec.ts,
                ev.event,
                "requeued",
                *base,
                f"{ev.writer}'s intent went back to the queue ({said}) instead of failing: "
                "the worker waited for its retry budget before claiming again",
            )
        if ev.event == EventType.PREREQUISITE and "until" in detail:
            action = str(detail.get("action") or "transition")
            until = detail.get("until")
            return Mark(
                rec.ts,
                ev.event,
                action,
                *base,
                f"armguard ran the prerequisite '{action}' for {ev.writer}'s intent"
                + (f" and waited for {until}" if until else ""),
            )
        return None

    def is_own(self, caller: str, resource_id: str, start: float) -> bool:
        """Whether an Activity Log record is one of armguard's jobs' own requests: its caller is
        the job's writer, on the job's resource, while the job ran."""
        span = self._spans.get((caller.lower(), resource_id.lower()))
        return span is not None and span[0] - _OWN_SLACK <= start <= span[1] + _OWN_SLACK

    def failed_on(self, writer: str, resource_id: str) -> bool:
        """Whether an intent of ``writer`` on ``resource_id`` ended failed or blocked."""
        return any(
            i.outcome in ("failed", "blocked")
            and i.writer.lower() == writer.lower()
            and i.resource_id.lower() == resource_id.lower()
            for i in self.intents.values()
        )

    def outcome_of(self, job_id: str) -> str | None:
        intent = self.intents.get(job_id)
        return None if intent is None else intent.outcome

    def outcomes(self) -> dict[str, int]:
        counts = Counter(i.outcome or "no_outcome" for i in self.intents.values())
        return dict(sorted(counts.items()))

    def lost(self) -> tuple[int | None, str]:
        """(lost intents, why): 0 only when the events show every intent ended and every
        applied one verified on the live resource; None when the events cannot tell."""
        if not self.intents:
            return None, "no job events: the Activity Log alone cannot show intents"
        open_ = sum(1 for i in self.intents.values() if i.outcome is None)
        if open_:
            return None, (
                f"{open_} intent{'s have' if open_ != 1 else ' has'} no outcome in the events "
                "(still running when the log ends, or lost)"
            )
        unverified = sum(
            1 for i in self.intents.values() if i.outcome == "applied" and not i.verified
        )
        if unverified:
            return None, (
                f"{unverified} applied intent{'s were' if unverified != 1 else ' was'} not "
                "verified on the live resource in these events"
            )
        return 0, (
            "every intent has an outcome, and every applied one was verified on the live "
            "resource after its write"
        )
