"""The claim rules of :mod:`armguard.coordinator.store`, written once for every SQL backend.

Both backends (``sqlite_store``, ``postgres_store``) run exactly this code; they differ only in
how a write transaction is made exclusive, how a fencing token is drawn, and their DDL. That is
the point: a second implementation of the rules would be a second set of bugs, and the test
double that behaves differently from production (procrastinate's in-memory connector) is the
failure we refuse to repeat.

Every state-changing transaction (claim, heartbeat, complete, release) runs under one
store-wide write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a transaction advisory lock);
submits take it shared where the backend can (PostgreSQL), so they run beside each other but
never beside a claim. So the rules below read one stable state and need no retry loop, a claim
never sees job 11 before job 10 commits, and the database adds a backstop of its own:
``lease_keys.key`` is a primary key, so no two leases can ever hold one key row.

Statements are few and set-based (one read of leases, held keys, learned scopes, the head of
the queue and its likely batch; one UPDATE for all results of a completion) because over a
network each one is a round trip. Events ride in the transaction of the state change they
belong to (a claim writes its ``claimed`` events itself), so they cost no commit of their own.

Expired leases are reaped lazily at the start of every claim (takeover): their unfinished jobs
go back to the queue at their original position with ``attempts + 1``, and the lease row is
deleted, so the old fence can no longer complete, heartbeat or release anything.
"""

from __future__ import annotations

import json
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from armguard.clock import Clock, isoformat
from armguard.coordinator.model import (
    Job,
    JobResult,
    JobSpec,
    JobState,
    LearnedScope,
    Lease,
    LeaseLost,
    Outcome,
    StalePolicy,
)
from armguard.coordinator.store import Change
from armguard.events import EventType, JobEvent

__all__ = ["SCHEMA_VERSION", "SqlStore", "StoreError", "Tx", "WriteLock", "split_statements"]

WriteLock = Literal["exclusive", "shared", "none"]

SCHEMA_VERSION = 1

_JOB_COLUMNS = (
    "seq, id, spec, state, attempts, outcome, kind, reason, result, created_at, updated_at"
)
# The head is usually among the first queued jobs; a long blocked backlog is read in growing
# pages so neither case pays for the other.
_FIRST_PAGE = 8
_LAST_PAGE = 512
_EVENT_ROWS = 200


class StoreError(RuntimeError):
    """The store itself cannot serve: unreachable, unwritable, or a schema from the future."""


class Tx(Protocol):
    """One statement runner inside a transaction; SQL uses ``?`` placeholders."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def finish(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
        """Run these statements, then commit: a transaction's last call. Returns the last
        statement's rows. Over a network it is one round trip, COMMIT included."""
        ...


