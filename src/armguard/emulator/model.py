"""The emulator's records: stored resources and long-running operations.

Records are mutable and owned by the store; only code holding the record's bucket lock may
change them (see :mod:`armguard.emulator.store`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from armguard.arm.errors import ErrorDetail
from armguard.arm.ids import ResourceId

__all__ = ["OpKind", "OpStatus", "Operation", "Resource", "copy_json"]

JSON = dict[str, Any]
_SCALARS = (str, int, float, bool, type(None))
_ATOMIC = frozenset(_SCALARS)


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value, several times cheaper than ``copy.deepcopy`` (which
    tracks shared references JSON cannot have); anything else is deep-copied as usual.
    Plain scalars are taken as they are without a call: they are most of a body."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _ATOMIC else copy_json(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else copy_json(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    if isinstance(value, _SCALARS):
        return value
    return copy.deepcopy(value)


class OpStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def terminal(self) -> bool:
        return self is not OpStatus.IN_PROGRESS


class OpKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ACTION = "action"
    DEPLOY = "deploy"


@dataclass
class Resource:
    """One stored resource. ``body`` is the full representation GET returns."""

    id: ResourceId
    body: JSON
    etag: str | None = None
    created_at: float = 0.0
    changed_at: float = 0.0
    internal: JSON = field(default_factory=dict)
    """Provider state not shown on the wire (a VM's power state, storage keys)."""

    def snapshot(self) -> JSON:
        body: JSON = copy_json(self.body)
        if self.etag is not None:
            body["etag"] = self.etag
        return body

    @property
    def properties(self) -> JSON:
        props = self.body.setdefault("properties", {})
        assert isinstance(props, dict)
        return props

    @property
    def provisioning_state(self) -> str | None:
        value = self.properties.get("provisioningState")
        return None if value is None else str(value)


@dataclass
class Operation:
    """A long-running operation: the thing that holds a resource while it runs.

    ``ends_at`` is on the emulator clock; an operation is running while ``now < ends_at`` and
    its status has not been settled to a terminal value.
    """

    id: str
    kind: OpKind
    target: ResourceId
    method: str
    namespace: str
    location: str
    api_version: str
    started_at: float
    ends_at: float
    action: str | None = None
    status: OpStatus = OpStatus.IN_PROGRESS
    ended_at: float | None = None
    error: ErrorDetail | None = None
    fail_with: ErrorDetail | None = None
    """Set by a fault or a failed step: the operation ends Failed with this error."""
    references: frozenset[str] = frozenset()
    """Keys of resources this operation also holds (a subnet's NSG, a NIC's subnets)."""
    request_fingerprint: str | None = None
    """The canonical request body, so an identical repeated PUT joins this operation."""
    result_text: str | None = None
    """:attr:`result` as JSON text. Settled operations are kept by the ten thousand; text is
    one object the garbage collector does not track, where a body is a dozen dicts and lists
    that every full collection would walk."""
    caller: str = ""
    correlation_id: str = ""
    client_request_id: str = ""
    initial_status: int = 202
    wake_at: float | None = None
    """When set, the provider's ``wake`` runs at this instant (a deployment's first step)."""
    extra: JSON = field(default_factory=dict)

    @property
    def result(self) -> JSON | None:
        """What the Location URL returns once done (None → 204 / empty 200); a fresh copy."""
        if self.result_text is None:
            return None
        value: JSON = json.loads(self.result_text)
        return value

    @result.setter
    def result(self, value: JSON | None) -> None:
        self.result_text = None if value is None else json.dumps(value, separators=(",", ":"))

    def running_at(self, now: float) -> bool:
        return self.status is OpStatus.IN_PROGRESS and now < self.ends_at

    @property
    def operation_name(self) -> str:
        """The Activity Log operation name: ``{type}/write``, ``/delete`` or ``/{action}/action``."""
        type_ = self.target.type
        if self.kind is OpKind.DELETE:
            return f"{type_}/delete"
        if self.kind is OpKind.ACTION and self.action:
            return f"{type_}/{self.action}/action"
        return f"{type_}/write"
