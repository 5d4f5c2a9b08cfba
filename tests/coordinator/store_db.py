"""One fresh store database for a test: an SQLite file or a PostgreSQL schema. A module of its
own, not the conftest: test modules import it by name, and ``conftest`` names a module in
every test package."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from armguard.clock import Clock
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore


@dataclass
class StoreDb:
    """One fresh database (an SQLite file, or a PostgreSQL schema) that tests can open many
    store objects on, as separate workers would."""

    backend: str
    location: str  # the SQLite file or the PostgreSQL URL
    schema: str = ""
    opened: list[SqlStore] = field(default_factory=list)
    destroyed: bool = False

    def open(self, clock: Clock) -> SqlStore:
        store: SqlStore
        if self.backend == "sqlite":
            store = SqliteStore(self.location, clock=clock)
        else:
            store = PostgresStore(self.location, clock=clock, schema=self.schema)
        self.opened.append(store)
        return store

    def url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.location}"
        return f"{self.location}?schema={self.schema}"

    def destroy(self) -> None:
        if self.destroyed:
            return
        self.destroyed = True
        for store in self.opened:
            store.close()
        if self.backend == "sqlite":
            shutil.rmtree(Path(self.location).parent, ignore_errors=True)
        else:
            with psycopg.connect(self.location, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
