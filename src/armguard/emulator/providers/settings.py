"""Per-resource-type behaviour settings: ETag format, conflict answer, durations, LRO shape.

Every knob here is a setting rather than code because real resource providers differ exactly
here (network answers a busy resource with 409 or 429, storage with its own code; compute
preempts instead of refusing) and clients are coded against those differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from armguard.arm.errors import ArmError, ErrorDetail

__all__ = ["CONFLICT_STYLES", "ConflictStyle", "TypeSettings"]


@dataclass(frozen=True)
class ConflictStyle:
    """How a provider refuses a write while another operation holds the resource."""

    status: int
    code: str
    message: str
    detail_code: str | None = None
    detail_message: str | None = None

    def error(self, *, status_url: str, op_name: str, op_id: str, resource: str) -> ArmError:
        fields = {"url": status_url, "op": op_name, "op_id": op_id, "resource": resource}
        details: list[ErrorDetail] = []
        if self.detail_code:
            details.append(
                ErrorDetail(self.detail_code, (self.detail_message or "").format(**fields))
            )
        return ArmError(self.status, self.code, self.message.format(**fields), details=details)


CONFLICT_STYLES: dict[str, ConflictStyle] = {
    "another_operation": ConflictStyle(
        409,
        "AnotherOperationInProgress",
        "Another operation on this or dependent resource is in progress. To retrieve status "
        "of the operation use uri: {url}.",
    ),
    "retryable": ConflictStyle(
        429,
        "RetryableError",
        "A retryable error occurred.",
        "RetryableErrorDueToAnotherOperation",
        "Operation {op} ({op_id}) is updating resource {resource}. The call can be retried in "
        "10 seconds",
    ),
    "storage": ConflictStyle(
        409,
        "StorageAccountOperationInProgress",
        "An operation is currently performing on this storage account that requires "
        "exclusive access.",
    ),
    "tags": ConflictStyle(
        409,
        "ConflictingConcurrentWriteNotAllowed",
        "The operation was interrupted by a conflicting concurrent write on the same entity. "
        "Please retry later.",
    ),
    "compute": ConflictStyle(
        409,
        "OperationNotAllowed",
        "Operation '{op}' is not allowed on VM '{resource}' since another operation is in "
        "progress.",
    ),
}


@dataclass(frozen=True)
class TypeSettings:
    etag: str | None = None
    """``weak-guid`` (``W/"guid"``), ``int`` (``"3"``) or None (no ETag, headers ignored)."""
    conflict: str = "another_operation"
    preempt: bool = False
    """A newer model write cancels the running one (compute) instead of being refused."""
    serialize_top_level: bool = False
    durations: Mapping[str, float] = field(default_factory=dict)
    """Seconds at time-scale 1, keyed ``create``, ``update``, ``delete`` or an action name."""
    async_put: bool = True
    async_patch: bool = True
    async_delete: bool = True
    put_create_status: int = 201
    put_update_status: int = 200
    op_namespace: str | None = None

    @property
    def conflict_style(self) -> ConflictStyle:
        return CONFLICT_STYLES[self.conflict]

    def duration(self, kind: str) -> float:
        return float(self.durations.get(kind, self.durations.get("default", 0.0)))

    def merged(self, overrides: Mapping[str, Any]) -> TypeSettings:
        """These settings with a config file's overrides applied (unknown keys are errors)."""
        known = set(self.__dataclass_fields__)
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown type setting(s): {', '.join(sorted(unknown))}")
        values = dict(overrides)
        if "durations" in values:
            values["durations"] = {**self.durations, **dict(values["durations"])}
        if "conflict" in values and values["conflict"] not in CONFLICT_STYLES:
            raise ValueError(
                f"conflict must be one of {', '.join(sorted(CONFLICT_STYLES))}, "
                f"not {values['conflict']!r}"
            )
        if "etag" in values and values["etag"] not in (None, "weak-guid", "int"):
            raise ValueError(f"etag must be weak-guid, int or null, not {values['etag']!r}")
        return replace(self, **values)
