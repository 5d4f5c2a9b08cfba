"""State dump and load (``GET``/``POST /_armguard/state``): resources, operations and the
Activity Log as plain JSON, so a scenario can be saved and replayed.

A loaded document is data from outside, checked field by field against what the core
assumes (a resource body has its type's shape, times are printable, errors are ARM errors)
before anything is replaced: a bad document is refused with the field named and leaves the
emulator as it was, instead of loading and breaking a later request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import InvalidResourceId, ResourceId
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource
from armguard.emulator.shapes import check_depth

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["LAST_INSTANT", "StateError", "dump_state", "load_state"]

_E = TypeVar("_E", bound=Enum)

FORMAT = "armguard-emulator-state/1"
DEPLOYMENT_TYPE = "microsoft.resources/deployments"
# Times beyond this cannot be printed as ARM timestamps (the year has four digits).
LAST_INSTANT = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


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


_STATE_KEYS = ("format", "resources", "operations", "activityLog")
_RESOURCE_KEYS = ("id", "body", "etag", "createdAt", "changedAt", "internal")
_OPERATION_KEYS = (
    "id",
    "kind",
    "target",
    "method",
    "namespace",
    "location",
    "apiVersion",
    "startedAt",
    "endsAt",
    "action",
    "status",
    "endedAt",
    "error",
    "failWith",
    "references",
    "result",
    "caller",
    "correlationId",
    "initialStatus",
    "extra",
)
_METHODS = ("PUT", "PATCH", "DELETE", "POST")
_NOT_RESUMED = ErrorDetail(
    "DeploymentFailed",
    "The deployment was running when the state was saved; a loaded state cannot resume it.",
)


def load_state(core: Emulator, data: Any) -> None:
    """Replace every resource, operation and event with a dump's. The whole document is
    checked first: on a StateError (which names the field at fault) nothing has changed."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise StateError(f'a state document must be an object with "format": "{FORMAT}"')
    _known_keys(data, _STATE_KEYS, "the state document")
    resources = [
        _resource(core, raw, f"resources[{n}]")
        for n, raw in enumerate(_list(data, "resources", "the state document"))
    ]
    _unique([r.id.key for r in resources], "resources", "resource id")
    operations = [
        _operation(raw, f"operations[{n}]")
        for n, raw in enumerate(_list(data, "operations", "the state document"))
    ]
    _unique([op.id.lower() for op in operations], "operations", "operation id")
    try:
        commit_events = core.audit.log.prepare_load(data.get("activityLog") or [])
    except ValueError as err:
        raise StateError(f"activityLog: {err}") from None
    core.store.clear()
    for res in resources:
        core.store.put(res)
    for op in operations:
        core.store.add_operation(op)
    commit_events()


