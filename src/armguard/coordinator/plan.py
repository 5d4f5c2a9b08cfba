"""Plan files: many writers' intents in one YAML (or JSON) document, for ``armguard apply``.

A plan lists jobs — who writes, which resource, what intent — and, for ``--emulator`` runs, the
world they run in: the resources that exist first, locks, and *unguarded* writers (a portal
hotfix, a running deployment, a VM someone started) whose requests go straight to ARM before
the coordinated jobs start, so the plan replays a real collision::

    name: tag normalizer vs pipeline
    world:
      resources:
        - id: /subscriptions/…/resourceGroups/prod
          body: {location: eastus}
      locks:
        - {scope: /subscriptions/…/resourceGroups/prod, name: no-delete, level: CanNotDelete}
      unguarded:
        - {writer: portal, method: PATCH, id: …, body: {tags: {hotfix: "1"}}}
    jobs:
      - {writer: tag-normalizer, resource: …, tags: {owner: media}}
      - {writer: pipeline, resource: …, merge: {properties: {…}}, on_stale: rebase}

A job's intent is either ``intent:`` (the JSON form, with ``kind``) or one shorthand key, the
same as ``armguard submit``'s flags: ``merge``, ``tags`` (set), ``untag`` (list), ``put``,
``action``, ``resize``, ``delete: true``. ``baseline_etag`` and ``baseline`` (the body the
writer read) say what the intent was built on: with the body, a job whose resource moved on is
rebased three-way; with the ETag alone it is not rebased (see ``docs/coordinator.md``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id
from armguard.coordinator.intents import Intent, IntentError, intent_from_json
from armguard.coordinator.model import StalePolicy
from armguard.coordinator.resource_types import ApiVersionRequired, api_version_for
from armguard.coordinator.submit import build_spec

__all__ = [
    "MAX_DEPTH",
    "Plan",
    "PlanError",
    "PlannedJob",
    "UnguardedWrite",
    "WorldLock",
    "WorldResource",
    "exceeds_depth",
    "intent_from_shorthand",
    "load_plan",
    "too_deep",
]

MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
"""The deepest nesting of lists and mappings a plan or an intent document may have. ARM request
bodies are a handful of levels deep (the emulator refuses bodies past 64, as this does); the
bound keeps parsing, validation, deep copies and JSON encoding far from Python's recursion
limit, where a hostile document would otherwise end in a RecursionError. For a plan it bounds
the whole file, the plan's own few levels included."""
_SHORTHANDS = ("merge", "tags", "untag", "put", "action", "resize", "delete")


class PlanError(ValueError):
    """The plan cannot be used. The message names the file, the entry and the problem."""


def too_deep(limit: int = MAX_DEPTH) -> str:
    return (
        f"lists and mappings nested more than {limit} levels deep; "
        "ARM request bodies are nowhere near that deep"
    )


