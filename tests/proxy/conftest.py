"""A served emulator and a proxy in front of it, both on the real clock with operations
scaled down (the proxy's waits are real asyncio waits on a served socket), and a PostgreSQL
server for the shared-store tests."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from armguard.clock import SystemClock
from armguard.proxy.guard import Mode
from armguard.proxy.server import RunningProxy, serve_proxy
from armguard.proxy.settings import ProxySettings
from armguard.testing import EmulatorHandle, emulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_helpers import ProxyFactory

from pg_server import served_pg_url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from served_pg_url()


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh schema."""
    schema = f"p_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with emulator(clock=SystemClock(), time_scale=0.02, retry_after_max=1, seed=11) as handle:
        yield handle


@pytest.fixture
def make_proxy(arm: EmulatorHandle, tmp_path: Path) -> Iterator[ProxyFactory]:
    running: list[RunningProxy] = []

    def make(
        mode: Mode = Mode.WARN,
        *,
        store: str | None = None,
        upstream: str | None = None,
        **kw: object,
    ) -> RunningProxy:
        settings = ProxySettings(upstream=upstream or arm.base_url, lost_updates=mode, **kw)  # type: ignore[arg-type]
        proxy = serve_proxy(settings, store=store, events=tmp_path / f"events-{len(running)}.jsonl")
        running.append(proxy)
        return proxy

    yield make
    for proxy in running:
        proxy.stop()
