"""The embedded store: one SQLite file shared by every worker process on one machine.

* WAL mode, so readers (``jobs``, ``events``) never block the writer and vice versa.
* Every state change is a ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write lock
  up front, so a claim reads and writes one stable state and two processes can never interleave
  inside a claim; the busy timeout makes the others queue for that lock instead of failing.
* ``synchronous=NORMAL``: in WAL mode a commit survives any process crash; only a power loss
  or OS crash can drop the last commits — and that kills every worker using this file too, so
  no worker can act on a lease the file forgot. Lost work is re-run and rebased on live state.
* One connection per thread: ``sqlite3`` connections must not be shared across threads.
* Threads of one process take a per-file lock before ``BEGIN IMMEDIATE``. SQLite's busy handler
  sleeps 1, 2, 5 … 100 ms between retries, so dozens of threads contending for the write lock
  through it waited tens of milliseconds for a lock that is free again after a fraction of
  one; queued on a Python lock they get it the moment it is released. Other processes still
  queue through the busy timeout.
* Threads of one process also take turns at a whole claim, not only at its transaction. A claim
  is store-bound (SQLite has one writer), and its Python before and after the transaction
  (checking arguments, encoding the completion it carries, decoding the lease) run by one
  thread while another held the write lock delayed the holder every time it came back from
  SQLite and waited for the GIL: eight threads drained a queue 21–43 % slower than one; taking
  turns, 3–20 % (``benchmarks/scale.py``, docs/benchmarks.md).
* Fencing tokens come from one counter row, incremented inside the claim transaction.
* Leases run on this machine's clock (the injected one, by default the system clock): every
  process using the file runs on this machine and reads the same clock, so no process can see a
  lease expire earlier or later than another does. (PostgreSQL's workers run on many machines,
  which is why that store takes "now" from the server.) A clock stepped back or forward by hand
  or NTP moves every lease on the machine alike.
* ``foreign_keys`` on, so a lease's key rows go with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from armguard.clock import Clock, SystemClock
from armguard.coordinator.sql_store import (
    SCHEMA_VERSION,
    GuardRefused,
    SqlStore,
    Statement,
    StoreError,
    Tx,
    WriteLock,
    split_statements,
    submit_group,
)
from armguard.coordinator.store import Change

__all__ = ["SqliteStore"]

_BUSY_TIMEOUT_S = 30.0
_MIN_SQLITE = (3, 35, 0)

# How often an idle watcher looks for other processes' commits (``PRAGMA data_version``, a
# read of the shared WAL index: no lock, no I/O).
_WATCH_TICK_S = 0.02


class _File:
    """What every store opened on one database file in this process shares: the write gate,
    and counters of this process's commits — all of them, and the submits and the completions
    or releases among them — that idle watchers wait on; and the group its threads' concurrent
    submits commit in."""

    __slots__ = ("changed", "claims", "commits", "freed", "gate", "submits", "submitted")

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.claims = threading.Lock()
        self.submits = submit_group()
        self.changed = threading.Condition()
        self.commits = 0
        self.submitted = 0
        self.freed = 0

    def bump(self, change: Change) -> None:
        with self.changed:
            if change == "submitted":
                self.submitted += 1
            else:
                self.freed += 1
            self.changed.notify_all()


_files: dict[str, _File] = {}
_files_lock = threading.Lock()


def _file_for(path: Path) -> _File:
    key = os.path.realpath(path)
    with _files_lock:
        found = _files.get(key)
        if found is None:
            found = _files[key] = _File()
        return found


_DDL = """
CREATE TABLE IF NOT EXISTS armguard_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_queued_resource ON jobs (resource_key, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running_lease ON jobs (lease_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_done_resource ON jobs (resource_key, seq) WHERE state = 'done';
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    fence INTEGER NOT NULL UNIQUE,
    keys TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
CREATE TABLE IF NOT EXISTS lease_keys (
    key TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
    fence INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_keys_lease ON lease_keys (lease_id);
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, pos);
CREATE TABLE IF NOT EXISTS learned_scopes (
    key TEXT NOT NULL,
    other TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (key, other)
);
CREATE TABLE IF NOT EXISTS job_keys (
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_keys_seq ON job_keys (seq);
CREATE TRIGGER IF NOT EXISTS jobs_other_keys AFTER INSERT ON jobs
WHEN NEW.keys <> '["' || NEW.resource_key || '"]'
BEGIN
    INSERT OR IGNORE INTO job_keys (key, seq)
    SELECT value, NEW.seq FROM json_each(NEW.keys) WHERE value <> NEW.resource_key;
END;
INSERT INTO counters (name, value) VALUES ('fence', 0) ON CONFLICT (name) DO NOTHING
"""

# Schema 1 → 2: index the other keys of the jobs that can still be claimed (a done job never
# runs again). Jobs submitted from now on are indexed by the trigger, whichever armguard
# submits them.
_MIGRATE_TO_2 = """
INSERT OR IGNORE INTO job_keys (key, seq)
SELECT e.value, j.seq FROM jobs j, json_each(j.keys) e
WHERE j.state <> 'done' AND e.value <> j.resource_key
"""


def _ddl_statements() -> list[str]:
    """The DDL's statements; a trigger's body holds semicolons of its own."""
    head, trigger, tail = re.split(r"(CREATE TRIGGER .*?END;)", _DDL, flags=re.DOTALL)
    return [*split_statements(head), trigger.removesuffix(";"), *split_statements(tail)]


class _SqliteTx:
    __slots__ = ("_conn", "_path", "abandoned", "committed")

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self.committed = False
        self.abandoned = False

    def abandon(self) -> None:
        """Roll back instead of committing when the transaction ends."""
        self.abandoned = True

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def guarded(self, statements: Sequence[Statement], guard: Statement) -> None:
        # In-process statements cost no round trip: the guard is simply checked first.
        if not self.rows(f"SELECT {guard[0]}", guard[1])[0][0]:
            raise GuardRefused
        for sql, params in statements:
            self._conn.execute(sql, params)

    def finish(
        self, statements: Sequence[Statement], *, together: bool = False
    ) -> list[tuple[Any, ...]]:
        last: list[tuple[Any, ...]] = []
        for sql, params in statements:
            last = self.rows(sql, params)
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the SQLite store {self._path} could not commit: {exc}") from exc
        self.committed = True
        return last


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        super().__init__(clock or SystemClock())
        text = str(path)
        if not text or text == ":memory:" or text.startswith("file:"):
            raise ValueError(
                f"the SQLite store needs a file path, not {text!r}: worker processes and threads"
                " share the queue through that file"
            )
        self.path = Path(text)
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a directory; give the path of a database file")
        if not self.path.parent.is_dir():
            raise ValueError(
                f"cannot create {self.path}: directory {self.path.parent} does not exist"
            )
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError(
                f"the SQLite store needs SQLite {'.'.join(map(str, _MIN_SQLITE))} or newer"
                f" (RETURNING, UPDATE … FROM); this Python has {sqlite3.sqlite_version}"
            )
        self._file = _file_for(self.path)
        self._gate = self._file.gate
        self._submit_group = self._file.submits
        self._seen = (self._file.submitted, self._file.freed, self._file.commits)
        self._seen_data: int | None = None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._busy: dict[int, int] = {}  # id(connection) -> calls using it now
        self._all_lock = threading.Lock()
        self._closed = False
        with self._write() as tx:
            try:
                tx.rows("SELECT COUNT(*) FROM json_each('[]')")
            except sqlite3.OperationalError:
                raise StoreError(
                    "the SQLite store needs SQLite's JSON functions (json_each: built in since"
                    f" 3.38, an option before); this Python's SQLite {sqlite3.sqlite_version}"
                    " lacks them"
                ) from None
            found = tx.rows(
                "SELECT version FROM armguard_schema"
                if tx.rows("SELECT 1 FROM sqlite_master WHERE name = 'armguard_schema'")
                else "SELECT 1 WHERE FALSE"
            )
            if found and int(found[0][0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {found[0][0]}; this armguard"
                    f" understands up to {SCHEMA_VERSION}: upgrade armguard"
                )
            for stmt in _ddl_statements():
                tx.rows(stmt)
            if not found:
                tx.rows("INSERT INTO armguard_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif int(found[0][0]) < SCHEMA_VERSION:
                tx.rows(_MIGRATE_TO_2)
                tx.rows("UPDATE armguard_schema SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def _claim_turn(self) -> Iterator[None]:
        # One claim at a time per file in this process (see the module's docstring).
        if not self._file.claims.acquire(timeout=_BUSY_TIMEOUT_S):
            raise StoreError(
                f"the SQLite store {self.path} is unavailable: another thread's claim held it"
                f" for {_BUSY_TIMEOUT_S:.0f} s"
            )
        try:
            yield
        finally:
            self._file.claims.release()

    def _conn(self) -> sqlite3.Connection:
        self._ready()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=_BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
                self._use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")  # lease_keys cascade with their lease
            except BaseException as exc:
                conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
                raise
            with self._all_lock:
                if self._closed:  # closed while this connection was being opened
                    conn.close()
                    self._ready()
                self._all.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for one call. A ``close`` from another thread meanwhile
        leaves it open until the call ends: closing an SQLite connection while a statement
        runs on it crashes the process."""
        conn = self._conn()
        key = id(conn)
        with self._all_lock:
            self._ready()  # closed since _conn() looked?
            self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield conn
        finally:
            with self._all_lock:
                self._busy[key] -= 1
                last = self._busy[key] == 0
                if last:
                    del self._busy[key]
                orphaned = last and self._closed and conn in self._all
                if orphaned:
                    self._all.remove(conn)
            if orphaned:
                conn.close()

    def _ready(self) -> None:
        # Not ``_conn()``: opening a thread's first connection takes the write gate (the WAL
        # check), which the commit this submit would wait behind holds.
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode, once: the mode is stored in the file.

        Switching a new file to WAL takes its exclusive lock and SQLite answers a second
        switcher "database is locked" at once, without its busy handler: threads (a worker
        pool) opening a new file together failed that way. This process's threads take the
        write gate and find WAL already set by the first; another process switching at the
        same moment is waited out, up to the busy timeout.
        """
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        pause = 0.001
        with self._gate:
            while True:
                try:
                    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
                    if mode != "wal":
                        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                    break
                except sqlite3.OperationalError as exc:
                    primary = exc.sqlite_errorcode & 0xFF  # SQLITE_BUSY_RECOVERY is BUSY
                    busy = primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                    if not busy or time.monotonic() + pause > deadline:
                        raise
                    time.sleep(pause)  # another process holds the file's exclusive lock
                    pause = min(pause * 2, 0.05)
        if mode != "wal":
            raise StoreError(
                f"the SQLite store {self.path} cannot use WAL mode (SQLite kept {mode!r}):"
                " put it on a local filesystem that supports shared memory"
            )

    @contextmanager
    def _write(
        self, lock: WriteLock = "exclusive", notify: Change | None = None
    ) -> Iterator[_SqliteTx]:
        # SQLite has one writer at a time whatever ``lock`` asks; IMMEDIATE takes that lock
        # before the first read, so a claim's reads cannot go stale before its writes (no
        # SQLITE_BUSY upgrade).
        with self._use() as conn, self._transaction(conn) as tx:
            yield tx

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[_SqliteTx]:
        if not self._gate.acquire(timeout=_BUSY_TIMEOUT_S):
            raise StoreError(
                f"the SQLite store {self.path} is unavailable: another thread held its write"
                f" lock for {_BUSY_TIMEOUT_S:.0f} s"
            )
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the SQLite store {self.path} is unavailable: {exc}") from exc
            tx = _SqliteTx(conn, self.path)
            try:
                yield tx
            except BaseException:
                if not tx.committed:
                    conn.execute("ROLLBACK")
                raise
            if tx.abandoned:
                conn.execute("ROLLBACK")
            elif not tx.committed:
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    conn.execute("ROLLBACK")
                    raise StoreError(
                        f"the SQLite store {self.path} could not commit: {exc}"
                    ) from exc
            self._file.commits += 1  # under the gate: no other thread of ours is writing
        finally:
            self._gate.release()

    def _once(
        self,
        statements: Sequence[Statement],
        *,
        lock: WriteLock,
        guard: Statement | None = None,
        notify: Change | None = None,
        together: bool = False,
    ) -> list[tuple[Any, ...]] | None:
        # In-process statements cost no round trip: the guard is simply checked first, and
        # ``together`` changes nothing.
        with self._write(lock) as tx:
            if guard is not None and not tx.rows(f"SELECT {guard[0]}", guard[1])[0][0]:
                tx.abandon()
                return None
            last: list[tuple[Any, ...]] = []
            for sql, params in statements:
                last = tx.rows(sql, params)
            return [] if together else last

    @contextmanager
    def _read(self) -> Iterator[_SqliteTx]:
        with self._use() as conn:
            yield _SqliteTx(conn, self.path)

    # Drawn once a batch is chosen: an in-process statement costs nothing, and an empty poll
    # then writes nothing.
    _fence_expr = None

    def _next_fence(self, tx: Tx) -> int:
        found = tx.rows(
            "UPDATE counters SET value = value + 1 WHERE name = 'fence' RETURNING value"
        )
        return int(found[0][0])

    def _changed(self, change: Change) -> None:
        self._file.bump(change)

    def watch_changes(self, timeout: float) -> Change | None:
        # This process's commits arrive through the shared counters at once. Other processes'
        # show as ``data_version`` moving while this process committed nothing (when both
        # moved, an outside commit may hide behind ours until the caller's next poll, which is
        # why workers still poll now and then).
        with self._use() as conn:
            return self._watch(conn, time.monotonic() + max(0.0, timeout))

    def _watch(self, conn: sqlite3.Connection, deadline: float) -> Change | None:
        f = self._file
        while True:
            # Under the gate, the commit count and data_version agree on our own commits; the
            # kind counters follow each commit a moment later (and notify).
            with self._gate:
                data = int(conn.execute("PRAGMA data_version").fetchone()[0])
                commits = f.commits
            with f.changed:
                submitted, freed = f.submitted, f.freed
            now = (submitted, freed, commits)
            seen_submitted, seen_freed, seen_commits = self._seen
            outside = self._seen_data is not None and data != self._seen_data
            self._seen, self._seen_data = now, data
            if freed != seen_freed:
                return "freed"
            if submitted != seen_submitted:
                return "submitted"
            if outside and commits == seen_commits:
                return "freed"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with f.changed:
                if (f.submitted, f.freed) == (submitted, freed):
                    f.changed.wait(min(remaining, _WATCH_TICK_S))

    def close(self) -> None:
        """Close every thread's connection; one in use by a call now closes when that call
        ends (and the call may still finish). Later calls raise StoreError."""
        with self._all_lock:
            self._closed = True
            idle = [c for c in self._all if id(c) not in self._busy]
            self._all = [c for c in self._all if id(c) in self._busy]
        for conn in idle:
            conn.close()
