"""One sweep over time for the timeline's pairwise questions, in near-linear time.

Two questions in the timeline compare operations with each other: *who overlapped whom* and
*which write caused this conflict*. Asked pair by pair they cost the square of the operations on
a resource, and real logs have that shape: a retry storm is thousands of refused writes on one
subnet, and an export cut while a deployment runs has thousands of writes still in flight at
its end. Both answers come instead from one pass over the start and end times, keeping per
resource what is in flight and what finished last.

Operations are :class:`Interval` s on *nodes*: a node is a resource, and an interval's
``lineage`` lists its own node and the nodes it nests in (a subnet, then its VNet). Two
intervals are *related* when they are on one node or one's node is in the other's lineage:
ARM serialises a subnet with its VNet, not with its sibling subnets.

* :func:`overlap_groups`: intervals of different callers on related nodes that are in flight at
  the same moment are joined; the connected groups are the overlaps, each with the time windows
  in which at least one such pair was in flight. Cost: O(n log n) for n intervals, times the
  nesting depth (at most a handful of levels in ARM IDs).
* :func:`find_causes`: for a conflict at time *t*, the related interval of a pool (accepted
  writes, writes that advanced the ETag, any write) in flight at *t* or finished last before
  it, preferring another caller and the same resource. Cost: O(log n) per conflict.

Ties are broken as a scan of the intervals in index order would: the earliest start, then the
lowest index, for intervals in flight; the latest end, then the lowest index, for finished ones.
``steps`` counters count the inner-loop work so tests can check that it grows linearly.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntFlag

__all__ = [
    "CauseQuery",
    "Interval",
    "OverlapGroup",
    "Pool",
    "Steps",
    "find_causes",
    "find_root",
    "overlap_groups",
]


@dataclass(frozen=True, slots=True)
class Interval:
    start: float
    end: float
    """Not before ``start``; an interval still running at the end of the log ends there."""
    caller: str
    lineage: tuple[str, ...]
    """Its own node first, then the nodes it nests in, nearest first."""
    pools: int = 0
    """The :class:`Pool` flags of the candidate sets this interval belongs to."""


class Pool(IntFlag):
    ACCEPTED = 1
    """Not itself refused: it can hold a resource."""
    ADVANCING = 2
    """Succeeded or still running: it can have moved the ETag on."""
    ANY = 4


@dataclass
class Steps:
    """Inner-loop work done, for tests of growth (not wall time)."""

    n: int = 0


# --- overlaps: connected groups ------------------------------------------------------------------


@dataclass
class OverlapGroup:
    members: list[int]
    """Interval indices, ascending."""
    windows: list[tuple[float, float]]
    """Disjoint, ascending: the times in which at least one pair of the group was in flight."""
    nested: bool
    """Some pair was on a parent and its child (else every pair was on one node)."""


def find_root(links: list[int], i: int) -> int:
    """Union-find with path compression: the root of ``i`` in ``links`` (a root links to
    itself); every link on the way is pointed straight at it."""
    root = i
    while links[root] != root:
        root = links[root]
    while links[i] != root:
        links[i], i = root, links[i]
    return root


class _Components:
    """Union-find over intervals, with each group's live pair count and its windows."""

    def __init__(self, n: int, steps: Steps) -> None:
        self.parent = list(range(n))
        self.size = [1] * n
        self.live = [0] * n
        self.opened = [0.0] * n
        self.windows: list[list[tuple[float, float]] | None] = [None] * n
        self.nested = [False] * n
        self.steps = steps

    def find(self, i: int) -> int:
        return find_root(self.parent, i)

    def union(self, a: int, b: int) -> int:
        self.steps.n += 1
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        if self.live[ra] and self.live[rb]:
            self.opened[ra] = min(self.opened[ra], self.opened[rb])
        elif self.live[rb]:
            self.opened[ra] = self.opened[rb]
        self.live[ra] += self.live[rb]
        self.nested[ra] = self.nested[ra] or self.nested[rb]
        wa, wb = self.windows[ra], self.windows[rb]
        if wb:
            if wa is None:
                self.windows[ra] = wb
            else:
                if len(wa) < len(wb):
                    wa, wb = wb, wa
                    self.windows[ra] = wa
                wa.extend(wb)
        self.windows[rb] = None
        return ra

    def add_live(self, i: int, pairs: int, at: float) -> None:
        if not pairs:
            return
        root = self.find(i)
        if self.live[root] == 0:
            self.opened[root] = at
        self.live[root] += pairs

    def drop_live(self, i: int, pairs: int, at: float) -> None:
        if not pairs:
            return
        root = self.find(i)
        self.live[root] -= pairs
        if self.live[root] == 0:
            windows = self.windows[root]
            if windows is None:
                windows = self.windows[root] = []
            windows.append((self.opened[root], at))


