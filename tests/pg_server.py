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
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PG_BIN", "PgServer", "PgUnavailable", "external_url"]

PG_BIN = Path(os.environ.get("ARMGUARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
ENV_URL = "ARMGUARD_TEST_POSTGRES_URL"
DATABASE = "armguard_test"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def external_url() -> str | None:
    url = os.environ.get(ENV_URL, "").strip()
    return url or None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One throw-away cluster. ``durable=False`` turns fsync off: tests need speed, not
    crash safety; benchmarks pass ``durable=True`` to measure the server as shipped."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.url: str | None = None
        self._dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            log = self._log_tail()
            raise PgUnavailable(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()}{log}"
            )

    def _log_tail(self) -> str:
        log = self._dir / "server.log" if self._dir else None
        if log is None or not log.exists():
            return ""
        return "\nserver log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])

    def start(self) -> str:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                raise PgUnavailable(f"no PostgreSQL binaries: {PG_BIN / tool} does not exist")
        if self._as_postgres and shutil.which("runuser") is None:
            raise PgUnavailable("running as root but runuser is missing")
        self._dir = Path(tempfile.mkdtemp(prefix="armguard-pg-"))
        if self._as_postgres:
            shutil.chown(self._dir, user="postgres", group="postgres")
        data, sock = self._dir / "data", self._dir / "sock"
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self._run("mkdir", str(sock))
        port = _free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={sock}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self._dir / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._create_database(port)
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        return self.url

    def _create_database(self, port: int) -> None:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def preload(self, library: str) -> None:
        """Restart the cluster with ``library`` in ``shared_preload_libraries`` (benchmarks:
        ``pg_stat_statements``); same port and options."""
        if self._dir is None or self.url is None:
            raise PgUnavailable("the cluster is not running")
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{library}'")
        data, log = str(self._dir / "data"), str(self._dir / "server.log")
        # With a log file, as at start: otherwise the server keeps our output pipe open.
        self._run(str(PG_BIN / "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "restart")

    def stop(self) -> None:
        if self._dir is None:
            return
        data = self._dir / "data"
        try:
            if (data / "postmaster.pid").exists():
                subprocess.run(
                    self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self.url = None


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
