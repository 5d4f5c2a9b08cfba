"""Long-running operations: status URLs, status documents and Location results.

Operations progress on the emulator clock and are evaluated lazily: an operation is done when
``clock.now() >= ends_at``, so a test holding a :class:`~armguard.clock.ManualClock` decides
exactly when each one finishes. Every asynchronous operation gets both an
``Azure-AsyncOperation`` URL (status document) and a ``Location`` URL (final result), and both
keep answering after the operation ends, because pollers may ask late.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from armguard.clock import isoformat
from armguard.emulator.model import Operation, OpKind, OpStatus
from armguard.emulator.request import ArmResponse

__all__ = [
    "OperationUrls",
    "StatusRoute",
    "location_result",
    "lro_headers",
    "match_status_path",
    "retry_after",
    "status_document",
    "urls_for",
]

RETRY_AFTER_MAX = 10

_STATUS_PATTERNS = (
    (
        re.compile(
            r"^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/operations/(?P<id>[^/]+)$", re.I
        ),
        "status",
    ),
    (
        re.compile(
            r"^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/operationResults/(?P<id>[^/]+)$",
            re.I,
        ),
        "result",
    ),
    (
        re.compile(
            r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/Microsoft\.Resources/deployments/[^/]+/operationStatuses/(?P<id>[^/]+)$",
            re.I,
        ),
        "status",
    ),
    (re.compile(r"^/subscriptions/[^/]+/operationresults/(?P<id>[^/]+)$", re.I), "result"),
)


@dataclass(frozen=True)
class StatusRoute:
    op_id: str
    kind: str
    """``status`` (Azure-AsyncOperation document) or ``result`` (Location semantics)."""


@dataclass(frozen=True)
class OperationUrls:
    status: str
    location: str


def match_status_path(path: str) -> StatusRoute | None:
    for pattern, kind in _STATUS_PATTERNS:
        m = pattern.match(path.rstrip("/"))
        if m:
            return StatusRoute(m.group("id"), kind)
    return None


def urls_for(op: Operation, base_url: str) -> OperationUrls:
    """Absolute status URLs in the shapes the real providers use."""
    base = base_url.rstrip("/")
    sub = op.target.subscription
    query = f"?api-version={op.api_version}"
    if op.kind is OpKind.DEPLOY:
        rid = op.target
        status = (
            f"{base}/subscriptions/{sub}/resourcegroups/{rid.resource_group}/providers/"
            f"Microsoft.Resources/deployments/{rid.name}/operationStatuses/{op.id}{query}"
        )
        location = f"{base}/subscriptions/{sub}/operationresults/{op.id}{query}"
        return OperationUrls(status, location)
    prefix = f"{base}/subscriptions/{sub}/providers/{op.namespace}/locations/{op.location}"
    return OperationUrls(
        f"{prefix}/operations/{op.id}{query}", f"{prefix}/operationResults/{op.id}{query}"
    )


def retry_after(op: Operation, now: float, cap: int = RETRY_AFTER_MAX) -> str:
    """Seconds until the operation is expected to end, at least 1 (0 would make the SDK wait
    its 30 s default) and at most ``cap``."""
    remaining = op.ends_at - now
    if not math.isfinite(remaining):
        return "1"
    return str(max(1, min(cap, math.ceil(remaining))))


def lro_headers(
    op: Operation, base_url: str, now: float, cap: int = RETRY_AFTER_MAX
) -> dict[str, str]:
    urls = urls_for(op, base_url)
    return {
        "Azure-AsyncOperation": urls.status,
        "Location": urls.location,
        "Retry-After": retry_after(op, now, cap),
    }


def status_document(
    op: Operation, base_url: str, now: float, cap: int = RETRY_AFTER_MAX
) -> ArmResponse:
    urls = urls_for(op, base_url)
    body: dict[str, Any] = {
        "id": urls.status.split("?", 1)[0].removeprefix(base_url.rstrip("/")),
        "name": op.id,
        "status": _wire_status(op),
        "startTime": isoformat(op.started_at),
    }
    headers: dict[str, str] = {}
    if op.status.terminal:
        body["endTime"] = isoformat(op.ended_at if op.ended_at is not None else now)
        body["percentComplete"] = 100
        if op.error is not None:
            body["error"] = op.error.to_json()
    else:
        total = op.ends_at - op.started_at
        done = 0.0 if not math.isfinite(total) or total <= 0 else (now - op.started_at) / total
        body["percentComplete"] = round(max(0.0, min(0.99, done)) * 100, 1)
        headers["Retry-After"] = retry_after(op, now, cap)
    return ArmResponse(200, body, headers)


def _wire_status(op: Operation) -> str:
    if op.kind is OpKind.DEPLOY and op.status is OpStatus.IN_PROGRESS:
        return "Running"
    return op.status.value


def location_result(
    op: Operation, base_url: str, now: float, cap: int = RETRY_AFTER_MAX
) -> ArmResponse:
    """202 while running; then what the synchronous call would have returned. A failed or
    canceled operation answers with its error, since a Location URL has no other way to say so."""
    if not op.status.terminal:
        urls = urls_for(op, base_url)
        return ArmResponse(
            202, None, {"Location": urls.location, "Retry-After": retry_after(op, now, cap)}
        )
    if op.status is not OpStatus.SUCCEEDED:
        error = op.error.to_json() if op.error else {"code": "Failed", "message": "Failed"}
        return ArmResponse(409, {"error": error})
    if op.result is None:
        return ArmResponse(200, None)
    return ArmResponse(200, op.result)