class _Here:
    """The intervals in flight on one node: all known to be in one group, but for ``loose``.

    When two callers are in flight on one node, every interval there is joined to the others
    (they are pairwise in flight together), so joining a new interval to all of them is one
    union with ``rep`` plus one per interval not yet joined.
    """

    __slots__ = ("callers", "loose", "merged", "rep", "total")

    def __init__(self) -> None:
        self.callers: dict[str, int] = {}
        self.total = 0
        self.rep = -1
        self.merged = 0
        self.loose: dict[int, None] = {}

    def others(self, caller: str) -> int:
        return self.total - self.callers.get(caller, 0)


class _Group:
    __slots__ = ("callers", "rep", "size")

    def __init__(self, rep: int, caller: str) -> None:
        self.rep = rep
        self.callers: dict[str, int] = {caller: 1}
        self.size = 1


class _Below:
    """The intervals in flight on the nodes nested in one node, in groups known to be joined.

    Siblings (two subnets) are not related, so these are not all joined to each other; a new
    interval on the node joins every group holding another caller's interval, and those groups
    become one.
    """

    __slots__ = ("callers", "multi", "single", "total")

    def __init__(self) -> None:
        self.callers: dict[str, int] = {}
        self.total = 0
        self.multi: set[int] = set()
        self.single: dict[str, set[int]] = {}

    def others(self, caller: str) -> int:
        return self.total - self.callers.get(caller, 0)


def _inc(counts: dict[str, int], key: str, by: int = 1) -> None:
    value = counts.get(key, 0) + by
    if value:
        counts[key] = value
    else:
        del counts[key]


