"""The write path: PUT / PATCH / DELETE / POST actions, in ARM's order.

Container exists → locks (ScopeLocked) → preconditions (412) → holds by running operations
(409 / 429 / preemption) → the type's lifecycle rules → the write and its operation. Each step
runs inside the target's bucket lock, so a check and the write it guards are atomic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.emulator.conditions import Outcome, evaluate
from armguard.emulator.holds import blocking_operation
from armguard.emulator.locks import LOCK_TYPE, scope_locked
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource
from armguard.emulator.operations import urls_for
from armguard.emulator.providers.base import Provider
from armguard.emulator.refusals import (
    internal_error,
    method_not_allowed,
    not_found,
    precondition_failed,
)
from armguard.emulator.request import ArmResponse, Call
from armguard.emulator.store import bucket_key

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["PREEMPTED", "WritePath"]

JSON = dict[str, Any]

PREEMPTED = ErrorDetail(
    "OperationPreempted", "Operation execution has been preempted by a more recent operation."
)


class WritePath:
    """The emulator's writes: ``core.writes``."""

    def __init__(self, core: Emulator) -> None:
        self.core = core

    def write(
        self,
        call: Call,
        method: str,
        rid: ResourceId,
        body: JSON,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        at: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ArmResponse:
        """PUT or PATCH ``rid``. ``at`` runs the write at a past instant of the clock (a
        deployment step starting when its dependency finished); ``extra`` tags the operation."""
        provider = self.core.provider_for(rid)
        settings = provider.settings
        name = f"{rid.type}/write"
        self.core.audit.started(call, rid, name, method, body)
        try:
            if rid.is_subscription:
                raise method_not_allowed(method, rid.format())
            provider.check_body(rid, body)
            provider.check_write(rid, body, method)
            prepared = provider.prepare(self.core, call, rid=rid, body=body, method=method)
            with self.core.store.locked(rid):
                now = self.core.now() if at is None else at
                self.core.operations.settle(rid, now)
                self.core.require_container(rid)
                existing = provider.lookup(self.core, rid)
                if method == "PATCH" and existing is None:
                    raise ArmError(
                        404,
                        "PatchResourceNotFound",
                        f"The resource '{rid.format()}' was not found when evaluating policies "
                        "for a PATCH operation.",
                        target=rid.name,
                        headers={"x-ms-failure-cause": "gateway"},
                    )
                if provider.lockable:
                    self.check_locks(rid, "write", cascade=False)
                self.check_conditions(
                    provider,
                    method,
                    rid,
                    existing=existing,
                    if_match=if_match,
                    if_none_match=if_none_match,
                )
                new_body = provider.build(
                    self.core,
                    call,
                    rid=rid,
                    existing=existing,
                    body=body,
                    method=method,
                    prepared=prepared,
                )
                refs = frozenset(r.key for r in provider.references(new_body))
                fingerprint = _fingerprint(method, body)
                if provider.holdable:
                    same = self._hold_check(
                        rid,
                        refs,
                        now,
                        call=call,
                        method=method,
                        fingerprint=fingerprint,
                        provider=provider,
                    )
                    if same is not None:
                        joined = self.core.operations.response(same, call, now)
                        self.core.audit.finished(
                            call, rid, name, method, http_status=joined.status, op=same
                        )
                        return joined
                provider.validate(
                    self.core, call, rid=rid, existing=existing, new_body=new_body, method=method
                )
                kind = OpKind.CREATE if existing is None else OpKind.UPDATE
                is_async = settings.async_put if method == "PUT" else settings.async_patch
                res = existing or Resource(rid, {}, created_at=now)
                res.id = rid
                res.body = new_body
                res.changed_at = now
                res.etag = self.next_etag(settings.etag, res.etag)
                op: Operation | None = None
                if provider.has_provisioning_state:
                    res.properties["provisioningState"] = (
                        ("Creating" if kind is OpKind.CREATE else "Updating")
                        if is_async
                        else "Succeeded"
                    )
                self.core.store.put(res)
                provider.after_write(self.core, call, res, now)
                if is_async:
                    duration = self.core.scaled(settings.duration(kind.value))
                    op = self.core.operations.start(
                        call,
                        kind,
                        rid,
                        method=method,
                        duration=duration,
                        now=now,
                        references=refs,
                        fingerprint=fingerprint,
                        extra=extra,
                    )
                    provider.on_started(self.core, op, res)
                created = existing is None
                status = settings.put_create_status if created else settings.put_update_status
                if method == "PATCH":
                    status = 200
                if op is not None:
                    op.initial_status = status
                    response = self.core.operations.response(op, call, now)
                else:
                    # 202 promises an operation to poll; a synchronous create is a plain 201.
                    response = ArmResponse(
                        201 if status == 202 else status, provider.view(self.core, res, {})
                    )
                self.core.audit.finished(
                    call, rid, name, method, http_status=response.status, op=op
                )
                return response
        except ArmError as err:
            self.core.audit.failed(call, rid, name, method, err)
            raise
        except Exception:
            self.core.audit.failed(call, rid, name, method, internal_error())
            raise

    def _hold_check(
        self,
        rid: ResourceId,
        refs: frozenset[str],
        now: float,
        *,
        call: Call,
        method: str,
        fingerprint: str | None,
        provider: Provider,
    ) -> Operation | None:
        """Raise the conflict for a write blocked by a running operation; return the running
        operation itself when this is an identical retry of it (idempotent PUT)."""
        while True:
            blocker = blocking_operation(
                self.core.store.running(now, rid, refs),
                rid,
                refs,
                serialize_top_level=provider.settings.serialize_top_level,
            )
            if blocker is None:
                return None
            if (
                blocker.target == rid
                and fingerprint is not None
                and blocker.method == method
                and blocker.request_fingerprint == fingerprint
            ):
                return blocker
            if (
                provider.settings.preempt
                and method in ("PUT", "PATCH")
                and blocker.target == rid
                and blocker.kind in (OpKind.CREATE, OpKind.UPDATE)
            ):
                self.core.operations.end(blocker, now, OpStatus.CANCELED, PREEMPTED)
                continue
            raise self.conflict(blocker, rid, call, method)

    def conflict(self, blocker: Operation, rid: ResourceId, call: Call, what: str) -> ArmError:
        owner = self.core.provider_for(blocker.target)
        special = owner.refuse_during(self.core, blocker, rid, what)
        if special is not None:
            return special
        held = self.core.store.get(blocker.target)
        guid = held.properties.get("resourceGuid") if held else None
        return owner.settings.conflict_style.error(
            status_url=urls_for(blocker, call.base_url).status,
            op_name=blocker.operation_name,
            op_id=blocker.id,
            resource=str(guid or blocker.target.name),
        )

    def check_locks(self, rid: ResourceId, verb: str, *, cascade: bool) -> None:
        locks = [
            r
            for key in {bucket_key(rid), rid.subscription.lower()}
            for r in list(self.core.store.bucket(key).locks.values())
        ]
        if cascade and rid.is_subscription:
            locks = [r for r in self.core.store.all_resources() if r.id.type.lower() == LOCK_TYPE]
        err = scope_locked(locks, rid, verb, cascade=cascade)
        if err is not None:
            raise err

    def check_conditions(
        self,
        provider: Provider,
        method: str,
        rid: ResourceId,
        *,
        existing: Resource | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> None:
        style = provider.settings.etag
        if style is None:
            return
        outcome = evaluate(
            method,
            existing is not None,
            existing.etag if existing else None,
            if_match,
            if_none_match,
        )
        if outcome is Outcome.PRECONDITION_FAILED:
            raise precondition_failed(
                style,
                rid,
                existing.etag if existing else None,
                exists=existing is not None,
                if_match=if_match,
                if_none_match=if_none_match,
            )

    def next_etag(self, style: str | None, previous: str | None) -> str | None:
        if style == "weak-guid":
            return f'W/"{self.core.new_guid()}"'
        if style == "int":
            try:
                n = int((previous or '"0"').strip('"'))
            except ValueError:
                n = 0
            return f'"{n + 1}"'
        return None

    # -- delete -------------------------------------------------------------------------

    def delete(
        self,
        call: Call,
        rid: ResourceId,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> ArmResponse:
        provider = self.core.provider_for(rid)
        settings = provider.settings
        name = f"{rid.type}/delete"
        self.core.audit.started(call, rid, name, "DELETE", None)
        try:
            with self.core.store.locked(rid):
                now = self.core.now()
                self.core.operations.settle(rid, now)
                if rid.is_subscription:
                    raise method_not_allowed("DELETE", rid.format())
                existing = provider.lookup(self.core, rid)
                if existing is None:
                    # ARM answers 404 when the group itself is missing (the SDK's group delete
                    # accepts only 200/202); a missing resource in a live group is a 204.
                    group = rid.resource_group_id
                    if group is not None and self.core.store.get(group) is None:
                        raise not_found(group)
                    response = ArmResponse(204)
                    self.core.audit.finished(call, rid, name, "DELETE", http_status=204, op=None)
                    return response
                if provider.lockable:
                    self.check_locks(rid, "delete", cascade=True)
                self.check_conditions(
                    provider,
                    "DELETE",
                    rid,
                    existing=existing,
                    if_match=if_match,
                    if_none_match=if_none_match,
                )
                if provider.holdable:
                    blocker = blocking_operation(
                        self.core.store.running(now, rid),
                        rid,
                        frozenset(),
                        serialize_top_level=settings.serialize_top_level,
                    )
                    if blocker is not None:
                        raise self.conflict(blocker, rid, call, "DELETE")
                provider.validate_delete(self.core, call, existing)
                if not settings.async_delete:
                    self.remove(existing, now)
                    self.core.audit.finished(call, rid, name, "DELETE", http_status=200, op=None)
                    return ArmResponse(200)
                if provider.has_provisioning_state:
                    existing.properties["provisioningState"] = "Deleting"
                op = self.core.operations.start(
                    call,
                    OpKind.DELETE,
                    rid,
                    method="DELETE",
                    duration=self.core.scaled(settings.duration("delete")),
                    now=now,
                )
                op.initial_status = 202
                provider.on_started(self.core, op, existing)
                response = self.core.operations.response(op, call, now, with_body=False)
                self.core.audit.finished(call, rid, name, "DELETE", http_status=202, op=op)
                return response
        except ArmError as err:
            self.core.audit.failed(call, rid, name, "DELETE", err)
            raise
        except Exception:
            self.core.audit.failed(call, rid, name, "DELETE", internal_error())
            raise

    def remove(self, res: Resource, at: float) -> None:
        """Remove a resource with everything below it (children, extension resources)."""
        provider = self.core.provider_for(res.id)
        for child in self.core.store.descendants(res.id):
            self.core.store.remove(child.id)
        self.core.store.remove(res.id)
        provider.after_delete(self.core, res, at)

    # -- actions ------------------------------------------------------------------------

    def action(self, call: Call, rid: ResourceId, action: str, body: Any) -> ArmResponse:
        provider = self.core.provider_for(rid)
        name = f"{rid.type}/{action}/action"
        self.core.audit.started(call, rid, name, "POST", body)
        try:
            with self.core.store.locked(rid):
                now = self.core.now()
                self.core.operations.settle(rid, now)
                self.core.require_container(rid)
                res = provider.lookup(self.core, rid)
                if res is None:
                    if not provider.action_without_resource(action):
                        raise not_found(rid)
                    # A preview of a resource that may not exist yet (deployment validate,
                    # whatIf): the provider gets a placeholder and reads no state from it.
                    res = Resource(rid, {}, created_at=now)
                if provider.lockable and provider.action_is_write(action):
                    self.check_locks(rid, "write", cascade=False)
                if provider.holdable and provider.action_is_write(action):
                    blocker = blocking_operation(
                        self.core.store.running(now, rid),
                        rid,
                        frozenset(),
                        serialize_top_level=provider.settings.serialize_top_level,
                    )
                    if blocker is not None:
                        raise self.conflict(blocker, rid, call, action)
                result = provider.action(self.core, call, res, action, body)
                if result.duration_key is None:
                    response = ArmResponse(result.status, result.body)
                    self.core.audit.finished(
                        call, rid, name, "POST", http_status=result.status, op=None
                    )
                    return response
                duration = self.core.scaled(provider.settings.duration(result.duration_key))
                op = self.core.operations.start(
                    call,
                    OpKind.ACTION,
                    rid,
                    method="POST",
                    duration=duration,
                    now=now,
                    action=action,
                )
                op.result = result.result
                op.initial_status = 202
                provider.on_started(self.core, op, res)
                response = self.core.operations.response(op, call, now, with_body=False)
                self.core.audit.finished(call, rid, name, "POST", http_status=202, op=op)
                return response
        except ArmError as err:
            self.core.audit.failed(call, rid, name, "POST", err)
            raise
        except Exception:
            self.core.audit.failed(call, rid, name, "POST", internal_error())
            raise


def _fingerprint(method: str, body: Any) -> str | None:
    try:
        return method + json.dumps(body, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
