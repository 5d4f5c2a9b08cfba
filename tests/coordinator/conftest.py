"""Fixtures that run every store test against both backends: SQLite and a real PostgreSQL."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.sql_store import SqlStore
from armguard.testing import emulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_db import StoreDb
from writer_env import RG, Env

from pg_server import served_pg_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from served_pg_url()


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
