"""A batch's jobs as the write loop carries them, and the small facts it reads off bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.coordinator.intents import BodyIntent, Intent
from armguard.coordinator.model import Job, JobSpec

__all__ = ["Item", "baseline_etag_of", "etag_of", "norm_etag", "provisioning_state", "segments"]


@dataclass
class Item:
    job: Job
    intent: Intent
    """The job's own intent, as submitted."""
    effective: Intent = field(init=False)
    """What the job writes now: its intent, or after a three-way rebase only its own changes."""
    rebased_on: str | None = None
    baseline_honoured: bool = False
    """Its baseline was current when a write carrying it was accepted: what moved the ETag
    since is that write or a later writer, never a reason to call this job stale."""
    wrote: bool = False
    """A write carrying it may have taken effect (ARM accepted it, or gave no definite
    refusal): if its effect is live later, armguard put it there, so it is ``applied``."""

    def __post_init__(self) -> None:
        self.effective = self.intent


def norm_etag(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if text[:2].upper() == "W/":
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text


def provisioning_state(body: Mapping[str, Any]) -> str | None:
    props = body.get("properties")
    state = props.get("provisioningState") if isinstance(props, Mapping) else None
    return state if isinstance(state, str) else None


def etag_of(body: Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    value = body.get("etag")
    return value if isinstance(value, str) else None


def baseline_etag_of(spec: JobSpec) -> str | None:
    """The ETag a job was built on: given, or the one in the baseline body it carries."""
    if spec.baseline_etag is not None:
        return spec.baseline_etag
    return etag_of(spec.baseline) if spec.baseline is not None else None


def segments(items: Sequence[Item]) -> list[list[Item]]:
    """Runs of foldable intents, with every barrier (action, delete) alone and in order. The
    store already claims barriers alone; this keeps the writer right whatever it is handed."""
    out: list[list[Item]] = []
    for item in items:
        if _alone(item) or not out or _alone(out[-1][-1]):
            out.append([item])
        else:
            out[-1].append(item)
    return out


def _alone(item: Item) -> bool:
    # Only body intents fold into a write; anything else would be left out of it.
    return item.intent.barrier or not isinstance(item.intent, BodyIntent)
