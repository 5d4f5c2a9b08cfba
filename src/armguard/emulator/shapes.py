"""Request-body shapes: what ARM's front door and the resource providers refuse before any
semantics run.

A body that deserialises as JSON can still be the wrong shape (``"properties": "x"``,
``"tags": [1]``, a subnet without a name). Real ARM answers those with a 400 while
deserialising; the emulator must too, because every later step (holds, in-use checks, the
tags API) reads the body assuming its shape. A small declarative language says, per type,
which fields must be objects, arrays or strings; unknown fields stay free, as ARM stores
properties it does not model.

``null`` counts as absent for object fields (a PATCH uses it to remove a field) but not as an
array element. Arrays of named children (subnets, ipConfigurations) need unique, valid names.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId

__all__ = [
    "ANY",
    "BOOL",
    "ENVELOPE",
    "MAX_JSON_DEPTH",
    "REF",
    "STRING",
    "Arr",
    "Named",
    "Obj",
    "Scalar",
    "Shape",
    "Tags",
    "check_depth",
    "check_shape",
    "check_tags",
    "invalid_content",
    "parse_json",
]

MAX_JSON_DEPTH = 64
"""Json.NET's default ``MaxDepth``, which ARM's deserialiser uses; deeper bodies are refused
before anything walks them (every walk here and in the core is recursive)."""

MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
# ARM's generic resource-name rule, the same one resource IDs follow.
_NAME_RE = re.compile(r"^[^<>%&:\\?/\x00-\x1f]{1,260}$")
_TAG_NAME_RESERVED = re.compile(r"[<>%&\\?/\x00-\x1f]")


def invalid_content(message: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: {message}",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _wrong(path: str, wanted: str, value: Any) -> ArmError:
    return invalid_content(f"'{path}' must be {wanted}, not {_kind(value)}.")


@dataclass(frozen=True)
class Scalar:
    kind: str  # string | boolean | number

    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
        }[self.kind]
        if not ok:
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise _wrong(path, f"{article} {self.kind}", value)


@dataclass(frozen=True)
class _Any:
    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        return


@dataclass(frozen=True)
class Obj:
    """An object; the listed fields have shapes. Any other field is free, unless the object
    is ``closed``: then only the listed fields and ``members`` may appear, as a resource
    provider that deserialises into a typed model (compute) refuses unknown members. The
    ``closed`` value is the model's type name that the refusal quotes."""

    fields: Mapping[str, Shape] = field(default_factory=dict)
    closed: str | None = None
    members: tuple[str, ...] = ()
    _lower: Mapping[str, Shape] = field(init=False, repr=False, compare=False)
    _known: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # ARM reads JSON property names case-insensitively.
        object.__setattr__(self, "_lower", {k.lower(): s for k, s in self.fields.items()})
        object.__setattr__(
            self, "_known", frozenset([*self._lower, *(m.lower() for m in self.members)])
        )

    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        if not isinstance(value, Mapping):
            raise _wrong(path, "an object", value)
        if self.closed is not None:
            for key in value:
                if str(key).lower() not in self._known:
                    where = _join(path, str(key))
                    raise invalid_content(
                        f"'Could not find member '{key}' on object of type '{self.closed}'. "
                        f"Path '{where}'.'."
                    )
        if not self._lower:
            return
        for key, item in value.items():
            shape = self._lower.get(str(key).lower())
            if shape is not None and item is not None:
                shape.check(item, _join(path, str(key)), rid)


@dataclass(frozen=True)
class Arr:
    item: Shape

    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        if not isinstance(value, list):
            raise _wrong(path, "an array", value)
        for n, item in enumerate(value):
            self.item.check(item, f"{path}[{n}]", rid)


