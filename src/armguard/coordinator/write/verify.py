"""Step 5's judgement: does the read-back show each job's effect? No I/O.

A folded write's result must equal applying its jobs one by one in submission order. So each
job is judged against the body that order predicts (``fold`` of every written job on the body
the write was planned on), on the paths it sets: a job whose field a later job of the same
write overrode is judged by the later value, and never counts as missing because the later
job won. A barrier (action, delete) is judged by its own ``verify``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from armguard.coordinator.intents import BodyIntent, fold
from armguard.coordinator.write.items import Item

__all__ = ["check"]

JSON = dict[str, Any]
_MISSING = object()


def _at(body: Any, path: tuple[str, ...]) -> Any:
    node = body
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def check(
    items: Sequence[Item], planned_on: JSON | None, live: JSON | None
) -> dict[str, bool | None]:
    """Per job: True if ``live`` shows what submission order predicts, False if it contradicts
    it, None if the effect cannot be seen in a body."""
    intents = [i.effective for i in items if isinstance(i.effective, BodyIntent)]
    expected = fold(intents, planned_on) if intents else None
    out: dict[str, bool | None] = {}
    for item in items:
        intent = item.effective
        paths = intent.paths() if isinstance(intent, BodyIntent) else []
        if not paths or expected is None:
            out[item.job.id] = intent.verify(live)
            continue
        if live is None:
            out[item.job.id] = False
            continue
        out[item.job.id] = all(_at(live, p) == _at(expected, p) for p in paths)
    return out
