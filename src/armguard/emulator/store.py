"""The emulator's state: the only place that holds and mutates resources and operations.

State is split into *buckets*, one per resource group (holding the group itself and everything
inside it) and one per subscription (subscription-scope extension resources). A caller takes
the bucket lock for the whole check-and-write, so a precondition, a conflict check and the
write it guards are one critical section; writers in different groups never wait on each
other. There is deliberately no global lock (a single store-wide lock serialises every
request, the failure LocalStack's maintainers warn about).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from armguard.arm.ids import ProviderLevel, ResourceId
from armguard.emulator.idmemo import type_key
from armguard.emulator.locks import LOCK_TYPE
from armguard.emulator.model import Operation, OpStatus, Resource

__all__ = [
    "MAX_SETTLED_OPERATIONS",
    "OPERATION_RETENTION",
    "Bucket",
    "Store",
    "bucket_key",
    "root_key",
]


def bucket_key(rid: ResourceId) -> str:
    """The bucket a resource lives in: its group, or its subscription. Memoised on the ID's
    (lower-cased, canonical) key, which determines it: a request asks this many times."""
    found = _bucket_keys.get(rid.key)
    if found is None:
        sub = rid.subscription.lower()
        found = sub if rid.resource_group is None else f"{sub}/{rid.resource_group.lower()}"
        if len(_bucket_keys) >= _MAX_MEMO:
            _bucket_keys.clear()
        _bucket_keys[rid.key] = found
    return found


_MAX_MEMO = 65_536
_bucket_keys: dict[str, str] = {}


@dataclass
class Bucket:
    key: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    resources: dict[str, Resource] = field(default_factory=dict)
    pending: list[Operation] = field(default_factory=list)
    """Operations not yet settled to a terminal status, in start order."""
    locks: dict[str, Resource] = field(default_factory=dict)
    """The management locks among ``resources``, in the same order: every write checks them."""
    children: dict[str, dict[str, Resource]] = field(default_factory=dict)
    """``resources`` by the key of their parent (a VNet's subnets), so reading a resource
    with children does not scan the whole group."""

    def add(self, resource: Resource) -> None:
        key = resource.id.key
        self.resources[key] = resource
        self.children.setdefault(parent_key(key), {})[key] = resource
        if type_key(resource.id) == LOCK_TYPE:
            self.locks[key] = resource

    def discard(self, key: str) -> Resource | None:
        found = self.resources.pop(key, None)
        if found is not None:
            siblings = self.children.get(parent_key(key))
            if siblings is not None:
                siblings.pop(key, None)
                if not siblings:
                    del self.children[parent_key(key)]
            self.locks.pop(key, None)
        return found


def parent_key(key: str) -> str:
    """The key of a child resource's parent: the key without its last ``/type/name`` pair."""
    return key.rsplit("/", 2)[0]


def root_key(rid: ResourceId) -> str:
    """The key of the group-level resource ``rid`` lives under (the VNet of a subnet, the VM
    of a lock on its NIC...): two resources can hold one another only if they share it."""
    first = rid.levels[0]
    return ResourceId(
        rid.subscription, rid.resource_group, (ProviderLevel(first.namespace, first.pairs[:1]),)
    ).key


class _ActiveIndex:
    """Operations not yet settled, indexed the ways a hold check asks: by the root resource
    of their target, by target, by referenced resource; operations on a group or subscription
    apart. A hold check then looks at the few operations that can concern its target, not at
    every live one in the emulator (a deployment starting hundreds of resources asks once per
    resource, holding its group's lock)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Operation] = {}
        self.by_root: dict[str, dict[str, Operation]] = {}
        self.by_target: dict[str, dict[str, Operation]] = {}
        self.by_reference: dict[str, dict[str, Operation]] = {}
        self.on_scopes: dict[str, Operation] = {}

    def _places(self, op: Operation) -> list[tuple[dict[str, dict[str, Operation]], str]]:
        target = op.target
        places = [(self.by_target, target.key)]
        if target.is_resource:
            places.append((self.by_root, root_key(target)))
        places.extend((self.by_reference, key) for key in op.references)
        return places

    def add(self, op: Operation) -> None:
        key = op.id.lower()
        self.by_id[key] = op
        for index, name in self._places(op):
            index.setdefault(name, {})[key] = op
        if not op.target.is_resource:
            self.on_scopes[key] = op

    def discard(self, op: Operation) -> None:
        key = op.id.lower()
        if self.by_id.pop(key, None) is None:
            return
        for index, name in self._places(op):
            found = index.get(name)
            if found is not None:
                found.pop(key, None)
                if not found:
                    del index[name]
        self.on_scopes.pop(key, None)

    def concerning(self, target: ResourceId, references: frozenset[str]) -> list[Operation]:
        found: dict[int, Operation] = {}
        groups = [self.on_scopes, self.by_reference.get(target.key, {})]
        if target.is_resource:
            groups.append(self.by_root.get(root_key(target), {}))
        else:
            groups.append(self.by_target.get(target.key, {}))
        groups.extend(self.by_target.get(key, {}) for key in references)
        for group in groups:
            for op in group.values():
                found[id(op)] = op
        return list(found.values())


OPERATION_RETENTION = 86_400.0
"""Seconds (on the emulator clock) a settled operation's status URLs keep answering."""
MAX_SETTLED_OPERATIONS = 50_000
"""Settled operations kept at most, however recent: the emulator's memory stays flat over a
long run (a poller asks within seconds; this many writes later, nobody does)."""


class Store:
    def __init__(
        self,
        *,
        retention: float = OPERATION_RETENTION,
        max_settled: int = MAX_SETTLED_OPERATIONS,
    ) -> None:
        if retention < 0 or max_settled < 0:
            raise ValueError("operation retention and the settled-operation cap must be >= 0")
        self.retention = retention
        self.max_settled = max_settled
        self._index_lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        # A subscription's buckets, so a list reads its own subscription, not every one.
        self._by_subscription: dict[str, dict[str, Bucket]] = {}
        self._operations: dict[str, Operation] = {}
        # Settled operations in the order they settled: the oldest expire first.
        self._settled: deque[Operation] = deque()
        # Operations not yet settled, so hold checks scan the few live ones, not the history.
        self._active = _ActiveIndex()

    # -- buckets ------------------------------------------------------------------------

    def bucket(self, key: str) -> Bucket:
        # Buckets are only ever added (or all dropped by clear), so a hit needs no lock.
        found = self._buckets.get(key)
        if found is not None:
            return found
        with self._index_lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = Bucket(key)
                sub = key.split("/", 1)[0]
                self._by_subscription.setdefault(sub, {})[key] = found
            return found

    def bucket_for(self, rid: ResourceId) -> Bucket:
        return self.bucket(bucket_key(rid))

    def buckets(self) -> list[Bucket]:
        with self._index_lock:
            return list(self._buckets.values())

    def subscription_buckets(self, subscription: str) -> list[Bucket]:
        """The buckets of one subscription: its own and its groups'."""
        with self._index_lock:
            return list(self._by_subscription.get(subscription.lower(), {}).values())

    def scope_buckets(self, scope: ResourceId) -> list[Bucket]:
        """The buckets that can hold resources within ``scope``: a group's (or a resource's)
        own bucket, or every bucket of a subscription."""
        if scope.resource_group is not None:
            found = self._buckets.get(bucket_key(scope))
            return [] if found is None else [found]
        return self.subscription_buckets(scope.subscription)

    def locked(self, *ids: ResourceId) -> AbstractContextManager[object]:
        """Hold the buckets of ``ids`` (acquired in key order, so two callers never deadlock)."""
        if len(ids) == 1:
            # The common case, without the generator machinery of the general one.
            return self.bucket(bucket_key(ids[0])).lock
        return self._locked_all(ids)

    @contextmanager
    def _locked_all(self, ids: tuple[ResourceId, ...]) -> Iterator[None]:
        keys = sorted({bucket_key(i) for i in ids})
        held: list[Bucket] = []
        try:
            for key in keys:
                b = self.bucket(key)
                b.lock.acquire()
                held.append(b)
            yield
        finally:
            for b in reversed(held):
                b.lock.release()

    # -- resources (callers hold the bucket lock) ---------------------------------------

    def get(self, rid: ResourceId) -> Resource | None:
        return self.bucket_for(rid).resources.get(rid.key)

    def put(self, resource: Resource) -> None:
        self.bucket_for(resource.id).add(resource)

    def remove(self, rid: ResourceId) -> Resource | None:
        return self.bucket_for(rid).discard(rid.key)

    def children(self, rid: ResourceId) -> list[Resource]:
        """The resources one ``/type/name`` pair below ``rid`` in its bucket, in store order."""
        return list(self.bucket_for(rid).children.get(rid.key, {}).values())

    def descendants(self, rid: ResourceId) -> list[Resource]:
        """Everything strictly below ``rid`` (children, extension resources, a group's content)."""
        prefix = rid.key + "/"
        if rid.is_subscription:
            out: list[Resource] = []
            for b in self.subscription_buckets(rid.subscription):
                out.extend(r for r in b.resources.values() if r.id.key.startswith(prefix))
            return out
        return [r for r in self.bucket_for(rid).resources.values() if r.id.key.startswith(prefix)]

    def all_resources(self) -> list[Resource]:
        out: list[Resource] = []
        for b in self.buckets():
            with b.lock:
                out.extend(b.resources.values())
        return out

    # -- operations ---------------------------------------------------------------------

    def add_operation(self, op: Operation) -> None:
        with self._index_lock:
            self._operations[op.id.lower()] = op
            if op.status is OpStatus.IN_PROGRESS:
                self._active.add(op)
            else:
                self._settled.append(op)
        if op.status is OpStatus.IN_PROGRESS:
            self.bucket_for(op.target).pending.append(op)

    def operation(self, op_id: str) -> Operation | None:
        with self._index_lock:
            return self._operations.get(op_id.lower())

    def operations(self) -> list[Operation]:
        with self._index_lock:
            return list(self._operations.values())

    def running(
        self, now: float, target: ResourceId, references: frozenset[str] = frozenset()
    ) -> list[Operation]:
        """Operations running at ``now`` that may hold ``target`` (or that a write referencing
        ``references`` would touch), in every bucket: a snapshot, for
        :func:`~armguard.emulator.holds.blocking_operation` to decide on."""
        with self._index_lock:
            candidates = self._active.concerning(target, references)
        return [op for op in candidates if op.running_at(now)]

    def settled(self, op: Operation) -> None:
        if op.status is OpStatus.IN_PROGRESS:
            return
        with self._index_lock:
            self._active.discard(op)
            if self._operations.get(op.id.lower()) is op:
                self._settled.append(op)
            self._expire(op.ended_at if op.ended_at is not None else 0.0)
        pending = self.bucket_for(op.target).pending
        if op in pending:
            pending.remove(op)

    def expire(self, now: float) -> None:
        """Forget settled operations that ended ``retention`` seconds before ``now`` (or that
        are past the cap): their status URLs then answer 404, as an expired one does in ARM."""
        with self._index_lock:
            self._expire(now)

    def _expire(self, now: float) -> None:
        settled, operations = self._settled, self._operations
        horizon = now - self.retention
        while settled:
            oldest = settled[0]
            ended = oldest.ended_at if oldest.ended_at is not None else 0.0
            if len(settled) <= self.max_settled and ended > horizon:
                return
            settled.popleft()
            key = oldest.id.lower()
            if operations.get(key) is oldest:
                del operations[key]

    def clear(self) -> None:
        with self._index_lock:
            self._buckets.clear()
            self._by_subscription.clear()
            self._operations.clear()
            self._settled.clear()
            self._active = _ActiveIndex()
