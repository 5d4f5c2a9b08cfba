"""Step 2 of a round: what each job needs on the live body, in submission order. No I/O.

For each job, in order:

* **stale?** — its baseline ETag is not the live one (and no write of ours moved it). If the
  live body already has its effect (a lease that took it before wrote it, then died), it is
  done with no write, whatever its policy. Otherwise its policy decides: ``drop``, ``fail``,
  or ``rebase``. A rebase is three-way (``rebase.py``): the
  job's own changes relative to the baseline *body* it carries are replayed on the live body;
  a field someone else changed too is a conflict and fails the job with both values. Without
  a baseline body nobody can tell which fields moved, so a body intent is not rebased: it fails
  ``stale_version`` and says how to submit one that can be.
* **satisfied?** — its effect is on the live body with the earlier jobs folded in. If no
  earlier job of this write touches its fields it completes with no write (``applied`` if an
  earlier write of this batch put it there); otherwise it rides that write.
* otherwise it **folds** into the write, later jobs winning per field. Only a full put creates:
  a patch on a resource that does not exist (nor is created earlier in the write) fails
  ``not_found``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from armguard.arm.classify import ConflictKind
from armguard.coordinator.intents import (
    BodyIntent,
    DeleteIntent,
    Intent,
    PutIntent,
    fold,
    strip_read_only,
)
from armguard.coordinator.model import StalePolicy
from armguard.coordinator.write.items import Item, baseline_etag_of, etag_of, norm_etag
from armguard.coordinator.write.rebase import delta_intent, diff_bodies, three_way

__all__ = ["Siblings", "Verdict", "decide"]

JSON = dict[str, Any]
Siblings = Callable[[Item], Sequence[BodyIntent]]
Action = Literal["write", "satisfied", "applied", "drop", "fail"]


@dataclass(frozen=True)
class Verdict:
    item: Item
    action: Action
    kind: ConflictKind | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    rebased: dict[str, Any] | None = None
    """Set when this round rebased the job: the ``rebased`` event's detail."""
    rides: str | None = None
    """For a write that only an earlier job's change satisfies: that job's ID."""


def _baseline_etag(item: Item) -> str | None:
    return baseline_etag_of(item.job.spec)


def _stale(item: Item, live: Mapping[str, Any] | None, own_etags: Collection[str]) -> bool:
    baseline = norm_etag(_baseline_etag(item))
    body = item.job.spec.baseline
    if baseline is None and body is not None and not item.baseline_honoured:
        # A type without ETags: the body it read is the version, compared field by field.
        return live is None or bool(diff_bodies(strip_read_only(body), strip_read_only(live)))
    live_etag = norm_etag(etag_of(live))
    return (
        baseline is not None
        and not item.baseline_honoured
        and baseline != live_etag
        and live_etag not in own_etags
    )


def _on_stale(item: Item, live: JSON | None, siblings: Siblings) -> Verdict | dict[str, Any] | None:
    """The verdict for a stale job; or, when it was rebased and goes on to be decided, the
    ``rebased`` event's detail (None if it was already rebased on this ETag)."""
    spec = item.job.spec
    shown = _baseline_etag(item) or "(the body it read; the type has no ETag)"
    detail: dict[str, Any] = {"baseline": shown, "policy": str(spec.on_stale)}
    if spec.on_stale is StalePolicy.DROP:
        return Verdict(
            item,
            "drop",
            ConflictKind.STALE_VERSION,
            f"the live resource moved past the baseline ETag {shown}",
            detail,
        )
    if spec.on_stale is StalePolicy.FAIL:
        return Verdict(
            item,
            "fail",
            ConflictKind.STALE_VERSION,
            f"the live ETag {etag_of(live)} is not the baseline {shown}; regenerate the change "
            "from the live state",
            detail,
        )
    intent = item.intent
    if live is None and not isinstance(intent, PutIntent | DeleteIntent):
        # Read with an ETag, gone now: someone deleted it. Rebasing a patch on nothing would
        # create a resource from a fragment of a body.
        return Verdict(
            item,
            "fail",
            ConflictKind.NOT_FOUND,
            f"the resource was deleted after the baseline ETag {shown} was read; a "
            f"{intent.kind} intent does not recreate it (submit a full put to do that)",
        )
    if isinstance(intent, DeleteIntent) and live is not None:
        return Verdict(
            item,
            "fail",
            ConflictKind.STALE_VERSION,
            f"the resource changed after the baseline ETag {shown} was read (live: "
            f"{etag_of(live)}); deleting it would discard changes this writer never saw",
            detail,
        )
    if not isinstance(intent, BodyIntent) or live is None:
        # An action has no body to overwrite; a put on a deleted resource recreates it.
        return _rebased(item, live, detail, intent)
    baseline = spec.baseline
    if baseline is None:
        return Verdict(
            item,
            "fail",
            ConflictKind.STALE_VERSION,
            f"the live ETag {etag_of(live)} moved past the baseline {shown} and the job carries "
            "no baseline body, so armguard cannot tell which fields someone else changed; "
            "submit it with the body it was based on (--baseline FILE or --read-baseline) to "
            "have it rebased, or with --on-stale drop",
            detail,
        )
    # The writer's own earlier jobs built on the same read are changes it knew of: they are
    # part of its base, not someone else's (a queue worker's two messages setting one tag).
    known = siblings(item)
    base = fold(known, baseline) if known else baseline
    rebase = three_way(base, intent, live)
    if rebase.conflicts:
        conflicts = [c.to_json() for c in rebase.conflicts]
        listed = "; ".join(
            f"{c['path']}: yours {c['yours']!r}, theirs {c['theirs']!r}" for c in conflicts[:5]
        )
        return Verdict(
            item,
            "fail",
            ConflictKind.STALE_VERSION,
            f"someone else changed what this intent changes since its baseline {shown} "
            f"({listed}); armguard does not overwrite changes the writer never saw",
            {**detail, "conflicts": conflicts},
        )
    delta = delta_intent(rebase, intent.api_version)
    if delta is None:
        return Verdict(
            item,
            "satisfied",
            reason=f"the intent changes nothing relative to its baseline {shown}",
            detail={**detail, "unchanged_from_baseline": True},
        )
    return _rebased(item, live, {**detail, "changes": sorted(delta.fields())}, delta)