def _known_keys(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in known:
            raise StateError(f"{where} has an unknown field '{key}'; expected {', '.join(known)}")


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise StateError(f"{where} must be an object, not {_kind(raw)}")
    return raw


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise StateError(f"'{key}' in {where} must be a list, not {_kind(value)}")
    return value


def _unique(keys: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for n, key in enumerate(keys):
        if key in seen:
            raise StateError(f"{where}[{n}] repeats the {what} '{key}'")
        seen.add(key)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _member(enum: type[_E], raw: Mapping[str, Any], key: str, where: str) -> _E:
    try:
        return enum(raw.get(key))
    except ValueError:
        raise StateError(
            f"{where}.{key} must be one of {', '.join(str(m.value) for m in enum)}"
        ) from None


def _text(raw: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str:
    value = raw.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise StateError(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateError(f"{where}.{key} must be a finite number, not {value!r}")
    if not 0 <= value < LAST_INSTANT:
        raise StateError(f"{where}.{key} is not a time from 1970 to 9999: {value!r}")
    return float(value)


def _required_number(raw: Mapping[str, Any], key: str, where: str, default: float | None) -> float:
    value = _number(raw, key, where, default)
    if value is None:
        raise StateError(f"{where}.{key} must be a finite number, not null")
    return value


def _rid(raw: Mapping[str, Any], key: str, where: str) -> ResourceId:
    text = _text(raw, key, where)
    try:
        return ResourceId.parse(text)
    except InvalidResourceId as err:
        raise StateError(f"{where}.{key}: {err}") from None


def _json_value(value: Any, where: str) -> Any:
    """A deep copy of ``value`` if it is plain JSON (what a dump holds) of bounded depth."""
    try:
        check_depth(value)
        text = json.dumps(value, allow_nan=False)
    except ArmError as err:
        raise StateError(f"{where}: {err.message}") from None
    except (TypeError, ValueError, RecursionError) as err:
        raise StateError(f"{where} is not plain JSON: {err}") from None
    return json.loads(text)


def _error(raw: Mapping[str, Any], key: str, where: str) -> ErrorDetail | None:
    value = raw.get(key)
    if value is None:
        return None
    value = _json_value(_object(value, f"{where}.{key}"), f"{where}.{key}")
    if not isinstance(value.get("code"), str) or not isinstance(value.get("message"), str):
        raise StateError(f"{where}.{key} must be an ARM error with string 'code' and 'message'")
    return ErrorDetail.from_json(value)


def _resource(core: Emulator, raw: Any, where: str) -> Resource:
    raw = _object(raw, where)
    _known_keys(raw, _RESOURCE_KEYS, where)
    rid = _rid(raw, "id", where)
    body = _json_value(_object(raw.get("body"), f"{where}.body"), f"{where}.body")
    if "properties" in body and body["properties"] is None:
        del body["properties"]
    provider = core.provider_for(rid)
    try:
        # A stored body keeps the shape its write was checked against; anything else would
        # break the first request that reads it.
        provider.check_body(rid, body)
    except ArmError as err:
        raise StateError(f"{where}.body: {err.message}") from None
    etag = raw.get("etag")
    if etag is not None and not isinstance(etag, str):
        raise StateError(f"{where}.etag must be a string or null, not {_kind(etag)}")
    internal = _json_value(_object(raw.get("internal") or {}, f"{where}.internal"), where)
    if rid.type.lower() == DEPLOYMENT_TYPE:
        # A deployment's run (plan, steps) is never dumped: only its operation's id is.
        extra = [k for k in internal if k != "op"]
        if extra or not isinstance(internal.get("op", ""), str):
            raise StateError(f"{where}.internal may only hold a deployment's 'op' id")
    return Resource(
        rid,
        body,
        etag,
        _required_number(raw, "createdAt", where, 0.0),
        _required_number(raw, "changedAt", where, 0.0),
        internal,
    )


def _operation(raw: Any, where: str) -> Operation:
    raw = _object(raw, where)
    _known_keys(raw, _OPERATION_KEYS, where)
    op_id = _text(raw, "id", where)
    if not op_id:
        raise StateError(f"{where}.id must not be empty")
    kind = _member(OpKind, raw, "kind", where)
    status = _member(OpStatus, raw, "status", where)
    method = _text(raw, "method", where)
    if method not in _METHODS:
        raise StateError(f"{where}.method must be one of {', '.join(_METHODS)}")
    started = _required_number(raw, "startedAt", where, None)
    ends = _number(raw, "endsAt", where, None)
    action = raw.get("action")
    if action is not None and not isinstance(action, str):
        raise StateError(f"{where}.action must be a string or null, not {_kind(action)}")
    references = raw.get("references") or []
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise StateError(f"{where}.references must be a list of strings")
    initial = raw.get("initialStatus", 202)
    if initial not in (200, 201, 202) or isinstance(initial, bool):
        raise StateError(f"{where}.initialStatus must be 200, 201 or 202, not {initial!r}")
    error = _error(raw, "error", where)
    if kind is OpKind.DEPLOY and status is OpStatus.IN_PROGRESS:
        # A running deployment's plan is not part of the dump; it cannot resume.
        status, error = OpStatus.FAILED, error or _NOT_RESUMED
    result = raw.get("result")
    op = Operation(
        id=op_id,
        kind=kind,
        target=_rid(raw, "target", where),
        method=method,
        namespace=_text(raw, "namespace", where),
        location=_text(raw, "location", where),
        api_version=_text(raw, "apiVersion", where),
        started_at=started,
        ends_at=ends if ends is not None else started,
        action=action,
        status=status,
        ended_at=_number(raw, "endedAt", where, None),
        error=error,
        fail_with=_error(raw, "failWith", where),
        references=frozenset(references),
        caller=_text(raw, "caller", where, optional=True),
        correlation_id=_text(raw, "correlationId", where, optional=True),
        initial_status=int(initial),
        extra=_json_value(_object(raw.get("extra") or {}, f"{where}.extra"), f"{where}.extra"),
    )
    op.result = None if result is None else _json_value(result, f"{where}.result")
    return op
