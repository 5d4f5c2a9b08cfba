"""What a request writes, and which lock keys it must hold while it does.

The proxy sees only HTTP: a method and a path. A PUT, PATCH or DELETE writes the resource its
path names; a POST runs an action on the resource its path names minus the last segment. POSTs
that only read (``listKeys``, ``getVpnProfile``…) and every GET/HEAD are reads, and reads never
take turns. Keys follow the coordinator's rules (:func:`armguard.coordinator.scopes.lock_keys`),
so a proxy and a worker sharing a store serialise the same things.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.coordinator.scopes import lock_keys

__all__ = ["WriteTarget", "parse_json_object", "write_target"]

WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})

# Actions named like these read (keys, SAS tokens, profiles, effective rules); they change
# nothing, so they must not wait behind writes.
_READ_ACTION_RE = re.compile(r"^(list|get|generate|check|validate|preview|export)", re.IGNORECASE)


@dataclass(frozen=True)
class WriteTarget:
    """A write the proxy must order: the resource it changes and the keys it holds."""

    resource: ResourceId
    method: str
    action: str | None
    """The action name of a POST (``deallocate``, ``restart``…); None for PUT/PATCH/DELETE."""
    keys: tuple[str, ...]

    @property
    def verb(self) -> str:
        return f"POST {self.action}" if self.action else self.method


def parse_json_object(body: bytes) -> Mapping[str, Any] | None:
    """The body as a JSON object, or None when it is empty or not one (ARM judges it)."""
    if not body or not body.strip():
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, Mapping) else None


def write_target(
    method: str, path: str, body: Mapping[str, Any] | None, learned: Iterable[str] = ()
) -> WriteTarget | None:
    """The write this request makes, or None when it is a read or names no resource.

    ``learned`` are keys the store has learned depend on the resource's own keys (ARM's 409s
    revealed them); they are added so the write waits for those too.
    """
    method = method.upper()
    if method not in WRITE_METHODS:
        return None
    text = path.rstrip("/")
    action: str | None = None
    try:
        rid = parse_resource_id(text)
    except InvalidResourceId:
        if method != "POST":
            return None
        head, _, last = text.rpartition("/")
        try:
            rid = parse_resource_id(head)
        except InvalidResourceId:
            return None
        action = last
    else:
        if method == "POST":
            # A POST to a full resource path is an action on a collection-like child
            # (``.../virtualMachines/vm/restart`` parses as a type without a name, so it is
            # handled above); a POST here is odd enough that its parent is the safest target.
            action = rid.name
            parent = rid.parent
            if parent is None:
                return None
            rid = parent
    if action is not None and _READ_ACTION_RE.match(action):
        return None
    if not (rid.is_resource or rid.is_resource_group):
        return None
    keys = set(lock_keys(rid, body if method in ("PUT", "PATCH") else None))
    keys.update(k for k in learned if k)
    return WriteTarget(rid, method, action, tuple(sorted(keys)))