class SqlStore(ABC):
    """A :class:`~armguard.coordinator.store.Store` over any engine that provides a ``Tx``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def _write(self, lock: WriteLock = "exclusive") -> AbstractContextManager[Tx]:
        """A transaction. ``exclusive`` ones are serialised against every other locked one
        store-wide; ``shared`` ones (submits) only against exclusive ones; ``none`` takes no
        store lock (a backend with a single writer may serialise everything anyway)."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Tx]:
        """Autocommit statements; also for a write that is one statement (atomic by itself)."""

    _fence_expr: str | None
    """An SQL expression drawing the next fencing token with a claim's first statement, or
    None to draw it with ``_next_fence`` once a batch is chosen."""

    # A channel (PostgreSQL's NOTIFY) that every submit, completion and release announces
    # itself on, inside its transaction, so idle workers elsewhere wake; None where the backend
    # has no such channel.
    _notify_channel: str | None = None

    @abstractmethod
    def _changed(self, change: Change) -> None:
        """Called after such a transaction commits: wake this process's idle workers."""

    def _with_notify(
        self, statements: Sequence[tuple[str, Sequence[Any]]], change: Change
    ) -> list[tuple[str, Sequence[Any]]]:
        if self._notify_channel is None:
            return list(statements)
        # First, so the last statement's rows are still the caller's.
        return [("SELECT pg_notify(?, ?)", (self._notify_channel, change)), *statements]

    @abstractmethod
    def watch_changes(self, timeout: float) -> Change | None:
        """See :meth:`Store.watch_changes`. Backends wake within milliseconds for their own
        process and report other processes' commits as soon as they can observe them."""

    @abstractmethod
    def _next_fence(self, tx: Tx) -> int:
        """Draw the next store-wide fencing token."""

    @abstractmethod
    def close(self) -> None: ...

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        spec_json, keys = _encode_spec(spec)
        now = self._clock.now()
        job_id = str(uuid.uuid4())
        # One statement: a used idempotency key makes it insert nothing (a concurrent submit
        # with the same key waits on the unique index, then inserts nothing), and only then is
        # the existing job read. The lock is shared: submits may run side by side, but never
        # beside a claim, so no claim sees job 11 while job 10 is still being inserted.
        insert = (
            "INSERT INTO jobs (id, resource_key, spec, keys, barrier, idem_key, state,"
            " attempts, result, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, '{}', ?, ?)"
            " ON CONFLICT (idem_key) DO NOTHING RETURNING seq",
            (
                job_id,
                spec.resource_id.lower(),
                spec_json,
                json.dumps(keys),
                int(spec.barrier),
                spec.idempotency_key,
                now,
                now,
            ),
        )
        with self._write("shared") as tx:
            inserted = tx.finish(self._with_notify([insert], "submitted"))
        if inserted:
            self._changed("submitted")
        if not inserted:
            with self._read() as tx:
                found = tx.rows(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE idem_key = ?", (spec.idempotency_key,)
                )
            return _job(found[0])
        seq = inserted[0][0]
        return Job(
            id=job_id,
            seq=int(seq),
            spec=_decode_spec(spec_json),
            state=JobState.QUEUED,
            created_at=now,
            updated_at=now,
        )

    def get(self, job_id: str) -> Job | None:
        if not isinstance(job_id, str):
            raise TypeError(f"a job id is a string, not {type(job_id).__name__}")
        with self._read() as tx:
            found = tx.rows(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(found[0]) if found else None

    def jobs(self, state: JobState | None = None, limit: int = 1000) -> list[Job]:
        _require_positive_int(limit, "limit")
        with self._read() as tx:
            if state is None:
                found = tx.rows(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY seq LIMIT ?", (limit,))
            else:
                found = tx.rows(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? ORDER BY seq LIMIT ?",
                    (_state(state).value, limit),
                )
        return [_job(r) for r in found]

    def queue_depth(self) -> int:
        with self._read() as tx:
            return int(tx.rows("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")[0][0])

    # -- leases ----------------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        ttl: float,
        max_batch: int = 64,
        events: Sequence[JobEvent] = (),
        *,
        linger: float = 0.0,
        linger_max: float = 0.0,
    ) -> Lease | None:
        _require_text(owner, "owner")
        _require_ttl(ttl)
        _require_positive_int(max_batch, "max_batch")
        _require_linger(linger, linger_max)
        lines = _event_lines(events)
        now = self._clock.now()
        with self._write() as tx:
            held, scopes, fence, first_page, followers = _live_state(
                tx, now, self._fence_expr, max_batch - 1
            )
            settled = None
            if linger > 0:

                def settled(cand: _Candidate) -> bool:
                    return _settled(tx, cand, now, linger, linger_max)

            found = _find_head(tx, held, scopes, first_page, settled)
            if found is None:
                if lines:
                    tx.finish(_insert_events(lines))
                return None
            head, passed = found
            batch = [head]
            if not head.barrier and max_batch > 1:
                # The followers were read for the first queued job; usually that is the head.
                known = followers if first_page and first_page[0].seq == head.seq else None
                batch += _coalesce(
                    tx,
                    head,
                    held=held,
                    passed=passed,
                    scopes=scopes,
                    room=max_batch - 1,
                    known=known,
                )
            keys = sorted(set().union(*(c.effective(scopes) for c in batch)))
            if fence is None:
                fence = self._next_fence(tx)
            lease_id = str(uuid.uuid4())
            expires_at = now + ttl
            seqs = [c.seq for c in batch]
            # The claimed events ride in the claim: a lease never exists without its record.
            ts = isoformat(now)
            lines += [(c.job_id, _claimed_line(ts, c, fence, keys, len(batch))) for c in batch]
            updated = tx.finish(
                [
                    *_insert_events(lines),
                    (
                        "INSERT INTO leases (id, owner, fence, keys, expires_at, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (lease_id, owner, fence, json.dumps(keys), expires_at, now),
                    ),
                    (
                        "INSERT INTO lease_keys (key, lease_id, fence) VALUES "
                        + ", ".join("(?, ?, ?)" for _ in keys),
                        [v for key in keys for v in (key, lease_id, fence)],
                    ),
                    (
                        "UPDATE jobs SET state = 'running', lease_id = ?, updated_at = ?"
                        f" WHERE seq IN ({_marks(seqs)}) RETURNING {_JOB_COLUMNS}",
                        (lease_id, now, *seqs),
                    ),
                ]
            )
        return Lease(
            id=lease_id,
            owner=owner,
            keys=tuple(keys),
            fence=fence,
            expires_at=expires_at,
            jobs=tuple(sorted((_job(r) for r in updated), key=lambda j: j.seq)),
        )

    def heartbeat(self, lease: Lease, ttl: float) -> Lease:
        _require_ttl(ttl)
        now = self._clock.now()
        with self._write() as tx:
            owner, keys, _ = self._check(tx, lease, now)
            expires_at = now + ttl
            found = tx.finish(
                [
                    ("UPDATE leases SET expires_at = ? WHERE id = ?", (expires_at, lease.id)),
                    (
                        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE lease_id = ? AND state = 'running'"
                        " ORDER BY seq",
                        (lease.id,),
                    ),
                ]
            )
        return Lease(
            id=lease.id,
            owner=owner,
            keys=keys,
            fence=lease.fence,
            expires_at=expires_at,
            jobs=tuple(_job(r) for r in found),
        )

    def complete(
        self, lease: Lease, results: Sequence[JobResult], events: Sequence[JobEvent] = ()
    ) -> None:
        encoded = _encode_results(results)
        lines = _event_lines(events)
        now = self._clock.now()
        with self._write() as tx:
            _, _, running = self._check(tx, lease, now)
            stray = sorted({e[0] for e in encoded} - set(running))
            if stray:
                raise ValueError(f"jobs {', '.join(stray)} are not running under lease {lease.id}")
            if not encoded:
                if lines:
                    tx.finish(_insert_events(lines))
                return
            # All results in one statement (a lone one skips the VALUES table SQLite would
            # materialise), and the lease ends with them when they were its last jobs.
            if len(encoded) == 1:
                job_id, outcome, kind, reason, result = encoded[0]
                update: tuple[str, Sequence[Any]] = (
                    "UPDATE jobs SET state = 'done', outcome = ?, kind = ?, reason = ?,"
                    " result = ?, updated_at = ? WHERE id = ?",
                    (outcome, kind, reason, result, now, job_id),
                )
            else:
                update = (
                    "UPDATE jobs SET state = 'done', outcome = v.column2, kind = v.column3,"
                    " reason = v.column4, result = v.column5, updated_at = ? FROM (VALUES "
                    + ", ".join("(?, ?, ?, ?, ?)" for _ in encoded)
                    + ") AS v WHERE jobs.id = v.column1",
                    [now, *(v for row in encoded for v in row)],
                )
            statements = [update, *_insert_events(lines)]
            if len(encoded) == len(running):
                statements.append(_end_lease(lease.id))
            tx.finish(self._with_notify(statements, "freed"))
        self._changed("freed")

    def release(self, lease: Lease, events: Sequence[JobEvent] = ()) -> None:
        lines = _event_lines(events)
        now = self._clock.now()
        with self._write() as tx:
            self._check(tx, lease, now)
            tx.finish(
                self._with_notify(
                    [
                        *_insert_events(lines),
                        (
                            "UPDATE jobs SET state = 'queued', lease_id = NULL, updated_at = ?"
                            " WHERE lease_id = ? AND state = 'running'",
                            (now, lease.id),
                        ),
                        _end_lease(lease.id),
                    ],
                    "freed",
                )
            )
        self._changed("freed")

    def _check(self, tx: Tx, lease: Lease, now: float) -> tuple[str, tuple[str, ...], list[str]]:
        """The fence: the lease row exists, is unexpired by the store clock, carries this fence,
        and every one of its keys is still held under this fence. Returns the owner, the keys
        and the ids of the lease's jobs still running."""
        if not isinstance(lease, Lease):
            raise TypeError(f"expected a Lease, not {type(lease).__name__}")
        found = tx.rows(
            "SELECT l.owner, l.fence, l.keys, l.expires_at, (SELECT COUNT(*) FROM lease_keys k"
            " WHERE k.lease_id = l.id AND k.fence = l.fence), j.id FROM leases l"
            " LEFT JOIN jobs j ON j.lease_id = l.id AND j.state = 'running' WHERE l.id = ?",
            (lease.id,),
        )
        if not found:
            raise LeaseLost(
                lease.id,
                lease.fence,
                "it has ended (completed, released, or expired and taken over)",
            )
        owner, fence, keys_json, expires_at, still_held, _ = found[0]
        if int(fence) != lease.fence:
            raise LeaseLost(lease.id, lease.fence, f"the store holds it under fence {fence}")
        if float(expires_at) <= now:
            raise LeaseLost(lease.id, lease.fence, f"it expired at {isoformat(float(expires_at))}")
        keys: list[str] = json.loads(keys_json)
        if int(still_held) != len(keys):
            holders = dict(
                tx.rows(f"SELECT key, fence FROM lease_keys WHERE key IN ({_marks(keys)})", keys)
            )
            lost = sorted(k for k in keys if holders.get(k) != lease.fence)
            raise LeaseLost(
                lease.id, lease.fence, f"its keys {', '.join(lost)} are held by other fences"
            )
        return str(owner), tuple(keys), [r[5] for r in found if r[5] is not None]

    # -- events and learned scopes -----------------------------------------------------------

    def append_events(self, events: Sequence[JobEvent]) -> None:
        lines = _event_lines(events)
        if not lines:
            return
        # A write like any other: on SQLite it queues on the process's write gate (an
        # autocommit INSERT would go around it, through SQLite's sleeping busy handler, and
        # look to this process's watchers like another process's commit).
        with self._write("none") as tx:
            tx.finish(_insert_events(lines))

    def events(self, job_id: str | None = None) -> list[JobEvent]:
        with self._read() as tx:
            if job_id is None:
                found = tx.rows("SELECT line FROM events ORDER BY pos")
            else:
                found = tx.rows("SELECT line FROM events WHERE job_id = ? ORDER BY pos", (job_id,))
        return [JobEvent.from_json(r[0]) for r in found]

    def learn_scope(self, key: str, other: str, reason: str) -> None:
        _require_text(key, "key")
        _require_text(other, "other")
        if not isinstance(reason, str):
            raise TypeError("a learned scope's reason is a string")
        key, other = key.lower(), other.lower()
        if key == other:
            raise ValueError(f"a key cannot depend on itself: {key}")
        now = self._clock.now()
        with self._write("none") as tx:
            tx.finish(
                [
                    (
                        "INSERT INTO learned_scopes (key, other, reason, seen, first_seen, last_seen)"
                        " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (key, other) DO UPDATE SET"
                        " seen = learned_scopes.seen + 1, reason = excluded.reason,"
                        " last_seen = excluded.last_seen",
                        (key, other, reason, now, now),
                    )
                ]
            )

    def learned_scopes(self) -> list[LearnedScope]:
        with self._read() as tx:
            found = tx.rows(
                "SELECT key, other, reason, seen, first_seen, last_seen FROM learned_scopes"
                " ORDER BY key, other"
            )
        return [
            LearnedScope(
                key=k, other=o, reason=r, seen=int(s), first_seen=float(f), last_seen=float(la)
            )
            for k, o, r, s, f, la in found
        ]


_CANDIDATE_COLUMNS = "seq, resource_key, keys, barrier, id, spec"


class _Candidate:
    __slots__ = ("_keys", "barrier", "job_id", "keys_json", "resource_key", "seq", "spec")

    def __init__(self, row: Sequence[Any]) -> None:
        seq, resource_key, keys_json, barrier, job_id, spec = row
        self.seq = int(seq)
        self.resource_key: str = resource_key
        self.barrier = bool(int(barrier))
        self.job_id: str = job_id
        # Decoded only when needed: a claim usually looks at one job of the page it reads.
        self.keys_json: str = keys_json
        self._keys: list[str] | None = None
        self.spec: str = spec

    @property
    def keys(self) -> list[str]:
        if self._keys is None:
            self._keys = json.loads(self.keys_json)
        return self._keys

    def effective(self, scopes: Mapping[str, set[str]]) -> set[str]:
        """The job's keys plus every key learned to depend on one of them (either direction)."""
        keys = self.keys
        out = set(keys)
        for key in keys:
            out |= scopes.get(key, set())
        return out


def _queued_page(after: int, size: int) -> tuple[str, tuple[int, int]]:
    return (
        f"SELECT {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued' AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (after, size),
    )


def _find_head(
    tx: Tx,
    held: set[str],
    scopes: Mapping[str, set[str]],
    first_page: list[_Candidate] | None,
    settled: Callable[[_Candidate], bool] | None = None,
) -> tuple[_Candidate, list[_Candidate]] | None:
    """The oldest queued job whose keys are free of leases and of every older queued job (and,
    with a linger, whose resource has settled; an unsettled one blocks its keys like a held one).

    Returns it with the older queued jobs it passed, which coalescing needs. Walks the queue in
    pages so a short wait does not read a long backlog; the first page may come read already
    (with the live state, one round trip saved)."""
    blocked = set(held)
    passed: list[_Candidate] = []
    after = 0
    size = _FIRST_PAGE
    page = first_page
    while True:
        if page is None:
            page = [_Candidate(r) for r in tx.rows(*_queued_page(after, size))]
        for cand in page:
            eff = cand.effective(scopes)
            if eff.isdisjoint(blocked) and (settled is None or settled(cand)):
                return cand, passed
            blocked |= eff
            passed.append(cand)
        if len(page) < size:
            return None
        after = page[-1].seq
        size = min(size * 4, _LAST_PAGE)
        page = None


def _settled(tx: Tx, head: _Candidate, now: float, linger: float, linger_max: float) -> bool:
    """Debounce: a resource's queued jobs are claimed once no job has joined them for
    ``linger`` seconds — a burst of writers becomes one ARM write — or once the oldest has
    waited ``linger_max``, so a steady stream cannot hold them back for ever. The head is the
    oldest queued job on its resource (an older one would share its key and block it)."""
    oldest, newest = tx.rows(
        "SELECT MIN(created_at), MAX(created_at) FROM jobs WHERE state = 'queued'"
        " AND resource_key = ?",
        (head.resource_key,),
    )[0]
    if oldest is None:
        return True
    return now - float(newest) >= linger or now - float(oldest) >= linger_max


def _coalesce(
    tx: Tx,
    head: _Candidate,
    *,
    held: set[str],
    passed: Sequence[_Candidate],
    scopes: Mapping[str, set[str]],
    room: int,
    known: list[tuple[Any, ...]] | None = None,
) -> list[_Candidate]:
    """The queued jobs after ``head`` on the same resource that may ride in its lease: in seq
    order, stopping at the first barrier, the first one whose keys a lease holds, and the first
    one that would overtake an older queued job it does not commute with.

    Two writes commute when they only share a lock key that is neither one's own resource —
    two subnets of one VNet, two subnets pointing at one NSG: ARM makes them take turns, but
    their order changes neither result. A write to a resource the other locks (the VNet itself,
    the NSG, a learned dependency) does not commute, so no write overtakes it. Overtaking costs
    the older job nothing: it still waits for exactly this one lease.

    One statement reads both the same-resource followers and the other queued jobs between
    them (tagged 1 and 0), ordered by seq — unless ``known`` already holds those rows."""
    found = known
    if found is None:
        found = tx.rows(
            f"WITH same AS (SELECT {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued'"
            " AND resource_key = ? AND seq > ? ORDER BY seq LIMIT ?)"
            f" SELECT 1, {_CANDIDATE_COLUMNS} FROM same"
            f" UNION ALL SELECT 0, {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued'"
            " AND resource_key <> ? AND seq > ? AND seq < (SELECT MAX(seq) FROM same)"
            " ORDER BY 2",
            (head.resource_key, head.seq, room, head.resource_key, head.seq),
        )
    # Older queued jobs outside the batch, by key, as (their resource, their keys).
    older: dict[str, list[tuple[str, set[str]]]] = {}

    def note(cand: _Candidate) -> None:
        eff = cand.effective(scopes)
        for key in eff:
            older.setdefault(key, []).append((cand.resource_key, eff))

    for cand in passed:
        note(cand)
    taken: list[_Candidate] = []
    for row in found:
        cand = _Candidate(row[1:])
        if not int(row[0]):
            note(cand)
            continue
        eff = cand.effective(scopes)
        if cand.barrier or not eff.isdisjoint(held):
            break
        if any(
            resource in eff or cand.resource_key in their
            for key in eff
            for resource, their in older.get(key, ())
        ):
            break
        taken.append(cand)
    return taken


def _live_state(
    tx: Tx, now: float, fence_expr: str | None, room: int
) -> tuple[
    set[str],
    dict[str, set[str]],
    int | None,
    list[_Candidate] | None,
    list[tuple[Any, ...]] | None,
]:
    """Reap expired leases (takeover) and return the keys still held, the learned scopes,
    (if the backend draws it here) a fencing token, the first page of the queue and the rows
    :func:`_coalesce` reads for the first queued job (at most ``room`` followers), all read in
    one statement: a claim's cost is mostly round trips. The page and the followers are None
    when the reap requeued jobs, which they could not have seen."""
    expired: list[str] = []
    holders: list[tuple[str, str]] = []
    scopes: dict[str, set[str]] = {}
    fence: int | None = None
    page: list[_Candidate] = []
    followers: list[tuple[Any, ...]] = []
    draw = (
        f" UNION ALL SELECT 'f', CAST({fence_expr} AS TEXT), NULL, NULL, NULL, NULL, NULL"
        if fence_expr
        else ""
    )
    cols = "CAST(seq AS TEXT), resource_key, keys, CAST(barrier AS TEXT), id, spec"
    for tag, *row in tx.rows(
        "WITH head AS (SELECT seq, resource_key, barrier FROM jobs WHERE state = 'queued'"
        " ORDER BY seq LIMIT 1),"
        # A barrier head rides alone: reading its followers would be wasted.
        f" same AS (SELECT {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued'"
        " AND resource_key = (SELECT resource_key FROM head) AND seq > (SELECT seq FROM head)"
        " AND (SELECT barrier FROM head) = 0 ORDER BY seq LIMIT ?)"
        " SELECT 'x', id, NULL, NULL, NULL, NULL, NULL FROM leases WHERE expires_at <= ?"
        " UNION ALL SELECT 'h', key, lease_id, NULL, NULL, NULL, NULL FROM lease_keys"
        " UNION ALL SELECT 's', key, other, NULL, NULL, NULL, NULL FROM learned_scopes"
        f" UNION ALL SELECT 'q', {cols} FROM ({_queued_page(0, _FIRST_PAGE)[0]}) AS q"
        f" UNION ALL SELECT 'c', {cols} FROM same"
        f" UNION ALL SELECT 'b', {cols} FROM jobs WHERE state = 'queued'"
        " AND resource_key <> (SELECT resource_key FROM head) AND seq > (SELECT seq FROM head)"
        " AND seq < (SELECT MAX(seq) FROM same)" + draw,
        (room, now, 0, _FIRST_PAGE),
    ):
        if tag == "q":
            page.append(_Candidate(row))
        elif tag in ("c", "b"):
            followers.append((int(tag == "c"), *row))
        elif tag == "f":
            fence = int(row[0])
        elif tag == "x":
            expired.append(row[0])
        elif tag == "h":
            holders.append((row[0], row[1]))
        else:
            scopes.setdefault(row[0], set()).add(row[1])
            scopes.setdefault(row[1], set()).add(row[0])
    if expired:
        marks = _marks(expired)
        tx.rows(
            "UPDATE jobs SET state = 'queued', lease_id = NULL, attempts = attempts + 1,"
            f" updated_at = ? WHERE state = 'running' AND lease_id IN ({marks})",
            (now, *expired),
        )
        tx.rows(f"DELETE FROM leases WHERE id IN ({marks})", expired)  # keys cascade
        return (
            {k for k, lease_id in holders if lease_id not in set(expired)},
            scopes,
            fence,
            None,
            None,
        )
    # Both were read in seq order; the union does not promise to keep it.
    page.sort(key=lambda c: c.seq)
    followers.sort(key=lambda r: int(r[1]))
    return {key for key, _ in holders}, scopes, fence, page, followers


def _end_lease(lease_id: str) -> tuple[str, Sequence[Any]]:
    return ("DELETE FROM leases WHERE id = ?", (lease_id,))  # its lease_keys rows cascade


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


# -- encoding ----------------------------------------------------------------------------------


def _encode_spec(spec: JobSpec) -> tuple[str, list[str]]:
    """Validate a spec and return its JSON and its normalised (case-folded, unique) keys."""
    if not isinstance(spec, JobSpec):
        raise TypeError(f"expected a JobSpec, not {type(spec).__name__}")
    _require_text(spec.resource_id, "resource_id")
    _require_text(spec.writer, "writer")
    if not isinstance(spec.intent, Mapping):
        raise ValueError("a job's intent must be a JSON object")
    if isinstance(spec.lock_keys, str) or not isinstance(spec.lock_keys, Iterable):
        raise ValueError("lock_keys must be a sequence of keys, not a single string")
    keys: list[str] = []
    for key in spec.lock_keys:
        _require_text(key, "lock key")
        if key.lower() not in keys:
            keys.append(key.lower())
    if not keys:
        raise ValueError("a job needs at least one lock key (its resource)")
    for name in ("baseline_etag", "idempotency_key"):
        value = getattr(spec, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string or None")
    if not isinstance(spec.barrier, bool):
        raise ValueError("barrier must be a bool")
    try:
        on_stale = StalePolicy(spec.on_stale)
    except ValueError:
        choices = ", ".join(p.value for p in StalePolicy)
        raise ValueError(f"on_stale must be one of {choices}, not {spec.on_stale!r}") from None
    data = {
        "resource_id": spec.resource_id,
        "intent": dict(spec.intent),
        "writer": spec.writer,
        "lock_keys": list(spec.lock_keys),
        "baseline_etag": spec.baseline_etag,
        "on_stale": on_stale.value,
        "idempotency_key": spec.idempotency_key,
        "barrier": spec.barrier,
    }
    return _dumps(data, "intent"), keys


def _decode_spec(text: str) -> JobSpec:
    data = json.loads(text)
    return JobSpec(
        resource_id=data["resource_id"],
        intent=data["intent"],
        writer=data["writer"],
        lock_keys=tuple(data["lock_keys"]),
        baseline_etag=data["baseline_etag"],
        on_stale=StalePolicy(data["on_stale"]),
        idempotency_key=data["idempotency_key"],
        barrier=bool(data["barrier"]),
    )


def _job(row: Sequence[Any]) -> Job:
    seq, job_id, spec, state, attempts, outcome, kind, reason, result, created, updated = row
    return Job(
        id=job_id,
        seq=int(seq),
        spec=_decode_spec(spec),
        state=JobState(state),
        attempts=int(attempts),
        outcome=Outcome(outcome) if outcome is not None else None,
        kind=kind,
        reason=reason,
        created_at=float(created),
        updated_at=float(updated),
        result=json.loads(result),
    )


def _encode_results(
    results: Sequence[JobResult],
) -> list[tuple[str, str, str | None, str | None, str]]:
    if isinstance(results, JobResult) or not isinstance(results, Iterable):
        raise TypeError("results must be a sequence of JobResult")
    out: list[tuple[str, str, str | None, str | None, str]] = []
    seen: set[str] = set()
    for r in results:
        if not isinstance(r, JobResult):
            raise TypeError(f"expected a JobResult, not {type(r).__name__}")
        if r.job_id in seen:
            raise ValueError(f"job {r.job_id} has more than one result")
        seen.add(r.job_id)
        try:
            outcome = Outcome(r.outcome)
        except ValueError:
            choices = ", ".join(o.value for o in Outcome)
            raise ValueError(f"outcome must be one of {choices}, not {r.outcome!r}") from None
        for name in ("kind", "reason"):
            if getattr(r, name) is not None and not isinstance(getattr(r, name), str):
                raise ValueError(f"a result's {name} must be a string or None")
        if not isinstance(r.result, Mapping):
            raise ValueError("a result's facts must be a JSON object")
        out.append((r.job_id, outcome.value, r.kind, r.reason, _dumps(dict(r.result), "result")))
    return out


def _event_lines(events: Sequence[JobEvent]) -> list[tuple[str, str]]:
    """(job id, JSON line) per event, checked before any transaction starts."""
    if isinstance(events, JobEvent) or not isinstance(events, Iterable):
        raise TypeError("events must be a sequence of JobEvent")
    lines = []
    for event in events:
        if not isinstance(event, JobEvent):
            raise TypeError(f"expected a JobEvent, not {type(event).__name__}")
        lines.append((event.job_id, event.to_json()))
    return lines


def _insert_events(lines: Sequence[tuple[str, str]]) -> list[tuple[str, Sequence[Any]]]:
    """INSERT statements for these lines, in order, at most ``_EVENT_ROWS`` rows each."""
    out: list[tuple[str, Sequence[Any]]] = []
    for at in range(0, len(lines), _EVENT_ROWS):
        chunk = lines[at : at + _EVENT_ROWS]
        out.append(
            (
                "INSERT INTO events (job_id, line) VALUES " + ", ".join("(?, ?)" for _ in chunk),
                [v for row in chunk for v in row],
            )
        )
    return out


def _claimed_line(ts: str, cand: _Candidate, fence: int, keys: list[str], batch: int) -> str:
    spec = json.loads(cand.spec)
    return JobEvent(
        ts=ts,
        job_id=cand.job_id,
        resource_id=spec["resource_id"],
        writer=spec["writer"],
        event=EventType.CLAIMED.value,
        fence=fence,
        detail={"keys": keys, "batch": batch},
    ).to_json()


def _dumps(data: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {what} is not JSON-serialisable: {exc}") from None


def _state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        choices = ", ".join(s.value for s in JobState)
        raise ValueError(f"state must be one of {choices}, not {state!r}") from None


def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")


def _require_positive_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")


def _require_linger(linger: float, linger_max: float) -> None:
    for name, value in (("linger", linger), ("linger_max", linger_max)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    if linger > 0 and linger_max < linger:
        raise ValueError(f"linger_max ({linger_max}) must be at least linger ({linger})")


def _require_ttl(ttl: object) -> None:
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")


def split_statements(ddl: str) -> Iterator[str]:
    """DDL scripts hold one statement per ``;`` (no semicolons inside statements)."""
    for stmt in ddl.split(";"):
        if stmt.strip():
            yield stmt.strip()