def overlap_groups(items: Sequence[Interval], steps: Steps | None = None) -> list[OverlapGroup]:
    """Intervals joined by being in flight together, by different callers, on related nodes."""
    work = steps if steps is not None else Steps()
    comps = _Components(len(items), work)
    here: dict[str, _Here] = {}
    below: dict[str, _Below] = {}
    groups: list[_Group | None] = []
    group_parent: list[int] = []
    # Per interval and per node in its lineage above its own: the group id it was put in there.
    handles: list[list[int]] = [[] for _ in items]

    def find_group(g: int) -> int:
        return find_root(group_parent, g)

    def index_group(b: _Below, g: int, grp: _Group) -> None:
        if len(grp.callers) > 1:
            b.multi.add(g)
        else:
            b.single.setdefault(next(iter(grp.callers)), set()).add(g)

    def unindex_group(b: _Below, g: int, grp: _Group) -> None:
        if len(grp.callers) > 1:
            b.multi.discard(g)
        else:
            key = next(iter(grp.callers))
            bucket = b.single[key]
            bucket.discard(g)
            if not bucket:
                del b.single[key]

    def pairs_of(i: int) -> int:
        item = items[i]
        n = 0
        for node in item.lineage:
            h = here.get(node)
            if h is not None:
                n += h.others(item.caller)
        b = below.get(item.lineage[0])
        if b is not None:
            n += b.others(item.caller)
        return n

    events: list[tuple[float, int, int]] = []
    for i, item in enumerate(items):
        events.append((item.start, 0, i))
        events.append((max(item.end, item.start), 1, i))
    events.sort()
    for at, kind, i in events:
        work.n += 1
        item = items[i]
        caller, node = item.caller, item.lineage[0]
        if kind == 0:
            pairs = pairs_of(i)
            joined_here = False
            for depth, key in enumerate(item.lineage):
                h = here.get(key)
                if h is None or not h.others(caller):
                    continue
                if h.merged:
                    comps.union(i, h.rep)
                for j in h.loose:
                    comps.union(i, j)
                h.merged += len(h.loose)
                h.loose.clear()
                h.rep = i
                if depth:
                    comps.nested[comps.find(i)] = True
                else:
                    joined_here = True
            b = below.get(node)
            if b is not None and b.others(caller):
                targets = list(b.multi)
                b.multi.clear()
                for key in [k for k in b.single if k != caller]:
                    targets.extend(b.single.pop(key))
                merged_id = -1
                merged: _Group | None = None
                for g in targets:
                    work.n += 1
                    grp = groups[g]
                    assert grp is not None
                    comps.union(i, grp.rep)
                    if merged is None:
                        merged_id, merged = g, grp
                        continue
                    # Fold the group with fewer callers into the other one.
                    keep_id, keep, fold_id, fold = merged_id, merged, g, grp
                    if len(fold.callers) > len(keep.callers):
                        keep_id, keep, fold_id, fold = fold_id, fold, keep_id, keep
                    for k, v in fold.callers.items():
                        _inc(keep.callers, k, v)
                    keep.size += fold.size
                    group_parent[fold_id] = keep_id
                    groups[fold_id] = None
                    merged_id, merged = keep_id, keep
                if merged is not None:
                    merged.rep = i
                    index_group(b, merged_id, merged)
                comps.nested[comps.find(i)] = True
            # Now put the interval in: on its node, and in the "below" of every node above.
            h = here.setdefault(node, _Here())
            _inc(h.callers, caller)
            h.total += 1
            if joined_here:
                h.merged += 1
            else:
                h.loose[i] = None
            for key in item.lineage[1:]:
                b = below.setdefault(key, _Below())
                _inc(b.callers, caller)
                b.total += 1
                g = len(groups)
                grp = _Group(i, caller)
                groups.append(grp)
                group_parent.append(g)
                index_group(b, g, grp)
                handles[i].append(g)
            comps.add_live(i, pairs, at)
        else:
            # The pairs it was in end with it; count them before taking it out.
            h = here[node]
            _inc(h.callers, caller, -1)
            h.total -= 1
            comps.drop_live(i, pairs_of(i), at)
            if i in h.loose:
                del h.loose[i]
            else:
                h.merged -= 1
                if not h.merged:
                    h.rep = -1
            for key, g0 in zip(item.lineage[1:], handles[i], strict=True):
                b = below[key]
                _inc(b.callers, caller, -1)
                b.total -= 1
                g = find_group(g0)
                grp = groups[g]
                assert grp is not None
                unindex_group(b, g, grp)
                _inc(grp.callers, caller, -1)
                grp.size -= 1
                if grp.size:
                    index_group(b, g, grp)
                else:
                    groups[g] = None
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        root = comps.find(i)
        if comps.size[root] > 1:
            members.setdefault(root, []).append(i)
    out: list[OverlapGroup] = []
    for root, ids in members.items():
        windows = sorted(comps.windows[root] or [])
        merged_windows: list[tuple[float, float]] = []
        for s, e in windows:
            if merged_windows and s <= merged_windows[-1][1]:
                last = merged_windows[-1]
                merged_windows[-1] = (last[0], max(last[1], e))
            else:
                merged_windows.append((s, e))
        out.append(OverlapGroup(ids, merged_windows, comps.nested[root]))
    return out


# --- causes: what was in flight, what finished last ---------------------------------------------


