"""Resource groups (synchronous PUT/PATCH, delete as one cascading operation) and the
implicit subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.model import Operation, OpKind, Resource
from armguard.emulator.providers.base import Provider
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import Call
from armguard.emulator.shapes import STRING, Obj, Tags

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["ResourceGroupProvider", "SubscriptionProvider"]


class ResourceGroupProvider(Provider):
    settings = TypeSettings(
        async_put=False,
        async_patch=False,
        durations={"delete": 10.0},
        op_namespace="Microsoft.Resources",
    )
    shape = Obj({"location": STRING, "tags": Tags(), "properties": Obj(), "managedBy": STRING})
    location_required = True

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
        if existing is None and not isinstance(body.get("location"), str):
            raise ArmError(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
            )
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        new["type"] = "Microsoft.Resources/resourceGroups"
        new.setdefault("tags", {})
        return new

    def refuse_during(
        self, core: Emulator, running: Operation, rid: ResourceId, what: str
    ) -> ArmError | None:
        if running.kind is OpKind.DELETE and running.target.is_resource_group:
            return ArmError(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{running.target.resource_group}' is in deprovisioning "
                "state and cannot perform this operation.",
            )
        return None


class SubscriptionProvider(Provider):
    """Subscriptions are implicit: any id exists and answers GET."""

    has_provisioning_state = False
    lockable = False
    holdable = False
