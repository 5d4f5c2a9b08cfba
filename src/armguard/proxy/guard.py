"""Blind PUTs: judging a full-body write sent without ``If-Match`` against what its caller read.

Many tools (Terraform, ``az`` generic updates, SDK apps) PUT a whole body built from a read
they made a while ago, without ``If-Match``. If someone changed the resource since, ARM
accepts the PUT and the change is silently gone. The proxy knows the version it last returned
to that caller (:mod:`armguard.proxy.seen`) and the live one (read under the write's turn), and
by ``--lost-updates``:

* ``warn`` sends it as it is and records a lost update;
* ``guard`` sends it with ``If-Match`` of the version the caller read, so ARM answers 412
  instead of overwriting (types without ETags: the proxy answers the 412 itself);
* ``merge`` rebases it three-way (:func:`armguard.coordinator.write.rebase.three_way`: base =
  what the caller read, yours = its body, theirs = live) and sends the merge with ``If-Match``
  of the live version; fields both changed get a 412 naming them.

A PUT that replaces nothing the caller did not see goes as it is (with ``If-Match`` of the
live version under ``guard``/``merge``, closing the window between the proxy's read and the
write). A caller that never read the resource through the proxy cannot be judged: its write is
recorded as ``unread`` and sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from armguard.coordinator.intents import MergeIntent, PutIntent, strip_read_only
from armguard.coordinator.write.rebase import FieldConflict, three_way
from armguard.proxy.seen import Seen

__all__ = ["Mode", "Verdict", "judge_blind_put"]


class Mode(StrEnum):
    OFF = "off"
    WARN = "warn"
    GUARD = "guard"
    MERGE = "merge"


@dataclass(frozen=True)
class Verdict:
    action: str
    """``send`` (as it is), ``lost`` (sent, and a lost update recorded), ``unread`` (sent; the
    caller never read it), ``guard`` (sent with ``if_match``), ``merge`` (``body`` sent with
    ``if_match``), or ``refuse`` (412 from the proxy, nothing sent)."""
    reason: str
    if_match: str | None = None
    body: dict[str, Any] | None = None
    conflicts: list[FieldConflict] = field(default_factory=list)


# Server-stamped at every depth: a sub-resource's ETag and state change whenever its parent is
# written, and clients leave them out of what they send, so they are never anyone's change.
_VOLATILE = frozenset({"etag", "provisioningState"})


def _normalized(doc: Any) -> Any:
    if isinstance(doc, Mapping):
        return {k: _normalized(v) for k, v in doc.items() if k not in _VOLATILE}
    if isinstance(doc, list):
        return [_normalized(v) for v in doc]
    return doc


def _fill_omitted(sent: Any, base: Any) -> Any:
    """``sent`` with what it left out of list elements taken from ``base``.

    Lists are leaves of the three-way merge, and a client re-sending a list it read (a VNet's
    subnets) serialises its elements without their read-only members. Counting that as a
    change to the list would make every blind PUT "change" every list it carries; a member
    left out of an element is provider-computed, as it is for the body's own properties.
    """
    if isinstance(sent, Mapping) and isinstance(base, Mapping):
        return {k: _fill_omitted(v, base[k]) if k in base else v for k, v in sent.items()}
    if isinstance(sent, list) and isinstance(base, list) and len(sent) == len(base):
        out = []
        for s, b in zip(sent, base, strict=True):
            if isinstance(s, Mapping) and isinstance(b, Mapping):
                filled = dict(_fill_omitted(s, b))
                for key, value in b.items():
                    filled.setdefault(key, value)
                out.append(filled)
            else:
                out.append(s)
        return out
    return sent


def _moved(seen: Seen, live: Mapping[str, Any], live_etag: str | None) -> bool | None:
    """Whether the live version differs from the one the caller read (None: cannot tell)."""
    if live_etag and seen.etag:
        return live_etag != seen.etag
    if seen.body is None:
        return None
    return bool(_normalized(strip_read_only(seen.body)) != _normalized(strip_read_only(live)))


def judge_blind_put(
    mode: Mode,
    seen: Seen | None,
    live: Mapping[str, Any] | None,
    live_etag: str | None,
    sent: Mapping[str, Any] | None,
) -> Verdict:
    """What to do with a PUT without ``If-Match``. ``live`` is None when the resource does
    not exist (the PUT creates it)."""
    if mode is Mode.OFF or live is None:
        return Verdict("send", "creates the resource" if live is None else "off")
    if seen is None:
        return Verdict("unread", "the caller never read this resource through the proxy")
    moved = _moved(seen, live, live_etag)
    if not moved:
        if mode is Mode.WARN or not live_etag:
            return Verdict("send", "the caller read the live version")
        return Verdict("guard", "the caller read the live version", if_match=live_etag)
    if mode is Mode.WARN:
        return Verdict("lost", "replaces a version its caller never read")
    if mode is Mode.GUARD:
        if live_etag and seen.etag:
            return Verdict("guard", "replaces a version its caller never read", if_match=seen.etag)
        return Verdict("refuse", "replaces a version its caller never read")
    # merge
    if seen.body is None or sent is None:
        return Verdict("refuse", "no body of the version the caller read is kept to merge on")
    base = _normalized(seen.body)
    ours = _fill_omitted(_normalized(dict(sent)), base)
    rebase = three_way(base, PutIntent(ours), _normalized(live))
    if rebase.conflicts:
        return Verdict("refuse", "fields changed by both", conflicts=rebase.conflicts)
    merged = strip_read_only(MergeIntent(rebase.patch).apply(live)) if rebase.yours else None
    body = merged if merged is not None else strip_read_only(live)
    return Verdict("merge", "rebased on the live version", if_match=live_etag, body=body)
