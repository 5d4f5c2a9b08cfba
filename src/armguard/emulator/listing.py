"""Collection reads: groups in a subscription, resources in a scope, resources of a type,
children of a resource, and locks at a scope (own, inherited and below)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from armguard.arm.errors import ArmError
from armguard.emulator.locks import LOCK_TYPE
from armguard.emulator.model import Resource
from armguard.emulator.refusals import not_found
from armguard.emulator.request import ArmRequest, ArmResponse
from armguard.emulator.routing import CollectionRoute, ListRoute

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["collection", "list_route"]

_NOT_LISTED = (LOCK_TYPE, "microsoft.resources/deployments", "microsoft.resources/tags")
_TYPE_FILTER_RE = re.compile(r"^\s*resourceType\s+eq\s+'(?P<type>[^']+)'\s*$", re.I)


def _in_scope(core: Emulator, route: ListRoute) -> list[Resource]:
    now = core.now()
    sub = route.scope.subscription.lower()
    out: list[Resource] = []
    for bucket in core.store.buckets():
        if bucket.key != sub and not bucket.key.startswith(sub + "/"):
            continue
        with bucket.lock:
            if bucket.pending:
                core.operations.settle(bucket.pending[0].target, now)
            out.extend(r for r in bucket.resources.values() if r.id.is_within(route.scope))
    return sorted(out, key=lambda r: (r.created_at, r.id.key))


def _page(core: Emulator, resources: list[Resource]) -> ArmResponse:
    return ArmResponse(
        200, {"value": [core.provider_for(r.id).view(core, r, {}) for r in resources]}
    )


def list_route(core: Emulator, route: ListRoute, req: ArmRequest) -> ArmResponse:
    scope = route.scope
    if (
        scope.resource_group is not None
        and core.store.get(scope.resource_group_id or scope) is None
    ):
        core.require_container(scope)
        raise ArmError(
            404,
            "ResourceGroupNotFound",
            f"Resource group '{scope.resource_group}' could not be found.",
        )
    everything = _in_scope(core, route)
    if route.groups:
        return _page(core, [r for r in everything if r.id.is_resource_group])
    if route.namespace is None:
        found = [
            r
            for r in everything
            if r.id.is_resource
            and not r.id.is_child
            and not r.id.is_extension
            and r.id.type.lower() not in _NOT_LISTED
        ]
        wanted = req.query.get("$filter")
        if wanted:
            m = _TYPE_FILTER_RE.match(wanted)
            if not m:
                raise ArmError(
                    400,
                    "InvalidFilterInQueryString",
                    f"The $filter '{wanted}' is not supported; use resourceType eq '{{type}}'.",
                )
            found = [r for r in found if r.id.type.lower() == m.group("type").lower()]
        return _page(core, found)
    type_ = f"{route.namespace}/{route.type}".lower()
    if type_ == LOCK_TYPE:
        locks = [
            r
            for r in core.store.all_resources()
            if r.id.type.lower() == LOCK_TYPE
            and (scope.is_within(r.id.scope) or r.id.scope.is_within(scope))
        ]
        return _page(core, sorted(locks, key=lambda r: r.id.key))
    return _page(
        core,
        [
            r
            for r in everything
            if r.id.type.lower() == type_ and len(r.id.levels) == len(scope.levels) + 1
        ],
    )


def collection(core: Emulator, route: CollectionRoute, req: ArmRequest) -> ArmResponse:
    parent_id = route.parent
    provider = core.provider_for(parent_id)
    with core.store.locked(parent_id):
        core.operations.settle(parent_id, core.now())
        if parent_id.is_subscription:
            if route.name.lower() == "providers":
                return ArmResponse(200, {"value": []})
            raise _unsupported(req.path)
        parent = provider.lookup(core, parent_id)
        if parent is None:
            core.require_container(parent_id)
            raise not_found(parent_id)
        special = provider.collection(core, req.call, parent, route.name, req.query)
        if special is not None:
            return special
        if not parent_id.is_resource:
            raise _unsupported(req.path)
        children = [
            r
            for r in core.store.descendants(parent_id)
            if r.id.parent == parent_id
            and not r.id.is_extension
            and r.id.levels[-1].pairs[-1][0].lower() == route.name.lower()
        ]
        return _page(core, sorted(children, key=lambda r: (r.created_at, r.id.key)))


def _unsupported(path: str) -> ArmError:
    return ArmError(404, "InvalidRoute", f"The path '{path}' is not supported by the emulator.")
