"""Collection reads: groups in a subscription, resources in a scope, resources of a type,
children of a resource, and locks at a scope (own, inherited and below), each paged with
``$top``/``nextLink`` and filtered by ``$filter`` as ARM's lists are.

A list reads only the buckets that can hold what it lists (one group's, or one
subscription's), so listing a group costs the same however many other groups exist."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.clock import isoformat
from armguard.emulator.locks import LOCK_TYPE
from armguard.emulator.model import Resource
from armguard.emulator.paging import decode_token, encode_token, next_link, page_size, query_value
from armguard.emulator.refusals import not_found
from armguard.emulator.request import ArmRequest, ArmResponse
from armguard.emulator.resource_filter import parse_resource_filter
from armguard.emulator.routing import CollectionRoute, ListRoute

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["collection", "list_route"]

_NOT_LISTED = (LOCK_TYPE, "microsoft.resources/deployments", "microsoft.resources/tags")
_EXPANDABLE = ("createdtime", "changedtime", "provisioningstate")


def _in_scope(core: Emulator, scope: ResourceId) -> list[Resource]:
    """The resources within ``scope``, read from the buckets that can hold them: a group's
    own bucket for a group scope, the subscription's buckets otherwise."""
    now = core.now()
    out: list[Resource] = []
    for bucket in core.store.scope_buckets(scope):
        with bucket.lock:
            if bucket.pending:
                core.operations.settle(bucket.pending[0].target, now)
            if scope.resource_group is None or scope.is_resource_group:
                # Every resource of a group's bucket is within the group.
                out.extend(bucket.resources.values())
            else:
                out.extend(r for r in bucket.resources.values() if r.id.is_within(scope))
    return out


def _by_creation(r: Resource) -> tuple[float, str]:
    return (r.created_at, r.id.key)


def _by_key(r: Resource) -> tuple[str]:
    return (r.id.key,)


def _page(
    core: Emulator,
    req: ArmRequest,
    resources: list[Resource],
    position: Callable[[Resource], tuple[Any, ...]] = _by_creation,
) -> ArmResponse:
    """One page of ``resources`` in ``position`` order: those after the request's skip token,
    at most ``$top`` (or the emulator's page size) of them, and a ``nextLink`` if more follow."""
    ordered = sorted(resources, key=position)
    after = decode_token(req.query)
    start = 0
    if after is not None:
        try:
            start = bisect.bisect_right(ordered, tuple(after), key=position)
        except TypeError:
            # A token from another list (or made up) orders unlike this list's items.
            raise ArmError(
                400, "InvalidSkipToken", "The '$skiptoken' was not issued for this list."
            ) from None
    size = page_size(req.query, core.page_size)
    chosen = ordered[start : start + size]
    expand = _expansions(req.query)
    body: dict[str, Any] = {"value": [_view(core, r, expand) for r in chosen]}
    if start + size < len(ordered):
        token = encode_token(position(chosen[-1]))
        body["nextLink"] = next_link(req.call.base_url, req.path, req.query, token)
    return ArmResponse(200, body)


def _expansions(query: Mapping[str, str]) -> frozenset[str]:
    raw = query_value(query, "$expand")
    if not raw:
        return frozenset()
    # Unknown names are ignored, as ARM ignores them.
    return frozenset(p.strip().lower() for p in raw.split(",")) & frozenset(_EXPANDABLE)


def _view(core: Emulator, res: Resource, expand: frozenset[str]) -> dict[str, Any]:
    view = core.provider_for(res.id).view(core, res, {})
    if "createdtime" in expand:
        view["createdTime"] = isoformat(res.created_at)
    if "changedtime" in expand:
        view["changedTime"] = isoformat(res.changed_at or res.created_at)
    if "provisioningstate" in expand and res.provisioning_state is not None:
        view["provisioningState"] = res.provisioning_state
    return view


def _filtered(resources: list[Resource], req: ArmRequest) -> list[Resource]:
    predicate = parse_resource_filter(query_value(req.query, "$filter"))
    if predicate is None:
        return resources
    return [r for r in resources if predicate(r)]


def _locks(core: Emulator, scope: ResourceId) -> list[Resource]:
    """Locks at ``scope``, above it (inherited) and below it."""
    buckets = core.store.scope_buckets(scope)
    if scope.resource_group is not None:
        # A subscription's own locks apply to every group in it.
        buckets = [*buckets, core.store.bucket(scope.subscription.lower())]
    found: list[Resource] = []
    for bucket in buckets:
        with bucket.lock:
            found.extend(
                r
                for r in bucket.locks.values()
                if scope.is_within(r.id.scope) or r.id.scope.is_within(scope)
            )
    return found


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
    if route.groups:
        groups = [r for r in _in_scope(core, scope) if r.id.is_resource_group]
        return _page(core, req, _filtered(groups, req))
    if route.namespace is None:
        found = [
            r
            for r in _in_scope(core, scope)
            if r.id.is_resource
            and not r.id.is_child
            and not r.id.is_extension
            and r.id.type.lower() not in _NOT_LISTED
        ]
        return _page(core, req, _filtered(found, req))
    type_ = f"{route.namespace}/{route.type}".lower()
    if type_ == LOCK_TYPE:
        return _page(core, req, _locks(core, scope), _by_key)
    depth = len(scope.levels) + 1
    typed = [
        r
        for r in _in_scope(core, scope)
        if r.id.type.lower() == type_ and len(r.id.levels) == depth
    ]
    return _page(core, req, _filtered(typed, req))


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
            for r in core.store.children(parent_id)
            if not r.id.is_extension and r.id.levels[-1].pairs[-1][0].lower() == route.name.lower()
        ]
        return _page(core, req, children)


def _unsupported(path: str) -> ArmError:
    return ArmError(404, "InvalidRoute", f"The path '{path}' is not supported by the emulator.")
