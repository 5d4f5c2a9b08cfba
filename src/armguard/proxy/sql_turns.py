"""Turns shared by several proxies through a database: SQLite for one machine, PostgreSQL for
many (one proxy per pipeline runner).

Tickets live in two tables, ``proxy_tickets`` (sequence = fencing token, owner, expiry) and
``proxy_ticket_keys`` (one row per key, indexed), so deciding whether a ticket is granted reads
only the rows of its own keys, whatever else is queued. A ticket carries a lease: its proxy
renews it while waiting and while holding; a proxy killed with -9 stops renewing, and its
tickets stop counting once they expire, so no key is held past its lease. Expiry is judged on
the database server's clock with PostgreSQL (proxies on many machines need not agree on the
time) and on the local clock with SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from armguard.clock import Clock
from armguard.proxy.turns import Ticket, TurnLost

__all__ = ["SqlTurns", "TurnStoreError", "open_turns"]


class TurnStoreError(Exception):
    """The store named for shared turns cannot be opened; the message says why."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS proxy_tickets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS proxy_ticket_keys (
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
);
"""

_POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS proxy_tickets (
    seq BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS proxy_ticket_keys (
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (key, seq)
);
"""

# A ticket is blocked while an older one that shares a key is still alive.
_BLOCKED = """
SELECT 1 FROM proxy_ticket_keys mine
JOIN proxy_ticket_keys other ON other.key = mine.key AND other.seq < mine.seq
JOIN proxy_tickets t ON t.seq = other.seq
WHERE mine.seq = {p} AND t.expires > {now}
LIMIT 1
"""


class SqlTurns:
    """:class:`~armguard.proxy.turns.Turns` on a database. Blocking calls run in a thread."""

    def __init__(
        self,
        execute: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
        *,
        placeholder: str,
        now_sql: str,
        now_param: Callable[[], float] | None,
        clock: Clock,
        ttl: float = 30.0,
        poll: tuple[float, float] = (0.005, 0.1),
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._execute = execute
        self._p = placeholder
        self._now_sql = now_sql
        self._now_param = now_param
        self._clock = clock
        self.ttl = ttl
        self._poll = poll
        self._close = close
        self._waiting = 0

    def _now_args(self) -> list[Any]:
        return [self._now_param()] if self._now_param is not None else []

    def _sql(self, text: str) -> str:
        return text.format(p=self._p, now=self._now_sql)

    async def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._execute, self._sql(sql), params)

    async def enqueue(self, keys: tuple[str, ...], owner: str) -> Ticket:
        unique = tuple(sorted(set(keys)))
        seq = await asyncio.to_thread(self._insert, unique, owner)
        return Ticket(seq, unique, owner)

    def _insert(self, keys: tuple[str, ...], owner: str) -> int:
        now = self._now_args()
        expires = f"{self._now_sql} + {self._p}"
        rows = self._execute(
            f"INSERT INTO proxy_tickets (owner, expires) VALUES ({self._p}, {expires}) "
            "RETURNING seq",
            [owner, *now, self.ttl],
        )
        seq = int(rows[0][0])
        for key in keys:
            self._execute(
                f"INSERT INTO proxy_ticket_keys (key, seq) VALUES ({self._p}, {self._p})",
                [key, seq],
            )
        return seq

    async def wait(self, ticket: Ticket) -> None:
        self._waiting += 1
        delay = self._poll[0]
        try:
            while True:
                await self._renew(ticket)
                rows = await self._run(_BLOCKED, [ticket.seq, *self._now_args()])
                if not rows:
                    ticket.granted = True
                    return
                await self._clock.asleep(delay)
                delay = min(self._poll[1], delay * 2)
        except BaseException:
            await asyncio.shield(self.release(ticket))
            raise
        finally:
            self._waiting -= 1

    async def _renew(self, ticket: Ticket) -> bool:
        expires = f"{self._now_sql} + {self._p}"
        now = self._now_args()
        rows = await self._run(
            f"UPDATE proxy_tickets SET expires = {expires} WHERE seq = {{p}} "
            f"AND expires > {{now}} RETURNING seq",
            [*now, self.ttl, ticket.seq, *now],
        )
        return bool(rows)

    async def check(self, ticket: Ticket) -> None:
        if not ticket.granted or not await self._renew(ticket):
            raise TurnLost(f"ticket {ticket.seq} expired before its write was sent")

    async def release(self, ticket: Ticket) -> None:
        await self._run("DELETE FROM proxy_ticket_keys WHERE seq = {p}", [ticket.seq])
        await self._run("DELETE FROM proxy_tickets WHERE seq = {p}", [ticket.seq])
        # Tickets of proxies that died stop counting at expiry; their rows go here, lazily.
        await self._run(
            "DELETE FROM proxy_ticket_keys WHERE seq IN "
            "(SELECT seq FROM proxy_tickets WHERE expires < {now} - 3600)",
            self._now_args(),
        )

    def waiting(self) -> int:
        return self._waiting

    async def close(self) -> None:
        await asyncio.to_thread(self._close)


def _sqlite(path: str, clock: Clock, ttl: float) -> SqlTurns:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(_SQLITE_SCHEMA)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with lock:
            return conn.execute(sql, tuple(params)).fetchall()

    return SqlTurns(
        execute,
        placeholder="?",
        now_sql="?",
        now_param=clock.now,
        clock=clock,
        ttl=ttl,
        close=conn.close,
    )


def _postgres(url: str, clock: Clock, ttl: float) -> SqlTurns:
    state = {"conn": psycopg.connect(url, autocommit=True)}
    state["conn"].execute(_POSTGRES_SCHEMA)
    lock = threading.Lock()

    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with lock:
            for attempt in (0, 1):
                try:
                    cur = state["conn"].execute(sql, tuple(params))
                    return list(cur.fetchall()) if cur.description is not None else []
                except psycopg.OperationalError:
                    # A restarted server or a dropped connection: every statement here is
                    # one autocommit step, so reconnecting and running it again is safe
                    # except for the INSERT, whose ticket may exist twice (the orphan
                    # expires unrenewed).
                    if attempt:
                        raise
                    state["conn"].close()
                    state["conn"] = psycopg.connect(url, autocommit=True)
            raise AssertionError("unreachable")

    return SqlTurns(
        execute,
        placeholder="%s",
        now_sql="extract(epoch from clock_timestamp())::double precision",
        now_param=None,
        clock=clock,
        ttl=ttl,
        close=state["conn"].close,
    )


def open_turns(store: str, clock: Clock, *, ttl: float = 30.0) -> SqlTurns:
    """Tickets in the database ``store`` names: a ``postgresql://`` URL or a SQLite file."""
    try:
        if store.startswith(("postgresql://", "postgres://")):
            return _postgres(store, clock, ttl)
        path = store.removeprefix("sqlite:///").removeprefix("sqlite://")
        return _sqlite(path, clock, ttl)
    except (OSError, sqlite3.Error, psycopg.Error) as err:
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
        raise TurnStoreError(f"cannot open the store '{store}': {reason}") from None
