"""Memoised derivations of resource IDs: the lower-cased type and the formatted text.

``ResourceId.type`` and ``ResourceId.format()`` rebuild their text on every call, and the
emulator asks for them many times per request (provider lookup, lock and child scans, every
Activity Log event). Both memos are bounded by starting afresh when they fill.
"""

from __future__ import annotations

from armguard.arm.ids import ResourceId

__all__ = ["id_text", "type_key"]

_MAX_ENTRIES = 65_536
_types: dict[str, str] = {}
_texts: dict[int, tuple[ResourceId, str]] = {}


def type_key(rid: ResourceId) -> str:
    """``rid.type.lower()``: the key is the lower-cased canonical ID, so it determines this."""
    found = _types.get(rid.key)
    if found is None:
        if len(_types) >= _MAX_ENTRIES:
            _types.clear()
        found = _types[rid.key] = rid.type.lower()
    return found


def id_text(rid: ResourceId) -> str:
    """``rid.format()``. IDs compare equal across casings, so the memo is by object, not by
    value; the entry holds the ID itself, so its ``id()`` cannot be reused while remembered.
    Routes are cached, so a request for a known path hands over the same ID object."""
    entry = _texts.get(id(rid))
    if entry is not None and entry[0] is rid:
        return entry[1]
    text = rid.format()
    if len(_texts) >= _MAX_ENTRIES:
        _texts.clear()
    _texts[id(rid)] = (rid, text)
    return text