class _InFlight:
    """Intervals in flight: the earliest, by caller or of any caller but one."""

    __slots__ = ("by_caller", "heads")

    def __init__(self) -> None:
        self.by_caller: dict[str, OrderedDict[int, None]] = {}
        self.heads: list[tuple[float, int, str]] = []

    def add(self, i: int, start: float, caller: str) -> None:
        queue = self.by_caller.get(caller)
        if queue is None:
            queue = self.by_caller[caller] = OrderedDict()
            heapq.heappush(self.heads, (start, i, caller))
        queue[i] = None

    def remove(self, i: int, items: Sequence[Interval]) -> None:
        caller = items[i].caller
        queue = self.by_caller[caller]
        head = next(iter(queue))
        del queue[i]
        if not queue:
            del self.by_caller[caller]
        elif head == i:
            j = next(iter(queue))
            heapq.heappush(self.heads, (items[j].start, j, caller))

    def _clean(self, steps: Steps) -> None:
        heads = self.heads
        while heads:
            _, i, caller = heads[0]
            queue = self.by_caller.get(caller)
            if queue is not None and next(iter(queue)) == i:
                return
            steps.n += 1
            heapq.heappop(heads)

    def earliest(self, caller: str, other: bool, steps: Steps) -> int | None:
        if not other:
            queue = self.by_caller.get(caller)
            return next(iter(queue)) if queue else None
        self._clean(steps)
        if not self.heads:
            return None
        if self.heads[0][2] != caller:
            return self.heads[0][1]
        top = heapq.heappop(self.heads)
        self._clean(steps)
        found = self.heads[0][1] if self.heads else None
        heapq.heappush(self.heads, top)
        return found


class _Finished:
    """The interval that finished last, by caller or of any caller but one."""

    __slots__ = ("best", "by_caller", "second")

    def __init__(self) -> None:
        self.best: tuple[tuple[float, int], int, str] | None = None
        self.second: tuple[tuple[float, int], int, str] | None = None
        """The last to finish among callers other than ``best``'s."""
        self.by_caller: dict[str, tuple[tuple[float, int], int]] = {}

    def add(self, i: int, end: float, caller: str) -> None:
        key = (end, -i)
        entry = (key, i, caller)
        mine = self.by_caller.get(caller)
        if mine is None or key > mine[0]:
            self.by_caller[caller] = (key, i)
        best = self.best
        if best is None:
            self.best = entry
        elif best[2] == caller:
            if key > best[0]:
                self.best = entry
        elif key > best[0]:
            self.second, self.best = best, entry
        elif self.second is None or key > self.second[0]:
            self.second = entry

    def latest(self, caller: str, other: bool) -> tuple[tuple[float, int], int] | None:
        if not other:
            return self.by_caller.get(caller)
        for entry in (self.best, self.second):
            if entry is not None and entry[2] != caller:
                return entry[0], entry[1]
        return None


class _Slot:
    __slots__ = ("finished", "flying")

    def __init__(self) -> None:
        self.flying = _InFlight()
        self.finished = _Finished()


@dataclass(frozen=True)
class CauseQuery:
    index: int
    """The refused interval; it is asked about at its start. It is not in the pool asked
    about (a refused write cannot hold a resource), unless the mode looks at other callers."""
    mode: str
    """``holder`` (in flight first, in the accepted pool), ``latest`` (per caller and
    nesting preference, in flight or finished last) or ``latest_other`` (the same, other
    callers only)."""
    pool: Pool = Pool.ACCEPTED


@dataclass
class _Slots:
    here: dict[str, dict[Pool, _Slot]] = field(default_factory=dict)
    below: dict[str, dict[Pool, _Slot]] = field(default_factory=dict)

    @staticmethod
    def get(table: dict[str, dict[Pool, _Slot]], node: str, pool: Pool) -> _Slot | None:
        slots = table.get(node)
        return None if slots is None else slots.get(pool)


