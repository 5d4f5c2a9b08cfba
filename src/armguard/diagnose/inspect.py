"""``inspect``: one resource's live state → what a write would hit right now, and what to do.

The seeds' diagnosis steps in one read-only pass: read the resource (provisioningState, ETag),
a VM's power state, the locks in effect at its scope (ARM lists locks at and above a scope), the
provisioning state of its parent, its children and its siblings (Network serialises subnets
through their VNet), and the last hour of Activity Log writes on all of them. The verdict lists
every blocker with the recovery its kind requires: wait for the named operation, deallocate
first, leave a lock to a person, rebase on the live ETag. Nothing here writes to ARM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from armguard.arm.classify import ConflictKind
from armguard.arm.client import ArmClient, ArmResponse, ArmTransportError
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.arm.states import is_terminal, power_state
from armguard.clock import Clock, isoformat
from armguard.diagnose.sources import Record, SourceError, normalise_record
from armguard.diagnose.timeline import Operation, TimelineOptions, analyse

__all__ = [
    "ACTIVITY_LOG_API",
    "LOCKS_API",
    "Blocker",
    "InspectError",
    "Inspection",
    "Intent",
    "LockInfo",
    "RelatedState",
    "default_api_version",
    "inspect_resource",
    "parse_intent",
]

LOCKS_API = "2020-05-01"
ACTIVITY_LOG_API = "2015-04-01"
_MAX_LOG_PAGES = 20
_RECENT_LIMIT = 25
_CLOCK_SKEW = 300.0

# API versions known to serve each type (arm-protocol §0); --api-version overrides them.
_API_VERSIONS: dict[str, str] = {
    "microsoft.resources/resourcegroups": "2021-04-01",
    "microsoft.resources/subscriptions": "2021-04-01",
    "microsoft.resources/deployments": "2024-03-01",
    "microsoft.compute": "2024-07-01",
    "microsoft.network": "2024-05-01",
    "microsoft.storage": "2023-05-01",
    "microsoft.authorization": LOCKS_API,
}

# Child collections whose writes ARM serialises with the parent's.
_CHILD_TYPES: dict[str, tuple[str, ...]] = {
    "microsoft.network/virtualnetworks": ("subnets",),
    "microsoft.network/networksecuritygroups": ("securityRules",),
    "microsoft.network/routetables": ("routes",),
    "microsoft.compute/virtualmachines": ("extensions",),
    "microsoft.compute/virtualmachinescalesets": ("extensions",),
}
# Read-only back-references ARM puts in a referenced resource's body: who uses it. A running
# write of a referencing resource holds the referenced one (arm-protocol: 409 for referenced
# resources too), and a resource in use cannot be deleted.
_BACK_REFERENCES: dict[str, tuple[str, ...]] = {
    "microsoft.network/virtualnetworks/subnets": ("ipConfigurations",),
    "microsoft.network/networksecuritygroups": ("subnets", "networkInterfaces"),
    "microsoft.network/routetables": ("subnets",),
    "microsoft.network/publicipaddresses": ("ipConfiguration",),
}
_SUBNET = "microsoft.network/virtualnetworks/subnets"
_NIC_API = "2024-05-01"
_MAX_DEPENDENTS = 20
_TRANSITIONAL_POWER = frozenset({"starting", "stopping", "deallocating"})
_SEVERITY = {
    ConflictKind.LOCKED: 0,
    ConflictKind.OPERATION_IN_PROGRESS: 1,
    ConflictKind.STATE_PREREQUISITE: 2,
    ConflictKind.STALE_VERSION: 3,
    ConflictKind.NOT_FOUND: 4,
}
_SIZE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{1,63}$")


class InspectError(Exception):
    """The resource could not be read at all; the message says what ARM (or the network) said."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Intent:
    """What the caller means to do: ``write`` (PUT/PATCH), ``delete``, or ``resize`` to a size."""

    kind: str = "write"
    size: str | None = None

    def __str__(self) -> str:
        return f"resize:{self.size}" if self.kind == "resize" else self.kind

    def describe(self) -> str:
        return f"resize to {self.size}" if self.kind == "resize" else self.kind


