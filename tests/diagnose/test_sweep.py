"""The timeline's sweep answers what comparing every pair would answer, with linear work.

The references below are the pair-by-pair definitions (the ones the timeline used to run):
Hypothesis draws small logs with many ties and nesting, and both must agree exactly. The
growth tests count inner-loop steps at n and 4n on the shapes that made the pairwise version
quadratic; no test here measures wall time.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from armguard.diagnose.sweep import (
    CauseQuery,
    Interval,
    Pool,
    Steps,
    find_causes,
    overlap_groups,
)

# A VNet with two subnets (one with a child of its own), and an unrelated resource.
LINEAGES = {
    "v": ("v",),
    "v/s1": ("v/s1", "v"),
    "v/s2": ("v/s2", "v"),
    "v/s1/x": ("v/s1/x", "v/s1", "v"),
    "w": ("w",),
}


def _rank(a: Interval, b: Interval) -> int | None:
    if a.lineage[0] == b.lineage[0]:
        return 0
    if a.lineage[0] in b.lineage[1:] or b.lineage[0] in a.lineage[1:]:
        return 1
    return None


def _reference_cause(items: Sequence[Interval], query: CauseQuery) -> tuple[int | None, bool]:
    op = items[query.index]
    at = op.start
    peers = [
        (j, p)
        for j, p in enumerate(items)
        if j != query.index and p.pools & query.pool and _rank(op, p) is not None
    ]

    def latest(cands: list[tuple[int, Interval]]) -> tuple[int | None, bool]:
        best: tuple[tuple[int, int, float, int], int] | None = None
        for j, p in cands:
            rank = _rank(op, p)
            assert rank is not None
            key = (0 if p.caller != op.caller else 1, rank, -min(p.end, at), j)
            if best is None or key < best[0]:
                best = (key, j)
        if best is None:
            return None, False
        return best[1], items[best[1]].end >= at

    if query.mode == "holder":
        flying = [
            ((0 if p.caller != op.caller else 1, _rank(op, p), p.start, j), j)
            for j, p in peers
            if p.start <= at <= p.end
        ]
        if flying:
            return min(flying)[1], True
        return latest([(j, p) for j, p in peers if p.start <= at])
    if query.mode == "latest_other":
        return latest([(j, p) for j, p in peers if p.caller != op.caller and p.start <= at])
    return latest([(j, p) for j, p in peers if p.start <= at])


def _reference_groups(
    items: Sequence[Interval],
) -> set[tuple[tuple[int, ...], tuple[tuple[float, float], ...], bool]]:
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    edges: list[tuple[int, int, float, float, int]] = []
    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            b = items[j]
            rank = _rank(a, b)
            lo, hi = max(a.start, b.start), min(a.end, b.end)
            if a.caller != b.caller and rank is not None and lo <= hi:
                edges.append((i, j, lo, hi, rank))
                parent[find(i)] = find(j)
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(find(i), []).append(i)
    out = set()
    for root, ids in members.items():
        if len(ids) < 2:
            continue
        spans = sorted((lo, hi) for i, _j, lo, hi, _r in edges if find(i) == root)
        merged: list[tuple[float, float]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        nested = any(r == 1 for i, _j, _lo, _hi, r in edges if find(i) == root)
        out.add((tuple(ids), tuple(merged), nested))
    return out


_intervals = st.lists(
    st.builds(
        lambda start, length, caller, node, pools: Interval(
            float(start), float(start + length), caller, LINEAGES[node], pools
        ),
        st.integers(0, 12),
        st.integers(0, 4),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(sorted(LINEAGES)),
        st.integers(0, 7),
    ),
    max_size=24,
).map(lambda items: sorted(items, key=lambda i: i.start))
"""In start order, as the timeline's operations are."""


@settings(max_examples=400, deadline=None)
@given(_intervals)
def test_overlap_groups_are_the_connected_pairs(items: list[Interval]) -> None:
    got = {(tuple(g.members), tuple(g.windows), g.nested) for g in overlap_groups(items)}
    assert got == _reference_groups(items)


