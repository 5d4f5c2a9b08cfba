"""Fixtures that run every store test against both backends: SQLite and a real PostgreSQL."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import Clock, ManualClock
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.testing import emulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from writer_env import RG, Env

from pg_server import served_pg_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from served_pg_url()


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


def new_db(backend: str, pg: str | None) -> StoreDb:
    if backend == "sqlite":
        return StoreDb("sqlite", str(Path(tempfile.mkdtemp(prefix="armguard-store-")) / "q.db"))
    assert pg is not None
    return StoreDb("postgres", pg, schema=f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_factory(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], StoreDb]]:
    pg = request.getfixturevalue("pg_url") if backend == "postgres" else None
    made: list[StoreDb] = []

    def make() -> StoreDb:
        made.append(new_db(backend, pg))
        return made[-1]

    yield make
    for db in made:
        db.destroy()


@pytest.fixture
def db(db_factory: Callable[[], StoreDb]) -> StoreDb:
    return db_factory()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(db: StoreDb, clock: ManualClock) -> SqlStore:
    return db.open(clock)


@pytest.fixture
def env(db: StoreDb, clock: ManualClock) -> Iterator[Env]:
    """A served emulator holding one resource group, and a store, on one clock."""
    with emulator(clock=clock) as handle:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=handle.base_url)
        store = db.open(clock)
        r = setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"})
        assert r.status in (200, 201), r.text
        yield Env(handle, clock, db, store, setup)