def find_causes(
    items: Sequence[Interval], queries: Sequence[CauseQuery], steps: Steps | None = None
) -> list[tuple[int | None, bool]]:
    """For each query: (the causing interval or None, whether it was in flight at that moment).

    ``items`` are in start order (the timeline's operations are), so "the lowest index" among
    intervals in flight together is also the earliest started.

    Preference, as for a person reading the log: another caller before the same caller, the
    same resource before its parent or child; within that, an interval in flight at the moment
    before one that finished earlier (``holder`` looks for one in flight in every class before
    settling for one that finished).
    """
    work = steps if steps is not None else Steps()
    for query in queries:
        if query.mode not in ("holder", "latest", "latest_other"):
            raise ValueError(f"unknown cause query mode '{query.mode}'")
        if query.mode != "latest_other" and items[query.index].pools & query.pool:
            raise ValueError("a refused interval cannot be its own cause: leave it out of the pool")
    slots = _Slots()
    pools = (Pool.ACCEPTED, Pool.ADVANCING, Pool.ANY)
    events: list[tuple[float, int, int]] = []
    for i, item in enumerate(items):
        if item.pools:
            events.append((item.start, 0, i))
            events.append((max(item.end, item.start), 2, i))
    for q, query in enumerate(queries):
        events.append((items[query.index].start, 1, q))
    events.sort()
    answers: list[tuple[int | None, bool]] = [(None, False)] * len(queries)

    def tables(item: Interval) -> list[tuple[dict[str, dict[Pool, _Slot]], str]]:
        node = item.lineage[0]
        return [(slots.here, node), *((slots.below, key) for key in item.lineage[1:])]

    def ranked(item: Interval, pool: Pool) -> tuple[list[_Slot], list[_Slot]]:
        node = item.lineage[0]
        same = [s for s in (slots.get(slots.here, node, pool),) if s is not None]
        nested = [slots.get(slots.here, key, pool) for key in item.lineage[1:]]
        nested.append(slots.get(slots.below, node, pool))
        return same, [s for s in nested if s is not None]

    def flying(group: list[_Slot], caller: str, other: bool) -> int | None:
        best: int | None = None
        for slot in group:
            work.n += 1
            i = slot.flying.earliest(caller, other, work)
            if i is not None and (best is None or (items[i].start, i) < (items[best].start, best)):
                best = i
        return best

    def finished(group: list[_Slot], caller: str, other: bool) -> int | None:
        best: tuple[tuple[float, int], int] | None = None
        for slot in group:
            work.n += 1
            found = slot.finished.latest(caller, other)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return None if best is None else best[1]

    for _at, kind, i in events:
        work.n += 1
        if kind == 1:
            query = queries[i]
            item = items[query.index]
            classes = (True,) if query.mode == "latest_other" else (True, False)
            same, nested = ranked(item, query.pool)
            answer: tuple[int | None, bool] = (None, False)
            if query.mode == "holder":
                found = next(
                    (
                        x
                        for other in classes
                        for group in (same, nested)
                        if (x := flying(group, item.caller, other)) is not None
                    ),
                    None,
                )
                if found is not None:
                    answer = (found, True)
                else:
                    done = next(
                        (
                            x
                            for other in classes
                            for group in (same, nested)
                            if (x := finished(group, item.caller, other)) is not None
                        ),
                        None,
                    )
                    answer = (done, False)
            else:
                for other in classes:
                    for group in (same, nested):
                        x = flying(group, item.caller, other)
                        if x is not None:
                            answer = (x, True)
                            break
                        x = finished(group, item.caller, other)
                        if x is not None:
                            answer = (x, False)
                            break
                    if answer[0] is not None:
                        break
            answers[i] = answer
            continue
        item = items[i]
        for pool in pools:
            if not item.pools & pool:
                continue
            for table, key in tables(item):
                if kind == 0:
                    slot = table.setdefault(key, {}).setdefault(pool, _Slot())
                    slot.flying.add(i, item.start, item.caller)
                else:
                    slot = table[key][pool]
                    slot.flying.remove(i, items)
                    slot.finished.add(i, max(item.end, item.start), item.caller)
    return answers
