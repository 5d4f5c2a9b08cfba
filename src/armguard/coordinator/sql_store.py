"""The claim rules of :mod:`armguard.coordinator.store`, written once for every SQL backend.

Both backends (``sqlite_store``, ``postgres_store``) run exactly this code; they differ only in
how a write transaction is made exclusive, how a fencing token is drawn, how a list of values
travels in one parameter, where "now" comes from, and their DDL. That is the point: a second
implementation of the rules would be a second set of bugs, and the test double that behaves
differently from production (procrastinate's in-memory connector) is the failure we refuse to
repeat.

Every state-changing transaction (claim, heartbeat, complete, release) runs under one
store-wide write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a transaction advisory lock);
submits take it shared where the backend can (PostgreSQL), so they run beside each other but
never beside a claim. So the rules below read one stable state and need no retry loop, a claim
never sees job 11 before job 10 commits, and the database adds a backstop of its own:
``lease_keys.key`` is a primary key, so no two leases can ever hold one key row.

Statements are few and set-based because over a network each one costs client time and each
decision a round trip. A claim reads everything it decides on in one statement (expired leases,
held keys, learned scopes, the head of the queue and its likely batch, the fencing token, and
with a linger the age of each resource's burst), then writes and commits in a second round
trip (a backend may first try the common case where the rows are, :meth:`SqlStore._claim_head`,
and hand over to these rules in the same transaction). Heartbeat, complete and release decide
nothing in Python: each is one round trip whose
*guard* (the lease row exists with this fence and is unexpired — and, for a completion, every
result names a job running under it) is checked inside the transaction before its writes, and
a false guard writes nothing (see :meth:`SqlStore._once`). Only then, on the rare refused
path, is the store read again to say why. A claim may carry a completion (``completing``): its
guarded writes then run first in the claim's transaction (:meth:`Tx.guarded`), and a false
guard rolls the whole claim back. Events ride in the transaction of the state change they
belong to (a claim writes its ``claimed`` events itself), so they cost no commit of their own.

Expired leases are reaped lazily at the start of every claim (takeover): their unfinished jobs
go back to the queue at their original position with ``attempts + 1``, and the lease row is
deleted, so the old fence can no longer complete, heartbeat or release anything.

Time: every expiry decision and stored timestamp uses one "now" per statement, ``_now_sql``.
With a clock injected it is that clock's reading, passed as a parameter (tests, ``ManualClock``,
and SQLite, whose processes share one machine's clock). A backend may fall back to the database
server's clock when no clock is injected (PostgreSQL does): workers on many machines then agree
on when a lease expires whatever their own clocks say.
"""

from __future__ import annotations