def _rebased(
    item: Item, live: JSON | None, detail: dict[str, Any], effective: Intent
) -> dict[str, Any] | None:
    item.effective = effective
    live_etag = norm_etag(etag_of(live))
    if item.rebased_on == live_etag:
        return None
    item.rebased_on = live_etag
    return detail


def _there_already(
    item: Item, live: JSON | None, *, folded: bool, replaced: bool, touched: set[str]
) -> bool:
    """A stale job whose policy would drop or fail it, whose effect the live body already
    shows, and that no earlier job of this write changes."""
    if item.job.spec.on_stale is StalePolicy.REBASE or not item.intent.satisfied_by(live):
        return False
    return not folded or (not replaced and not (item.intent.fields() & touched))


def decide(
    items: Sequence[Item],
    live: JSON | None,
    own_etags: Collection[str],
    siblings: Siblings = lambda item: (),
) -> list[Verdict]:
    """One verdict per job, in order; only ``write`` verdicts take part in the write.
    ``siblings`` gives, oldest first, the body intents of a job's writer that were built on
    the same baseline and already ended (the store's history); only a stale rebase asks."""
    state: JSON | None = live
    folded = False
    touched: set[str] = set()
    replaced = False
    first_writer: str | None = None
    out: list[Verdict] = []
    for item in items:
        rebased: dict[str, Any] | None = None
        if _stale(item, live, own_etags):
            if _there_already(item, live, folded=folded, replaced=replaced, touched=touched):
                # Nothing to drop or regenerate: the body already holds what the job asks,
                # most often because a lease that took this job before wrote it and died.
                out.append(
                    Verdict(
                        item,
                        "applied" if item.wrote else "satisfied",
                        reason="its baseline moved, but the live resource already has its effect",
                        detail={
                            "baseline": _baseline_etag(item),
                            "policy": str(item.job.spec.on_stale),
                        },
                    )
                )
                continue
            verdict = _on_stale(item, live, siblings)
            if isinstance(verdict, Verdict):
                out.append(verdict)
                continue
            rebased = verdict
        intent = item.effective
        if state is None and isinstance(intent, BodyIntent) and not isinstance(intent, PutIntent):
            # A typo in an ID must not create a resource holding only tags: a patch needs
            # something to patch, and only a full put creates.
            out.append(
                Verdict(
                    item,
                    "fail",
                    ConflictKind.NOT_FOUND,
                    f"the resource does not exist; a {item.intent.kind} intent changes a "
                    "resource and never creates one (submit a full put to create it)",
                )
            )
            continue
        if intent.satisfied_by(state):
            # Already there on the live resource, and no earlier job of this write changes
            # those fields: nothing to write for it, whatever its neighbours write. A full PUT
            # earlier in the write removes whatever it leaves out, so it touches everything.
            if not folded or (
                not replaced and intent.satisfied_by(live) and not (intent.fields() & touched)
            ):
                out.append(Verdict(item, "applied" if item.wrote else "satisfied", rebased=rebased))
                continue
            # Satisfied only by an earlier job's pending change: it rides that write and
            # shares its outcome, so a blocked or failed write never reports it done.
            out.append(Verdict(item, "write", rebased=rebased, rides=first_writer))
        else:
            out.append(Verdict(item, "write", rebased=rebased))
        if first_writer is None:
            first_writer = item.job.id
        if isinstance(intent, BodyIntent):
            state = intent.apply(state)
            folded = True
            touched |= intent.fields()
            replaced = replaced or isinstance(intent, PutIntent)
    return out
