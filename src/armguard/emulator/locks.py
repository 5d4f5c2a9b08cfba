"""Effective management locks and the ScopeLocked decision.

A lock applies to its scope and everything below it (the resource-ID prefix rule), including
resources created later. ``CanNotDelete`` blocks deletes; ``ReadOnly`` blocks every write:
PUT, PATCH, DELETE and POST actions such as ``listKeys``. A delete is also blocked by a lock on
anything it would remove, so one delete-locked resource blocks deleting its group. Lock CRUD
itself is exempt, so a lock can always be removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.model import Resource

__all__ = ["LOCK_TYPE", "is_lock", "lock_level", "scope_locked"]

LOCK_TYPE = "microsoft.authorization/locks"


def is_lock(rid: ResourceId) -> bool:
    return rid.is_resource and rid.type.lower() == LOCK_TYPE


def lock_level(lock: Resource) -> str:
    return str(lock.properties.get("level", ""))


def _display_scope(scope: ResourceId) -> str:
    # ARM prints locked scopes with a lowercase 'resourcegroups' segment.
    return scope.format().replace("/resourceGroups/", "/resourcegroups/", 1)


def scope_locked(
    locks: Iterable[Resource], target: ResourceId, verb: str, *, cascade: bool
) -> ArmError | None:
    """The 409 ScopeLocked error for ``verb`` (``write`` or ``delete``) on ``target``, or None.

    ``cascade`` is true for deletes that remove everything below the target.
    """
    blocking: list[ResourceId] = []
    for lock in locks:
        scope = lock.id.scope
        level = lock_level(lock).lower()
        if level not in ("readonly", "cannotdelete"):
            continue
        if verb == "write" and level != "readonly":
            continue
        applies = target.is_within(scope) or (cascade and scope.is_within(target))
        if applies and scope not in blocking:
            blocking.append(scope)
    if not blocking:
        return None
    scopes = ",".join(f"'{_display_scope(s)}'" for s in blocking)
    return ArmError(
        409,
        "ScopeLocked",
        f"The scope '{target.format()}' cannot perform {verb} operation because following "
        f"scope(s) are locked: {scopes}. Please remove the lock and try again.",
    )