@dataclass(frozen=True)
class Named:
    """An array of named child resources (a VNet's subnets, a NIC's ipConfigurations): each
    an object with a valid ``name``, no two names equal ignoring case (the children's IDs
    would collide)."""

    item: Obj
    what: str

    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        Arr(self.item).check(value, path, rid)
        seen: dict[str, str] = {}
        for n, item in enumerate(value):
            name = item.get("name")
            if not isinstance(name, str):
                raise _wrong(f"{path}[{n}].name", "a string", name)
            if not _NAME_RE.match(name):
                raise ArmError(
                    400,
                    "InvalidResourceName",
                    f"The {self.what} name '{name}' at '{path}[{n}].name' is not valid: names "
                    "are 1-260 characters and cannot contain '<', '>', '%', '&', ':', '\\', "
                    "'?', '/' or control characters.",
                )
            other = seen.get(name.lower())
            if other is not None:
                raise ArmError(
                    400,
                    "DuplicateResourceName",
                    f"Resource {rid.format()} has two child resources with the same name "
                    f"({name}); '{other}' and '{name}' differ only in case, and ARM compares "
                    "names ignoring case."
                    if other != name
                    else f"Resource {rid.format()} has two child resources with the same name "
                    f"({name}).",
                )
            seen[name.lower()] = name


@dataclass(frozen=True)
class Tags:
    def check(self, value: Any, path: str, rid: ResourceId) -> None:
        check_tags(value, path)


Shape = Scalar | _Any | Obj | Arr | Named | Tags

ANY = _Any()
STRING = Scalar("string")
BOOL = Scalar("boolean")
NUMBER = Scalar("number")
REF = Obj({"id": STRING})
"""A ``{"id": ...}`` reference to another resource."""

ENVELOPE: dict[str, Shape] = {
    "location": STRING,
    "tags": Tags(),
    "properties": Obj(),
    "sku": Obj({"name": STRING, "tier": STRING}),
    "kind": STRING,
    "zones": Arr(STRING),
    "identity": Obj({"type": STRING}),
    "plan": Obj(),
    "extendedLocation": Obj({"name": STRING, "type": STRING}),
    "managedBy": STRING,
}
"""The fields every tracked resource shares (ARM's resource envelope)."""


def _join(path: str, key: str) -> str:
    return key if not path else f"{path}.{key}"


def check_shape(body: Any, shape: Shape, rid: ResourceId) -> None:
    """Raise the 400 ArmError for the first part of ``body`` that does not fit ``shape``."""
    shape.check(body, "", rid)


def check_tags(value: Any, path: str = "tags") -> dict[str, str]:
    """A tag set: an object of string values, names and values within ARM's limits."""
    if not isinstance(value, Mapping):
        raise _wrong(path, "an object of tag names and string values", value)
    for name, tag_value in value.items():
        if not isinstance(tag_value, str):
            raise _wrong(f"{path}.{name}", "a string", tag_value)
    bad = [str(n) for n in value if _TAG_NAME_RESERVED.search(str(n))]
    if bad:
        raise ArmError(
            400,
            "InvalidTagNameCharacters",
            f"The tag names '{','.join(bad)}' have reserved characters '<,>,%,&,\\,?,/' or "
            "control characters.",
        )
    for name, tag_value in value.items():
        if len(str(name)) > MAX_TAG_NAME:
            raise ArmError(
                400,
                "InvalidTagNameLength",
                f"The tag name '{str(name)[:64]}...' exceeds the maximum length of "
                f"{MAX_TAG_NAME} characters.",
            )
        if len(tag_value) > MAX_TAG_VALUE:
            raise ArmError(
                400,
                "InvalidTagValueLength",
                f"The value of tag '{name}' exceeds the maximum length of {MAX_TAG_VALUE} "
                "characters.",
            )
    return {str(k): v for k, v in value.items()}


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (objects and arrays), iteratively."""
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise invalid_content(
                f"the JSON nests objects and arrays deeper than the maximum depth of {limit}."
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def parse_json(text: str) -> Any:
    """Strict JSON: no ``NaN``/``Infinity`` (Python reads them, JSON has none), no number
    too large to represent, nothing nested so deep that reading it exhausts the stack. Each
    becomes a 400 ``InvalidRequestContent`` instead of a value that breaks a later step."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise invalid_content(
            f"the JSON nests objects and arrays deeper than the maximum depth of {MAX_JSON_DEPTH}."
        ) from None
    except ValueError as err:
        # JSONDecodeError, and integers with more digits than Python converts.
        raise invalid_content(f"'{err}'.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value
