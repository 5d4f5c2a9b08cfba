"""Deployment ``validate`` and ``whatIf``: a template judged and diffed against live state
without deploying it.

``validate`` plans the template (the same planner a deployment runs) and then asks every
resource's type what a PUT of it would be refused for before any state is read (body shape,
unknown members, location, namespace, api-version), answering ARM's
``InvalidTemplateDeployment`` with each refusal as a detail.

``whatIf`` compares each planned resource with the one that exists now: ``Create`` when there
is none, ``Modify`` with a property delta when a value the template sets differs, ``NoChange``
when none does; resources of the group the template does not mention are ``Ignore`` in
Incremental mode and ``Delete`` in Complete mode (ARM's prediction).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.clock import isoformat
from armguard.emulator.catalog import check_api_version_for, check_namespace
from armguard.emulator.templates import DeploymentPlan, PlannedResource

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator
    from armguard.emulator.request import Call

__all__ = ["preflight", "validate_result", "what_if_result"]

JSON = dict[str, Any]

# Server-set fields a template never sets: not compared, never reported.
_SERVER_SET = {"id", "name", "type", "etag", "provisioningstate", "resourceguid", "vmid"}
_NOT_DIFFED = {"microsoft.resources/deployments", "microsoft.authorization/locks"}


def _preflight(core: Emulator, planned: PlannedResource) -> ArmError | None:
    provider = core.provider_for(planned.id)
    try:
        for level in planned.id.levels:
            check_namespace(level.namespace)
        location = planned.body.get("location")
        check_api_version_for(
            planned.id.type, planned.api_version, location if isinstance(location, str) else None
        )
        provider.check_body(planned.id, planned.body)
        provider.check_write(planned.id, planned.body, "PUT")
    except ArmError as err:
        return err
    return None


def preflight(core: Emulator, call: Call, rid: ResourceId, plan: DeploymentPlan) -> None:
    """Raise ``InvalidTemplateDeployment`` if any planned resource's PUT would be refused
    before state is read; ARM runs this before a deployment starts, and for ``validate``."""
    failures = [(planned, err) for planned in plan.resources if (err := _preflight(core, planned))]
    if failures:
        raise ArmError(
            400,
            "InvalidTemplateDeployment",
            f"The template deployment '{rid.name}' is not valid according to the validation "
            f"procedure. The tracking id is '{call.request_id}'. See inner errors for details.",
            details=[
                ErrorDetail(err.code, err.message, target=planned.id.format())
                for planned, err in failures
            ],
        )


def validate_result(
    core: Emulator, call: Call, rid: ResourceId, body: Mapping[str, Any], plan: DeploymentPlan
) -> JSON:
    """The 200 body of a successful validation, or raise ``InvalidTemplateDeployment``."""
    preflight(core, call, rid, plan)
    props = body.get("properties") or {}
    mode = str(props.get("mode", "Incremental"))
    return {
        "id": rid.format(),
        "name": rid.name,
        "type": "Microsoft.Resources/deployments",
        "properties": {
            "provisioningState": "Succeeded",
            "mode": mode[0].upper() + mode[1:],
            "parameters": props.get("parameters") or {},
            "timestamp": isoformat(core.now()),
            "duration": "PT0S",
            "correlationId": call.correlation_id,
            "validatedResources": [{"id": p.id.format()} for p in plan.resources],
            "dependencies": [
                {
                    "id": p.id.format(),
                    "resourceType": p.id.type,
                    "resourceName": p.id.name,
                    "dependsOn": [
                        {"id": d.id.format(), "resourceType": d.id.type, "resourceName": d.id.name}
                        for d in plan.resources
                        if d.id.key in p.depends_on
                    ],
                }
                for p in plan.resources
                if p.depends_on
            ],
        },
    }


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) for every leaf a template sets; arrays are compared whole."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            if str(key).lower() in _SERVER_SET:
                continue
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def _at(value: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return False, None
        found = {str(k).lower(): k for k in value}.get(part.lower())
        if found is None:
            return False, None
        value = value[found]
    return True, value


def _same(a: Any, b: Any) -> bool:
    # ARM compares locations and names without case or spaces ("West US" == "westus").
    if isinstance(a, str) and isinstance(b, str):
        return a == b or a.replace(" ", "").lower() == b.replace(" ", "").lower()
    return bool(a == b)


def _delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[JSON]:
    changes: list[JSON] = []
    for path, value in _leaves(after):
        if not path:
            continue
        present, old = _at(before, path)
        if not present:
            changes.append({"path": path, "propertyChangeType": "Create", "after": value})
        elif isinstance(value, list) and isinstance(old, list) and not _same(old, value):
            changes.append(
                {"path": path, "propertyChangeType": "Array", "before": old, "after": value}
            )
        elif not _same(old, value):
            changes.append(
                {"path": path, "propertyChangeType": "Modify", "before": old, "after": value}
            )
    return changes


def what_if_result(
    core: Emulator, rid: ResourceId, body: Mapping[str, Any], plan: DeploymentPlan
) -> JSON:
    """The operation result of a whatIf: each planned resource's change against live state."""
    changes: list[JSON] = []
    planned_keys = set()
    for planned in plan.resources:
        planned_keys.add(planned.id.key)
        provider = core.provider_for(planned.id)
        after = {
            "id": planned.id.format(),
            "name": planned.id.name,
            "type": planned.id.type,
            "apiVersion": planned.api_version,
            **planned.body,
        }
        existing = provider.lookup(core, planned.id)
        if existing is None:
            changes.append(
                {"resourceId": planned.id.format(), "changeType": "Create", "after": after}
            )
            continue
        before = provider.view(core, existing, {})
        delta = _delta(before, planned.body)
        changes.append(
            {
                "resourceId": planned.id.format(),
                "changeType": "Modify" if delta else "NoChange",
                "before": before,
                "after": {**before, **after} if delta else before,
                "delta": delta,
            }
        )
    mode = str((body.get("properties") or {}).get("mode", "Incremental")).lower()
    group = rid.resource_group_id
    if group is not None:
        for res in core.store.descendants(group):
            if (
                res.id.key in planned_keys
                or res.id.parent != group
                or res.id.is_extension
                or res.id.type.lower() in _NOT_DIFFED
            ):
                continue
            view = core.provider_for(res.id).view(core, res, {})
            if mode == "complete":
                changes.append(
                    {"resourceId": res.id.format(), "changeType": "Delete", "before": view}
                )
            else:
                changes.append({"resourceId": res.id.format(), "changeType": "Ignore"})
    return {"status": "Succeeded", "properties": {"changes": changes}}
