"""``Microsoft.Authorization/locks`` at any scope: synchronous, and exempt from locks and holds
themselves so a lock can always be removed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.model import Resource
from armguard.emulator.providers.base import Provider
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import Call
from armguard.emulator.shapes import STRING, Arr, Obj

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["LOCK_LEVELS", "LockProvider"]

LOCK_LEVELS = {
    "cannotdelete": "CanNotDelete",
    "readonly": "ReadOnly",
    "notspecified": "NotSpecified",
}


class LockProvider(Provider):
    lockable = False
    holdable = False
    has_provisioning_state = False
    settings = TypeSettings(async_put=False, async_patch=False, async_delete=False)
    shape = Obj(
        {
            "properties": Obj(
                {
                    "level": STRING,
                    "notes": STRING,
                    "owners": Arr(Obj({"applicationId": STRING})),
                }
            )
        }
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
        props = body.get("properties")
        if not isinstance(props, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The lock definition needs a 'properties' object."
            )
        level = LOCK_LEVELS.get(str(props.get("level", "")).lower())
        if level is None:
            raise ArmError(
                400,
                "LockLevelRequired",
                "The lock level must be one of 'CanNotDelete', 'ReadOnly' or 'NotSpecified'.",
            )
        notes = props.get("notes")
        if notes is not None and (not isinstance(notes, str) or len(notes) > 512):
            raise ArmError(
                400,
                "LockNotesTooLong",
                "The lock notes must be a string of at most 512 characters.",
            )
        out_props: dict[str, Any] = {"level": level}
        if notes is not None:
            out_props["notes"] = notes
        if props.get("owners") is not None:
            out_props["owners"] = props["owners"]
        return {"id": rid.format(), "name": rid.name, "type": rid.type, "properties": out_props}
