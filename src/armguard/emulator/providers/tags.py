"""``{scope}/providers/Microsoft.Resources/tags/default``: the tag set of any scope.

The tags live on the scope itself (a plain resource PATCH with ``tags`` and this API edit the
same set); this provider reads and writes them there. PUT replaces the set; PATCH applies
``Merge`` / ``Replace`` / ``Delete``; DELETE removes every tag. At most 50 tags may remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.model import Resource
from armguard.emulator.providers.base import Provider
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import Call
from armguard.emulator.shapes import STRING, Obj, Tags, check_tags

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["MAX_TAGS", "TagsProvider"]

MAX_TAGS = 50


def _tags_from(body: Mapping[str, Any]) -> dict[str, str]:
    props = body.get("properties")
    if not isinstance(props, Mapping):
        raise ArmError(
            400,
            "InvalidRequestContent",
            'The request content must be {"properties": {"tags": {name: value, ...}}} '
            "with string values.",
        )
    return check_tags(props.get("tags") or {}, "properties.tags")


class TagsProvider(Provider):
    has_provisioning_state = False
    settings = TypeSettings(
        conflict="tags",
        async_put=False,
        async_patch=False,
        async_delete=False,
        durations={"create": 1.0, "update": 1.0, "delete": 1.0},
    )
    shape = Obj({"operation": STRING, "properties": Obj({"tags": Tags()})})

    def _scope(self, core: Emulator, rid: ResourceId) -> Resource | None:
        scope = rid.scope
        if scope.is_subscription:
            return core._subscription(scope)
        return core.store.get(scope)

    def lookup(self, core: Emulator, rid: ResourceId) -> Resource | None:
        if rid.name.lower() != "default":
            return None
        scope = self._scope(core, rid)
        if scope is None:
            return None
        tags = scope.body.get("tags")
        if not isinstance(tags, Mapping):
            # Every write checks tags; a scope without them (or a type whose shape leaves
            # them free) simply has none.
            tags = {}
        return Resource(
            rid,
            {
                "id": rid.format(),
                "name": "default",
                "type": "Microsoft.Resources/tags",
                "properties": {"tags": dict(tags)},
            },
        )

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: dict[str, Any],
        method: str,
        prepared: object | None = None,
    ) -> dict[str, Any]:
        if rid.name.lower() != "default":
            raise ArmError(
                400, "InvalidTagsResourceName", "The tags resource name must be 'default'."
            )
        if self._scope(core, rid) is None:
            raise ArmError(
                404, "ResourceNotFound", f"The scope '{rid.scope.format()}' was not found."
            )
        current: dict[str, str] = dict(existing.properties.get("tags", {})) if existing else {}
        incoming = _tags_from(body)
        if method == "PUT":
            tags = incoming
        else:
            operation = str(body.get("operation", "")).lower()
            if operation == "merge":
                tags = {**current, **incoming}
            elif operation == "replace":
                tags = incoming
            elif operation == "delete":
                tags = {
                    k: v
                    for k, v in current.items()
                    if k not in incoming or (incoming[k] not in ("", v))
                }
            else:
                raise ArmError(
                    400,
                    "InvalidRequestContent",
                    "The tags PATCH 'operation' must be 'Merge', 'Replace' or 'Delete'.",
                )
        if len(tags) > MAX_TAGS:
            raise ArmError(
                400,
                "InvalidTagCount",
                f"The number of tags ({len(tags)}) exceeds the limit of {MAX_TAGS} tags per "
                "resource, resource group or subscription.",
            )
        return {
            "id": rid.format(),
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": tags},
        }

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        core.store.remove(res.id)
        scope = self._scope(core, res.id)
        if scope is not None:
            scope.body["tags"] = dict(res.properties.get("tags", {}))
            scope.changed_at = at

    def after_delete(self, core: Emulator, res: Resource, at: float) -> None:
        scope = self._scope(core, res.id)
        if scope is not None:
            scope.body["tags"] = {}
            scope.changed_at = at

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> dict[str, Any]:
        current = self.lookup(core, res.id)
        return (current or res).snapshot()