def parse_intent(text: str) -> Intent:
    """``write``, ``delete`` or ``resize:Standard_D4s_v5``; ValueError says what is accepted."""
    raw = text.strip()
    low = raw.lower()
    if low in ("write", "delete"):
        return Intent(low)
    if low.startswith("resize:"):
        size = raw.split(":", 1)[1].strip()
        if not _SIZE_RE.match(size):
            raise ValueError(f"'{size}' is not a VM size such as Standard_D4s_v5")
        return Intent("resize", size)
    raise ValueError(f"'{text}' is not an intent; use write, delete or resize:SIZE")


def default_api_version(rid: ResourceId) -> str:
    type_ = rid.type.lower()
    if type_ in _API_VERSIONS:
        return _API_VERSIONS[type_]
    namespace = type_.split("/", 1)[0]
    return _API_VERSIONS.get(namespace, "2021-04-01")


@dataclass(frozen=True)
class LockInfo:
    id: str
    name: str
    level: str
    notes: str
    scope: str
    inherited: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "level": self.level,
            "notes": self.notes,
            "scope": self.scope,
            "inherited": self.inherited,
        }


@dataclass(frozen=True)
class RelatedState:
    resource_id: str
    relation: str
    """``resource``, ``parent``, ``child``, ``sibling`` or ``dependent`` (a resource that
    references this one: a NIC on a subnet, a subnet using an NSG)."""
    provisioning_state: str | None

    @property
    def running(self) -> bool:
        return not is_terminal(self.provisioning_state)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "relation": self.relation,
            "provisioning_state": self.provisioning_state or "Succeeded",
            "running": self.running,
        }


@dataclass(frozen=True)
class Blocker:
    kind: ConflictKind
    reason: str
    action: str
    resource_id: str
    operation_url: str | None = None
    lock_id: str | None = None
    caller: str | None = None
    since: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "reason": self.reason,
            "action": self.action,
            "resource_id": self.resource_id,
            "operation_url": self.operation_url,
            "lock_id": self.lock_id,
            "caller": self.caller,
            "since": None if self.since is None else isoformat(self.since),
        }


@dataclass
class Inspection:
    resource_id: str
    type: str
    intent: Intent
    at: float
    exists: bool
    provisioning_state: str | None = None
    etag: str | None = None
    etag_sent: str | None = None
    power_state: str | None = None
    vm_size: str | None = None
    locks: list[LockInfo] = field(default_factory=list)
    related: list[RelatedState] = field(default_factory=list)
    running_operations: list[Operation] = field(default_factory=list)
    recent_writes: list[Operation] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        return not self.blockers

    def related_parent(self) -> str | None:
        return next((r.resource_id.lower() for r in self.related if r.relation == "parent"), None)

    def verdict(self) -> str:
        what = self.intent.describe()
        if self.clear and not self.exists and self.intent.kind == "delete":
            return "A delete has nothing to do now: the resource does not exist."
        if self.clear and not self.exists:
            return (
                f"A {what} would go through now and create the resource: nothing holds or locks it."
            )
        if self.clear:
            return f"A {what} would go through now: nothing holds, locks or outdates it."
        first = self.blockers[0]
        more = f" (and {len(self.blockers) - 1} more)" if len(self.blockers) > 1 else ""
        return f"A {what} would be refused now ({first.kind}){more}: {first.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "type": self.type,
            "intent": str(self.intent),
            "inspected_at": isoformat(self.at),
            "exists": self.exists,
            "provisioning_state": self.provisioning_state,
            "etag": self.etag,
            "etag_sent": self.etag_sent,
            "power_state": self.power_state,
            "vm_size": self.vm_size,
            "locks": [lock.to_json() for lock in self.locks],
            "related": [r.to_json() for r in self.related],
            "running_operations": [_op_json(o) for o in self.running_operations],
            "recent_writes": [_op_json(o) for o in self.recent_writes],
            "verdict": {
                "would_succeed": self.clear,
                "summary": self.verdict(),
                "blockers": [b.to_json() for b in self.blockers],
            },
            "notes": self.notes,
        }


