"""The seeded load: which writer wants what, on which resource, in what order.

Every intent carries its index in the load as the value it writes (``hot=417``), so the final
state says by itself which intent a field came from: the checker needs no hidden channel.
Tag keys starting with ``outside`` belong to the writers outside armguard and are never set
here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from armguard.chaos.world import SIZES, Resource, World
from armguard.coordinator.model import StalePolicy

__all__ = ["Planned", "plan_load"]

WRITERS = ("tag-normalizer", "terraform-pipeline", "queue-worker", "policy-remediation", "ops")
POWER = ("start", "powerOff", "deallocate")


@dataclass(frozen=True)
class Planned:
    """One intent of the load. ``baseline``: submit it with a body read from ARM, ``old``
    (one read earlier in the run, so surely stale) or ``fresh`` (read just before)."""

    index: int
    resource: Resource
    intent: dict[str, Any]
    writer: str
    baseline: str | None = None
    on_stale: StalePolicy = StalePolicy.REBASE
    follows: tuple[int, ...] = field(default_factory=tuple)
    """Indexes submitted in the same call just before it (a delete before its re-create)."""


def _tags(n: int, key: str) -> dict[str, Any]:
    return {"kind": "tags", "set": {key: str(n)}}


def _one(rng: random.Random, n: int, res: Resource) -> list[Planned]:
    writer = rng.choice(WRITERS)
    roll = rng.random()
    if res.kind == "vm":
        if roll < 0.2:
            size = rng.choice(SIZES)
            return [Planned(n, res, {"kind": "resize", "size": size}, writer)]
        if roll < 0.5:
            return [Planned(n, res, {"kind": "action", "name": rng.choice(POWER)}, writer)]
    if res.kind == "nsg" and roll < 0.15:
        # A delete and its re-create are submitted together: nothing of the load can land
        # between them and find the resource gone.
        body = {**res.body, "tags": {"env": "chaos", "gen": str(n + 1)}}
        return [
            Planned(n, res, {"kind": "delete"}, writer),
            Planned(n + 1, res, {"kind": "put", "body": body}, writer, follows=(n,)),
        ]
    if res.kind in ("storage", "nsg") and roll < 0.25:
        body = {**res.body, "tags": {"env": "chaos", "p": str(n)}}
        return [Planned(n, res, {"kind": "put", "body": body}, writer)]
    roll = rng.random()
    if roll < 0.4:
        return [Planned(n, res, _tags(n, "hot"), writer)]
    if roll < 0.55:
        return [Planned(n, res, _tags(n, f"t{n % 4}"), writer)]
    if roll < 0.7:
        return [Planned(n, res, {"kind": "merge", "patch": {"tags": {"m": str(n)}}}, writer)]
    policy = rng.choice(list(StalePolicy))
    age = "old" if rng.random() < 0.5 else "fresh"
    return [Planned(n, res, _tags(n, "b"), writer, baseline=age, on_stale=policy)]


def plan_load(world: World, intents: int, seed: int, hot: int = 3) -> list[Planned]:
    """``intents`` intents over the world's resources, a few hot ones taking most."""
    rng = random.Random(seed)
    resources = list(world.resources)
    hot_set = rng.sample(resources, min(hot, len(resources)))
    out: list[Planned] = []
    while len(out) < intents:
        res = rng.choice(hot_set) if rng.random() < 0.3 else rng.choice(resources)
        out += _one(rng, len(out), res)
    return out
