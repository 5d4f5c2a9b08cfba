"""The nemesis: a seeded schedule of faults, and what each one does.

Each run draws its schedule from the seed: every nemesis the store allows appears at least
once (in a shuffled order), then random ones fill the run. Faults in the emulator go through
its admin API (``/_armguard/faults``), each with a window so it ends by itself even if this
process does not get to remove it; every error injected says ``Chaos:`` in its message, so the
checker can tell an injected 5xx from one the emulator made.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["EMULATOR_FAULTS", "NEMESES", "Fault", "fault_rule", "nemeses_for", "schedule"]

WORKER_NEMESES = ("kill9", "pause")
EMULATOR_FAULTS = ("throttle", "error500", "stuck", "latency", "preempt")
OUTSIDE = ("outside",)
STORE_NEMESES = {"sqlite": ("sqlite_writer",), "postgres": ("pg_restart", "pg_drop")}
NEMESES = (*WORKER_NEMESES, *EMULATOR_FAULTS, *OUTSIDE, "sqlite_writer", "pg_restart", "pg_drop")


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load starts
    kind: str
    duration: float  # how long it lasts (a pause, a fault window)
    pick: int  # which worker / resource, drawn from the seed


def nemeses_for(store: str, only: tuple[str, ...] | None = None) -> tuple[str, ...]:
    kinds = (*WORKER_NEMESES, *EMULATOR_FAULTS, *OUTSIDE, *STORE_NEMESES[store])
    return tuple(k for k in kinds if only is None or k in only)


def schedule(
    seed: int, store: str, span: float, every: float, only: tuple[str, ...] | None = None
) -> list[Fault]:
    """Faults from 1 s after the load starts until ``span`` seconds, one every ``every`` on
    average; each kind the store allows at least once when the span has room for it."""
    rng = random.Random(seed ^ 0x5EED)
    kinds = list(nemeses_for(store, only))
    if not kinds:
        return []
    count = max(len(kinds), int(span / every))
    order = rng.sample(kinds, len(kinds)) + [rng.choice(kinds) for _ in range(count - len(kinds))]
    step = max(span - 1.0, 1.0) / len(order)
    out: list[Fault] = []
    for n, kind in enumerate(order):
        at = 1.0 + n * step + rng.uniform(0, step * 0.5)
        out.append(
            Fault(round(at, 3), kind, round(rng.uniform(1.5, 4.0), 3), rng.randrange(1 << 30))
        )
    return out


def fault_rule(kind: str, duration: float, time_scale: float, rng: random.Random) -> dict[str, Any]:
    """The emulator fault rule for one emulator nemesis, open for ``duration`` real seconds.

    Latencies and stuck operations are on the emulator's scaled time, so they are divided by
    its time scale; windows are on its (real) clock."""
    window = {"windowStart": 0, "windowEnd": duration}
    scale = time_scale if time_scale > 0 else 1.0
    if kind == "throttle":
        return {
            "description": "chaos: a 429 storm",
            "effect": {
                "status": 429,
                "code": "TooManyRequests",
                "message": "Chaos: too many requests, retry after the time given.",
                "retryAfter": round(rng.uniform(0.5, 2.0), 2),
            },
            "schedule": {**window, "probability": 0.6},
        }
    if kind == "error500":
        return {
            "description": "chaos: server errors",
            "effect": {
                "status": 500,
                "code": "InternalServerError",
                "message": "Chaos: an injected server error.",
            },
            "schedule": {**window, "probability": 0.3},
        }
    if kind == "stuck":
        return {
            "description": "chaos: operations that do not end",
            "match": {"method": "PUT"},
            "effect": {
                "stuckFor": round(rng.uniform(2.0, 5.0) / scale, 3),
                "message": "Chaos: the operation timed out and did not reach a terminal state.",
            },
            "schedule": {**window, "firstN": 2},
        }
    if kind == "latency":
        return {
            "description": "chaos: latency spike",
            "effect": {"latency": round(rng.uniform(0.3, 1.5) / scale, 3)},
            "schedule": {**window, "probability": 0.5},
        }
    if kind == "preempt":
        return {
            "description": "chaos: operations preempted",
            "match": {"method": "PUT"},
            "effect": {
                "failOperation": True,
                "code": "OperationPreempted",
                "message": "Chaos: operation execution has been preempted by a more recent"
                " operation.",
            },
            "schedule": {**window, "firstN": 3},
        }
    raise ValueError(f"{kind} is not an emulator fault")
