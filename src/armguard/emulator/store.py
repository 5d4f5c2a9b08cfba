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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from armguard.arm.ids import ResourceId
from armguard.emulator.idmemo import type_key
from armguard.emulator.locks import LOCK_TYPE
from armguard.emulator.model import Operation, OpStatus, Resource

__all__ = ["Bucket", "Store", "bucket_key"]


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


class Store:
    def __init__(self) -> None:
        self._index_lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        self._operations: dict[str, Operation] = {}
        # Operations not yet settled, so hold checks scan the few live ones, not the history.
        self._active: dict[str, Operation] = {}

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
            return found

    def bucket_for(self, rid: ResourceId) -> Bucket:
        return self.bucket(bucket_key(rid))

    def buckets(self) -> list[Bucket]:
        with self._index_lock:
            return list(self._buckets.values())

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
            for b in self.buckets():
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
                self._active[op.id.lower()] = op
        if op.status is OpStatus.IN_PROGRESS:
            self.bucket_for(op.target).pending.append(op)

    def operation(self, op_id: str) -> Operation | None:
        with self._index_lock:
            return self._operations.get(op_id.lower())

    def operations(self) -> list[Operation]:
        with self._index_lock:
            return list(self._operations.values())

    def running(self, now: float) -> list[Operation]:
        """Operations holding resources at ``now``, in every bucket (a snapshot)."""
        with self._index_lock:
            active = list(self._active.values())
        return [op for op in active if op.running_at(now)]

    def settled(self, op: Operation) -> None:
        if op.status is OpStatus.IN_PROGRESS:
            return
        with self._index_lock:
            self._active.pop(op.id.lower(), None)
        pending = self.bucket_for(op.target).pending
        if op in pending:
            pending.remove(op)

    def clear(self) -> None:
        with self._index_lock:
            self._buckets.clear()
            self._operations.clear()
            self._active.clear()
