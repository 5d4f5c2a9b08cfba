"""The provider pattern: one class per resource-type family, hooks the core calls.

The core owns the write path (locks, preconditions, holds, operations, Activity Log); a provider
only says what its type looks like and which lifecycle rules it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import InvalidResourceId, ResourceId
from armguard.emulator.catalog import check_location
from armguard.emulator.model import Operation, Resource, copy_json
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import ArmResponse, Call
from armguard.emulator.shapes import ENVELOPE, Obj, Shape, check_depth, check_shape

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["ActionResult", "Provider", "merge_patch", "reference_ids"]

JSON = dict[str, Any]


@dataclass
class ActionResult:
    """A POST action: either an immediate answer or an operation to run."""

    body: Any = None
    status: int = 200
    duration_key: str | None = None
    """Set to run the action as an operation timed by this duration key."""
    result: Any = None
    """What the operation's Location URL returns when done (None → empty)."""


def merge_patch(base: JSON, patch: Mapping[str, Any]) -> JSON:
    """RFC 7386 merge, except that ``tags`` replaces the whole set (ARM's PATCH rule)."""
    out: JSON = copy_json(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key != "tags" and isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = copy_json(value)
    return out


def reference_ids(*values: Any) -> set[ResourceId]:
    """Resource IDs in ``{"id": ...}`` references, ignoring anything that is not one."""
    out: set[ResourceId] = set()
    for value in values:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                try:
                    out.add(ResourceId.parse(item["id"]))
                except InvalidResourceId:
                    continue
    return out


class Provider:
    """A generic tracked resource: any type the emulator has no specific rules for."""

    settings: TypeSettings = TypeSettings(
        durations={"create": 2.0, "update": 2.0, "delete": 2.0, "default": 2.0}
    )
    lockable = True
    """Subject to ScopeLocked (lock CRUD itself is not)."""
    holdable = True
    """Subject to holds by running operations (lock CRUD is not)."""
    has_provisioning_state = True
    shape: Shape = Obj(ENVELOPE)
    """What a PUT/PATCH body must look like (see :mod:`~armguard.emulator.shapes`)."""
    location_required = False
    """A tracked type its provider validates: a PUT without ``location`` is refused. Generic
    types stay lenient: some real ones are global or proxy resources without a location."""

    def __init__(self, settings: TypeSettings | None = None) -> None:
        if settings is not None:
            self.settings = settings

    def lookup(self, core: Emulator, rid: ResourceId) -> Resource | None:
        """The stored resource at ``rid`` (types that live inside another resource override)."""
        return core.store.get(rid)

    # -- shaping ------------------------------------------------------------------------

    def check_body(self, rid: ResourceId, body: JSON) -> None:
        """Refuse a body ARM could not deserialise into this type (400), before any lock."""
        check_depth(body)
        check_shape(body, self.shape, rid)

    def check_write(self, rid: ResourceId, body: JSON, method: str) -> None:
        """Refuse what ARM refuses for this method before reading any state (400)."""
        if method != "PUT" or rid.is_child:
            return
        location = next((v for k, v in body.items() if str(k).lower() == "location"), None)
        if isinstance(location, str) and location:
            check_location(rid, location)
        elif self.location_required:
            raise ArmError(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
            )

    def prepare(
        self, core: Emulator, call: Call, *, rid: ResourceId, body: JSON, method: str
    ) -> object | None:
        """Work a write needs that reads no state it must hold (a deployment's template plan),
        done before the group's lock is taken, so a slow one stalls nobody; ``build`` gets
        the result as ``prepared``."""
        return None

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: JSON,
        method: str,
        prepared: object | None = None,
    ) -> JSON:
        """The stored body after a PUT (``body`` replaces) or PATCH (``body`` merges)."""
        if method == "PATCH" and existing is not None:
            new = merge_patch(existing.body, body)
        else:
            new = copy_json(body)
            if existing is not None and "location" not in new and "location" in existing.body:
                new["location"] = existing.body["location"]
        new.pop("etag", None)
        new["id"] = rid.format()
        new["name"] = rid.name
        new["type"] = rid.type
        if existing is not None and "location" in existing.body:
            # location is immutable; ARM ignores a different value only for case.
            if str(new.get("location", "")).lower() != str(existing.body["location"]).lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'location' is not allowed.",
                    target="location",
                )
            new["location"] = existing.body["location"]
        props = new.get("properties")
        if props is None:
            new["properties"] = {}
        elif not isinstance(props, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content 'properties' must be an object."
            )
        return new

    def references(self, body: JSON) -> set[ResourceId]:
        return set()

    def validate(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        new_body: JSON,
        method: str,
    ) -> None:
        """Raise an ArmError if the type's lifecycle rules refuse this write now."""

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        """Side effects on other resources (a subnet into its VNet's list)."""

    def validate_delete(self, core: Emulator, call: Call, res: Resource) -> None:
        """Raise an ArmError if the resource cannot be deleted now (in use)."""

    def after_delete(self, core: Emulator, res: Resource, at: float) -> None:
        """Side effects of a completed delete on other resources."""

    def on_started(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        """An operation on this type started: set transitional states."""

    def on_completed(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        """An operation on this type ended (any terminal status): set final states."""

    def refuse_during(
        self, core: Emulator, running: Operation, rid: ResourceId, what: str
    ) -> ArmError | None:
        """A type-specific refusal while ``running`` holds ``rid`` (None: the conflict style)."""
        return None

    def wake(self, core: Emulator, op: Operation, at: float) -> None:
        """The operation's ``wake_at`` instant arrived."""

    def child_ended(self, core: Emulator, parent: Operation, child: Operation, at: float) -> None:
        """An operation started on behalf of ``parent`` (a deployment step) ended."""

    # -- reads and actions --------------------------------------------------------------

    def action_is_write(self, name: str) -> bool:
        """Whether a POST action counts as a write (locks and holds apply)."""
        return True

    def action_without_resource(self, name: str) -> bool:
        """Whether a POST action is served when the resource does not exist (a preview of
        one that is about to be created)."""
        return False

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        return res.snapshot()

    def action(
        self, core: Emulator, call: Call, res: Resource, name: str, body: Any
    ) -> ActionResult:
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type '{res.id.type}' does not support the action '{name}'.",
        )

    def collection(
        self, core: Emulator, call: Call, res: Resource, name: str, query: Mapping[str, str]
    ) -> ArmResponse | None:
        """GET ``{id}/{name}`` for a name that is not a child type (``instanceView``)."""
        return None
