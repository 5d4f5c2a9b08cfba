"""The distributed store: one PostgreSQL database shared by workers on many machines.

Concurrency choice: every state-changing transaction (claim, heartbeat, complete, release)
first takes one transaction-scoped advisory lock for the store's schema
(``pg_advisory_xact_lock``), then runs the shared claim rules of :mod:`.sql_store` at READ
COMMITTED. A submit takes the same lock in *shared* mode (``pg_advisory_xact_lock_shared``):
submits run side by side, but no claim runs while any submit is between drawing its ``seq``
and committing, which is all the lock is there for (see below). Why not ``FOR UPDATE SKIP
LOCKED`` or SERIALIZABLE:

* The claim rules are a property of the whole queue, not of one row: a job is claimable only if
  no *older queued* job shares a key with it. SKIP LOCKED hides exactly the rows another
  claimer is looking at, so a second claimer would skip job 10 and take job 11 on the same key
  (a FIFO violation) unless it re-read the skipped rows — which is the global lock again.
* Identity values are handed out before commit, so without a lock a claim can see job 11
  committed while job 10 (same key) is still in flight and run 11 first. A claim holds the
  lock exclusively, so every ``seq`` it can see is committed (or rolled back).
* SERIALIZABLE would be correct, but every claim reads the queue head, so under contention
  almost every pair of concurrent claims conflicts; that is a retry storm of our own making —
  the very pattern this project exists to stop against ARM.
* Cost, measured (``benchmarks/store_overhead.py --statement-timings``): with one client the
  lock is free — the store-wide lock and no lock at all gave the same per-statement times —
  because it travels in the pipeline with the transaction's first statement. What a job costs
  is three durable commits (submit, claim, complete) and two reads that decide (the claim's
  live state, the completion's fence check). Under contention, a claim holds the lock for two
  round trips, so the store serialises hundreds of claims per second while ARM admits about
  ten sustained writes per second per principal. Completions and heartbeats keep the
  exclusive lock: a claim reaps expired leases, and a completion racing that reap would mark
  done a job the reap just returned to the queue. The lock is released by commit, rollback,
  or the server when a client's connection dies, so a crashed worker never leaves it held.

Statements go through libpq's pipeline mode (see ``_PgTx``): BEGIN and the lock ride with a
transaction's first read, and its final writes with COMMIT, so a claim costs two round trips
(three when the head is not the oldest queued job, more for a long blocked backlog), a
completion two, a submit one and an event append one. Events ride with claims, completions
and releases (one commit, not two).

``synchronous_commit`` is the server's unless the store URL opts in (see :mod:`.stores`).

The database also enforces the key exclusion by itself: ``lease_keys.key`` is a primary key, so
no bug in the rules could make two leases hold one key. Fencing tokens come from a sequence.
Events and learned scopes are appended without the lock; they do not affect claims' order.

One connection per store object, guarded by a lock; open one store per worker thread (or
share one and accept that its calls take turns).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import psycopg

from armguard.clock import Clock, SystemClock
from armguard.coordinator.sql_store import (
    SCHEMA_VERSION,
    SqlStore,
    StoreError,
    Tx,
    WriteLock,
    split_statements,
)
from armguard.coordinator.store import Change
from armguard.coordinator.stores import SYNCHRONOUS_COMMIT, redact

__all__ = ["PostgresStore"]


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


_LOCK_SQL = {
    "exclusive": "SELECT pg_advisory_xact_lock(%s)",
    "shared": "SELECT pg_advisory_xact_lock_shared(%s)",
}
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INIT_LOCK = "armguard:schema-init"

_DDL = """
CREATE TABLE IF NOT EXISTS armguard_schema (version INTEGER NOT NULL);
CREATE SEQUENCE IF NOT EXISTS armguard_fence;
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    resource_key TEXT NOT NULL,
    spec TEXT NOT NULL,
    keys TEXT NOT NULL,
    barrier INTEGER NOT NULL,
    idem_key TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    kind TEXT,
    reason TEXT,
    result TEXT NOT NULL DEFAULT '{}',
    lease_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_queued_resource ON jobs (resource_key, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running_lease ON jobs (lease_id) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    fence BIGINT NOT NULL UNIQUE,
    keys TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
CREATE TABLE IF NOT EXISTS lease_keys (
    key TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
    fence BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_keys_lease ON lease_keys (lease_id);
CREATE TABLE IF NOT EXISTS events (
    pos BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, pos);
CREATE TABLE IF NOT EXISTS learned_scopes (
    key TEXT NOT NULL,
    other TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen INTEGER NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key, other)
)
"""


class _PgTx:
    """Runs statements in libpq pipeline mode: a statement whose result is not needed yet
    (BEGIN, the store-wide lock, a finishing write, COMMIT) is queued and travels with the
    next one whose rows are, so a transaction costs a round trip per *decision*, not per
    statement, while keeping server-side binding and psycopg's prepared statements."""

    __slots__ = ("_conn", "_cur", "_pipe", "committed")

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        cur: psycopg.Cursor[Any],
        pipe: psycopg.Pipeline | None,
    ) -> None:
        self._conn = conn
        self._cur = cur
        self._pipe = pipe
        self.committed = False

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(sql.replace("?", "%s"), params)
        if self._pipe is not None:
            self._pipe.sync()
        if self._cur.description is None:
            return []
        return self._cur.fetchall()

    def finish(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
        """The statements and COMMIT in one round trip; the rows of the last statement."""
        for sql, params in statements:
            self._cur.execute(sql.replace("?", "%s"), params)
        self._conn.execute("COMMIT")  # its own cursor: ours keeps the last statement's rows
        if self._pipe is not None:
            self._pipe.sync()
        self.committed = True
        if self._cur.description is None:
            return []
        return self._cur.fetchall()


class PostgresStore(SqlStore):
    def __init__(
        self,
        conninfo: str,
        *,
        clock: Clock | None = None,
        schema: str = "armguard",
        synchronous_commit: str | None = None,
    ) -> None:
        """``synchronous_commit`` (None: the server's setting) is an explicit opt-in to
        faster, less durable commits; :mod:`.stores` documents what it risks."""
        super().__init__(clock or SystemClock())
        if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
            raise ValueError(
                f"schema must be a lower-case SQL identifier (letters, digits, _), not {schema!r}"
            )
        if synchronous_commit is not None and synchronous_commit not in SYNCHRONOUS_COMMIT:
            raise ValueError(
                f"synchronous_commit must be one of {', '.join(SYNCHRONOUS_COMMIT)} or None,"
                f" not {synchronous_commit!r}"
            )
        self.schema = schema
        self._conninfo = conninfo  # kept for the LISTEN connection; never printed
        self._notify_channel = f"armguard_{schema}"
        self._listener: psycopg.Connection[Any] | None = None
        self._where = f"{redact(conninfo)} (schema {schema})"
        self._lock = threading.Lock()
        self._lock_key = _lock_key(f"armguard:{schema}")
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {redact(conninfo)}: {exc}") from exc
        try:
            if synchronous_commit is not None:
                with self._guard():
                    self._conn.execute(
                        "SELECT set_config('synchronous_commit', %s, false)", (synchronous_commit,)
                    )
            self._create_schema()
        except BaseException:
            self._conn.close()
            raise
        # The connection stays in pipeline mode: entering and leaving it per transaction would
        # cost a Sync round trip each time.
        self._stack = ExitStack()
        self._pipe = self._stack.enter_context(self._conn.pipeline())

    def _create_schema(self) -> None:
        # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog; the init lock
        # makes workers starting together take turns.
        with self._lock, self._guard(), self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_INIT_LOCK,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            cur.execute("SELECT set_config('search_path', %s, false)", (self.schema,))
            tx = _PgTx(self._conn, cur, None)
            # CREATE INDEX IF NOT EXISTS still locks its table, which would deadlock with
            # running claims; a store whose schema is in place runs no DDL at all.
            exists = tx.rows("SELECT to_regclass('armguard_schema') IS NOT NULL")[0][0]
            found = tx.rows("SELECT version FROM armguard_schema") if exists else []
            if found and int(found[0][0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._where} has store schema version {found[0][0]}; this armguard"
                    f" understands up to {SCHEMA_VERSION}: upgrade armguard"
                )
            if found and int(found[0][0]) == SCHEMA_VERSION:
                return  # the session's search_path persists: set_config(..., false) committed
            for stmt in split_statements(_DDL):
                tx.rows(stmt)
            if not found:
                tx.rows("INSERT INTO armguard_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._conn.closed:
            raise StoreError(f"the store at {self._where} is closed")
        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL at {self._where} failed: {exc}") from exc

    @contextmanager
    def _write(self, lock: WriteLock = "exclusive") -> Iterator[_PgTx]:
        with self._lock, self._guard(), self._conn.cursor() as cur:
            tx = _PgTx(self._conn, cur, self._pipe)
            try:
                cur.execute("BEGIN")  # queued: travels with the first statement
                if lock != "none":
                    cur.execute(_LOCK_SQL[lock], (self._lock_key,))
                yield tx
                if not tx.committed:
                    cur.execute("COMMIT")
                    self._pipe.sync()
            except BaseException:
                if not tx.committed:
                    self._rollback(cur)
                raise

    def _rollback(self, cur: psycopg.Cursor[Any]) -> None:
        # If the connection is gone, the server has rolled back with it.
        with suppress(psycopg.Error):
            cur.execute("ROLLBACK")
            self._pipe.sync()

    @contextmanager
    def _read(self) -> Iterator[_PgTx]:
        with self._lock, self._guard(), self._conn.cursor() as cur:
            yield _PgTx(self._conn, cur, self._pipe)

    # Drawn with the claim's first statement, saving a round trip; a poll that finds nothing
    # leaves a gap in the sequence, which fencing does not mind (tokens only need to grow).
    _fence_expr = "nextval('armguard_fence')"

    def _next_fence(self, tx: Tx) -> int:
        return int(tx.rows("SELECT nextval('armguard_fence')")[0][0])

    def _changed(self, change: Change) -> None:
        pass  # the NOTIFY that rode in the transaction reaches this process's listeners too

    def watch_changes(self, timeout: float) -> Change | None:
        # Every submit, completion and release NOTIFYs the schema's channel in its own
        # transaction, so the notification arrives exactly when its commit is visible.
        try:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=10
                )
                self._listener.execute(f'LISTEN "{self._notify_channel}"')
                # Whatever committed before we listened went unannounced: say keys may be free.
                return "freed"
            for note in self._listener.notifies(timeout=max(0.0, timeout), stop_after=1):
                return "submitted" if note.payload == "submitted" else "freed"
        except psycopg.Error as exc:
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            raise StoreError(f"PostgreSQL at {self._where} failed: {exc}") from exc
        return None

    def drop_schema(self) -> None:
        """Delete this store's schema and everything in it (tests, decommissioning)."""
        with self._lock, self._guard():
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self._pipe.sync()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            if self._conn.closed:
                return
            with suppress(psycopg.Error):
                self._stack.close()  # leave pipeline mode cleanly before closing
            self._conn.close()
