"""How large one Activity Log event may grow: clipped values and an estimate of its bytes.

A refused request is logged with its URI, headers and error body, and all three are the
caller's to choose: a 3,000-character name, a 6,000-character header, an error quoting a
5 MB value. The log keeps many thousand events, so each keeps at most :data:`MAX_CHARS`
characters of any one value, and the log's byte budget is charged :func:`event_cost` per
event. An error body stays valid JSON after clipping (diagnostics parse
``properties.statusMessage``): its strings are clipped one by one, never the serialised text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["EVENT_OVERHEAD", "MAX_CHARS", "MAX_ERROR_CHARS", "clip", "clip_error", "event_cost"]

MAX_CHARS = 2_048
"""Characters kept of one value (a URI, an ID, a header, a claim, a string in an error body).
ARM's URIs and IDs are far shorter; a longer value is a malformed request's."""
MAX_ERROR_CHARS = 16_384
"""Characters kept of an error body's JSON text once its strings are clipped; past it only
the error's code and message are kept."""
_MAX_ITEMS = 50
"""Items kept of a list in an error body (``details``)."""
_MAX_DEPTH = 8
"""Levels kept of an error body; deeper values are replaced by a note."""

EVENT_OVERHEAD = 600
"""Bytes an event takes besides the characters of its values: the tuples holding it, its
numbers and the strings' headers. Measured with tracemalloc on CPython 3.11: a write event
whose values are ~660 characters, none shared, takes ~1,250 bytes; the estimate says ~1,260."""


def clip(value: str) -> str:
    """``value``, or its first :data:`MAX_CHARS` characters and how many were cut."""
    if len(value) <= MAX_CHARS:
        return value
    return f"{value[:MAX_CHARS]}...[{len(value) - MAX_CHARS} more characters]"


def _clip_json(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clip(value)
    if depth >= _MAX_DEPTH and isinstance(value, Mapping | list):
        return "...[nested too deep]"
    if isinstance(value, Mapping):
        return {clip(str(k)): _clip_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        kept = [_clip_json(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            kept.append(f"...[{len(value) - _MAX_ITEMS} more items]")
        return kept
    return value


def clip_error(error: Mapping[str, Any]) -> str:
    """An error body's JSON text with every string clipped, at most ~:data:`MAX_ERROR_CHARS`
    characters; past that, only ``error.code`` and ``error.message`` (and ``status``)."""
    text = json.dumps(_clip_json(error, 0), separators=(",", ":"))
    if len(text) <= MAX_ERROR_CHARS:
        return text
    inner = error.get("error")
    inner = inner if isinstance(inner, Mapping) else {}
    short: dict[str, Any] = {
        "error": {
            "code": clip(str(inner.get("code", ""))),
            "message": clip(str(inner.get("message", ""))),
            "details": [f"...[{len(text)} characters of error body not kept]"],
        }
    }
    if "status" in error:
        short = {"status": clip(str(error["status"])), **short}
    return json.dumps(short, separators=(",", ":"))


def event_cost(values: tuple[Any, ...]) -> int:
    """Estimated bytes of an event: :data:`EVENT_OVERHEAD` plus one byte per character of its
    string values (ASCII; a non-ASCII value costs more, which the estimate leaves out) and of
    its claims. Strings shared between events are counted in each, so it errs high."""
    total = EVENT_OVERHEAD
    for value in values:
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, tuple):
            for pair in value:
                total += len(pair[0]) + len(pair[1]) + 64
    return total
