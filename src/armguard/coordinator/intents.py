"""Intents: what a writer wants a resource to look like, not the request that gets it there.

An intent is declarative and JSON-serialisable, so a job can be queued, survive a restart and
be *recomputed* on whatever the live state is when its turn comes (the seeds' "store intent
separately from the version baseline"). Each intent answers four questions:

* ``satisfied_by(live)`` — is the effect already there? (then the job completes with no write)
* ``apply(body)`` — the body with this intent folded in, for intents that write the body;
* ``rebase(live)`` — the write this intent needs on the live state (a new body or a request);
* ``fields()`` — the JSON paths it touches, for metrics and conflicts by field.

Only :class:`BodyIntent` kinds fold into a shared write; every other kind (actions, deletes, a
user's own request-shaped kind) is a ``barrier`` that runs alone and in order, so nothing is
ever folded into a write that cannot carry it. Library users add their own kinds with
:func:`register_intent`.
"""

from __future__ import annotations

import builtins
import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = [
    "ActionIntent",
    "BodyIntent",
    "DeleteIntent",
    "Intent",
    "IntentError",
    "MergeIntent",
    "PutIntent",
    "Request",
    "ResizeIntent",
    "TagsIntent",
    "body_subset",
    "fold",
    "intent_from_json",
    "intent_kinds",
    "leaf_paths",
    "live_power_state",
    "merge_patch",
    "register_intent",
    "strip_read_only",
]

JSON = dict[str, Any]

# Fields ARM computes; a desired body never asks for them and a PUT never sends them back.
_READ_ONLY_TOP = frozenset({"etag", "id", "name", "type", "systemData", "managedBy"})
_READ_ONLY_PROPERTIES = frozenset({"provisioningState", "instanceView", "resourceGuid"})


class IntentError(ValueError):
    """An intent document that cannot be understood. The message says what is wrong."""


@dataclass(frozen=True)
class Request:
    """One ARM call an intent needs: the verb, a path relative to the resource, and a body."""

    method: str
    suffix: str = ""
    """Appended to the resource ID: ``/start``, or ``""`` for the resource itself."""
    body: Any = None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out: JSON = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _patch_satisfied(live: Any, patch: Any) -> bool:
    if not isinstance(patch, Mapping):
        return bool(live == patch)
    if not isinstance(live, Mapping):
        return False
    for key, value in patch.items():
        if value is None:
            if key in live:
                return False
        elif key not in live or not _patch_satisfied(live[key], value):
            return False
    return True


def _leaf_paths(doc: Any, prefix: str = "") -> set[str]:
    if not isinstance(doc, Mapping) or not doc:
        return {prefix} if prefix else set()
    out: set[str] = set()
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out |= _leaf_paths(value, path) if isinstance(value, Mapping) and value else {path}
    return out


def leaf_paths(doc: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths to every leaf of ``doc`` (lists and empty objects are leaves, as a merge patch
    replaces them whole)."""
    if not isinstance(doc, Mapping) or not doc:
        return [prefix] if prefix else []
    out: list[tuple[str, ...]] = []
    for key, value in doc.items():
        out += leaf_paths(value, (*prefix, str(key)))
    return out


def body_subset(live: Any, desired: Any) -> bool:
    """True if every value in ``desired`` is present and equal in ``live`` (lists compared whole)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and body_subset(live[k], v) for k, v in desired.items())
    return bool(live == desired)


