"""State dump and load (``GET``/``POST /_armguard/state``): resources, operations and the
Activity Log as plain JSON, so a scenario can be saved and replayed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ErrorDetail
from armguard.arm.ids import InvalidResourceId, ResourceId
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["StateError", "dump_state", "load_state"]

FORMAT = "armguard-emulator-state/1"


class StateError(ValueError):
    """A state document that cannot be loaded; the message names the first problem."""


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def _finite(value: float) -> float | None:
    return value if value not in (float("inf"), float("-inf")) else None


def dump_state(core: Emulator) -> dict[str, Any]:
    core.operations.settle_all()
    resources = [
        {
            "id": r.id.format(),
            "body": r.body,
            "etag": r.etag,
            "createdAt": r.created_at,
            "changedAt": r.changed_at,
            "internal": _json_safe(r.internal),
        }
        for r in sorted(core.store.all_resources(), key=lambda r: (r.created_at, r.id.key))
    ]
    operations = [
        {
            "id": op.id,
            "kind": op.kind.value,
            "target": op.target.format(),
            "method": op.method,
            "namespace": op.namespace,
            "location": op.location,
            "apiVersion": op.api_version,
            "startedAt": op.started_at,
            "endsAt": _finite(op.ends_at),
            "action": op.action,
            "status": op.status.value,
            "endedAt": op.ended_at,
            "error": op.error.to_json() if op.error else None,
            "failWith": op.fail_with.to_json() if op.fail_with else None,
            "references": sorted(op.references),
            "result": op.result,
            "caller": op.caller,
            "correlationId": op.correlation_id,
            "initialStatus": op.initial_status,
            "extra": _json_safe(op.extra),
        }
        for op in core.store.operations()
    ]
    return {
        "format": FORMAT,
        "resources": resources,
        "operations": operations,
        "activityLog": core.audit.log.dump(),
    }


def load_state(core: Emulator, data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise StateError(f'a state document must be an object with "format": "{FORMAT}"')
    resources: list[Resource] = []
    operations: list[Operation] = []
    for n, raw in enumerate(data.get("resources") or []):
        try:
            resources.append(
                Resource(
                    ResourceId.parse(raw["id"]),
                    dict(raw["body"]),
                    raw.get("etag"),
                    float(raw.get("createdAt", 0.0)),
                    float(raw.get("changedAt", 0.0)),
                    dict(raw.get("internal") or {}),
                )
            )
        except (KeyError, TypeError, ValueError, InvalidResourceId) as err:
            raise StateError(f"resources[{n}] is not a resource: {err}") from None
    for n, raw in enumerate(data.get("operations") or []):
        try:
            kind = OpKind(raw["kind"])
            status = OpStatus(raw["status"])
            ends_at = raw.get("endsAt")
            if kind is OpKind.DEPLOY and status is OpStatus.IN_PROGRESS:
                # A running deployment's plan is not part of the dump; it cannot resume.
                status = OpStatus.FAILED
            op = Operation(
                id=str(raw["id"]),
                kind=kind,
                target=ResourceId.parse(raw["target"]),
                method=str(raw["method"]),
                namespace=str(raw["namespace"]),
                location=str(raw["location"]),
                api_version=str(raw["apiVersion"]),
                started_at=float(raw["startedAt"]),
                ends_at=float(ends_at) if ends_at is not None else float(raw["startedAt"]),
                action=raw.get("action"),
                status=status,
                ended_at=raw.get("endedAt"),
                error=ErrorDetail.from_json(raw["error"]) if raw.get("error") else None,
                fail_with=ErrorDetail.from_json(raw["failWith"]) if raw.get("failWith") else None,
                references=frozenset(raw.get("references") or []),
                result=raw.get("result"),
                caller=str(raw.get("caller", "")),
                correlation_id=str(raw.get("correlationId", "")),
                initial_status=int(raw.get("initialStatus", 202)),
                extra=dict(raw.get("extra") or {}),
            )
            operations.append(op)
        except (KeyError, TypeError, ValueError, InvalidResourceId) as err:
            raise StateError(f"operations[{n}] is not an operation: {err}") from None
    events = data.get("activityLog") or []
    if not isinstance(events, list):
        raise StateError("activityLog must be a list of events")
    core.store.clear()
    for res in resources:
        core.store.put(res)
    for op in operations:
        core.store.add_operation(op)
    try:
        core.audit.log.load(events)
    except ValueError as err:
        raise StateError(str(err)) from None
