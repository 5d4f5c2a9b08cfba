"""Operation lifecycle: start, settle in time order, end with effects, answer status URLs.

Operations are evaluated lazily on the emulator clock: whenever a request touches a bucket,
every operation in it that is due by now ends, in the order of its end time, so a deployment
step that waits on another starts at the instant the other ended, not at the instant someone
looked.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.emulator.model import Operation, OpKind, OpStatus
from armguard.emulator.operations import (
    StatusRoute,
    location_result,
    lro_headers,
    status_document,
)
from armguard.emulator.request import ArmResponse, Call

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["Lifecycle", "OpFault", "op_fault_var"]


class OpFault:
    """A fault's effect on the operation a request starts (stuck, or ending Failed)."""

    def __init__(self, *, stuck_seconds: float | None = None, error: ErrorDetail | None = None):
        self.stuck_seconds = stuck_seconds
        self.error = error
        self.started = False
        """Whether an operation took this effect; if none did, the fault never happened."""


# The fault (if any) a request's operation takes: set by the dispatcher for one request, read
# when the write path starts an operation, so fault plumbing does not cross every signature.
op_fault_var: contextvars.ContextVar[OpFault | None] = contextvars.ContextVar(
    "armguard_op_fault", default=None
)


class Lifecycle:
    """The emulator's operations: ``core.operations``."""

    def __init__(self, core: Emulator) -> None:
        self.core = core

    def start(
        self,
        call: Call,
        kind: OpKind,
        rid: ResourceId,
        *,
        method: str,
        duration: float,
        now: float,
        action: str | None = None,
        references: frozenset[str] = frozenset(),
        fingerprint: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Operation:
        provider = self.core.provider_for(rid)
        fault = op_fault_var.get()
        fail_with: ErrorDetail | None = None
        if fault is not None:
            fault.started = True
            if fault.stuck_seconds is not None:
                duration = fault.stuck_seconds
                fail_with = fault.error or ErrorDetail(
                    "OperationTimedOut",
                    "The operation did not complete in the allotted time and was stopped.",
                )
            elif fault.error is not None:
                fail_with = fault.error
        op_id = call.request_id
        if not op_id or self.core.store.operation(op_id) is not None:
            op_id = self.core.new_guid()
        op = Operation(
            id=op_id,
            kind=kind,
            target=rid,
            method=method,
            namespace=provider.settings.op_namespace or rid.namespace or "Microsoft.Resources",
            location=self.location_of(rid),
            api_version=call.api_version,
            started_at=now,
            ends_at=now + max(0.0, duration),
            action=action,
            # One shared empty set: a new one per operation would be one more object the
            # garbage collector tracks for as long as the operation is kept.
            references=references or _NO_REFERENCES,
            request_fingerprint=fingerprint,
            fail_with=fail_with,
            caller=call.caller,
            correlation_id=call.correlation_id,
            client_request_id=call.client_request_id,
            extra={"base_url": call.base_url, **dict(extra or {})},
        )
        self.core.store.add_operation(op)
        return op

    def location_of(self, rid: ResourceId) -> str:
        node: ResourceId | None = rid
        while node is not None:
            res = self.core.store.get(node)
            if res is not None and isinstance(res.body.get("location"), str):
                return str(res.body["location"]).replace(" ", "").lower()
            node = node.parent
        return "eastus"

    def response(
        self, op: Operation, call: Call, now: float, *, with_body: bool = True
    ) -> ArmResponse:
        headers = lro_headers(op, call.base_url, now, self.core.retry_after_max)
        headers["x-ms-request-id"] = op.id
        body = None
        if with_body and op.initial_status != 202:
            res = self.core.store.get(op.target)
            if res is not None:
                body = self.core.provider_for(op.target).view(self.core, res, {})
        return ArmResponse(op.initial_status, body, headers)

    def settle(self, rid: ResourceId, now: float) -> None:
        """End, in time order, every operation in ``rid``'s bucket that is due by ``now``.
        The caller holds the bucket lock (or this takes it)."""
        bucket = self.core.store.bucket_for(rid)
        with bucket.lock:
            while True:
                # One pass: a deployment starting its resources settles once per resource,
                # holding the group's lock throughout, over every operation it has started.
                first: tuple[float, float, Operation] | None = None
                ended = False
                for candidate in bucket.pending:
                    if candidate.status is not OpStatus.IN_PROGRESS:
                        ended = True
                        continue
                    due = _due_at(candidate)
                    if due <= now and (first is None or (due, candidate.started_at) < first[:2]):
                        first = (due, candidate.started_at, candidate)
                if ended:
                    bucket.pending[:] = [
                        op for op in bucket.pending if op.status is OpStatus.IN_PROGRESS
                    ]
                if first is None:
                    return
                at, _, op = first
                if op.wake_at is not None and op.wake_at <= op.ends_at:
                    op.wake_at = None
                    self.core.provider_for(op.target).wake(self.core, op, at)
                    continue
                if op.fail_with is not None:
                    self.end(op, op.ends_at, OpStatus.FAILED, op.fail_with)
                else:
                    self.end(op, op.ends_at, OpStatus.SUCCEEDED, None)

    def settle_all(self) -> None:
        now = self.core.now()
        for bucket in self.core.store.buckets():
            with bucket.lock:
                if bucket.pending:
                    self.settle(bucket.pending[0].target, now)

    def end(self, op: Operation, at: float, status: OpStatus, error: ErrorDetail | None) -> None:
        """Move an operation to a terminal status and apply its effects."""
        if op.status.terminal:
            return
        op.status = status
        op.error = error
        op.ended_at = at
        provider = self.core.provider_for(op.target)
        res = self.core.store.get(op.target)
        if status is OpStatus.SUCCEEDED:
            if op.kind is OpKind.DELETE:
                if res is not None:
                    self.core.writes.remove(res, at)
                res = None
            elif (
                res is not None
                and op.kind in (OpKind.CREATE, OpKind.UPDATE)
                and provider.has_provisioning_state
            ):
                res.properties["provisioningState"] = "Succeeded"
        elif res is not None and provider.has_provisioning_state and status is OpStatus.FAILED:
            res.properties["provisioningState"] = "Failed"
        provider.on_completed(self.core, op, res)
        if status is OpStatus.SUCCEEDED and op.kind in (OpKind.CREATE, OpKind.UPDATE):
            current = self.core.store.get(op.target)
            op.result = provider.view(self.core, current, {}) if current is not None else None
        self.core.store.settled(op)
        self.core.audit.operation_ended(op, at)
        parent_id = op.extra.get("deployment_op")
        if isinstance(parent_id, str):
            parent = self.core.store.operation(parent_id)
            if parent is not None:
                self.core.provider_for(parent.target).child_ended(self.core, parent, op, at)

    def status(self, target: StatusRoute, call: Call) -> ArmResponse:
        op = self.core.store.operation(target.op_id)
        if op is None:
            raise ArmError(
                404,
                "OperationNotFound",
                f"The operation '{target.op_id}' was not found.",
            )
        now = self.core.now()
        self.settle(op.target, now)
        if target.kind == "status":
            return status_document(op, call.base_url, now, self.core.retry_after_max)
        return location_result(op, call.base_url, now, self.core.retry_after_max)


_NO_REFERENCES: frozenset[str] = frozenset()


def _due_at(op: Operation) -> float:
    return op.ends_at if op.wake_at is None else min(op.wake_at, op.ends_at)