def strip_read_only(body: Mapping[str, Any]) -> JSON:
    """The writable part of a resource body, as the SDKs send it (``exclude_readonly``)."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k not in _READ_ONLY_TOP}
    props = out.get("properties")
    if isinstance(props, Mapping):
        out["properties"] = {k: v for k, v in props.items() if k not in _READ_ONLY_PROPERTIES}
    return out


class Intent(ABC):
    """The base of every intent kind. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    barrier: ClassVar[bool] = True
    """Runs alone, in order. Only body intents can share a write, so only they may say False."""
    api_version: str | None

    @abstractmethod
    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        """Whether the live body (None: the resource is absent) already has this effect."""

    @abstractmethod
    def rebase(self, live: Mapping[str, Any] | None) -> JSON | Request:
        """The write this intent needs on ``live``: a full body to PUT, or a request."""

    @abstractmethod
    def fields(self) -> set[str]:
        """Dotted JSON paths this intent touches (``tags.env``, ``properties.hardwareProfile``)."""

    def paths(self) -> list[tuple[str, ...]]:
        """The body paths this intent sets, as key tuples (tag names may hold dots): what a
        read-back compares with the folded body. Defaults to :meth:`fields` split on dots."""
        return [tuple(f.split(".")) for f in sorted(self.fields()) if f and f != "*"]

    @abstractmethod
    def _payload(self) -> JSON: ...

    def to_json(self) -> JSON:
        out: JSON = {"kind": self.kind, **self._payload()}
        if self.api_version is not None:
            out["api_version"] = self.api_version
        return out

    @classmethod
    @abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Intent: ...

    def prerequisite(self, needed: str) -> Sequence[str] | None:
        """Transitions (action names) that let this intent proceed when ARM says ``needed`` must
        happen first, or None if this intent cannot meet that prerequisite itself."""
        return None

    def verify(self, live: Mapping[str, Any] | None) -> bool | None:
        """After ARM reported the write done: True if ``live`` shows the effect, False if it
        contradicts it, None if the effect cannot be seen in the body. A request-shaped kind
        (a restart, a key rotation) is seen only where ``satisfied_by`` can see it."""
        return True if self.satisfied_by(live) else None


class BodyIntent(Intent):
    """An intent that is a function of the resource body, so several fold into one PUT."""

    barrier: ClassVar[bool] = False

    @abstractmethod
    def apply(self, body: Mapping[str, Any] | None) -> JSON:
        """``body`` with this intent's effect folded in (later intents win per field)."""

    def rebase(self, live: Mapping[str, Any] | None) -> JSON:
        return strip_read_only(self.apply(live))

    def verify(self, live: Mapping[str, Any] | None) -> bool | None:
        return self.satisfied_by(live)


_I = TypeVar("_I", bound=type[Intent])
_REGISTRY: dict[str, type[Intent]] = {}


