"""Three-way rebase: a stale intent's own changes, replayed on the live body.

A writer read a *baseline* body, built an intent on it, and by the time armguard writes it
someone else has moved the resource on. Resending the intent's body would undo changes the
writer never saw (seed 000's central failure). Instead:

* **yours** = what the intent changes relative to the baseline (``intent.apply(baseline)``
  against ``baseline``), leaf by leaf;
* **theirs** = what changed between the baseline and the live body;
* a path both changed, to different values, is a **conflict**: never overwritten, it ends the
  job by its stale policy with both values;
* otherwise yours are applied to the live body as an RFC 7386 merge patch, so theirs survive.

Lists are leaves (a merge patch replaces them whole), as are empty objects. Read-only fields
(``etag``, ``provisioningState``…) are left out of both sides. A put's own changes are the
values it sets and the tags it drops: a property it leaves out may be one the provider
computes, so it is not counted as removed. This module does no I/O: the
proxy reuses it for blind PUTs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from armguard.coordinator.intents import (
    BodyIntent,
    MergeIntent,
    PutIntent,
    TagsIntent,
    strip_read_only,
)

__all__ = ["ABSENT", "FieldConflict", "Rebase", "delta_intent", "diff_bodies", "three_way"]

JSON = dict[str, Any]
Path = tuple[str, ...]


class _Absent:
    """A field that is not in the body (distinct from JSON ``null``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldConflict:
    """One path that both the intent and someone else changed since the baseline."""

    path: Path
    baseline: Any
    yours: Any
    theirs: Any

    def to_json(self) -> JSON:
        def show(value: Any) -> Any:
            return None if value is ABSENT else value

        return {
            "path": ".".join(self.path),
            "baseline": show(self.baseline),
            "yours": show(self.yours),
            "theirs": show(self.theirs),
            "absent": [
                side
                for side, value in (
                    ("baseline", self.baseline),
                    ("yours", self.yours),
                    ("theirs", self.theirs),
                )
                if value is ABSENT
            ],
        }


@dataclass(frozen=True)
class Rebase:
    yours: dict[Path, Any]
    """The intent's own changes relative to its baseline (``ABSENT``: removed)."""
    conflicts: list[FieldConflict]

    @property
    def patch(self) -> JSON:
        """Yours as an RFC 7386 merge patch (``None`` removes)."""
        out: JSON = {}
        for path, value in self.yours.items():
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = None if value is ABSENT else value
        return out


def _is_object(value: Any) -> bool:
    return isinstance(value, Mapping)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def diff_bodies(base: Any, new: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Leaf paths where ``new`` differs from ``base``, with ``new``'s value there. An object on
    one side and nothing on the other is compared key by key, so two writers adding different
    keys to a missing ``tags`` do not collide."""
    if (_is_object(base) or _is_object(new)) and not (
        (base is not ABSENT and not _is_object(base)) or (new is not ABSENT and not _is_object(new))
    ):
        b: Mapping[str, Any] = base if _is_object(base) else {}
        n: Mapping[str, Any] = new if _is_object(new) else {}
        out: dict[Path, Any] = {}
        for key in dict.fromkeys([*b, *n]):
            out |= diff_bodies(b.get(key, ABSENT), n.get(key, ABSENT), (*prefix, str(key)))
        if not out and prefix and not b and not n and (base is ABSENT) != (new is ABSENT):
            return {prefix: new}  # an empty object appeared or vanished
        return out
    if base is ABSENT and new is ABSENT:
        return {}
    if _same(base, new):
        return {}
    return {prefix: new}


def _value_at(body: Any, path: Path) -> Any:
    node = body
    for key in path:
        if not _is_object(node) or key not in node:
            return ABSENT
        node = node[key]
    return node


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def three_way(baseline: Mapping[str, Any], intent: BodyIntent, live: Mapping[str, Any]) -> Rebase:
    """The intent's changes relative to ``baseline`` and where they collide with the changes
    someone else made between ``baseline`` and ``live``."""
    base = strip_read_only(baseline)
    theirs_body = strip_read_only(live)
    yours = diff_bodies(base, strip_read_only(intent.apply(baseline)))
    if isinstance(intent, PutIntent):
        # As a put is judged satisfied: by the values it sets and its exact tags. A property
        # it leaves out may be one the provider computes (defaults, rules, GUIDs), so leaving
        # it out is not a change of its own, and the live value stays.
        yours = {p: v for p, v in yours.items() if v is not ABSENT or p[0] == "tags"}
    theirs = diff_bodies(base, theirs_body)
    conflicts: list[FieldConflict] = []
    for path, value in yours.items():
        for other in theirs:
            if not _overlaps(path, other):
                continue
            shown = path if len(path) <= len(other) else other
            if path == other and _same(value, theirs[other]):
                continue  # both made the same change: nothing to decide
            conflicts.append(
                FieldConflict(
                    shown,
                    _value_at(base, shown),
                    _value_at(_patched(base, yours), shown),
                    _value_at(theirs_body, shown),
                )
            )
            break
    return Rebase(yours, conflicts)


def _patched(base: JSON, changes: Mapping[Path, Any]) -> JSON:
    out: JSON = dict(base)
    for path, value in changes.items():
        node = out
        for key in path[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        if value is ABSENT:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return out


def delta_intent(rebase: Rebase, api_version: str | None) -> BodyIntent | None:
    """The intent that applies only the rebase's own changes: tag keys as a tags intent (so a
    type without ETags still goes through the tags API), anything else as a merge patch.
    None when the intent changed nothing relative to its baseline."""
    if not rebase.yours:
        return None
    if all(len(p) == 2 and p[0] == "tags" for p in rebase.yours):
        set_ = {p[1]: v for p, v in rebase.yours.items() if v is not ABSENT and isinstance(v, str)}
        remove = tuple(p[1] for p, v in rebase.yours.items() if v is ABSENT)
        if len(set_) + len(remove) == len(rebase.yours):
            return TagsIntent(set_, remove, api_version)
    return MergeIntent(rebase.patch, api_version)