@settings(max_examples=400, deadline=None)
@given(_intervals, st.data())
def test_causes_are_the_pairwise_choice(items: list[Interval], data: st.DataObject) -> None:
    if not items:
        return
    queries = []
    for _ in range(data.draw(st.integers(1, 6))):
        query = CauseQuery(
            data.draw(st.integers(0, len(items) - 1)),
            data.draw(st.sampled_from(["holder", "latest", "latest_other"])),
            data.draw(st.sampled_from(list(Pool))),
        )
        # A refused write is never in the pool it is asked about (the timeline's pools say so).
        if query.mode == "latest_other" or not items[query.index].pools & query.pool:
            queries.append(query)
    assert find_causes(items, queries) == [_reference_cause(items, q) for q in queries]


# --- growth ----------------------------------------------------------------------------------


def _all_at_once(n: int) -> list[Interval]:
    """n writes by 50 callers on a VNet and its subnets, all starting at one moment; half
    are still running when the log ends."""
    out = []
    for i in range(n):
        node = ("v",) if i % 3 == 0 else (f"v/s{i % 40}", "v")
        running = i % 2 == 0
        pools = Pool.ACCEPTED | Pool.ADVANCING | Pool.ANY if running else Pool.ANY
        out.append(Interval(0.0, 1000.0 if running else 10.0, f"c{i % 50}", node, int(pools)))
    return out


def _storm(n: int) -> list[Interval]:
    """A VNet write in flight while one caller's writes on a subnet are refused n times, and
    other callers keep writing the subnet."""
    out = [Interval(0.0, 10_000.0, "pipeline", ("v",), int(Pool.ACCEPTED | Pool.ANY))]
    for i in range(n):
        out.append(Interval(i + 1.0, i + 1.5, "bot", ("v/s", "v"), int(Pool.ANY)))
        if i % 4 == 0:
            pools = Pool.ACCEPTED | Pool.ADVANCING | Pool.ANY
            out.append(Interval(i + 1.0, i + 50.0, f"w{i % 7}", ("v/s", "v"), int(pools)))
    return out


def _steps_overlaps(items: list[Interval]) -> tuple[int, int]:
    steps = Steps()
    groups = overlap_groups(items, steps)
    return steps.n, len(groups)


def _steps_causes(items: list[Interval]) -> tuple[int, list[tuple[int | None, bool]]]:
    steps = Steps()
    queries = [
        CauseQuery(i, mode, pool)
        for i in range(len(items))
        for mode, pool in (("holder", Pool.ACCEPTED), ("latest", Pool.ADVANCING))
        if not items[i].pools & Pool.ACCEPTED
    ]
    answers = find_causes(items, queries, steps)
    return steps.n, answers


def test_overlap_work_grows_linearly_with_writes_in_flight_together() -> None:
    small, large = 2_000, 8_000
    for shape in (_all_at_once, _storm):
        n_small, groups_small = _steps_overlaps(shape(small))
        n_large, groups_large = _steps_overlaps(shape(large))
        # Pairwise, 4x the writes is 16x the work; a sweep is 4x (plus a log factor).
        assert n_large / n_small < 5, (shape.__name__, n_small, n_large)
        assert groups_small == groups_large == 1


def test_cause_work_grows_linearly_with_refusals() -> None:
    small, large = 2_000, 8_000
    for shape in (_all_at_once, _storm):
        n_small, _ = _steps_causes(shape(small))
        n_large, answers = _steps_causes(shape(large))
        assert n_large / n_small < 5, (shape.__name__, n_small, n_large)
    # Each refusal of the bot is pinned on a subnet write in flight (same resource first),
    # never on the pipeline's VNet write, which only nests it.
    holders = answers[::2]
    assert len(holders) == large
    items = _storm(large)
    for found, in_flight in holders:
        assert found is not None
        assert in_flight
        assert items[found].caller.startswith("w")
        assert items[found].lineage[0] == "v/s"
