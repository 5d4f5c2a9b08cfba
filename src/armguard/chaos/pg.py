"""A throw-away PostgreSQL cluster, and the faults a database server has.

Started from the system binaries in a temporary directory (as the ``postgres`` user when run
as root: PostgreSQL refuses to run as root), listening on 127.0.0.1 on a free port with trust
authentication. ``restart_immediate`` is a crash (``pg_ctl restart -m immediate``: no
checkpoint, every connection cut); ``terminate_backends`` drops every client connection. The
chaos run uses it as shipped (durable); the test suite and the benchmarks start theirs through
``tests/pg_server.py``, which may turn durability off for speed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

__all__ = ["PG_BIN", "PgCluster", "PgUnavailable"]

PG_BIN = Path(os.environ.get("ARMGUARD_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "armguard_chaos"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One cluster with one database. ``durable=False`` turns fsync off: for tests, which need
    speed and not crash safety; a crash restart must not lose a commit a worker was told of, so
    the chaos run keeps the default."""

    def __init__(
        self,
        *,
        durable: bool = True,
        database: str = DATABASE,
        bin_dir: Path = PG_BIN,
        prefix: str = "armguard-chaos-pg-",
    ) -> None:
        self.durable = durable
        self.database = database
        self.bin_dir = bin_dir
        self.prefix = prefix
        self.url = ""
        self.admin_url = ""
        self._dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def _data(self) -> str:
        assert self._dir is not None
        return str(self._dir / "data")

    @property
    def _log(self) -> str:
        assert self._dir is not None
        return str(self._dir / "server.log")

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def _run(self, *args: str, timeout: float = 120) -> None:
        try:
            proc = subprocess.run(
                self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{Path(args[0]).name}: {exc}") from None
        if proc.returncode != 0:
            raise PgUnavailable(
                f"{Path(args[0]).name} failed ({proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        log = Path(self._log) if self._dir is not None else None
        if log is None or not log.exists():
            return ""
        return "\nserver log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", self._data, "-l", self._log, *args)

    def start(self) -> str:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (self.bin_dir / tool).exists():
                raise PgUnavailable(f"no PostgreSQL binaries: {self.bin_dir / tool} does not exist")
        if self._as_postgres and shutil.which("runuser") is None:
            raise PgUnavailable("running as root but runuser is missing")
        self._dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        if self._as_postgres:
            shutil.chown(self._dir, user="postgres", group="postgres")
        self._run(
            str(self.bin_dir / "initdb"), "-D", self._data, "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        sock = self._dir / "sock"
        self._run("mkdir", str(sock))
        port = _free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={sock}",
            "-c max_connections=200",
        ]
        if self.durable:
            options += ["-c fsync=on", "-c synchronous_commit=on"]
        else:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._pg_ctl("-o", " ".join(options), "-w", "-t", "60", "start")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database}")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{self.database}"
        return self.url

    def restart_immediate(self) -> None:
        """A database crash: immediate shutdown (no checkpoint, recovery on start), restart."""
        self._pg_ctl("-m", "immediate", "-w", "-t", "60", "restart")

    def restart(self) -> None:
        """A clean restart (same port and options), e.g. to load new server settings."""
        self._pg_ctl("-w", "-t", "60", "restart")

    def terminate_backends(self) -> int:
        """Drop every client connection to the database; how many were dropped."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def stop(self) -> None:
        """Stop exactly this cluster (``pg_ctl stop -m fast`` on its data directory) and
        delete it."""
        if self._dir is None:
            return
        try:
            if (Path(self._data) / "postmaster.pid").exists():
                subprocess.run(
                    self._cmd(
                        str(self.bin_dir / "pg_ctl"), "-D", self._data, "-m", "fast", "-w", "stop"
                    ),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
