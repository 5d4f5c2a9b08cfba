"""Group commit for submits: threads of one process that submit at the same moment share one
transaction instead of queueing for one each.

A burst of writers is what armguard exists for, and every submit is a durable commit. Sixty-four
threads each committing their own submit take turns for the store's write lock (SQLite has
one writer) or for the server's commits, so the burst's last job was queued only after
sixty-four commits. Here a submitter that finds a commit slot free commits at once — a lone
submitter waits for nothing — and whoever arrives while every slot is busy waits; when a
commit ends, the oldest waiter takes every submit waiting by then into the next transaction,
in arrival order. No timer: a group is exactly what queued up behind the previous commit.
SQLite has one slot; PostgreSQL, whose transactions on separate connections overlap, four.

What a submit sees is unchanged: its jobs are queued in the order it gave them, with its
idempotency keys honoured against every other job, and it returns once they are durable.
Between two threads submitting at the same moment there was never an order, and there is none
now. The one difference is that a commit failure is shared: the transaction held every
member's jobs, so each of them raises (the thread that ran the commit with the original error,
the others with a :class:`StoreError` of the same message) and none of their jobs was queued;
or, for a connection lost during COMMIT, each gets the same "may or may not have committed"
that a lone submit gets, which idempotency keys settle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["SubmitGroup"]

_Row = TypeVar("_Row")
_Out = TypeVar("_Out")


class _Entry(Generic[_Row, _Out]):
    __slots__ = ("done", "error", "key", "lead", "leader", "result", "rows", "wake")

    def __init__(self, key: object, rows: Sequence[_Row]) -> None:
        self.key = key
        self.rows = rows
        self.done = False
        self.lead = False  # handed the lead while waiting
        self.wake = threading.Event()
        self.result: list[_Out] = []
        self.error: BaseException | None = None
        self.leader: int | None = None  # the thread that committed it


class SubmitGroup(Generic[_Row, _Out]):
    """Combines concurrent calls of :meth:`run` on one store target (a file, a schema).

    ``key``: entries commit together only with entries of the same key (what the commit
    depends on besides the rows, such as the clock that stamps them). ``shared_error`` turns
    a failed commit's exception into the one raised in each other member's thread; the thread
    that ran the commit raises the original.

    The lead passes from hand to hand: a leader that finds submits waiting when its commit
    ends wakes the oldest of them to lead the next group, and wakes only its own group's
    members otherwise, so a burst of threads is never woken all at once to compete for it.
    """

    def __init__(
        self,
        max_rows: int,
        shared_error: Callable[[BaseException], BaseException],
        *,
        leaders: int = 1,
    ) -> None:
        if leaders < 1:
            raise ValueError("a submit group needs at least one leader")
        self._max_rows = max_rows
        self._shared_error = shared_error
        self._max_leaders = leaders
        self._lock = threading.Lock()
        self._pending: list[_Entry[_Row, _Out]] = []
        self._leaders = 0
        self.commits = 0
        """Group commits made so far (each one transaction): for benchmarks and tests."""

    def run(
        self,
        key: object,
        rows: Sequence[_Row],
        commit: Callable[[object, Sequence[_Row]], list[_Out]],
    ) -> list[_Out]:
        """Commit ``rows`` (at most ``max_rows``) with whatever else is waiting; their results,
        in order. ``commit(key, rows)`` is called by whichever thread leads the group, with
        every member's rows concatenated in arrival order, and returns one result per row."""
        if len(rows) > self._max_rows:
            raise ValueError(f"at most {self._max_rows} rows go into one group commit")
        entry: _Entry[_Row, _Out] = _Entry(key, rows)
        with self._lock:
            lead = self._leaders < self._max_leaders
            if lead:
                self._leaders += 1
            else:
                self._pending.append(entry)
        if not lead:
            try:
                entry.wake.wait()
            except BaseException:
                self._abandon(entry)
                raise
            if entry.done:
                return self._outcome(entry)
        self._lead(entry, commit)
        return self._outcome(entry)

    def _outcome(self, entry: _Entry[_Row, _Out]) -> list[_Out]:
        if entry.error is not None:
            if entry.leader == threading.get_ident():
                raise entry.error
            raise self._shared_error(entry.error) from entry.error
        return entry.result

    def _lead(
        self, entry: _Entry[_Row, _Out], commit: Callable[[object, Sequence[_Row]], list[_Out]]
    ) -> None:
        """Commit ``entry`` and the submits waiting behind it, then hand the lead on."""
        with self._lock:
            group = self._take(entry)
        error: BaseException | None = None
        results: list[_Out] = []
        try:
            results = commit(entry.key, [row for e in group for row in e.rows])
            if len(results) != sum(len(e.rows) for e in group):
                raise RuntimeError("a group commit returned the wrong number of results")
        except BaseException as exc:
            error = exc
        me = threading.get_ident()
        at = 0
        with self._lock:
            self.commits += 1
            for member in group:
                member.leader = me
                if error is None:
                    member.result = results[at : at + len(member.rows)]
                    at += len(member.rows)
                else:
                    member.error = error
                member.done = True
            self._pass_lead()
        for member in group:
            member.wake.set()
        if error is not None and not isinstance(error, Exception):
            raise error  # an interrupt ends this thread's wait at once

    def _take(self, head: _Entry[_Row, _Out]) -> list[_Entry[_Row, _Out]]:
        """Under the lock: the leader's entry and every waiting one of its key that fits and
        leads no group of its own, in arrival order."""
        group: list[_Entry[_Row, _Out]] = [head]
        rest: list[_Entry[_Row, _Out]] = []
        rows = len(head.rows)
        for entry in self._pending:
            if entry is head:
                continue
            if (
                entry.key is head.key
                and not entry.lead
                and rows + len(entry.rows) <= self._max_rows
            ):
                group.append(entry)
                rows += len(entry.rows)
            else:
                rest.append(entry)
        self._pending = rest
        return group

    def _pass_lead(self) -> None:
        """Under the lock: the lead passes to the oldest waiting entry not already handed
        one, or is given up."""
        for entry in self._pending:
            if not entry.lead:
                entry.lead = True
                entry.wake.set()
                return
        self._leaders -= 1

    def _abandon(self, entry: _Entry[_Row, _Out]) -> None:
        """A waiter was interrupted: withdraw its submit unless a group already took it (then
        it may commit, as an interrupted lone submit may have), and pass on a lead it was
        handed meanwhile."""
        with self._lock:
            if entry in self._pending:
                self._pending.remove(entry)
                if entry.lead:
                    self._pass_lead()

    def waiting(self) -> int:
        """Submits queued behind the commit in progress."""
        with self._lock:
            return len(self._pending)

    @property
    def leaders(self) -> int:
        """How many group commits may run at once."""
        return self._max_leaders

    @property
    def leading(self) -> int:
        """How many groups are being committed now."""
        with self._lock:
            return self._leaders