def _op_json(op: Operation) -> dict[str, Any]:
    return {
        "time": isoformat(op.start),
        "end": None if op.end is None else isoformat(op.end),
        "caller": op.caller,
        "operation": op.operation,
        "resource_id": op.resource_id,
        "outcome": op.outcome,
        "http_status": op.http_status,
        "code": op.code,
        "kind": op.kind,
        "operation_url": op.operation_url,
    }


# --- reading ---------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, client: ArmClient, api_version: Callable[[ResourceId], str]) -> None:
        self.client = client
        self.api_version = api_version

    def get(
        self, path: str, api_version: str, params: Mapping[str, str] | None = None
    ) -> ArmResponse:
        try:
            return self.client.request("GET", path, api_version=api_version, params=params)
        except ArmTransportError as exc:
            raise InspectError(f"cannot reach ARM: {exc}", unreachable=True) from None


def _state(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    props = body.get("properties")
    if isinstance(props, Mapping) and props.get("provisioningState") is not None:
        return str(props["provisioningState"])
    return None


def _describe(response: ArmResponse) -> str:
    error = response.error()
    text = f"{error.code}: {error.message}" if error.code else (response.text[:300] or "no body")
    return f"HTTP {response.status} ({text})"


def _read_locks(reader: _Reader, rid: ResourceId, exists: bool, out: Inspection) -> None:
    # A resource that does not exist has no lock endpoint; its group's locks still apply.
    scope = rid if exists else (rid.parent or rid)
    response = reader.get(f"{scope}/providers/Microsoft.Authorization/locks", LOCKS_API)
    if not response.ok:
        out.notes.append(f"Locks could not be read: {_describe(response)}.")
        return
    items = response.body.get("value", []) if isinstance(response.body, Mapping) else []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        lock_id = str(item.get("id") or "")
        marker = "/providers/microsoft.authorization/locks/"
        cut = lock_id.lower().rfind(marker)
        lock_scope = lock_id[:cut] if cut >= 0 else ""
        try:
            scope_id = parse_resource_id(lock_scope)
        except InvalidResourceId:
            continue
        if not rid.is_within(scope_id):
            continue  # a lock on a child or a sibling does not hold this resource
        raw_props = item.get("properties")
        props: Mapping[str, Any] = raw_props if isinstance(raw_props, Mapping) else {}
        out.locks.append(
            LockInfo(
                id=lock_id,
                name=str(item.get("name") or lock_id.rsplit("/", 1)[-1]),
                level=str(props.get("level") or "NotSpecified"),
                notes=str(props.get("notes") or ""),
                scope=lock_scope,
                inherited=scope_id.key != rid.key,
            )
        )


def _children(
    reader: _Reader, parent: ResourceId, relation: str, skip: ResourceId | None
) -> list[RelatedState]:
    found: list[RelatedState] = []
    for child_type in _CHILD_TYPES.get(parent.type.lower(), ()):
        response = reader.get(f"{parent}/{child_type}", reader.api_version(parent))
        if not response.ok or not isinstance(response.body, Mapping):
            continue
        for item in response.body.get("value", []) or []:
            if not isinstance(item, Mapping) or not item.get("id"):
                continue
            if skip is not None and str(item["id"]).lower() == skip.key:
                continue
            found.append(RelatedState(str(item["id"]), relation, _state(item)))
    return found


def _owner(reference: str) -> ResourceId | None:
    """The resource a back-reference names: a NIC for its ipConfiguration, else itself."""
    try:
        rid = parse_resource_id(reference)
    except InvalidResourceId:
        return None
    if rid.type.lower().endswith("/ipconfigurations") and rid.parent is not None:
        return rid.parent
    return rid


def _dependents(reader: _Reader, rid: ResourceId, body: Any, out: Inspection) -> None:
    """Resources that reference ``rid``: from the back-references in its body (ARM lists a
    subnet's ipConfigurations, an NSG's subnets and NICs), and, for a subnet, from the NICs
    of its resource group. References from other groups that the body does not list, and
    from types without back-references, are not found (docs/diagnostics.md)."""
    found: dict[str, tuple[str, str | None, bool]] = {}  # key -> (id, state, state known)
    props = body.get("properties") if isinstance(body, Mapping) else None
    for name in _BACK_REFERENCES.get(rid.type.lower(), ()):
        refs = props.get(name) if isinstance(props, Mapping) else None
        for ref in refs if isinstance(refs, list) else [refs]:
            if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
                owner = _owner(ref["id"])
                if owner is not None and owner.key != rid.key:
                    found.setdefault(owner.key, (str(owner), None, False))
    if rid.type.lower() == _SUBNET and rid.resource_group_id is not None:
        listing = reader.get(
            f"{rid.resource_group_id}/providers/Microsoft.Network/networkInterfaces", _NIC_API
        )
        items = listing.body.get("value") if isinstance(listing.body, Mapping) else None
        if not listing.ok:
            out.notes.append(f"The group's NICs could not be listed: {_describe(listing)}.")
        for nic in items if isinstance(items, list) else []:
            nic_props = nic.get("properties") if isinstance(nic, Mapping) else None
            confs = nic_props.get("ipConfigurations") if isinstance(nic_props, Mapping) else None
            for conf in confs if isinstance(confs, list) else []:
                conf_props = conf.get("properties") if isinstance(conf, Mapping) else None
                subnet = conf_props.get("subnet") if isinstance(conf_props, Mapping) else None
                if isinstance(subnet, Mapping) and str(subnet.get("id", "")).lower() == rid.key:
                    nic_id = str(nic["id"])
                    found[nic_id.lower()] = (nic_id, _state(nic), True)
    for n, (dep_id, listed_state, known) in enumerate(found.values()):
        if n >= _MAX_DEPENDENTS:
            out.notes.append(
                f"{len(found)} resources reference it; the states of the first "
                f"{_MAX_DEPENDENTS} were read."
            )
            break
        state = listed_state
        if not known:
            try:
                dep = parse_resource_id(dep_id)
            except InvalidResourceId:
                continue
            got = reader.get(dep_id, reader.api_version(dep))
            if got.status == 404:
                continue  # a back-reference a delete has not cleared yet
            state = _state(got.body) if got.ok else None
        out.related.append(RelatedState(dep_id, "dependent", state))


def _in_use_blockers(out: Inspection) -> None:
    users = [r.resource_id for r in out.related if r.relation == "dependent"]
    if not users or out.intent.kind != "delete":
        return
    more = f" and {len(users) - 1} more" if len(users) > 1 else ""
    out.blockers.append(
        Blocker(
            kind=ConflictKind.STATE_PREREQUISITE,
            reason=(
                f"It is in use by {users[0]}{more}: ARM refuses to delete a resource that others "
                "reference (InUseSubnetCannotBeDeleted and the like)."
            ),
            action=(
                "Detach it first: remove the reference from each of them and wait until each "
                "update reaches Succeeded; then delete."
            ),
            resource_id=out.resource_id,
        )
    )


def _activity(
    reader: _Reader, rid: ResourceId, now: float, history: float, out: Inspection
) -> list[Operation]:
    # A little past now: the caller's clock and ARM's may differ by a few minutes.
    start, end = isoformat(now - history), isoformat(now + _CLOCK_SKEW)
    clauses = [f"eventTimestamp ge '{start}'", f"eventTimestamp le '{end}'"]
    if rid.resource_group is not None:
        clauses.append(f"resourceGroupName eq '{rid.resource_group}'")
    else:
        clauses.append(f"resourceUri eq '{rid}'")
    path: str | None = (
        f"/subscriptions/{rid.subscription}/providers/Microsoft.Insights/eventtypes/management/values?"
        + urlencode({"api-version": ACTIVITY_LOG_API, "$filter": " and ".join(clauses)})
    )
    records: list[Record] = []
    pages = 0
    while path and pages < _MAX_LOG_PAGES:
        response = reader.get(path, ACTIVITY_LOG_API)
        if not response.ok or not isinstance(response.body, Mapping):
            out.notes.append(f"The Activity Log could not be read: {_describe(response)}.")
            return []
        for n, value in enumerate(response.body.get("value", []) or [], 1):
            try:
                records.append(normalise_record(value, f"event {n}", "Activity Log"))
            except SourceError:
                continue  # categories other than Administrative carry other shapes
        link = response.body.get("nextLink")
        path = str(link) if link else None
        pages += 1
    if path:
        out.notes.append(f"Only the first {_MAX_LOG_PAGES} pages of the Activity Log were read.")
    # The whole family: a subnet's VNet and its sibling subnets hold the subnet too.
    return analyse(records, TimelineOptions(resource=rid.top_level)).operations


# --- the verdict --------------------------------------------------------------------------------------


def _lock_blockers(out: Inspection) -> None:
    for lock in out.locks:
        level = lock.level.lower()
        if level == "readonly" or (level == "cannotdelete" and out.intent.kind == "delete"):
            where = f"inherited from {lock.scope}" if lock.inherited else "on the resource itself"
            out.blockers.append(
                Blocker(
                    kind=ConflictKind.LOCKED,
                    reason=f"The {lock.level} lock '{lock.name}' ({where}) forbids a "
                    f"{out.intent.describe()}" + (f": {lock.notes}" if lock.notes else "."),
                    action=(
                        f"Stop. A person decides whether lock {lock.id} may be lifted; never remove "
                        "or bypass a lock from automation."
                    ),
                    resource_id=out.resource_id,
                    lock_id=lock.id,
                )
            )
        elif level == "cannotdelete":
            out.notes.append(
                f"The CanNotDelete lock '{lock.name}' allows writes but would block a delete."
            )


def _holder(out: Inspection, state: RelatedState) -> tuple[Operation | None, str | None]:
    """The Activity Log operation holding that resource, and its status URL when known.

    A resource can be held by a write on its parent (a VNet PUT marks its subnets Updating),
    so when nothing runs on the resource itself the parent's, then any relative's, counts.
    """
    key = state.resource_id.lower()
    parent = out.related_parent()
    running = [o for o in out.running_operations if o.resource_id.lower() == key]
    if not running and parent is not None:
        running = [o for o in out.running_operations if o.resource_id.lower() == parent]
    if not running:
        running = list(out.running_operations)
    op = max(running, key=lambda o: o.start) if running else None
    url = op.operation_url if op is not None else None
    if url is None:
        # A write refused by this operation names its status URL in the 409 message.
        refused = [
            o for o in out.recent_writes if o.operation_url and (op is None or o.start >= op.start)
        ]
        if refused:
            url = max(refused, key=lambda o: o.start).operation_url
    return op, url


def _progress_blockers(out: Inspection) -> None:
    power = f" (PowerState/{out.power_state})" if out.power_state in _TRANSITIONAL_POWER else ""
    cited: set[tuple[str, float]] = set()
    for state in out.related:
        if not state.running:
            continue
        op, url = _holder(out, state)
        if op is not None:
            if (op.id, op.start) in cited:
                continue  # one operation holding the resource and its parent is one blocker
            cited.add((op.id, op.start))
        on = ""
        if op is not None and op.resource_id.lower() != state.resource_id.lower():
            on = f" on {op.resource_id}"
        who = (
            f" ({op.operation}{on}, started by {op.caller} at {isoformat(op.start)})" if op else ""
        )
        wait = f"poll {url} until it is terminal" if url else "poll its provisioningState"
        where = {
            "resource": f"The resource is {state.provisioning_state}{power}",
            "parent": f"Its parent {state.resource_id} is {state.provisioning_state}",
            "child": f"Its child {state.resource_id} is {state.provisioning_state}",
            "sibling": f"Its sibling {state.resource_id} is {state.provisioning_state}",
            "dependent": (
                f"{state.resource_id}, which references it, is {state.provisioning_state}"
            ),
        }[state.relation]
        out.blockers.append(
            Blocker(
                kind=ConflictKind.OPERATION_IN_PROGRESS,
                reason=(
                    f"{where}: an operation{who} holds it, so ARM answers 409 "
                    "AnotherOperationInProgress (or a 429 RetryableError)."
                ),
                action=(
                    f"Wait for that operation: {wait} (Succeeded, Failed or Canceled), then re-read "
                    "and write. Do not retry while it runs, and do not sleep a fixed time."
                ),
                resource_id=state.resource_id,
                operation_url=url,
                caller=op.caller if op else None,
                since=op.start if op else None,
            )
        )
    held = any(s.running and s.relation == "resource" for s in out.related)
    if power and not held:
        op, url = _holder(out, RelatedState(out.resource_id, "resource", "Updating"))
        out.blockers.append(
            Blocker(
                kind=ConflictKind.OPERATION_IN_PROGRESS,
                reason=f"The VM's power state is changing{power}.",
                action="Wait until the instance view shows a stable power state, then re-read.",
                resource_id=out.resource_id,
                operation_url=url,
                caller=op.caller if op else None,
                since=op.start if op else None,
            )
        )


def _resize_blockers(out: Inspection) -> None:
    size = out.intent.size
    if out.vm_size and size and out.vm_size.lower() == size.lower():
        out.notes.append(f"The VM is already {out.vm_size}: the resize is already satisfied.")
        return
    if out.power_state not in (None, "deallocated") and out.power_state not in _TRANSITIONAL_POWER:
        out.blockers.append(
            Blocker(
                kind=ConflictKind.STATE_PREREQUISITE,
                reason=(
                    f"The VM is {out.power_state}, not deallocated: ARM resizes an allocated VM "
                    f"only if {size} is free on its current cluster, and otherwise refuses with "
                    "OperationNotAllowed."
                ),
                action=(
                    "Deallocate first (POST .../deallocate), wait until the instance view shows "
                    f"PowerState/deallocated, then resize to {size} and start the VM."
                ),
                resource_id=out.resource_id,
            )
        )


def _etag_blockers(out: Inspection) -> None:
    sent = out.etag_sent
    if sent is None:
        return
    if not out.exists:
        out.blockers.append(
            Blocker(
                kind=ConflictKind.STALE_VERSION,
                reason=f"The resource no longer exists, so If-Match: {sent} fails with 412.",
                action="Re-read the intent: recreate without If-Match only if that is intended.",
                resource_id=out.resource_id,
            )
        )
    elif out.etag is None:
        out.notes.append(
            "This resource type carries no ETag, so the token given cannot be compared; "
            "serialise writers instead."
        )
    elif out.etag.strip() != sent.strip():
        out.blockers.append(
            Blocker(
                kind=ConflictKind.STALE_VERSION,
                reason=f"The ETag given ({sent}) is stale: the live ETag is {out.etag}, so "
                "If-Match fails with 412 PreconditionFailed.",
                action=(
                    f"Re-read the resource, rebase the change on its current state and write with "
                    f"If-Match: {out.etag}. Never resend {sent}; drop the change if the live state "
                    "already has it."
                ),
                resource_id=out.resource_id,
            )
        )
    else:
        out.notes.append("The ETag given matches the live one.")


def _absent(out: Inspection) -> None:
    """What the intent means for a resource that does not exist, said once and consistently
    with the blockers: a PUT creates it only where its parent and group exist."""
    missing = [b for b in out.blockers if b.kind is ConflictKind.NOT_FOUND]
    if out.intent.kind == "delete":
        # Nothing to delete; that its parent is gone too only confirms it.
        out.blockers = [b for b in out.blockers if b.kind is not ConflictKind.NOT_FOUND]
        out.notes.append("The resource does not exist: a delete has nothing to do.")
    elif out.intent.kind == "resize":
        out.blockers.append(
            Blocker(
                kind=ConflictKind.NOT_FOUND,
                reason="The VM does not exist: there is nothing to resize.",
                action="Check the ID; to have a VM of that size, create it with that size.",
                resource_id=out.resource_id,
            )
        )
    elif missing:
        out.notes.append(
            f"The resource does not exist, and neither does {missing[0].resource_id}: a PUT "
            "is refused (404) until that is created."
        )
    else:
        out.notes.append("The resource does not exist: a PUT would create it.")


# --- entry point ----------------------------------------------------------------------------------------


def inspect_resource(
    client: ArmClient,
    rid: ResourceId,
    *,
    clock: Clock,
    intent: Intent | None = None,
    etag: str | None = None,
    api_version: str | None = None,
    history: float = 3600.0,
) -> Inspection:
    """Read everything that decides whether a write on ``rid`` would go through now.

    Raises :class:`InspectError` when the resource itself cannot be read (no answer, 401, 403,
    5xx); secondary reads that fail become notes, since the rest of the verdict still holds.
    """
    chosen = intent or Intent()
    if chosen.kind == "resize" and rid.type.lower() != "microsoft.compute/virtualmachines":
        raise ValueError(f"a resize intent applies to virtual machines, not {rid.type}")

    def version(target: ResourceId) -> str:
        return api_version if api_version and target.key == rid.key else default_api_version(target)

    reader = _Reader(client, version)
    now = clock.now()
    response = reader.get(str(rid), version(rid))
    out = Inspection(
        resource_id=str(rid),
        type=rid.type,
        intent=chosen,
        at=now,
        exists=response.status != 404,
        etag_sent=etag,
    )
    if response.status not in (200, 404):
        raise InspectError(f"GET {rid} answered {_describe(response)}")
    if out.exists:
        out.provisioning_state = _state(response.body) or "Succeeded"
        out.etag = response.etag
        out.related.append(RelatedState(str(rid), "resource", out.provisioning_state))
        props = response.body.get("properties") if isinstance(response.body, Mapping) else None
        hardware = props.get("hardwareProfile") if isinstance(props, Mapping) else None
        if isinstance(hardware, Mapping) and hardware.get("vmSize"):
            out.vm_size = str(hardware["vmSize"])
    if out.exists and rid.type.lower() == "microsoft.compute/virtualmachines":
        view = reader.get(f"{rid}/instanceView", version(rid))
        if view.ok and isinstance(view.body, dict):
            out.power_state = power_state(view.body)
        else:
            out.notes.append(f"The instance view could not be read: {_describe(view)}.")
    _read_locks(reader, rid, out.exists, out)
    # Parents (a subnet's VNet) and the parent's other children are serialised with this one.
    if rid.is_child and rid.parent is not None:
        parent = rid.parent
        got = reader.get(str(parent), version(parent))
        if got.ok:
            out.related.append(RelatedState(str(parent), "parent", _state(got.body)))
            out.related.extend(_children(reader, parent, "sibling", rid))
        elif got.status == 404:
            out.blockers.append(
                Blocker(
                    kind=ConflictKind.NOT_FOUND,
                    reason=f"The parent {parent} does not exist.",
                    action="Create the parent first; a child cannot be written without it.",
                    resource_id=str(parent),
                )
            )
        else:
            out.notes.append(f"The parent {parent} could not be read: {_describe(got)}.")
    if out.exists:
        out.related.extend(_children(reader, rid, "child", None))
        _dependents(reader, rid, response.body, out)
    elif not rid.is_child and rid.resource_group_id is not None:
        group = rid.resource_group_id
        if reader.get(str(group), version(group)).status == 404:
            out.blockers.append(
                Blocker(
                    kind=ConflictKind.NOT_FOUND,
                    reason=f"The resource group {group} does not exist.",
                    action="Create the resource group first.",
                    resource_id=str(group),
                )
            )
    ops = _activity(reader, rid, now, history, out)
    out.running_operations = [o for o in ops if o.end is None and o.verb != "read"]
    out.recent_writes = sorted(
        (o for o in ops if o.verb in ("write", "delete", "action")), key=lambda o: -o.start
    )[:_RECENT_LIMIT]
    _lock_blockers(out)
    _progress_blockers(out)
    _in_use_blockers(out)
    if chosen.kind == "resize" and out.exists:
        _resize_blockers(out)
    if not out.exists:
        _absent(out)
    _etag_blockers(out)
    writers = {o.caller for o in out.recent_writes}
    if len(writers) > 1:
        out.notes.append(
            f"{len(writers)} callers wrote here in the last {int(history // 60)} minutes "
            f"({', '.join(sorted(writers))}): serialise them, or expect conflicts."
        )
    out.blockers.sort(key=lambda b: _SEVERITY.get(b.kind, 9))
    return out
