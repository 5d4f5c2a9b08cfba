"""What the core tells the Activity Log: a start event and an end event for every write,
delete and action (accepted or rejected), and a completion event when an operation ends."""

from __future__ import annotations

from typing import Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.clock import Clock
from armguard.emulator.activity import MAX_BYTES, MAX_EVENTS, ActivityLog
from armguard.emulator.idmemo import id_text
from armguard.emulator.model import Operation, OpStatus
from armguard.emulator.request import Call

__all__ = ["Auditor"]


class Auditor:
    def __init__(
        self,
        clock: Clock,
        seed: int | None = 0,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.log = ActivityLog(clock, seed=seed, max_events=max_events, max_bytes=max_bytes)

    def reset(self) -> None:
        self.log.clear()

    def query(
        self, subscription: str, filter_text: str | None, select: str | None
    ) -> list[dict[str, Any]]:
        return self.log.query(subscription, filter_text, select)

    def _record(
        self,
        call: Call,
        rid: ResourceId,
        operation_name: str,
        method: str,
        *,
        status: str,
        http_status: int | None,
        error: dict[str, Any] | None = None,
        operation_id: str | None = None,
    ) -> None:
        text = id_text(rid)
        self.log.append(
            subscription=rid.subscription,
            caller=call.caller,
            operation_name=operation_name,
            resource_id=text,
            status=status,
            http_status=http_status,
            correlation_id=call.correlation_id,
            operation_id=operation_id or call.request_id,
            method=method,
            uri=f"{call.base_url.rstrip('/')}{text}?api-version={call.api_version}",
            client_request_id=call.client_request_id or None,
            error=error,
            claims=call.claims,
            client_ip=call.client_ip,
            service_request_id=call.request_id or None,
        )

    def started(self, call: Call, rid: ResourceId, name: str, method: str, body: Any) -> None:
        self._record(call, rid, name, method, status="Started", http_status=None)

    def finished(
        self,
        call: Call,
        rid: ResourceId,
        name: str,
        method: str,
        *,
        http_status: int,
        op: Operation | None,
    ) -> None:
        status = "Accepted" if op is not None else "Succeeded"
        self._record(
            call,
            rid,
            name,
            method,
            status=status,
            http_status=http_status,
            operation_id=op.id if op else None,
        )

    def failed(self, call: Call, rid: ResourceId, name: str, method: str, err: ArmError) -> None:
        self._record(
            call, rid, name, method, status="Failed", http_status=err.status, error=err.body()
        )

    def operation_ended(self, op: Operation, at: float) -> None:
        call = Call(
            base_url=str(op.extra.get("base_url", "")),
            api_version=op.api_version,
            caller=op.caller,
            correlation_id=op.correlation_id,
            client_request_id=op.client_request_id,
            request_id=op.id,
        )
        if op.status is OpStatus.SUCCEEDED:
            self._record(
                call,
                op.target,
                op.operation_name,
                op.method,
                status="Succeeded",
                http_status=200,
                operation_id=op.id,
            )
            return
        error: dict[str, Any] = {"status": op.status.value}
        if op.error is not None:
            error["error"] = op.error.to_json()
        self._record(
            call,
            op.target,
            op.operation_name,
            op.method,
            status="Failed",
            http_status=None,
            error=error,
            operation_id=op.id,
        )