def exceeds_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when lists and mappings in ``value`` nest more than ``limit`` levels deep; a
    structure that holds itself (a YAML alias inside its own anchor) nests without end.

    Iterative, so depth cannot exhaust the stack. A node shared through YAML aliases is walked
    again only when reached deeper than before, so a fan-out of aliases costs at most ``limit``
    walks per node instead of one per path.
    """
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Mapping | list):
            continue
        if depth > limit:
            return True
        if deepest.get(id(node), 0) >= depth:
            continue
        deepest[id(node)] = depth
        children = node.values() if isinstance(node, Mapping) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, Mapping | list))
    return False


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to nest past :data:`MAX_DEPTH` while it reads: its
    composer recurses once per level, so a bound checked after loading comes too late."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                where = f"line {event.start_mark.line + 1}: " if event.start_mark else ""
                raise PlanError(where + too_deep())
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


@dataclass(frozen=True)
class PlannedJob:
    index: int
    writer: str
    resource: ResourceId
    intent: Intent
    baseline_etag: str | None = None
    on_stale: StalePolicy = StalePolicy.REBASE
    idempotency_key: str | None = None
    baseline: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class WorldResource:
    id: ResourceId
    body: Mapping[str, Any]
    api_version: str | None = None


@dataclass(frozen=True)
class WorldLock:
    scope: ResourceId
    name: str
    level: str
    notes: str = ""


@dataclass(frozen=True)
class UnguardedWrite:
    """A request another tool sends straight to ARM, not through armguard."""

    writer: str
    method: str
    id: ResourceId
    body: Any = None
    suffix: str = ""
    api_version: str | None = None
    wait: bool = False
    """Wait for it to finish before the jobs start (else it is still running when they do)."""


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    jobs: tuple[PlannedJob, ...]
    resources: tuple[WorldResource, ...] = ()
    locks: tuple[WorldLock, ...] = ()
    unguarded: tuple[UnguardedWrite, ...] = ()
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def intent_from_shorthand(entry: Mapping[str, Any]) -> Intent:
    """The intent of a plan entry or CLI flag set: ``intent:`` or exactly one shorthand key."""
    given = [
        k for k in _SHORTHANDS if k in entry and entry[k] is not None and entry[k] is not False
    ]
    if "intent" in entry:
        if given:
            raise IntentError(f"give either 'intent' or one of {', '.join(_SHORTHANDS)}, not both")
        return intent_from_json(entry["intent"])
    if len(given) != 1:
        raise IntentError(
            f"each job needs exactly one intent ({', '.join(_SHORTHANDS)} or 'intent'); "
            f"found {len(given)}"
        )
    key = given[0]
    value = entry[key]
    api = entry.get("api_version")
    doc: dict[str, Any]
    if key == "merge":
        doc = {"kind": "merge", "patch": value}
    elif key == "put":
        doc = {"kind": "put", "body": value}
    elif key == "tags":
        if not isinstance(value, Mapping):
            raise IntentError("'tags' must map tag names to values")
        doc = {"kind": "tags", "set": {str(k): str(v) for k, v in value.items()}}
        if entry.get("untag"):
            raise IntentError("use 'intent: {kind: tags, set: …, remove: …}' to set and remove")
    elif key == "untag":
        names = [value] if isinstance(value, str) else value
        doc = {"kind": "tags", "remove": names}
    elif key == "action":
        doc = {"kind": "action", "name": value}
    elif key == "resize":
        doc = {"kind": "resize", "size": value}
    else:
        if value is not True:
            raise IntentError("'delete' takes true")
        doc = {"kind": "delete"}
    if api is not None:
        doc["api_version"] = api
    return intent_from_json(doc)


def _rid(value: Any, where: str) -> ResourceId:
    if not isinstance(value, str):
        raise PlanError(f"{where}: a resource ID string is required")
    try:
        return parse_resource_id(value)
    except InvalidResourceId as exc:
        raise PlanError(f"{where}: {exc}") from exc


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where}: expected a mapping")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PlanError(f"{where}: expected a list")
    return value


def _job(entry: Any, index: int) -> PlannedJob:
    where = f"jobs[{index}]"
    data = _mapping(entry, where)
    writer = data.get("writer")
    if not isinstance(writer, str) or not writer.strip():
        raise PlanError(f"{where}: 'writer' (a name for who wants this) is required")
    resource = _rid(data.get("resource"), f"{where}.resource")
    try:
        intent = intent_from_shorthand(data)
    except IntentError as exc:
        raise PlanError(f"{where}: {exc}") from exc
    policy_text = data.get("on_stale", StalePolicy.REBASE.value)
    try:
        policy = StalePolicy(str(policy_text))
    except ValueError as exc:
        raise PlanError(f"{where}.on_stale: must be one of rebase, drop, fail") from exc
    etag = data.get("baseline_etag")
    key = data.get("idempotency_key")
    baseline = data.get("baseline")
    if baseline is not None and not isinstance(baseline, Mapping):
        raise PlanError(f"{where}.baseline: must be the resource body the writer read (a mapping)")
    job = PlannedJob(
        index=index,
        writer=writer.strip(),
        resource=resource,
        intent=intent,
        baseline_etag=None if etag is None else str(etag),
        on_stale=policy,
        idempotency_key=None if key is None else str(key),
        baseline=None if baseline is None else dict(baseline),
    )
    # Everything queueing will check, checked now: a plan is refused whole, before an
    # emulator starts or a single job is queued.
    try:
        build_spec(
            str(resource),
            intent,
            job.writer,
            baseline_etag=job.baseline_etag,
            on_stale=policy,
            idempotency_key=job.idempotency_key,
            baseline=job.baseline,
        )
    except ApiVersionRequired as exc:
        raise PlanError(f"{where}: {_no_api_version(exc, 'the job')}") from exc
    except ValueError as exc:
        raise PlanError(f"{where}: {exc}") from exc
    return job


def _no_api_version(exc: ApiVersionRequired, owner: str) -> str:
    return f"armguard has no default api-version for '{exc.type}'; give {owner} an 'api_version'"


def _api_version(rid: ResourceId, value: Any, where: str, owner: str) -> Any:
    try:
        api_version_for(rid, value)
    except ApiVersionRequired as exc:
        raise PlanError(f"{where}: {_no_api_version(exc, owner)}") from exc
    return value


def _world(
    data: Mapping[str, Any],
) -> tuple[tuple[WorldResource, ...], tuple[WorldLock, ...], tuple[UnguardedWrite, ...]]:
    resources = []
    for i, item in enumerate(_list(data.get("resources"), "world.resources")):
        where = f"world.resources[{i}]"
        entry = _mapping(item, where)
        body = entry.get("body", {})
        rid = _rid(entry.get("id"), f"{where}.id")
        resources.append(
            WorldResource(
                rid,
                _mapping(body, f"{where}.body"),
                _api_version(rid, entry.get("api_version"), where, "the resource"),
            )
        )
    locks = []
    for i, item in enumerate(_list(data.get("locks"), "world.locks")):
        where = f"world.locks[{i}]"
        entry = _mapping(item, where)
        level = entry.get("level")
        if level not in ("CanNotDelete", "ReadOnly"):
            raise PlanError(f"{where}.level: must be CanNotDelete or ReadOnly")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise PlanError(f"{where}.name: required")
        locks.append(
            WorldLock(
                _rid(entry.get("scope"), f"{where}.scope"), name, level, entry.get("notes", "")
            )
        )
    unguarded = []
    for i, item in enumerate(_list(data.get("unguarded"), "world.unguarded")):
        where = f"world.unguarded[{i}]"
        entry = _mapping(item, where)
        method = str(entry.get("method", "")).upper()
        if method not in ("PUT", "PATCH", "POST", "DELETE"):
            raise PlanError(f"{where}.method: must be PUT, PATCH, POST or DELETE")
        rid = _rid(entry.get("id"), f"{where}.id")
        unguarded.append(
            UnguardedWrite(
                writer=str(entry.get("writer") or "unguarded"),
                method=method,
                id=rid,
                body=entry.get("body"),
                suffix=str(entry.get("suffix") or ""),
                api_version=_api_version(rid, entry.get("api_version"), where, "the write"),
                wait=bool(entry.get("wait", False)),
            )
        )
    return tuple(resources), tuple(locks), tuple(unguarded)


def parse_plan(data: Any, source: str = "<plan>") -> Plan:
    if exceeds_depth(data):
        # Validation, deep copies and the store's JSON encoding all recurse per level.
        raise PlanError(f"{source}: {too_deep()}")
    try:
        doc = _mapping(data, "plan")
        jobs = tuple(_job(e, i) for i, e in enumerate(_list(doc.get("jobs"), "jobs")))
        if not jobs:
            raise PlanError("jobs: the plan has no jobs")
        world = doc.get("world") or {}
        resources, locks, unguarded = _world(_mapping(world, "world"))
    except PlanError as exc:
        raise PlanError(f"{source}: {exc}") from exc
    known = {"name", "description", "jobs", "world"}
    return Plan(
        name=str(doc.get("name") or Path(source).stem),
        description=str(doc.get("description") or ""),
        jobs=jobs,
        resources=resources,
        locks=locks,
        unguarded=unguarded,
        source=source,
        extra={k: v for k, v in doc.items() if k not in known},
    )


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file, or raise :class:`PlanError` naming what is wrong."""
    p = Path(path)
    try:
        if p.is_dir():
            raise PlanError(f"{p}: is a directory, not a plan file")
        if p.stat().st_size > MAX_PLAN_BYTES:
            raise PlanError(f"{p}: larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PlanError(f"{p}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise PlanError(f"{p}: not UTF-8 text") from exc
    except OSError as exc:
        raise PlanError(f"{p}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.load(text, Loader=_BoundedLoader)
    except PlanError as exc:
        raise PlanError(f"{p}: {exc}") from None
    except RecursionError:
        # json.loads recurses per level and has no bound of its own below the interpreter's.
        raise PlanError(f"{p}: {too_deep()}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PlanError(
            f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}"
        ) from exc
    return parse_plan(data, str(p))
