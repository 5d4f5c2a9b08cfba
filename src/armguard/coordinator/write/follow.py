"""Following a write ARM accepted to its end.

Polling our own operation is not a write retry: a 429 or 5xx on the status URL (or no answer)
is waited out with jittered backoff that does not spend the write budget, for up to
``max_rounds`` misses in a row. If the end still cannot be observed — the status URL stays
broken, is gone, or refuses us — the follower says so instead of inventing a failure, and the
batch judges the jobs by reading the live state: a write whose effect is live is ``applied``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from armguard.arm.classify import Classification, ConflictKind, classify_error
from armguard.arm.client import ArmResponse
from armguard.arm.ids import ResourceId
from armguard.arm.states import is_terminal
from armguard.arm.urls import redact_url
from armguard.coordinator.gates import (
    GateFailed,
    GateTimeout,
    wait_for_operation,
    wait_for_provisioning,
)
from armguard.coordinator.write.items import Item, provisioning_state
from armguard.coordinator.write.session import Session
from armguard.events import EventType

__all__ = ["Followed", "follow_write"]

_RETRY_POLL = (ConflictKind.THROTTLED, ConflictKind.TRANSIENT)


@dataclass(frozen=True)
class Followed:
    failure: Classification | None = None
    """The operation ended Failed or Canceled: recover by its class."""
    unread: str | None = None
    """Why its end could not be observed (the write was accepted all the same)."""


def follow_write(
    s: Session,
    rid: ResourceId,
    items: Sequence[Item],
    response: ArmResponse,
    *,
    api: str,
    path: str,
    verb: str,
) -> Followed:
    """As the SDKs do, the first poll goes out at once; later ones honour Retry-After."""
    url = response.header("azure-asyncoperation") or response.header("location")
    jobs = [i.job for i in items]
    if url:
        s.emit(
            EventType.WAITING,
            jobs,
            operation_url=redact_url(url),
            detail={"on": "own operation"},
        )
    elif not (verb in ("PUT", "PATCH") and path == rid.format()):
        return Followed()
    else:
        body = response.body if isinstance(response.body, Mapping) else {}
        state = provisioning_state(body)
        if state is None or is_terminal(state):
            return Followed()
        s.emit(EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state})
    misses = 0
    while True:
        try:
            if url:
                outcome = wait_for_operation(s.counted(), url, s.pacer)
                if outcome.succeeded:
                    return Followed()
                error = outcome.error
                assert error is not None
                return Followed(failure=s.conflict(rid, items, classify_error(None, error)))
            final = wait_for_provisioning(
                s.counted(), path, api, s.pacer, first=response if misses == 0 else None
            )
            state = (
                provisioning_state(final.body)
                if final and isinstance(final.body, Mapping)
                else None
            )
            if state is not None and state.lower() != "succeeded":
                return Followed(
                    failure=s.conflict(
                        rid,
                        items,
                        Classification(
                            ConflictKind.UNKNOWN, f"the write ended in provisioningState {state}"
                        ),
                    )
                )
            return Followed()
        except GateFailed as failed:
            c = failed.response.classification()
            misses += 1
            if c.kind not in _RETRY_POLL:
                return Followed(unread=f"its status could not be read: {c.reason} ({c.status})")
            reach = s.reach
            if misses > s.settings.max_rounds or (reach is not None and reach.exhausted()):
                return Followed(
                    unread=f"its status could not be read {misses} times in a row: {c.reason}"
                )
            delay = s.backoff.delay(misses - 1, c.retry_after)
            s.emit(
                EventType.BACKOFF,
                jobs,
                kind=str(c.kind),
                delay=round(delay, 3),
                status=c.status,
                detail={"why": "polling our own accepted write", "budget": "not spent"},
            )
            s.pacer.pause(delay)
        except GateTimeout as timeout:
            return Followed(unread=str(timeout))
