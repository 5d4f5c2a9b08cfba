"""Scoring a run from the emulator's side: the final state and the Activity Log.

**Lost intent**: an intent whose value is absent from the final state of its field and that is
not superseded by a later intent on the same field (a later index of the same writer, or, for the
setup write of ``stale-queue``, any queued intent — none touch its field). So per field at most
the last intent can be lost, and a field changed by nobody but its own writer is lost exactly when
the writer's last wish is not what ARM holds. ``lostSilently`` counts the lost intents the
strategy had reported as succeeded: nobody will ever learn about those.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from armguard.arm.client import ArmClient
from armguard.coordinator.intents import live_power_state

from .common import IntentOutcome
from .workloads import WorkIntent

__all__ = ["ActivityCounts", "activity_counts", "final_bodies", "lost_intents", "power_states"]


def lost_intents(
    outcomes: Sequence[IntentOutcome],
    final: Mapping[str, Mapping[str, Any] | None],
    setup: WorkIntent | None = None,
) -> tuple[list[IntentOutcome], list[IntentOutcome]]:
    """(lost, lost silently). ``final`` maps a resource id (lower-case) to its final body."""
    last: dict[str, IntentOutcome] = {}
    for outcome in outcomes:
        held = last.get(outcome.intent.field)
        if held is None or outcome.intent.index >= held.intent.index:
            last[outcome.intent.field] = outcome
    if setup is not None and setup.field not in last:
        # The setup write succeeded before the run (the harness checked it).
        last[setup.field] = IntentOutcome(setup, True)
    lost = [
        o for o in last.values() if not o.intent.present_in(final.get(o.intent.resource_id.lower()))
    ]
    return lost, [o for o in lost if o.ok]


def final_bodies(client: ArmClient, intents: Iterable[WorkIntent]) -> dict[str, Any]:
    bodies: dict[str, Any] = {}
    for intent in intents:
        key = intent.resource_id.lower()
        if key in bodies:
            continue
        response = client.request("GET", intent.resource_id, api_version=intent.api_version)
        bodies[key] = response.body if response.ok else None
    return bodies


def power_states(client: ArmClient, intents: Iterable[WorkIntent]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for rid, api in {(i.resource_id, i.api_version) for i in intents}:
        response = client.request("GET", f"{rid}/instanceView", api_version=api)
        body = response.body if response.ok else None
        seen[live_power_state({"properties": {"instanceView": body}}) or "unknown"] += 1
    return seen


class ActivityCounts:
    """Write requests by the writers, with the status ARM answered each one synchronously."""

    def __init__(self, requests: int, statuses: Counter[str], by_operation: Counter[str]) -> None:
        self.requests = requests
        self.statuses = statuses
        self.by_operation = by_operation

    @property
    def conflicts(self) -> int:
        return self.statuses["Conflict"] + self.statuses["PreconditionFailed"]

    @property
    def refused(self) -> int:
        return sum(v for k, v in self.statuses.items() if k not in _ACCEPTED)

    def to_json(self) -> dict[str, Any]:
        return {
            "writeRequests": self.requests,
            "accepted": self.requests - self.refused,
            "byStatus": dict(sorted(self.statuses.items())),
            "byOperation": dict(sorted(self.by_operation.items())),
        }


_ACCEPTED = frozenset({"OK", "Created", "Accepted", "NoContent"})


def activity_counts(events: Sequence[Mapping[str, Any]], callers: set[str]) -> ActivityCounts:
    """Pairs each BeginRequest with the first EndRequest of its correlation id (the synchronous
    answer; a later EndRequest is the operation's completion)."""
    begun: dict[str, str] = {}
    answered: set[str] = set()
    statuses: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    for event in events:
        if event.get("caller") not in callers:
            continue
        name = (event.get("eventName") or {}).get("value")
        correlation = str(event.get("correlationId"))
        if name == "BeginRequest":
            operation = str((event.get("operationName") or {}).get("value"))
            begun[correlation] = operation
            operations[operation.rsplit("/", 1)[-1]] += 1
        elif name == "EndRequest" and correlation in begun and correlation not in answered:
            answered.add(correlation)
            statuses[str((event.get("properties") or {}).get("statusCode") or "unknown")] += 1
    statuses["unanswered"] += len(set(begun) - answered)
    if not statuses["unanswered"]:
        del statuses["unanswered"]
    return ActivityCounts(len(begun), statuses, operations)
