"""The embedded store: one SQLite file shared by every worker process on one machine.

* WAL mode, so readers (``jobs``, ``events``) never block the writer and vice versa.
* Every state change is a ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write lock
  up front, so a claim reads and writes one stable state and two processes can never interleave
  inside a claim; the busy timeout makes the others queue for that lock instead of failing.
* ``synchronous=NORMAL``: in WAL mode a commit survives any process crash; only a power loss
  or OS crash can drop the last commits — and that kills every worker using this file too, so
  no worker can act on a lease the file forgot. Lost work is re-run and rebased on live state.
* One connection per thread: ``sqlite3`` connections must not be shared across threads.
* Fencing tokens come from one counter row, incremented inside the claim transaction.
* ``foreign_keys`` on, so a lease's key rows go with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from armguard.clock import Clock, SystemClock
from armguard.coordinator.sql_store import (
    SCHEMA_VERSION,
    SqlStore,
    StoreError,
    Tx,
    WriteLock,
    split_statements,
)

__all__ = ["SqliteStore"]

_BUSY_TIMEOUT_S = 30.0
_MIN_SQLITE = (3, 35, 0)

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
INSERT INTO counters (name, value) VALUES ('fence', 0) ON CONFLICT (name) DO NOTHING
"""


class _SqliteTx:
    __slots__ = ("_conn", "_path", "committed")

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self.committed = False

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def finish(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
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
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        with self._write() as tx:
            for stmt in split_statements(_DDL):
                tx.rows(stmt)
            found = tx.rows("SELECT version FROM armguard_schema")
            if not found:
                tx.rows("INSERT INTO armguard_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif int(found[0][0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {found[0][0]}; this armguard"
                    f" understands up to {SCHEMA_VERSION}: upgrade armguard"
                )

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=_BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")  # lease_keys cascade with their lease
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, lock: WriteLock = "exclusive") -> Iterator[_SqliteTx]:
        # SQLite has one writer at a time whatever ``lock`` asks; IMMEDIATE takes that lock
        # before the first read, so a claim's reads cannot go stale before its writes (no
        # SQLITE_BUSY upgrade).
        conn = self._conn()
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
        if tx.committed:
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"the SQLite store {self.path} could not commit: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[_SqliteTx]:
        yield _SqliteTx(self._conn(), self.path)

    # Drawn once a batch is chosen: an in-process statement costs nothing, and an empty poll
    # then writes nothing.
    _fence_expr = None

    def _next_fence(self, tx: Tx) -> int:
        found = tx.rows(
            "UPDATE counters SET value = value + 1 WHERE name = 'fence' RETURNING value"
        )
        return int(found[0][0])

    def close(self) -> None:
        with self._all_lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
