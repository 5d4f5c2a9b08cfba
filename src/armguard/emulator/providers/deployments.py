"""``Microsoft.Resources/deployments`` in a resource group: templates run through the same
write path as a client PUT.

A deployment plans its template, then starts every resource whose dependencies are done, each
as an ordinary PUT (so it takes the same holds and collides like the real one), independent
ones at once. Its state goes Accepted → Running → Succeeded / Failed / Canceled; failures are
wrapped in ``DeploymentFailed`` with the root causes as details. A PUT of a deployment whose
same-name run is still active is refused with ``DeploymentActive``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError, ErrorDetail, reason_phrase
from armguard.arm.ids import ResourceId
from armguard.clock import isoformat
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource
from armguard.emulator.providers.base import ActionResult, Provider
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.refusals import internal_error
from armguard.emulator.request import ArmResponse, Call
from armguard.emulator.shapes import STRING, Obj, Tags
from armguard.emulator.templates import DeploymentPlan, plan_deployment
from armguard.emulator.whatif import preflight, validate_result, what_if_result

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["DeploymentProvider"]

JSON = dict[str, Any]
DEPLOYMENT_FAILED = (
    "At least one resource deployment operation failed. Please list deployment operations for "
    "details. Please see https://aka.ms/arm-deployment-operations for usage details."
)
RESOURCE_FAILED = "The resource operation completed with terminal provisioning state 'Failed'."

log = logging.getLogger("armguard.emulator")
_PREVIEWS = ("validate", "whatif")


def _template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).digest()
    return str(int.from_bytes(digest[:8], "big"))


def _arm_time(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    hour = dt.hour % 12 or 12
    return (
        f"{dt.month}/{dt.day}/{dt.year} {hour}:{dt.minute:02d}:{dt.second:02d} {dt.strftime('%p')}"
    )


def _status_code(status: int, state: str) -> str:
    if status >= 400:
        return reason_phrase(status)
    return {200: "OK", 201: "Created", 202: "Accepted"}.get(
        status, "Conflict" if state == "Failed" else "OK"
    )


class DeploymentProvider(Provider):
    holdable = False
    settings = TypeSettings(
        async_delete=True,
        durations={"delete": 1.0, "default": 0.0},
        op_namespace="Microsoft.Resources",
    )
    shape = Obj(
        {
            "location": STRING,
            "tags": Tags(),
            "properties": Obj(
                {
                    "template": Obj(),
                    "parameters": Obj(),
                    "mode": STRING,
                    "templateLink": Obj(),
                    "parametersLink": Obj(),
                    "debugSetting": Obj(),
                    "onErrorDeployment": Obj(),
                }
            ),
        }
    )

    def _running(self, core: Emulator, res: Resource | None) -> Operation | None:
        if res is None:
            return None
        op_id = res.internal.get("op")
        op = core.store.operation(op_id) if isinstance(op_id, str) else None
        return op if op is not None and op.status is OpStatus.IN_PROGRESS else None

    def _active_error(self, core: Emulator, rid: ResourceId, op: Operation, verb: str) -> ArmError:
        expires = op.started_at + 7 * 24 * 3600
        return ArmError(
            409,
            "DeploymentActive",
            f"Unable to {verb} deployment '{rid.name}': previous deployment from "
            f"'{_arm_time(op.started_at)}' is still active (expiration time is "
            f"'{_arm_time(expires)}'). Please see https://aka.ms/arm-deploy-resources for usage "
            "details.",
        )

    def prepare(
        self, core: Emulator, call: Call, *, rid: ResourceId, body: JSON, method: str
    ) -> object | None:
        """Validate and plan the template before the group's lock is taken: planning a large
        template is the slowest thing a request can do, and a held group lock would stall
        every request for that group (and the event loop waiting on it)."""
        if method != "PUT":
            raise ArmError(
                405, "MethodNotAllowed", "Deployments are created or replaced with PUT only."
            )
        if rid.resource_group is None or len(rid.levels) != 1:
            raise ArmError(
                400,
                "InvalidDeploymentScope",
                "Only resource-group deployments are supported by this emulator.",
            )
        props = body.get("properties")
        if not isinstance(props, Mapping):
            raise ArmError(400, "InvalidRequestContent", "The deployment needs 'properties'.")
        if "templateLink" in props or "parametersLink" in props:
            raise ArmError(
                400,
                "InvalidTemplate",
                "Linked templates (templateLink, parametersLink) are not supported by this "
                "emulator; send the template inline.",
            )
        template = props.get("template")
        if not isinstance(template, Mapping):
            raise ArmError(400, "InvalidTemplate", "The deployment needs an inline 'template'.")
        mode = str(props.get("mode", "Incremental"))
        if mode.lower() not in ("incremental", "complete"):
            raise ArmError(
                400, "InvalidDeploymentMode", f"The deployment mode '{mode}' is not valid."
            )
        # An unlocked read: a group's location never changes.
        group = core.store.get(rid.resource_group_id) if rid.resource_group_id else None
        location = str(group.body.get("location", "eastus")) if group else "eastus"
        plan = plan_deployment(
            template,
            props.get("parameters") or {},
            subscription=rid.subscription,
            resource_group=rid.resource_group,
            resource_group_location=location,
            deployment_name=rid.name,
        )
        for planned in plan.resources:
            if planned.id.resource_group_id != rid.resource_group_id:
                raise ArmError(
                    400,
                    "InvalidTemplate",
                    f"Resource '{planned.id.format()}' is outside the deployment's resource "
                    "group; cross-scope deployments are not supported by this emulator.",
                )
        preflight(core, call, rid, plan)
        return plan

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
        assert isinstance(prepared, DeploymentPlan), "prepare() plans every deployment write"
        running = self._running(core, existing)
        if running is not None:
            raise self._active_error(core, rid, running, "edit or replace")
        props = body["properties"]
        template = props["template"]
        mode = str(props.get("mode", "Incremental"))
        return {
            "id": rid.format(),
            "name": rid.name,
            "type": "Microsoft.Resources/deployments",
            "properties": {
                "templateHash": _template_hash(template),
                "parameters": props.get("parameters") or {},
                "mode": mode[0].upper() + mode[1:],
                "provisioningState": "Accepted",
                "timestamp": isoformat(core.now()),
                "duration": "PT0S",
                "correlationId": call.correlation_id,
                "outputResources": [],
                "dependencies": [],
            },
            "_plan": prepared,
        }

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        res.internal["plan"] = res.body.pop("_plan")
        res.internal["steps"] = []
        res.internal["call"] = call

    def on_started(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        if res is None or op.kind not in (OpKind.CREATE, OpKind.UPDATE):
            return
        op.kind = OpKind.DEPLOY
        op.ends_at = math.inf
        op.wake_at = op.started_at
        res.internal["op"] = op.id
        res.properties["provisioningState"] = "Accepted"

    # -- running --------------------------------------------------------------------

    def wake(self, core: Emulator, op: Operation, at: float) -> None:
        res = core.store.get(op.target)
        if res is None:
            return
        res.properties["provisioningState"] = "Running"
        self._advance_guarded(core, op, res, at)

    def child_ended(self, core: Emulator, parent: Operation, child: Operation, at: float) -> None:
        res = core.store.get(parent.target)
        if res is None or parent.status.terminal or "plan" not in res.internal:
            return
        for step in res.internal["steps"]:
            if step.get("child_op") == child.id:
                step["end"] = at
                if child.status is OpStatus.SUCCEEDED:
                    step["state"] = "Succeeded"
                else:
                    step["state"] = "Failed"
                    inner = child.error or ErrorDetail("Failed", "The operation failed.")
                    step["error"] = ErrorDetail(
                        "ResourceDeploymentFailure", RESOURCE_FAILED, details=(inner,)
                    )
        self._advance_guarded(core, parent, res, at)

    def _advance_guarded(self, core: Emulator, op: Operation, res: Resource, at: float) -> None:
        """Run the deployment on, and end it Failed if the emulator itself breaks while doing
        so: an exception escaping here would leave it Running for ever, and every PUT of the
        same name refused with DeploymentActive."""
        try:
            self._advance(core, op, res, at)
        except Exception:
            log.exception("deployment %s failed unexpectedly", op.target.format())
            error = ErrorDetail(
                "DeploymentFailed", DEPLOYMENT_FAILED, details=(internal_error().error,)
            )
            res.properties["provisioningState"] = "Failed"
            res.properties["error"] = error.to_json()
            core.operations.end(op, at, OpStatus.FAILED, error)

    def _advance(self, core: Emulator, op: Operation, res: Resource, at: float) -> None:
        plan: DeploymentPlan = res.internal["plan"]
        steps: list[JSON] = res.internal["steps"]
        call: Call = res.internal["call"]
        while not op.status.terminal:
            started = {s["key"] for s in steps}
            done = {s["key"] for s in steps if s["state"] == "Succeeded"}
            failed = [s for s in steps if s["state"] == "Failed"]
            running = [s for s in steps if s["state"] == "Running"]
            ready = [] if failed else [r for r in plan.ready(done) if r.id.key not in started]
            if not ready:
                if running:
                    return
                self._finish(core, op, res, at, failed)
                return
            for planned in ready:
                step: JSON = {
                    "key": planned.id.key,
                    "id": planned.id,
                    "api_version": planned.api_version,
                    "operation_id": core.new_guid().replace("-", "").upper()[:16],
                    "start": at,
                    "state": "Running",
                }
                steps.append(step)
                child_call = dataclasses.replace(call, request_id=core.new_guid())
                child_call = dataclasses.replace(child_call, api_version=planned.api_version)
                try:
                    # A deployment step is a request like any other: fault rules apply to it.
                    applied = core.match_fault("PUT", planned.id.format())
                    rejection = applied.http_error() if applied is not None else None
                    if rejection is not None:
                        raise rejection
                    op_fault = core.op_fault_of(applied) if applied else None
                    try:
                        with core.op_fault_scope(op_fault):
                            response = core.writes.write(
                                child_call,
                                "PUT",
                                planned.id,
                                dict(planned.body),
                                at=at,
                                extra={"deployment_op": op.id},
                            )
                    finally:
                        if applied is not None:
                            core.fault_served(applied, op_fault)
                except ArmError as err:
                    step["state"] = "Failed"
                    step["status"] = err.status
                    step["error"] = err.error
                    step["end"] = at
                    continue
                except Exception:
                    # The step's own write path has ended its Activity Log entry; the
                    # deployment records the step Failed and ends like any failed run.
                    log.exception("deployment step %s failed unexpectedly", planned.id.format())
                    step["state"] = "Failed"
                    step["status"] = 500
                    step["error"] = internal_error().error
                    step["end"] = at
                    continue
                step["status"] = response.status
                child_id = response.headers.get("x-ms-request-id")
                child = core.store.operation(child_id) if child_id else None
                if child is not None and child.extra.get("deployment_op") == op.id:
                    step["child_op"] = child.id
                    if child.status.terminal:
                        step["state"] = (
                            "Succeeded" if child.status is OpStatus.SUCCEEDED else "Failed"
                        )
                        step["end"] = at
                else:
                    step["state"] = "Succeeded"
                    step["end"] = at

    def _finish(
        self, core: Emulator, op: Operation, res: Resource, at: float, failed: list[JSON]
    ) -> None:
        props = res.properties
        props["duration"] = f"PT{max(0.0, at - op.started_at):.1f}S"
        props["outputResources"] = [
            {"id": s["id"].format()} for s in res.internal["steps"] if s["state"] == "Succeeded"
        ]
        if failed:
            error = ErrorDetail(
                "DeploymentFailed", DEPLOYMENT_FAILED, details=tuple(s["error"] for s in failed)
            )
            props["provisioningState"] = "Failed"
            props["error"] = error.to_json()
            core.operations.end(op, at, OpStatus.FAILED, error)
            return
        plan: DeploymentPlan = res.internal["plan"]
        props["provisioningState"] = "Succeeded"
        props["outputs"] = {
            k: v if isinstance(v, Mapping) and "value" in v else {"value": v}
            for k, v in plan.outputs.items()
        }
        core.operations.end(op, at, OpStatus.SUCCEEDED, None)

    def on_completed(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        if res is None or op.kind is not OpKind.DEPLOY:
            return
        if op.status is OpStatus.CANCELED:
            res.properties["provisioningState"] = "Canceled"
        elif op.status is OpStatus.FAILED and res.properties.get("provisioningState") not in (
            "Failed",
        ):
            res.properties["provisioningState"] = "Failed"
            if op.error is not None:
                res.properties["error"] = op.error.to_json()
        op.result = self.view(core, res, {})

    # -- reads, delete, cancel ------------------------------------------------------

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        return res.snapshot()

    def validate_delete(self, core: Emulator, call: Call, res: Resource) -> None:
        running = self._running(core, res)
        if running is not None:
            raise self._active_error(core, res.id, running, "delete")

    def action_is_write(self, name: str) -> bool:
        return name.lower() not in _PREVIEWS

    def action_without_resource(self, name: str) -> bool:
        return name.lower() in _PREVIEWS

    def action(
        self, core: Emulator, call: Call, res: Resource, name: str, body: Any
    ) -> ActionResult:
        if name.lower() in _PREVIEWS:
            if not isinstance(body, dict):
                raise ArmError(400, "InvalidRequestContent", "The request needs a deployment body.")
            self.check_body(res.id, body)
            plan = self.prepare(core, call, rid=res.id, body=body, method="PUT")
            assert isinstance(plan, DeploymentPlan)
            if name.lower() == "validate":
                return ActionResult(body=validate_result(core, call, res.id, body, plan))
            # whatIf is long-running in ARM: 202 and a Location that returns the result.
            return ActionResult(
                duration_key="whatIf", result=what_if_result(core, res.id, body, plan)
            )
        if name.lower() != "cancel":
            return super().action(core, call, res, name, body)
        running = self._running(core, res)
        if running is None:
            raise ArmError(
                409,
                "DeploymentCannotBeCanceled",
                f"The deployment '{res.id.name}' cannot be canceled: it is not running.",
            )
        now = core.now()
        core.operations.end(
            running,
            now,
            OpStatus.CANCELED,
            ErrorDetail("DeploymentCanceled", f"The deployment '{res.id.name}' was canceled."),
        )
        return ActionResult(status=204)

    def collection(
        self, core: Emulator, call: Call, res: Resource, name: str, query: Mapping[str, str]
    ) -> ArmResponse | None:
        if name.lower() != "operations":
            return None
        out = []
        for step in res.internal.get("steps", []):
            rid: ResourceId = step["id"]
            state = step["state"]
            props: JSON = {
                "provisioningOperation": "Create",
                "provisioningState": state,
                "timestamp": isoformat(step.get("end", step["start"])),
                "duration": f"PT{max(0.0, step.get('end', core.now()) - step['start']):.1f}S",
                "serviceRequestId": step.get("child_op", step["operation_id"]),
                "statusCode": _status_code(step.get("status", 0), state),
                "targetResource": {
                    "id": rid.format(),
                    "resourceName": rid.name,
                    "resourceType": rid.type,
                    "apiVersion": step["api_version"],
                },
            }
            if "error" in step:
                props["statusMessage"] = {"status": "Failed", "error": step["error"].to_json()}
            out.append(
                {
                    "id": f"{res.id.format()}/operations/{step['operation_id']}",
                    "operationId": step["operation_id"],
                    "properties": props,
                }
            )
        return ArmResponse(200, {"value": out})
