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
from contextlib import contextmanager
from dataclasses import dataclass, field

from armguard.arm.ids import ResourceId
from armguard.emulator.model import Operation, OpStatus, Resource

__all__ = ["Bucket", "Store", "bucket_key"]


def bucket_key(rid: ResourceId) -> str:
    """The bucket a resource lives in: its group, or its subscription."""
    sub = rid.subscription.lower()
    if rid.resource_group is None:
        return sub
    return f"{sub}/{rid.resource_group.lower()}"


@dataclass
class Bucket:
    key: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    resources: dict[str, Resource] = field(default_factory=dict)
    pending: list[Operation] = field(default_factory=list)
    """Operations not yet settled to a terminal status, in start order."""


class Store:
    def __init__(self) -> None:
        self._index_lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        self._operations: dict[str, Operation] = {}
        # Operations not yet settled, so hold checks scan the few live ones, not the history.
        self._active: dict[str, Operation] = {}

    # -- buckets ------------------------------------------------------------------------

    def bucket(self, key: str) -> Bucket:
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

    @contextmanager
    def locked(self, *ids: ResourceId) -> Iterator[None]:
        """Hold the buckets of ``ids`` (acquired in key order, so two callers never deadlock)."""
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
        self.bucket_for(resource.id).resources[resource.id.key] = resource

    def remove(self, rid: ResourceId) -> Resource | None:
        return self.bucket_for(rid).resources.pop(rid.key, None)

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
