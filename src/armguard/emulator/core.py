"""The emulator core: every ARM semantic, no HTTP.

:class:`Emulator` takes protocol-neutral :class:`~armguard.emulator.request.ArmRequest` records
and returns :class:`~armguard.emulator.request.ArmResponse` records; the Starlette adapter, the
admin API and the test fixtures are thin layers over it.

The facade routes requests and owns what every part shares (clock, RNG, store, providers,
Activity Log, fault rules); the write path lives in :mod:`~armguard.emulator.writes` and the
operation lifecycle in :mod:`~armguard.emulator.lifecycle`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.clock import Clock, SystemClock
from armguard.emulator import audit
from armguard.emulator.activity import MAX_BYTES, MAX_EVENTS
from armguard.emulator.faults import AppliedFault, FaultEngine
from armguard.emulator.lifecycle import Lifecycle, OpFault, op_fault_var
from armguard.emulator.listing import collection, list_route
from armguard.emulator.model import Resource
from armguard.emulator.operations import RETRY_AFTER_MAX, StatusRoute
from armguard.emulator.paging import (
    DEFAULT_PAGE_SIZE,
    decode_token,
    encode_token,
    next_link,
    query_value,
)
from armguard.emulator.providers import Registry
from armguard.emulator.providers.base import Provider
from armguard.emulator.refusals import method_not_allowed, not_found
from armguard.emulator.request import ArmRequest, ArmResponse, Call
from armguard.emulator.routing import (
    ActivityLogRoute,
    CollectionRoute,
    ListRoute,
    ResourceRoute,
    route,
)
from armguard.emulator.shapes import invalid_content
from armguard.emulator.snapshot import dump_state, load_state
from armguard.emulator.store import MAX_SETTLED_OPERATIONS, OPERATION_RETENTION, Store
from armguard.emulator.versions import check_api_version, check_route_version
from armguard.emulator.writes import WritePath

__all__ = ["Emulator", "OpFault", "freeze_heap"]

JSON = dict[str, Any]
DEPLOYMENT_TYPE = "microsoft.resources/deployments"


class Emulator:
    """A local ARM control plane.

    ``clock`` drives every operation (pass a :class:`~armguard.clock.ManualClock` to decide when
    each one ends); ``time_scale`` multiplies every duration (``0`` ends operations at once);
    ``seed`` makes ETags and operation ids reproducible; ``type_settings`` overrides per-type
    settings, keyed by type (``Microsoft.Network/virtualNetworks``) or namespace pattern
    (``Microsoft.Network/*``); ``retry_after_max`` caps the Retry-After the emulator sends
    (a client that sleeps in real time — one not built by ``EmulatorHandle.client`` under a
    ManualClock — waits that long whatever the emulator's clock says); ``page_size`` is the
    most items a list page holds before its ``nextLink`` (ARM's 1,000; small in tests);
    a settled operation's status URLs answer for ``operation_retention`` seconds of the
    emulator clock, and at most ``max_settled_operations`` settled operations are kept
    (after either, the URL answers 404 ``OperationNotFound``); the Activity Log keeps at most
    ``activity_events`` events and ``activity_bytes`` of their estimated size (the oldest go).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        type_settings: Mapping[str, Mapping[str, Any]] | None = None,
        retry_after_max: int = RETRY_AFTER_MAX,
        page_size: int = DEFAULT_PAGE_SIZE,
        operation_retention: float = OPERATION_RETENTION,
        max_settled_operations: int = MAX_SETTLED_OPERATIONS,
        activity_events: int = MAX_EVENTS,
        activity_bytes: int = MAX_BYTES,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.page_size = page_size
        self.clock: Clock = clock or SystemClock()
        self.time_scale = time_scale
        self.retry_after_max = max(1, retry_after_max)
        self.store = Store(retention=operation_retention, max_settled=max_settled_operations)
        self.registry = Registry(type_settings or {})
        self._rng_lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self.audit = audit.Auditor(
            self.clock, seed, max_events=activity_events, max_bytes=activity_bytes
        )
        self.faults = FaultEngine(self.clock, seed)
        self.writes = WritePath(self)
        self.operations = Lifecycle(self)

    # -- randomness and time ------------------------------------------------------------

    def new_guid(self) -> str:
        with self._rng_lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def random_bytes(self, n: int) -> bytes:
        with self._rng_lock:
            return self._rng.randbytes(n)

    def reseed(self, seed: int) -> None:
        with self._rng_lock:
            self._seed = seed
            self._rng = random.Random(seed)

    def reset(self) -> None:
        """Forget every resource, operation and event; restart the RNG from the seed."""
        self.store.clear()
        self.audit.reset()
        self.faults.reset()
        self.reseed(self._seed)

    def now(self) -> float:
        return self.clock.now()

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def provider_for(self, rid: ResourceId) -> Provider:
        return self.registry.for_id(rid)

    # -- faults -------------------------------------------------------------------------

    def match_fault(self, method: str, path: str) -> AppliedFault | None:
        """The fault rule (if any) that applies to this request; checked before semantics."""
        if not self.faults.has_rules():
            return None
        method = method.upper()
        try:
            target = route(path)
        except ArmError:
            target = None
        rid: ResourceId | None = None
        operation = {"GET": "read", "HEAD": "read", "DELETE": "delete"}.get(method, "write")
        if isinstance(target, ResourceRoute):
            rid = target.id
        elif isinstance(target, CollectionRoute):
            rid = target.parent
            if method == "POST":
                operation = target.name
        elif isinstance(target, ListRoute):
            rid = target.scope
        return self.faults.match(
            method=method,
            resource_id=rid.format() if rid else None,
            resource_type=rid.type if rid else None,
            operation=operation,
            path=path,
        )

    def record_rejection(self, method: str, path: str, call: Call, err: ArmError) -> None:
        """Record a write refused before it reached the write path (a fault rule's error, a
        body that is not JSON, a missing api-version) in the Activity Log, as ARM records
        every rejected write. A path that is no resource ID names nothing to record it on."""
        method = method.upper()
        if method in ("GET", "HEAD"):
            return
        try:
            target = route(path)
        except ArmError:
            return
        if not call.request_id:
            call = dataclasses.replace(call, request_id=self.new_guid())
        if isinstance(target, ResourceRoute):
            rid, verb = target.id, "delete" if method == "DELETE" else "write"
        elif isinstance(target, CollectionRoute) and method == "POST":
            rid, verb = target.parent, f"{target.name}/action"
        else:
            return
        name = f"{rid.type}/{verb}"
        self.audit.started(call, rid, name, method, None)
        self.audit.failed(call, rid, name, method, err)

    def fault_served(self, applied: AppliedFault, op_fault: OpFault | None) -> None:
        """After serving a request a fault was applied to: an operation effect (stuckFor,
        failOperation) that no operation took did not happen, so it is retracted."""
        if op_fault is not None and not op_fault.started:
            self.faults.retract(applied)

    @contextlib.contextmanager
    def op_fault_scope(self, fault: OpFault | None) -> Iterator[None]:
        """Operations started inside the block take ``fault``'s effect."""
        token = op_fault_var.set(fault)
        try:
            yield
        finally:
            op_fault_var.reset(token)

    def op_fault_of(self, applied: AppliedFault) -> OpFault | None:
        error = applied.operation_error()
        if error is None:
            return None
        stuck = applied.effect.stuck_for
        return OpFault(stuck_seconds=self.scaled(stuck) if stuck is not None else None, error=error)

    # -- dispatch -----------------------------------------------------------------------

    def runs_inline(self, method: str, path: str) -> bool:
        """Whether serving this request is short enough to run on the caller's event loop:
        one resource's read or write, an operation status, a bad route. List scans, Activity
        Log queries and deployments (the template engine) can take long enough to stall every
        other request, so they belong on a worker thread."""
        try:
            target = route(path)
        except ArmError:
            return True
        if isinstance(target, StatusRoute):
            return True
        if isinstance(target, ResourceRoute):
            return target.id.type.lower() != DEPLOYMENT_TYPE
        return False

    def dispatch(self, req: ArmRequest, op_fault: OpFault | None = None) -> ArmResponse:
        """Serve one ARM request. ArmErrors become error responses; other exceptions propagate
        (the adapter's catch-all turns them into 500s)."""
        if not req.call.request_id:
            req = dataclasses.replace(
                req, call=dataclasses.replace(req.call, request_id=self.new_guid())
            )
        token = op_fault_var.set(op_fault)
        try:
            response = self._dispatch(req)
        except ArmError as err:
            response = ArmResponse(err.status, err.body(), dict(err.headers))
        finally:
            op_fault_var.reset(token)
        response.headers.setdefault("x-ms-request-id", req.call.request_id)
        return response

    def _dispatch(self, req: ArmRequest) -> ArmResponse:
        method = req.method.upper()
        target = route(req.path)
        try:
            version = check_api_version(req.query.get("api-version"))
            check_route_version(target, version, req.body)
            if (
                method in ("PUT", "PATCH")
                and isinstance(target, ResourceRoute)
                and not isinstance(req.body, dict)
            ):
                raise invalid_content("the body must be a JSON object.")
        except ArmError as err:
            self.record_rejection(method, req.path, req.call, err)
            raise
        if isinstance(target, StatusRoute):
            self.store.expire(self.now())
            return self.operations.status(target, req.call)
        if isinstance(target, ActivityLogRoute):
            if method != "GET":
                raise method_not_allowed(method, req.path)
            self.operations.settle_all()
            return self._activity_page(target, req)
        if isinstance(target, ListRoute):
            if method != "GET":
                raise method_not_allowed(method, req.path)
            return list_route(self, target, req)
        if isinstance(target, CollectionRoute):
            if method == "POST":
                return self.writes.action(req.call, target.parent, target.name, req.body)
            if method == "GET":
                return collection(self, target, req)
            raise method_not_allowed(method, req.path)
        assert isinstance(target, ResourceRoute)
        rid = target.id
        if method in ("GET", "HEAD"):
            return self.read(rid, req.query, head=method == "HEAD")
        if method in ("PUT", "PATCH"):
            assert isinstance(req.body, dict)
            return self.writes.write(
                req.call,
                method,
                rid,
                req.body,
                if_match=req.header("if-match"),
                if_none_match=req.header("if-none-match"),
            )
        if method == "DELETE":
            return self.writes.delete(
                req.call,
                rid,
                if_match=req.header("if-match"),
                if_none_match=req.header("if-none-match"),
            )
        raise method_not_allowed(method, req.path)

    def _activity_page(self, target: ActivityLogRoute, req: ArmRequest) -> ArmResponse:
        """One page of the Activity Log, newest first, with a ``nextLink`` if more match."""
        after = decode_token(req.query)
        if after is not None and not (
            len(after) == 2 and all(isinstance(v, int | float) for v in after)
        ):
            raise ArmError(
                400, "InvalidSkipToken", "The '$skipToken' is not one this server issued."
            )
        events, following = self.audit.log.page(
            target.subscription,
            query_value(req.query, "$filter"),
            query_value(req.query, "$select"),
            size=self.page_size,
            after=None if after is None else (float(after[0]), int(after[1])),
        )
        body: JSON = {"value": events}
        if following is not None:
            token = encode_token(following)
            body["nextLink"] = next_link(req.call.base_url, req.path, req.query, token)
        return ArmResponse(200, body)

    # -- reads --------------------------------------------------------------------------

    def read(self, rid: ResourceId, query: Mapping[str, str], *, head: bool = False) -> ArmResponse:
        provider = self.provider_for(rid)
        with self.store.locked(rid):
            self.operations.settle(rid, self.now())
            if rid.is_subscription:
                return ArmResponse(200, provider.view(self, self._subscription(rid), query))
            res = provider.lookup(self, rid)
            if res is None:
                if head:
                    return ArmResponse(404)
                self.require_container(rid)
                raise not_found(rid)
            if head:
                return ArmResponse(204)
            return ArmResponse(200, provider.view(self, res, query))

    def _subscription(self, rid: ResourceId) -> Resource:
        res = self.store.get(rid)
        if res is None:
            res = Resource(
                rid,
                {
                    "id": rid.format(),
                    "subscriptionId": rid.subscription,
                    "displayName": f"Emulated subscription {rid.subscription}",
                    "state": "Enabled",
                    "tags": {},
                },
            )
            self.store.put(res)
        return res

    def require_container(self, rid: ResourceId) -> None:
        """404 unless the group, the parent (for a child) and the scope (for an extension) exist."""
        rg = rid.resource_group_id
        if rg is not None and rid != rg and self.store.get(rg) is None:
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{rid.resource_group}' could not be found.",
            )
        if not rid.is_resource:
            return
        parent = rid.parent
        if parent is None or parent.is_subscription or parent.is_resource_group:
            return
        if self.store.get(parent) is None:
            if rid.is_child:
                raise ArmError(
                    404,
                    "ParentResourceNotFound",
                    "Can not perform requested operation on nested resource. Parent resource "
                    f"'{parent.name}' not found.",
                )
            raise not_found(parent)

    def dump(self) -> JSON:
        return dump_state(self)

    def load(self, data: Mapping[str, Any]) -> None:
        load_state(self, data)
        freeze_heap()


def freeze_heap() -> None:
    """Move everything alive now out of the garbage collector's sight. After a bulk load the
    loaded state is long-lived; left tracked, every full collection walks all of it, and
    those pauses, growing with the estate, set the emulator's tail latency."""
    gc.collect()
    gc.freeze()
