"""Step 1 of a round: the live body (None: absent), read once its provisioningState is
terminal — a body still provisioning may yet fail or be replaced, and a write now would only
meet AnotherOperationInProgress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from armguard.arm.classify import ConflictKind
from armguard.arm.client import ArmResponse
from armguard.arm.ids import ResourceId
from armguard.arm.states import is_terminal
from armguard.coordinator.gates import (
    GateFailed,
    GateTimeout,
    read_instance_view,
    wait_for_provisioning,
)
from armguard.coordinator.model import Job, Outcome
from armguard.coordinator.write.items import Item, etag_of, provisioning_state
from armguard.coordinator.write.session import Finish, Session
from armguard.events import EventType

__all__ = ["read_live"]

JSON = dict[str, Any]
_RETRY = (ConflictKind.THROTTLED, ConflictKind.TRANSIENT)


def read_live(
    s: Session, rid: ResourceId, api: str, items: Sequence[Item], with_view: bool
) -> JSON | None:
    jobs = [i.job for i in items]
    while True:
        response = s.call("GET", rid.format(), api_version=api)
        if response is not None and response.status == 404:
            s.emit(EventType.READ, jobs, status=404, detail={"exists": False})
            return None
        if response is not None and response.ok and isinstance(response.body, Mapping):
            live = dict(response.body)
            state = provisioning_state(live)
            if state is not None and not is_terminal(state):
                s.emit(EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state})
                _gate_provisioning(s, rid, api, jobs, response)
                continue
            if with_view:
                try:
                    view = _instance_view(s, rid, api)
                except GateFailed as failed:
                    # A power action decided on an unknown power state is sent blind (a
                    # powerOff to a deallocated VM is refused): read it again after a backoff.
                    s.retry_or_finish(jobs, failed.response, "power state read")
                    continue
                if view is not None:
                    props = dict(live.get("properties") or {})
                    props["instanceView"] = view
                    live["properties"] = props
            s.emit(EventType.READ, jobs, status=response.status, etag_live=etag_of(live))
            return live
        s.retry_or_finish(jobs, response, "read")


def _gate_provisioning(
    s: Session, rid: ResourceId, api: str, jobs: Sequence[Job], first: ArmResponse
) -> None:
    try:
        wait_for_provisioning(s.counted(), rid.format(), api, s.pacer, first=first)
    except GateFailed as failed:
        s.retry_or_finish(jobs, failed.response, "read")
    except GateTimeout as timeout:
        raise Finish(Outcome.FAILED, ConflictKind.OPERATION_IN_PROGRESS, str(timeout)) from timeout


def _instance_view(s: Session, rid: ResourceId, api: str) -> Any:
    """The instance view, None if ARM has none to give; throttled or transient: GateFailed."""
    try:
        response = read_instance_view(s.counted(), rid.format(), api)
    except GateFailed as failed:
        if failed.response.classification().kind in _RETRY:
            raise
        return None
    if response.ok:
        return response.body
    if response.classification().kind in _RETRY:
        raise GateFailed(response)
    return None
