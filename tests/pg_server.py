"""A real PostgreSQL 15 for tests and benchmarks, started from the system binaries.

``ARMGUARD_TEST_POSTGRES_URL`` set → that server is used and nothing is started. Otherwise
``PgServer.start()`` makes a throw-away cluster in a temporary directory (owned by the
``postgres`` user when running as root, since PostgreSQL refuses to run as root), listening on
127.0.0.1 on a free port with trust authentication, creates a database and returns its URL.
``stop()`` stops exactly that cluster (``pg_ctl stop -m fast`` on its data directory).

Import it from any test package::

    from pg_server import PgServer, PgUnavailable, external_url
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from armguard.chaos.pg import PG_BIN as _DEFAULT_BIN
from armguard.chaos.pg import PgCluster, PgUnavailable

__all__ = ["PG_BIN", "PgServer", "PgUnavailable", "external_url"]

PG_BIN = Path(os.environ.get("ARMGUARD_TEST_PG_BIN", str(_DEFAULT_BIN)))
ENV_URL = "ARMGUARD_TEST_POSTGRES_URL"
DATABASE = "armguard_test"


def external_url() -> str | None:
    url = os.environ.get(ENV_URL, "").strip()
    return url or None


class PgServer(PgCluster):
    """The chaos run's cluster with the test suite's defaults: ``durable=False`` turns fsync
    off (tests need speed, not crash safety); benchmarks pass ``durable=True`` to measure the
    server as shipped."""

    def __init__(self, durable: bool = False) -> None:
        super().__init__(durable=durable, database=DATABASE, bin_dir=PG_BIN, prefix="armguard-pg-")

    def preload(self, library: str) -> None:
        """Restart the cluster with ``library`` in ``shared_preload_libraries`` (benchmarks:
        ``pg_stat_statements``); same port and options."""
        if self._dir is None or not self.url:
            raise PgUnavailable("the cluster is not running")
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{library}'")
        self.restart()


def served_pg_url() -> Iterator[str]:
    """The body of a session ``pg_url`` fixture: ``ARMGUARD_TEST_POSTGRES_URL`` if set, else
    a server started here and stopped after. Skips without PostgreSQL, except under
    ``CI=true``, where a green run must cover both stores."""
    import pytest

    url = external_url()
    if url is not None:
        yield url
        return
    server = PgServer()
    try:
        url = server.start()
    except PgUnavailable as exc:
        server.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL and none could be started: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield url
    finally:
        server.stop()