def register_intent(cls: _I) -> _I:
    """Class decorator: make an intent kind loadable by :func:`intent_from_json`."""
    name = getattr(cls, "kind", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty 'kind'")
    if not cls.barrier and not issubclass(cls, BodyIntent):
        # The writer folds only body intents into a write; a foldable request-shaped kind
        # would be dropped from it and then reported applied.
        raise TypeError(
            f"{cls.__name__} sets barrier = False but is not a BodyIntent: only intents that "
            "fold into the resource body can share a write"
        )
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise TypeError(f"intent kind '{name}' is already registered by {existing.__name__}")
    _REGISTRY[name] = cls
    return cls


def intent_kinds() -> list[str]:
    return sorted(_REGISTRY)


def intent_from_json(data: Mapping[str, Any] | str) -> Intent:
    """Load an intent from its JSON form, or raise :class:`IntentError` saying what is wrong."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise IntentError(f"intent is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, Mapping):
        raise IntentError("an intent must be a JSON object with a 'kind'")
    kind = data.get("kind")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise IntentError(f"unknown intent kind {kind!r}; known: {', '.join(intent_kinds())}")
    return cls.from_json(data)


def _api_version(data: Mapping[str, Any]) -> str | None:
    value = data.get("api_version")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise IntentError("'api_version' must be a non-empty string")
    return value.strip()


def _object(data: Mapping[str, Any], key: str) -> JSON:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise IntentError(f"'{key}' must be a JSON object")
    return dict(value)


@register_intent
@dataclass(frozen=True)
class MergeIntent(BodyIntent):
    """An RFC 7386 merge patch on the resource body."""

    kind: ClassVar[str] = "merge"
    patch: JSON
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.patch, Mapping) or not self.patch:
            raise IntentError("a merge intent needs a non-empty JSON object")

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        return live is not None and _patch_satisfied(live, self.patch)

    def apply(self, body: Mapping[str, Any] | None) -> JSON:
        result = merge_patch(body or {}, self.patch)
        assert isinstance(result, dict)
        return result

    def fields(self) -> set[str]:
        return _leaf_paths(self.patch)

    def paths(self) -> list[tuple[str, ...]]:
        return leaf_paths(self.patch)

    def _payload(self) -> JSON:
        return {"patch": copy.deepcopy(self.patch)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeIntent:
        return cls(_object(data, "patch"), _api_version(data))


@register_intent
@dataclass(frozen=True)
class PutIntent(BodyIntent):
    """The full desired body. Fields it leaves out are removed, as a PUT removes them."""

    kind: ClassVar[str] = "put"
    body: JSON
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.body, Mapping):
            raise IntentError("a put intent needs a JSON object body")

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        # Every value asked for is there. Beyond that, a live body always carries what the
        # resource provider computes (vmId, resourceGuid, defaults), so extra properties do not
        # count against it; tags do: they are wholly the caller's, and this PUT replaces them.
        if live is None:
            return False
        desired = strip_read_only(self.body)
        live_tags = live.get("tags") or {}
        return body_subset(live, desired) and live_tags == (desired.get("tags") or {})

    def verify(self, live: Mapping[str, Any] | None) -> bool | None:
        # After the write, later jobs of the same batch may have added tags on top of this
        # body: what must be there is what it asked for.
        return live is not None and body_subset(live, strip_read_only(self.body))

    def apply(self, body: Mapping[str, Any] | None) -> JSON:
        return strip_read_only(self.body)

    def fields(self) -> set[str]:
        return _leaf_paths(strip_read_only(self.body))

    def paths(self) -> list[tuple[str, ...]]:
        # Tags are compared whole: this PUT replaces them, so a tag it leaves out must be gone.
        body = strip_read_only(self.body)
        return [("tags",), *leaf_paths({k: v for k, v in body.items() if k != "tags"})]

    def _payload(self) -> JSON:
        return {"body": copy.deepcopy(self.body)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PutIntent:
        return cls(_object(data, "body"), _api_version(data))


@register_intent
@dataclass(frozen=True)
class TagsIntent(BodyIntent):
    """Set and/or remove tag keys, leaving every other tag alone.

    Where the type has no ETag the writer sends it through the tags extension resource
    (``PATCH .../providers/Microsoft.Resources/tags/default`` with ``Merge`` / ``Delete``), which
    changes only the named keys, so there is no read-modify-write race to lose.
    """

    kind: ClassVar[str] = "tags"
    set: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not self.set and not self.remove:
            raise IntentError("a tags intent needs at least one tag to set or remove")
        for key, value in self.set.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise IntentError(f"tag {key!r} must be a non-empty name with a string value")
        both = {k.lower() for k in self.set} & {k.lower() for k in self.remove}
        if both:
            raise IntentError(f"tags both set and removed: {', '.join(sorted(both))}")
        object.__setattr__(self, "set", dict(self.set))
        object.__setattr__(self, "remove", tuple(self.remove))

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        if live is None:
            return False
        tags = live.get("tags") or {}
        if not isinstance(tags, Mapping):
            return False
        return all(tags.get(k) == v for k, v in self.set.items()) and not any(
            k in tags for k in self.remove
        )

    def apply(self, body: Mapping[str, Any] | None) -> JSON:
        out = dict(body or {})
        tags = dict(out.get("tags") or {})
        for key in self.remove:
            tags.pop(key, None)
        tags.update(self.set)
        out["tags"] = tags
        return out

    def fields(self) -> builtins.set[str]:
        return {f"tags.{k}" for k in (*self.set, *self.remove)}

    def paths(self) -> list[tuple[str, ...]]:
        return [("tags", k) for k in (*self.set, *self.remove)]

    def _payload(self) -> JSON:
        return {"set": dict(self.set), "remove": list(self.remove)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TagsIntent:
        set_ = data.get("set") or {}
        remove = data.get("remove") or []
        if not isinstance(set_, Mapping):
            raise IntentError("'set' must be an object of tag names to values")
        if not isinstance(remove, list) or not all(isinstance(k, str) for k in remove):
            raise IntentError("'remove' must be a list of tag names")
        return cls(dict(set_), tuple(remove), _api_version(data))


# Power actions and the power state each leaves the VM in (so a repeat is already satisfied).
_POWER_RESULT = {"start": "running", "poweroff": "stopped", "deallocate": "deallocated"}
# A deallocated VM is stopped too (and more): powering it off has nothing left to do, while
# ARM refuses the POST on it. The reverse does not hold: a stopped VM still holds its host.
_POWER_ALSO = {"stopped": frozenset({"deallocated"})}


def live_power_state(live: Mapping[str, Any] | None) -> str | None:
    """``running`` from ``properties.instanceView.statuses[PowerState/running]``, if read."""
    if live is None:
        return None
    view = (live.get("properties") or {}).get("instanceView")
    if not isinstance(view, Mapping):
        return None
    for status in view.get("statuses") or ():
        code = str(status.get("code", "")) if isinstance(status, Mapping) else ""
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


@register_intent
@dataclass(frozen=True)
class ActionIntent(Intent):
    """A POST action: ``start``, ``powerOff``, ``deallocate``, ``restart`` or any name."""

    kind: ClassVar[str] = "action"
    barrier: ClassVar[bool] = True
    name: str
    body: JSON | None = None
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise IntentError("an action needs a name without '/' (start, powerOff, …)")

    @property
    def power_result(self) -> str | None:
        return _POWER_RESULT.get(self.name.lower())

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        # Only actions whose effect is a visible state can be already done; a restart or an
        # unknown action always runs.
        wanted = self.power_result
        if wanted is None:
            return False
        state = live_power_state(live)
        return state == wanted or state in _POWER_ALSO.get(wanted, ())

    def rebase(self, live: Mapping[str, Any] | None) -> Request:
        return Request("POST", f"/{self.name}", copy.deepcopy(self.body))

    def verify(self, live: Mapping[str, Any] | None) -> bool | None:
        # A power action leaves a state to compare; any other action's proof is that its
        # operation succeeded.
        return self.satisfied_by(live) if self.power_result else True

    def fields(self) -> set[str]:
        return {"properties.instanceView.statuses"} if self.power_result else set()

    def _payload(self) -> JSON:
        out: JSON = {"name": self.name}
        if self.body is not None:
            out["body"] = copy.deepcopy(self.body)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionIntent:
        name = data.get("name")
        body = data.get("body")
        if not isinstance(name, str):
            raise IntentError("an action intent needs a 'name'")
        if body is not None and not isinstance(body, Mapping):
            raise IntentError("an action 'body' must be a JSON object")
        return cls(name, dict(body) if body is not None else None, _api_version(data))


@register_intent
@dataclass(frozen=True)
class DeleteIntent(Intent):
    kind: ClassVar[str] = "delete"
    barrier: ClassVar[bool] = True
    api_version: str | None = None

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        return live is None

    def verify(self, live: Mapping[str, Any] | None) -> bool | None:
        return live is None

    def rebase(self, live: Mapping[str, Any] | None) -> Request:
        return Request("DELETE")

    def fields(self) -> set[str]:
        return {"*"}

    def _payload(self) -> JSON:
        return {}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeleteIntent:
        return cls(_api_version(data))


@register_intent
@dataclass(frozen=True)
class ResizeIntent(BodyIntent):
    """A VM size change. ARM refuses it on a running VM when the size is not available in the
    VM's cluster; the declared way through is deallocate → resize → start (if it was running)."""

    kind: ClassVar[str] = "resize"
    size: str
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, str) or not self.size.strip():
            raise IntentError("a resize intent needs a VM size such as Standard_D4s_v5")

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        if live is None:
            return False
        profile = (live.get("properties") or {}).get("hardwareProfile") or {}
        return isinstance(profile, Mapping) and profile.get("vmSize") == self.size

    def apply(self, body: Mapping[str, Any] | None) -> JSON:
        result = merge_patch(body or {}, {"properties": {"hardwareProfile": {"vmSize": self.size}}})
        assert isinstance(result, dict)
        return result

    def fields(self) -> set[str]:
        return {"properties.hardwareProfile.vmSize"}

    def paths(self) -> list[tuple[str, ...]]:
        return [("properties", "hardwareProfile", "vmSize")]

    def prerequisite(self, needed: str) -> Sequence[str] | None:
        return ("deallocate",) if needed == "deallocate" else None

    def _payload(self) -> JSON:
        return {"size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResizeIntent:
        size = data.get("size")
        if not isinstance(size, str):
            raise IntentError("a resize intent needs a 'size'")
        return cls(size, _api_version(data))


def fold(intents: Sequence[BodyIntent], live: Mapping[str, Any] | None) -> JSON:
    """Apply body intents to ``live`` in submission order (later wins per field)."""
    body: JSON | None = dict(live) if live is not None else None
    for intent in intents:
        body = intent.apply(body)
    return body or {}