import json
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from armguard.clock import Clock, SystemClock, isoformat
from armguard.coordinator.model import (
    Completion,
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
from armguard.coordinator.submit_group import SubmitGroup
from armguard.events import EventType, JobEvent

__all__ = [
    "SCHEMA_VERSION",
    "GuardRefused",
    "SqlStore",
    "Statement",
    "StoreError",
    "Tx",
    "WriteLock",
    "split_statements",
    "submit_group",
]

WriteLock = Literal["exclusive", "shared", "head", "none"]
Statement = tuple[str, Sequence[Any]]

SCHEMA_VERSION = 2
"""1: the first schema. 2: ``job_keys``, an index of each job's lock keys other than its own
resource (filled by a trigger on ``jobs``), so a claim finds the queued jobs that share a key
with its batch without reading the ones that do not."""

_JOB_COLUMNS = (
    "seq, id, spec, state, attempts, outcome, kind, reason, result, created_at, updated_at"
)
_CANDIDATE_COLUMNS = "seq, resource_key, keys, barrier, id, spec"
# The head is usually among the first queued jobs; a long blocked backlog is read in growing
# pages so neither case pays for the other.
_FIRST_PAGE = 8
_LAST_PAGE = 512
_SUBMIT_ROWS = 1000  # jobs per submit_many transaction, and per group commit
# At most this many older queued jobs that share a key with a batch are read per claim; a batch
# that would reach past the last one read is cut there (see _near_sql).
_CROSSED_LIMIT = 256
# Stores on the system clock (each may hold its own instance) stamp group commits with this one.
_SYSTEM_CLOCK = SystemClock()
# A burst has ended once it has been silent for this many of its own mean gaps (see _settled).
_QUIET_GAPS = 4.0


class StoreError(RuntimeError):
    """The store itself cannot serve: unreachable, unwritable, or a schema from the future."""


class GuardRefused(Exception):
    """A guard of :meth:`Tx.guarded` was false: the transaction must end unwritten."""


class Tx(Protocol):
    """One statement runner inside a transaction; SQL uses ``?`` placeholders."""

    committed: bool
    """Set by :meth:`finish`: the transaction is over, and nothing more may run in it."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement that returns rows, and its rows: over a network one round trip, which
        also carries whatever :meth:`run` queued."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A statement whose result is not needed: over a network it travels with the next
        round trip."""
        ...

    def guarded(self, statements: Sequence[Statement], guard: Statement) -> None:
        """Run ``statements`` (which do not read one another's writes) only if ``guard`` (an
        SQL boolean expression and its parameters) holds; otherwise raise
        :class:`GuardRefused` — over a network with the next round trip, like :meth:`run` —
        and the caller lets the transaction roll back."""
        ...

    def finish(
        self, statements: Sequence[Statement], *, together: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run these statements, then commit: a transaction's last call. Returns the last
        statement's rows. Over a network it is one round trip, commit included. ``together``:
        no statement reads what another one writes, so the backend may run them as one (see
        :meth:`SqlStore._once`)."""
        ...


class SqlStore(ABC):
    """A :class:`~armguard.coordinator.store.Store` over any engine that provides a ``Tx``."""

    def __init__(self, clock: Clock | None) -> None:
        """``clock`` None: "now" is the database server's (only where ``_now_sql`` falls back
        to it)."""
        self._clock = clock
        self._near_text = _near_sql(self._in_query)

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def _write(
        self, lock: WriteLock = "exclusive", notify: Change | None = None
    ) -> AbstractContextManager[Tx]:
        """A transaction that may take several round trips (claims). ``exclusive`` ones are
        serialised against every other locked one store-wide; ``shared`` ones only against
        exclusive ones; ``head``, a claim's try of :meth:`_claim_head`, is shared as well, and
        the backend orders it after every submit that drew an older seq; ``none`` takes no
        store lock (a backend with a single writer may serialise everything anyway).
        ``notify`` as for :meth:`_once`."""

    @abstractmethod
    def _once(
        self,
        statements: Sequence[Statement],
        *,
        lock: WriteLock,
        guard: Statement | None = None,
        notify: Change | None = None,
        together: bool = False,
    ) -> list[tuple[Any, ...]] | None:
        """One transaction in one round trip: take ``lock``, then check ``guard`` (an SQL
        boolean expression and its parameters) and only if it holds run ``statements`` and
        commit. Returns the last statement's rows, or None when the guard was false — and
        then nothing was written. ``notify`` announces the commit to other processes' watchers
        where the backend has a channel for it (:meth:`_changed` tells this process's).

        ``together``: no statement reads what another one (or the guard) writes, so a backend
        may run the guard and the statements as one statement, all on one snapshot (PostgreSQL:
        data-modifying CTEs); each statement then costs neither a message nor a snapshot of
        its own. The rows returned are then an empty list."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Tx]:
        """Autocommit statements that only read."""

    _fence_expr: str | None
    """An SQL expression drawing the next fencing token with a claim's first statement, or
    None to draw it with ``_next_fence`` once a batch is chosen."""

    _now_sql: str = "?"
    """The SQL for "now" in seconds since the epoch, with one ``?`` that :meth:`_now` fills:
    the injected clock's reading, or None where the backend then reads the server's clock."""

    _rows_per_insert: int | None = 200
    """How many rows one INSERT of :meth:`_insert` carries (None: any number)."""

    _submit_group: SubmitGroup[tuple[str, list[str], JobSpec], Job]
    """Where this process's concurrent submits to the same store meet (one per file, or per
    server and schema); a backend sets it before its first submit (see :func:`submit_group`)."""

    @abstractmethod
    def _changed(self, change: Change) -> None:
        """Called after such a transaction commits: wake this process's idle workers."""

    def _claim_turn(self) -> AbstractContextManager[object]:
        """Held around a whole :meth:`claim`, its Python included: none by default, a
        process-wide turn where the backend's claims gain nothing from running side by
        side (SQLite's)."""
        return nullcontext()

    def _claim_head_lock(self) -> WriteLock | None:
        """The store lock under which this claim first tries :meth:`_claim_head`, or None to
        go straight to the rules (a backend without it, or one skipping it this time)."""
        return None

    def _claim_head(
        self, tx: Tx, owner: str, ttl: float, max_batch: int, lines: list[tuple[str, str]]
    ) -> tuple[bool, Lease | None]:
        """A backend's claim of the common case decided where the rows are, in one round trip
        (see :mod:`.postgres_store`), in ``tx`` under :meth:`_claim_head_lock`'s lock. It
        writes ``lines``, commits ``tx`` with its call (so that no client holds a lock across
        a round trip) and says whether it decided — (True, the lease or None for an empty
        queue) — or (False, None) having written nothing else, and the claim goes on with the
        rules here in a transaction of its own."""
        raise NotImplementedError

    def _jobs_reached(self, seq: int) -> None:  # noqa: B027 (optional hook: SQLite has none)
        """The newest job's seq, as a submit or a claim's live-state read saw it: how large
        the jobs table has grown, for backends whose statement plans depend on that."""

    def _ready(self) -> None:  # noqa: B027 (optional hook)
        """Raise the store's error if this handle cannot run a transaction now (it was closed,
        or it cannot reach its database): checked before a submit joins a group."""

    @abstractmethod
    def watch_changes(self, timeout: float) -> Change | None:
        """See :meth:`Store.watch_changes`. Backends wake within milliseconds for their own
        process and report other processes' commits as soon as they can observe them."""

    @abstractmethod
    def _next_fence(self, tx: Tx) -> int:
        """Draw the next store-wide fencing token."""

    @abstractmethod
    def close(self) -> None: ...

    # -- how values travel (a backend with arrays overrides these: one parameter per list
    # keeps the SQL text the same whatever the list's length, so the server can prepare it) --

    def _in(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the SQL and its parameters."""
        return f"{column} IN ({', '.join('?' for _ in values)})", list(values)

    def _rows_cte(
        self, name: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Statement:
        """A common table expression ``name(columns) AS (…)`` holding ``rows``."""
        marks = ", ".join("?" for _ in columns)
        return (
            f"{name}({', '.join(columns)}) AS (VALUES {', '.join(f'({marks})' for _ in rows)})",
            [v for row in rows for v in row],
        )

    def _insert(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> list[Statement]:
        """INSERT statements for ``rows``, which get the table's identity in this order."""
        marks = "(" + ", ".join("?" for _ in columns) + ")"
        size = self._rows_per_insert or max(1, len(rows))
        out: list[Statement] = []
        for at in range(0, len(rows), size):
            chunk = rows[at : at + size]
            out.append(
                (
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                    + ", ".join(marks for _ in chunk),
                    [v for row in chunk for v in row],
                )
            )
        return out

    def _in_query(self, column: str, query: str) -> str:
        """``column`` is one of the values ``query`` returns."""
        return f"{column} IN ({query})"

    def _near(self) -> str:
        """This backend's :func:`_near_sql`."""
        return self._near_text

    def _lock_from(self, lock: WriteLock, notify: Change | None) -> Statement | None:
        """A FROM item that takes ``lock`` (and announces ``notify``) inside the statement
        reading from it, before that statement writes anything: for a transaction that is that
        one statement and decides nothing on what it reads (its snapshot may be older than the
        lock). None where the backend takes its locks otherwise."""
        return None

    def _now(self) -> float | None:
        return self._clock.now() if self._clock is not None else None

    def _insert_events(self, lines: Sequence[tuple[str, str]]) -> list[Statement]:
        return self._insert("events", ("job_id", "line"), ("text", "text"), lines) if lines else []

    def _lease_valid(self, lease: Lease, now: float | None) -> Statement:
        """The guard of heartbeat, complete and release: the lease row exists with this fence
        and has not expired. That it still holds all its keys follows, so it is not checked
        again: ``lease_keys`` rows are written only by the claim that writes their lease row,
        in its transaction, and deleted only with it (``ON DELETE CASCADE``; nothing updates
        them), and ``lease_keys.key`` is a primary key, so while this lease row exists no
        other lease can hold one of its keys. Lease ids are random and a lease's fence never
        changes; the fence is compared anyway, as the token the caller presents."""
        if not isinstance(lease, Lease):
            raise TypeError(f"expected a Lease, not {type(lease).__name__}")
        return (
            "EXISTS (SELECT 1 FROM leases WHERE id = ? AND fence = ?"
            f" AND expires_at > {self._now_sql})",
            [lease.id, lease.fence, now],
        )

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        return self.submit_many([spec])[0]

    def submit_many(self, specs: Sequence[JobSpec]) -> list[Job]:
        """Queue several jobs in submission order, in one transaction per
        ``_SUBMIT_ROWS`` (every spec is checked before anything is written); the jobs in the
        order given. A used idempotency key (also one used earlier in ``specs``) returns the
        job that has it, unchanged."""
        if isinstance(specs, JobSpec) or not isinstance(specs, Iterable):
            raise TypeError("specs must be a sequence of JobSpec")
        encoded = [_encode_spec(spec) for spec in specs]
        jobs: list[Job] = []
        for at in range(0, len(encoded), _SUBMIT_ROWS):
            jobs += self._submit_rows(encoded[at : at + _SUBMIT_ROWS])
        return jobs

    def _submit_rows(self, encoded: Sequence[tuple[str, list[str], JobSpec]]) -> list[Job]:
        # Concurrent submits of this process to the same store commit together (see
        # ``submit_group``); the group's clock stamps them, so only same-clock ones mix.
        clock = self._clock
        key = _SYSTEM_CLOCK if type(clock) is SystemClock else clock
        # A handle that cannot commit must not lead a group: its failure would be everyone's.
        self._ready()
        return self._submit_group.run(key, encoded, self._commit_submits)

    def _commit_submits(
        self, clock: object, encoded: Sequence[tuple[str, list[str], JobSpec]]
    ) -> list[Job]:
        now = cast(Clock, clock).now() if clock is not None else None
        rows = [
            (
                str(uuid.uuid4()),
                spec.resource_id.lower(),
                spec_json,
                json.dumps(keys),
                int(spec.barrier),
                spec.idempotency_key,
            )
            for spec_json, keys, spec in encoded
        ]
        # One statement: a used idempotency key makes it insert nothing (a concurrent submit
        # with the same key waits on the unique index, then inserts nothing), and only then is
        # the existing job read. The lock is shared: submits may run side by side, but never
        # beside a claim, so no claim sees job 11 while job 10 is still being inserted. The
        # statement decides nothing on what it reads, so it may take the lock itself.
        source = self._lock_from("shared", "submitted")
        lock_sql, lock_params = source if source is not None else ("", ())
        columns = "id, resource_key, spec, keys, barrier, idem_key"
        head = f"INSERT INTO jobs ({columns}, state, attempts, result, created_at, updated_at)"
        tail = " ON CONFLICT (idem_key) DO NOTHING RETURNING id, seq, created_at"
        now_sql = self._now_sql
        if len(rows) == 1:  # the common case: plain parameters
            insert: Statement = (
                f"{head} SELECT ?, ?, ?, ?, ?, ?, 'queued', 0, '{{}}', {now_sql}, {now_sql}"
                + (f" FROM {lock_sql}" if source else "")
                + f" WHERE TRUE{tail}",
                (*rows[0], now, now, *lock_params),
            )
        else:
            cte, cte_params = self._rows_cte(
                "v",
                (*columns.split(", "), "ord"),
                ("text", "text", "text", "text", "integer", "text", "integer"),
                [(*row, i) for i, row in enumerate(rows)],
            )
            insert = (
                f"WITH {cte} {head} SELECT {columns}, 'queued', 0, '{{}}', {now_sql}, {now_sql}"
                + " FROM v"
                + (f", {lock_sql}" if source else "")
                + f" WHERE TRUE ORDER BY v.ord{tail}",
                (*cte_params, now, now, *lock_params),
            )
        if source is None:
            inserted = self._once([insert], lock="shared", notify="submitted")
        else:
            inserted = self._once([insert], lock="none")
        made = {job_id: (int(seq), float(created)) for job_id, seq, created in inserted or ()}
        if made:
            self._changed("submitted")
            self._jobs_reached(max(seq for seq, _ in made.values()))
        existing: dict[str, Job] = {}
        # Only a used idempotency key keeps a row out (ON CONFLICT (idem_key) DO NOTHING).
        taken = [str(row[5]) for row in rows if row[0] not in made]
        if taken:
            in_keys, key_params = self._in("idem_key", sorted(set(taken)), "text")
            with self._read() as tx:
                found = tx.rows(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {in_keys}", key_params)
            existing = {job.spec.idempotency_key or "": job for job in map(_job, found)}
        jobs: list[Job] = []
        for row, (spec_json, _, _) in zip(rows, encoded, strict=True):
            if row[0] not in made:
                jobs.append(existing[str(row[5])])
                continue
            seq, created = made[row[0]]
            jobs.append(
                Job(
                    id=row[0],
                    seq=seq,
                    spec=_decode_spec(spec_json),
                    state=JobState.QUEUED,
                    created_at=created,
                    updated_at=created,
                )
            )
        return jobs

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

    def history(self, resource_id: str, before_seq: int, limit: int = 200) -> list[Job]:
        _require_text(resource_id, "resource_id")
        _require_positive_int(limit, "limit")
        with self._read() as tx:
            found = tx.rows(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE resource_key = ? AND state = 'done'"
                " AND seq < ? ORDER BY seq DESC LIMIT ?",
                (resource_id.lower(), int(before_seq), limit),
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
        completing: Completion | None = None,
    ) -> Lease | None:
        with self._claim_turn():
            _require_text(owner, "owner")
            _require_ttl(ttl)
            _require_positive_int(max_batch, "max_batch")
            _require_linger(linger, linger_max)
            lines = _event_lines(events)
            finishing = self._completion(completing) if completing is not None else None
            try:
                lease = self._claim(
                    _Ask(owner, ttl, max_batch, linger, linger_max),
                    lines=lines,
                    finishing=finishing,
                )
            except GuardRefused:  # only a carried completion has a guard
                assert completing is not None
                assert finishing is not None
                raise self._refused(completing.lease, finishing.ids) from None
            if finishing is not None and finishing.ids:
                self._changed("freed")
            return lease

    def _claim(
        self, ask: _Ask, *, lines: list[tuple[str, str]], finishing: _Finishing | None
    ) -> Lease | None:
        notify: Change | None = "freed" if finishing is not None and finishing.ids else None
        head = self._claim_head_lock() if ask.linger <= 0 else None
        with self._write(head or "exclusive", notify=notify) as tx:
            if finishing is not None:
                # Before the live-state read, which then sees the completed jobs' keys free.
                tx.guarded(finishing.statements, finishing.guard)
            if head is None:
                return self._claim_by_rules(tx, ask, lines)
            decided, lease = self._claim_head(tx, ask.owner, ask.ttl, ask.max_batch, lines)
            if decided:
                return lease
        # The backend committed its try with the call (and the carried completion with it):
        # the rules decide under the exclusive lock, in a transaction of their own.
        with self._write() as tx:
            return self._claim_by_rules(tx, ask, [])

    def _claim_by_rules(self, tx: Tx, ask: _Ask, lines: list[tuple[str, str]]) -> Lease | None:
        """The claim rules, in ``tx``: the live state, the head, its followers, the lease."""
        owner, ttl, max_batch = ask.owner, ask.ttl, ask.max_batch
        linger, linger_max = ask.linger, ask.linger_max
        live = self._live_state(tx, max_batch - 1, linger > 0)
        now = live.now
        settled = None
        if linger > 0:

            def settled(cand: _Candidate) -> bool:
                return _settled(
                    tx, cand, now, linger=linger, linger_max=linger_max, bursts=live.bursts
                )

        found = _find_head(tx, live.held, live.scopes, live.page, settled)
        if found is None:
            if lines:
                tx.finish(self._insert_events(lines))
            return None
        head, passed = found
        batch = [head]
        if not head.barrier and max_batch > 1:
            # The followers were read for the first queued job; usually that is the head.
            page = live.page
            known = live.followers if page and page[0].seq == head.seq else None
            batch += _coalesce(
                tx,
                head,
                near_sql=self._near(),
                held=live.held,
                passed=passed,
                scopes=live.scopes,
                room=max_batch - 1,
                known=known,
            )
        keys = sorted(set().union(*(c.effective(live.scopes) for c in batch)))
        fence = live.fence if live.fence is not None else self._next_fence(tx)
        lease_id = str(uuid.uuid4())
        expires_at = now + ttl
        # The claimed events ride in the claim: a lease never exists without its record.
        ts = isoformat(now)
        lines += [(c.job_id, _claimed_line(ts, c, fence, keys, len(batch))) for c in batch]
        in_batch, seqs = self._in("seq", [c.seq for c in batch], "bigint")
        updated = tx.finish(
            [
                *self._insert_events(lines),
                (
                    "INSERT INTO leases (id, owner, fence, keys, expires_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (lease_id, owner, fence, json.dumps(keys), expires_at, now),
                ),
                *self._insert(
                    "lease_keys",
                    ("key", "lease_id", "fence"),
                    ("text", "text", "bigint"),
                    [(key, lease_id, fence) for key in keys],
                ),
                (
                    "UPDATE jobs SET state = 'running', lease_id = ?, updated_at = ?"
                    f" WHERE {in_batch} RETURNING {_JOB_COLUMNS}",
                    (lease_id, now, *seqs),
                ),
            ],
            # The key rows' foreign key to the lease row is checked at the end.
            together=True,
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
        now = self._now()
        done = self._once(
            [
                (
                    f"UPDATE leases SET expires_at = {self._now_sql} + ? WHERE id = ?",
                    (now, ttl, lease.id),
                ),
                # The lease and its running jobs (it has one at least: a lease ends with its
                # last running job); a LEFT JOIN all the same.
                (
                    "SELECT l.owner, l.keys, l.expires_at, "
                    + ", ".join(f"j.{c.strip()}" for c in _JOB_COLUMNS.split(","))
                    + " FROM leases l LEFT JOIN jobs j ON j.lease_id = l.id"
                    " AND j.state = 'running' WHERE l.id = ? ORDER BY j.seq",
                    (lease.id,),
                ),
            ],
            lock="exclusive",
            guard=self._lease_valid(lease, now),
        )
        if not done:
            raise self._refused(lease)
        owner, keys, expires_at = done[0][:3]
        return Lease(
            id=lease.id,
            owner=str(owner),
            keys=tuple(json.loads(keys)),
            fence=lease.fence,
            expires_at=float(expires_at),
            jobs=tuple(_job(r[3:]) for r in done if r[3] is not None),
        )

    def complete(
        self, lease: Lease, results: Sequence[JobResult], events: Sequence[JobEvent] = ()
    ) -> None:
        finishing = self._completion(Completion(lease, results, events))
        done = self._once(
            finishing.statements,
            lock="exclusive",
            guard=finishing.guard,
            notify="freed" if finishing.ids else None,
            together=True,
        )
        if done is None:
            raise self._refused(lease, finishing.ids)
        if finishing.ids:
            self._changed("freed")

    def _completion(self, completion: Completion) -> _Finishing:
        """A completion's guard and writes, which read none of one another's writes."""
        lease = completion.lease
        encoded = _encode_results(completion.results)
        lines = _event_lines(completion.events)
        now = self._now()
        guard_sql, guard_params = self._lease_valid(lease, now)
        statements: list[Statement] = self._insert_events(lines)
        ids = [e[0] for e in encoded]
        if encoded:
            # Every result names a job running under this lease, or nothing is recorded.
            in_ids, id_params = self._in("id", ids, "text")
            guard_sql += (
                " AND (SELECT COUNT(*) FROM jobs WHERE lease_id = ? AND state = 'running'"
                f" AND {in_ids}) = ?"
            )
            guard_params = [*guard_params, lease.id, *id_params, len(ids)]
            # All results in one statement (a lone one skips the VALUES table SQLite would
            # materialise); the guard has already matched each id to a running job.
            if len(encoded) == 1:
                job_id, outcome, kind, reason, result = encoded[0]
                statements.append(
                    (
                        "UPDATE jobs SET state = 'done', outcome = ?, kind = ?, reason = ?,"
                        f" result = ?, updated_at = {self._now_sql} WHERE id = ?",
                        (outcome, kind, reason, result, now, job_id),
                    )
                )
            else:
                cte, cte_params = self._rows_cte(
                    "v", ("id", "outcome", "kind", "reason", "result"), ("text",) * 5, encoded
                )
                statements.append(
                    (
                        f"WITH {cte} UPDATE jobs SET state = 'done', outcome = v.outcome,"
                        " kind = v.kind, reason = v.reason, result = v.result,"
                        f" updated_at = {self._now_sql} FROM v WHERE jobs.id = v.id",
                        [*cte_params, now],
                    )
                )
            # The lease ends with its last running jobs (their keys cascade with it): when no
            # job but these runs under it. Read before the update, so it runs beside it.
            statements.append(
                (
                    "DELETE FROM leases WHERE id = ? AND NOT EXISTS (SELECT 1 FROM jobs"
                    f" WHERE lease_id = ? AND state = 'running' AND NOT ({in_ids}))",
                    (lease.id, lease.id, *id_params),
                )
            )
        return _Finishing(statements, (guard_sql, guard_params), ids)

    def release(self, lease: Lease, events: Sequence[JobEvent] = ()) -> None:
        lines = _event_lines(events)
        now = self._now()
        done = self._once(
            [
                *self._insert_events(lines),
                (
                    f"UPDATE jobs SET state = 'queued', lease_id = NULL, updated_at = {self._now_sql}"
                    " WHERE lease_id = ? AND state = 'running'",
                    (now, lease.id),
                ),
                ("DELETE FROM leases WHERE id = ?", (lease.id,)),  # its lease_keys cascade
            ],
            lock="exclusive",
            guard=self._lease_valid(lease, now),
            notify="freed",
            together=True,
        )
        if done is None:
            raise self._refused(lease)
        self._changed("freed")

    def _refused(self, lease: Lease, results: Sequence[str] = ()) -> Exception:
        """Why a guard refused ``lease``, read after the fact: a lease that has lost its fence
        never regains it and a job never starts running again under an old lease, so the
        reason found now is a reason that held then. LeaseLost, or ValueError for results
        naming jobs that do not run under the (still valid) lease."""
        with self._read() as tx:
            found = tx.rows(
                "SELECT l.owner, l.fence, l.keys, l.expires_at,"
                f" CASE WHEN l.expires_at <= {self._now_sql} THEN 1 ELSE 0 END,"
                " (SELECT COUNT(*) FROM lease_keys k WHERE k.lease_id = l.id AND k.fence = l.fence),"
                " j.id FROM leases l LEFT JOIN jobs j ON j.lease_id = l.id AND j.state = 'running'"
                " WHERE l.id = ?",
                (self._now(), lease.id),
            )
            if not found:
                return LeaseLost(
                    lease.id,
                    lease.fence,
                    "it has ended (completed, released, or expired and taken over)",
                )
            _, fence, keys_json, expires_at, expired, still_held, _ = found[0]
            if int(fence) != lease.fence:
                return LeaseLost(lease.id, lease.fence, f"the store holds it under fence {fence}")
            if int(expired):
                return LeaseLost(
                    lease.id, lease.fence, f"it expired at {isoformat(float(expires_at))}"
                )
            keys: list[str] = json.loads(keys_json)
            if int(still_held) != len(keys):  # cannot happen while the schema holds (above)
                in_keys, key_params = self._in("key", keys, "text")
                holders = dict(
                    tx.rows(f"SELECT key, fence FROM lease_keys WHERE {in_keys}", key_params)
                )
                lost = sorted(k for k in keys if holders.get(k) != lease.fence)
                return LeaseLost(
                    lease.id, lease.fence, f"its keys {', '.join(lost)} are held by other fences"
                )
        running = {r[6] for r in found}
        stray = sorted(set(results) - running)
        if stray:
            return ValueError(f"jobs {', '.join(stray)} are not running under lease {lease.id}")
        return LeaseLost(lease.id, lease.fence, "the store refused its fence")

    # -- events and learned scopes -----------------------------------------------------------

    def append_events(self, events: Sequence[JobEvent]) -> None:
        lines = _event_lines(events)
        if not lines:
            return
        # A write like any other: on SQLite it queues on the process's write gate (an
        # autocommit INSERT would go around it, through SQLite's sleeping busy handler, and
        # look to this process's watchers like another process's commit).
        self._once(self._insert_events(lines), lock="none", together=True)

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
        now = self._now()
        self._once(
            [
                (
                    "INSERT INTO learned_scopes (key, other, reason, seen, first_seen, last_seen)"
                    f" VALUES (?, ?, ?, 1, {self._now_sql}, {self._now_sql})"
                    " ON CONFLICT (key, other) DO UPDATE SET seen = learned_scopes.seen + 1,"
                    " reason = excluded.reason, last_seen = excluded.last_seen",
                    (key, other, reason, now, now),
                )
            ],
            lock="none",
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

    # -- the claim's one read ----------------------------------------------------------------

    def _live_state(self, tx: Tx, room: int, bursts: bool) -> _LiveState:
        """Reap expired leases (takeover) and return "now", the keys still held, the learned
        scopes, (if the backend draws it here) a fencing token, the first page of the queue,
        the rows :func:`_coalesce` reads for the first queued job (at most ``room``
        followers) and, with ``bursts``, the oldest and newest queued job of each resource on
        the first page (linger) — all read in one statement: a claim's cost is mostly round
        trips. The page and the followers are None when the reap requeued jobs, which they
        could not have seen."""
        now_param = self._now()
        live = _LiveState()
        page: list[_Candidate] = []
        followers: list[tuple[Any, ...]] = []
        expired: list[str] = []
        holders: list[tuple[str, str]] = []
        # Columns: a tag, then _CANDIDATE_COLUMNS' shapes (a number, four texts and an
        # integer), then two floats; the first branch types them (PostgreSQL resolves a
        # union's column types pair by pair, so untyped NULLs there would become text).
        nulls5 = "NULL, NULL, NULL, NULL, NULL"
        draw = (
            f" UNION ALL SELECT 'f', {self._fence_expr}, {nulls5}, NULL, NULL"
            if self._fence_expr
            else ""
        )
        burst = (
            " UNION ALL SELECT 'l', NULL, resource_key, NULL, COUNT(*), NULL, NULL,"
            " MIN(created_at), MAX(created_at) FROM jobs WHERE state = 'queued'"
            " AND resource_key IN (SELECT resource_key FROM page) GROUP BY resource_key"
            if bursts
            else ""
        )
        for tag, *row in tx.rows(
            "WITH head AS (SELECT seq, resource_key, barrier FROM jobs WHERE state = 'queued'"
            f" ORDER BY seq LIMIT 1), {self._near()},"
            f" page AS (SELECT {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued'"
            f" ORDER BY seq LIMIT {_FIRST_PAGE})"
            " SELECT 'n', CAST((SELECT MAX(seq) FROM jobs) AS BIGINT), CAST(NULL AS TEXT),"
            " CAST(NULL AS TEXT),"
            " CAST(NULL AS INTEGER), CAST(NULL AS TEXT), CAST(NULL AS TEXT),"
            f" {self._now_sql}, CAST(NULL AS DOUBLE PRECISION)"
            f" UNION ALL SELECT 'x', NULL, id, NULL, NULL, NULL, NULL, NULL, NULL FROM leases"
            f" WHERE expires_at <= {self._now_sql}"
            " UNION ALL SELECT 'h', NULL, key, lease_id, NULL, NULL, NULL, NULL, NULL"
            " FROM lease_keys"
            " UNION ALL SELECT 's', NULL, key, other, NULL, NULL, NULL, NULL, NULL"
            " FROM learned_scopes"
            f" UNION ALL SELECT 'q', {_CANDIDATE_COLUMNS}, NULL, NULL FROM page"
            f" UNION ALL SELECT 'c', {_CANDIDATE_COLUMNS}, NULL, NULL FROM same"
            f" UNION ALL SELECT 'b', {_CROSSED_COLUMNS}, NULL, NULL FROM jobs"
            " WHERE seq IN (SELECT seq FROM crossed)" + draw + burst,
            (room, now_param, now_param),
        ):
            if tag == "q":
                page.append(_Candidate(row[:6]))
            elif tag in ("c", "b"):
                followers.append((int(tag == "c"), *row[:6]))
            elif tag == "h":
                holders.append((row[1], row[2]))
            elif tag == "s":
                live.scopes.setdefault(row[1], set()).add(row[2])
                live.scopes.setdefault(row[2], set()).add(row[1])
            elif tag == "x":
                expired.append(row[1])
            elif tag == "l":
                live.bursts[row[1]] = (float(row[6]), float(row[7]), int(row[3]))
            elif tag == "f":
                live.fence = int(row[0])
            else:  # "n"
                live.now = now_param if now_param is not None else float(row[6])
                if row[0] is not None:
                    self._jobs_reached(int(row[0]))
        if expired:
            in_expired, lease_ids = self._in("lease_id", expired, "text")
            tx.run(
                "UPDATE jobs SET state = 'queued', lease_id = NULL, attempts = attempts + 1,"
                f" updated_at = ? WHERE state = 'running' AND {in_expired}",
                (live.now, *lease_ids),
            )
            in_leases, lease_ids = self._in("id", expired, "text")
            tx.run(f"DELETE FROM leases WHERE {in_leases}", lease_ids)  # keys cascade
            gone = set(expired)
            live.held = {k for k, lease_id in holders if lease_id not in gone}
            live.page = live.followers = None
            live.bursts = {}
            return live
        live.held = {key for key, _ in holders}
        # Both were read in seq order; the union does not promise to keep it.
        live.page = sorted(page, key=lambda c: c.seq)
        live.followers = sorted(followers, key=lambda r: int(r[1]))
        return live


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
            # Most jobs lock their own resource alone: no JSON to parse for them.
            if self.keys_json == f'["{self.resource_key}"]':
                self._keys = [self.resource_key]
            else:
                self._keys = json.loads(self.keys_json)
        return self._keys

    def effective(self, scopes: Mapping[str, set[str]]) -> set[str]:
        """The job's keys plus every key learned to depend on one of them (either direction)."""
        keys = self.keys
        out = set(keys)
        for key in keys:
            out |= scopes.get(key, set())
        return out


@dataclass(frozen=True, slots=True)
class _Ask:
    """What a claim asks for, as the caller gave it."""

    owner: str
    ttl: float
    max_batch: int
    linger: float
    linger_max: float


class _Finishing:
    """A completion as statements: its writes, its guard, and the job ids it settles."""

    __slots__ = ("guard", "ids", "statements")

    def __init__(self, statements: list[Statement], guard: Statement, ids: list[str]) -> None:
        self.statements = statements
        self.guard = guard
        self.ids = ids


class _LiveState:
    """What a claim's first statement read (see :meth:`SqlStore._live_state`)."""

    __slots__ = ("bursts", "fence", "followers", "held", "now", "page", "scopes")

    def __init__(self) -> None:
        self.now = 0.0
        self.held: set[str] = set()
        self.scopes: dict[str, set[str]] = {}
        self.fence: int | None = None
        self.page: list[_Candidate] | None = []
        self.followers: list[tuple[Any, ...]] | None = []
        self.bursts: dict[str, tuple[float, float, int]] = {}


# The claim's reach past its head: CTEs to follow a ``head(seq, resource_key, barrier)`` CTE,
# with one parameter (how many followers), defining
#   same    the queued jobs after the head on its resource, in seq order (none after a barrier);
#   near    their keys (the resource, and the others from ``job_keys``) and the keys learned
#           to depend on those. An older job stops a follower only when it holds a key that
#           follower locks — its resource is one of the follower's effective keys, or the
#           follower's resource is one of its own (see _coalesce) — and each of those puts one
#           of the older job's own keys (resource or other) in ``near``. Jobs that share a key
#           only further out commute with the batch, so they are not read;
#   crossed the seqs of the other queued jobs between the head and the last follower holding
#           one of ``near`` as their resource or as another key, the first _CROSSED_LIMIT.
# So a claim reads the jobs that can stop its batch, never the whole queue between the head and
# its last follower: jobs on a thousand unrelated resources in between cost nothing. Both
# lookups are index ranges (``jobs_queued_resource``, the ``job_keys`` primary key), driven by
# the few keys of ``near`` (``in_set`` says "one of a subquery's values" so that the backend's
# planner probes the index per value rather than scanning the range between head and follower).
def _near_sql(in_set: Callable[[str, str], str]) -> str:
    return (
        f"same AS (SELECT {_CANDIDATE_COLUMNS} FROM jobs WHERE state = 'queued'"
        " AND resource_key = (SELECT resource_key FROM head) AND seq > (SELECT seq FROM head)"
        " AND (SELECT barrier FROM head) = 0 ORDER BY seq LIMIT ?),"
        " own AS (SELECT resource_key AS key FROM head"
        f" UNION SELECT key FROM job_keys WHERE {in_set('seq', 'SELECT seq FROM same')}),"
        " near AS (SELECT key FROM own"
        " UNION SELECT other FROM learned_scopes WHERE key IN (SELECT key FROM own)"
        " UNION SELECT key FROM learned_scopes WHERE other IN (SELECT key FROM own)),"
        " crossed AS (SELECT seq FROM ("
        "SELECT seq FROM jobs WHERE state = 'queued'"
        # The head's own resource is never crossed: its jobs are the followers.
        " AND "
        + in_set(
            "resource_key",
            "SELECT key FROM near WHERE key <> (SELECT resource_key FROM head)",
        )
        + " AND seq > (SELECT seq FROM head) AND seq < (SELECT MAX(seq) FROM same)"
        " UNION SELECT k.seq FROM job_keys k JOIN jobs j ON j.seq = k.seq"
        f" WHERE {in_set('k.key', 'SELECT key FROM near')} AND k.seq > (SELECT seq FROM head)"
        " AND k.seq < (SELECT MAX(seq) FROM same) AND j.state = 'queued'"
        " AND j.resource_key <> (SELECT resource_key FROM head)"
        f") AS u ORDER BY seq LIMIT {_CROSSED_LIMIT})"
    )


# A crossed job is only compared by its keys: its id and spec are not read.
_CROSSED_COLUMNS = "seq, resource_key, keys, barrier, CAST(NULL AS TEXT), CAST(NULL AS TEXT)"


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


def _settled(
    tx: Tx,
    head: _Candidate,
    now: float,
    *,
    linger: float,
    linger_max: float,
    bursts: Mapping[str, tuple[float, float, int]],
) -> bool:
    """Debounce: a resource's queued jobs are claimed once the burst they arrived in has gone
    quiet — a burst of writers becomes one ARM write — or once the oldest has waited
    ``linger_max``, so a steady stream cannot hold them back for ever. The head is the oldest
    queued job on its resource (an older one would share its key and block it).

    *Quiet* adapts to the burst: ``_QUIET_GAPS`` times its mean gap between arrivals, between
    ``linger / 10`` and ``linger``. Forty tag writers landing within 50 ms are claimed a few
    milliseconds after the last instead of a whole ``linger`` later, which is what the wait
    would otherwise cost on a write that takes ARM less than the linger; a lone job, or jobs
    arriving slowly, wait the full ``linger`` for company.

    ``bursts`` holds (oldest, newest, count) for the resources of the first page, read with the
    live state; others are read here."""
    found = bursts.get(head.resource_key)
    if found is None:
        oldest, newest, count = tx.rows(
            "SELECT MIN(created_at), MAX(created_at), COUNT(*) FROM jobs WHERE state = 'queued'"
            " AND resource_key = ?",
            (head.resource_key,),
        )[0]
        if oldest is None:
            return True
        found = (float(oldest), float(newest), int(count))
    oldest, newest, count = found
    quiet = linger
    if count >= 2:
        gap = (newest - oldest) / (count - 1)
        quiet = min(linger, max(linger / 10, _QUIET_GAPS * gap))
    return now - newest >= quiet or now - oldest >= linger_max


def _coalesce(
    tx: Tx,
    head: _Candidate,
    *,
    near_sql: str,
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
    them that may share a key with them (tagged 1 and 0; see :func:`_near_sql`), ordered by seq —
    unless ``known`` already holds those rows. When that read stopped at its limit, the batch
    stops at the last job it saw: what lies beyond was not looked at."""
    found = known
    if found is None:
        found = tx.rows(
            "WITH head AS (SELECT CAST(? AS BIGINT) AS seq, CAST(? AS TEXT) AS resource_key,"
            f" 0 AS barrier), {near_sql}"
            f" SELECT 1, {_CANDIDATE_COLUMNS} FROM same"
            f" UNION ALL SELECT 0, {_CROSSED_COLUMNS} FROM jobs"
            " WHERE seq IN (SELECT seq FROM crossed) ORDER BY 2",
            (head.seq, head.resource_key, room),
        )
    crossed = [int(row[1]) for row in found if not int(row[0])]
    horizon = max(crossed) if len(crossed) >= _CROSSED_LIMIT else None
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
        if horizon is not None and cand.seq > horizon:
            break
        if any(
            resource in eff or cand.resource_key in their
            for key in eff
            for resource, their in older.get(key, ())
        ):
            break
        taken.append(cand)
    return taken


# -- encoding ----------------------------------------------------------------------------------


def _encode_spec(spec: JobSpec) -> tuple[str, list[str], JobSpec]:
    """Validate a spec and return its JSON, its normalised (case-folded, unique) keys and the
    spec."""
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
    if spec.baseline is not None and not isinstance(spec.baseline, Mapping):
        raise ValueError("a baseline must be the JSON object the writer read")
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
    if spec.baseline is not None:
        data["baseline"] = dict(spec.baseline)
    return _dumps(data, "intent"), keys, spec


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
        baseline=data.get("baseline"),
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


def submit_group(leaders: int = 1) -> SubmitGroup[tuple[str, list[str], JobSpec], Job]:
    """A new meeting point for one store target's concurrent submits, with up to ``leaders``
    group commits running at once."""
    return SubmitGroup(_SUBMIT_ROWS, _shared_submit_error, leaders=leaders)


def _shared_submit_error(exc: BaseException) -> BaseException:
    """What a submit whose group commit failed in another thread raises."""
    if isinstance(exc, StoreError):
        return StoreError(str(exc))
    return StoreError(f"the commit that held this submit failed: {exc!r}")
