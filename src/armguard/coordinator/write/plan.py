"""Step 3 of a round: the ARM requests that carry the decided jobs. No I/O.

A body batch is one conditional PUT of the folded body (``If-Match`` with the live ETag where
the type has ETags, ``If-None-Match: *`` for a create); a tag-only batch on a type without
ETags goes through the tags extension resource (``Merge`` / ``Delete``), which changes only the
named keys; a barrier (action, delete) is its own request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.ids import ResourceId
from armguard.coordinator.intents import (
    BodyIntent,
    Request,
    TagsIntent,
    fold,
    strip_read_only,
)
from armguard.coordinator.resource_types import TAGS_API_VERSION, TagsVia, TypeInfo
from armguard.coordinator.write.items import Item, etag_of

__all__ = ["WriteRequest", "plan_writes"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class WriteRequest:
    verb: str
    path: str
    api_version: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def plan_writes(
    rid: ResourceId, info: TypeInfo, api: str, items: Sequence[Item], live: JSON | None
) -> list[WriteRequest]:
    """The writes for this round; empty when the folded body is what is live already."""
    path = rid.format()
    etag = etag_of(live)
    if len(items) == 1 and not isinstance(items[0].effective, BodyIntent):
        req = items[0].effective.rebase(live)
        assert isinstance(req, Request)
        headers = {"If-Match": etag} if etag and req.method == "DELETE" else {}
        return [WriteRequest(req.method, path + req.suffix, api, req.body, headers)]
    intents = [i.effective for i in items if isinstance(i.effective, BodyIntent)]
    if (
        live is not None
        and etag is None
        and info.tags_via is TagsVia.TAGS_API
        and all(isinstance(i, TagsIntent) for i in intents)
    ):
        return _tags_writes(rid, live, intents)
    desired = strip_read_only(fold(intents, live))
    if live is not None and desired == strip_read_only(live):
        return []
    headers = {"If-Match": etag} if etag else {}
    if live is None:
        headers = {"If-None-Match": "*"}
    return [WriteRequest("PUT", path, api, desired, headers)]


def _tags_writes(rid: ResourceId, live: JSON, intents: Sequence[BodyIntent]) -> list[WriteRequest]:
    before = dict(live.get("tags") or {})
    after = fold(intents, {"tags": before}).get("tags") or {}
    merge = {k: v for k, v in after.items() if before.get(k) != v}
    remove = {k: v for k, v in before.items() if k not in after}
    path = f"{rid.format()}/providers/Microsoft.Resources/tags/default"
    out: list[WriteRequest] = []
    if merge:
        out.append(
            WriteRequest(
                "PATCH",
                path,
                TAGS_API_VERSION,
                {"operation": "Merge", "properties": {"tags": merge}},
            )
        )
    if remove:
        # Name/value pairs, so the delete removes exactly the values we saw.
        out.append(
            WriteRequest(
                "PATCH",
                path,
                TAGS_API_VERSION,
                {"operation": "Delete", "properties": {"tags": remove}},
            )
        )
    return out
