"""A PostgreSQL store outlives its server's restarts, and a worker outlives a server that is
down, starting up or shutting down when it starts.

These tests restart, stop and promote a server, so they run on a throw-away cluster of their
own (never on ``ARMGUARD_TEST_POSTGRES_URL``, nor on the session's shared one), made durable so
that an immediate restart (a crash, to the server) keeps every commit that returned.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock, SystemClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import Job, JobResult, JobSpec, JobState, Lease, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import StoreError
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import EmulatorHandle, emulator
from pg_server import PG_BIN, PgServer, PgUnavailable

pytestmark = pytest.mark.postgres

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
NET_API = "2024-05-01"
# ARM answers at once: these tests are about the store's outages, not ARM's.
FAST = {
    "Microsoft.Network/virtualNetworks": {
        "durations": {"create": 0.0, "update": 0.0, "delete": 0.0, "default": 0.0}
    }
}


class Cluster:
    """The module's own server, and what the tests do to it. Its settings (port, sockets) are
    written to ``postgresql.auto.conf`` once, so a plain ``pg_ctl start`` after a stop comes
    back on the same address, as ``restart`` does."""

    def __init__(self, server: PgServer) -> None:
        assert server.url is not None
        self.server = server
        self.url = server.url
        # The tests stop and start the server apart (a restart is not enough), with the
        # cluster's directory and its runner (as the postgres user when the tests run as root).
        base = server._dir
        assert base is not None
        self.data = base / "data"
        self.log = base / "server.log"
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in ("listen_addresses", "port", "unix_socket_directories", "max_connections"):
                value = conn.execute(f"SHOW {name}").fetchone()
                assert value is not None
                conn.execute(f"ALTER SYSTEM SET {name} = '{value[0]}'")

    def pg_ctl(self, *args: str) -> None:
        cmd = self.server._cmd(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"pg_ctl {' '.join(args)}: {proc.stderr}"

    def restart(self, mode: str = "immediate") -> None:
        self.pg_ctl("-m", mode, "-w", "-t", "60", "restart")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def ensure_up(self) -> None:
        if not self.running():
            self.pg_ctl("-w", "-t", "60", "start")

    def refused(self) -> str | None:
        """Why a new connection is refused now, or None when one is accepted."""
        try:
            with psycopg.connect(self.url, connect_timeout=5):
                return None
        except psycopg.OperationalError as exc:
            return str(exc)

    @contextmanager
    def refusing(self, state: str) -> Iterator[None]:
        """Hold the server where it refuses every new connection, then bring it back:

        * ``stopped``: no server (connection refused), as between a restart's stop and start;
        * ``recovering``: the postmaster is up and replaying, and answers SQLSTATE 57P03 ("not
          accepting connections") — what it answers while starting up, held open here by
          making it a standby without hot standby until it is promoted;
        * ``shutting_down``: a smart shutdown waiting for an open session answers 57P03
          ("the database system is shutting down") until that session ends.
        """
        if state == "stopped":
            self.pg_ctl("-m", "immediate", "-w", "stop")
            assert "Connection refused" in (self.refused() or "")
            yield
            self.pg_ctl("-w", "-t", "60", "start")
        elif state == "recovering":
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET hot_standby = off")
            subprocess.run(self.server._cmd("touch", str(self.data / "standby.signal")), check=True)
            self.restart("immediate")
            assert "not accepting connections" in (self.refused() or "")
            yield
            self.pg_ctl("-w", "-t", "60", "promote")
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM RESET hot_standby")
        elif state == "shutting_down":
            held = psycopg.connect(self.url, autocommit=True)
            stop = subprocess.Popen(
                self.server._cmd(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "smart", "-w", "stop"
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 30
                while "shutting down" not in (self.refused() or ""):
                    assert time.monotonic() < deadline, self.refused()
                    time.sleep(0.02)
                yield
                # The smart shutdown waits for every session: end them, and it completes.
                held.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            finally:
                held.close()
                assert stop.wait(60) == 0
            self.pg_ctl("-w", "-t", "60", "start")
        else:
            raise AssertionError(state)
        assert self.refused() is None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    server = PgServer(durable=True)
    try:
        server.start()
    except PgUnavailable as exc:
        server.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL and none could be started: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield Cluster(server)
    finally:
        server.stop()


@pytest.fixture
def schema(cluster: Cluster) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    cluster.ensure_up()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def opened() -> Iterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for store in stores:
        store.close()


def spec(name: str, idem: str | None = None) -> JobSpec:
    resource = f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"
    return JobSpec(
        resource_id=resource,
        intent={"tags": {"n": name}},
        writer="writer-a",
        lock_keys=(resource.lower(),),
        idempotency_key=idem,
    )


def claim(store: PostgresStore) -> Lease:
    lease = store.claim("w1", 30.0)
    assert lease is not None, "expected a claimable job"
    return lease


def applied(lease: Lease) -> list[JobResult]:
    return [JobResult(job.id, Outcome.APPLIED) for job in lease.jobs]


@contextmanager
def served_vnet() -> Iterator[EmulatorHandle]:
    """An emulator answering at once, holding the VNet the jobs tag."""
    with emulator(clock=SystemClock(), type_settings=FAST) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        body = {
            "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        assert setup.request("PUT", VNET, api_version=NET_API, body=body).ok
        yield arm


def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- a handle reconnects -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_a_handle_works_after_a_server_restart(
    cluster: Cluster, schema: str, opened: list[PostgresStore], mode: str
) -> None:
    clock = ManualClock()
    store = PostgresStore(cluster.url, clock=clock, schema=schema)
    opened.append(store)
    before = store.submit(spec("before"))
    lease = claim(store)  # a lease held across the restart, by the same handle
    cluster.restart(mode)

    # Nothing that committed was lost, and every kind of call works on the same handle.
    assert store.get(before.id) == lease.jobs[0]
    lease = store.heartbeat(lease, 30.0)
    store.complete(lease, applied(lease))
    after = store.submit(spec("after"))
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [after.id]
    store.complete(lease, applied(lease))
    assert store.queue_depth() == 0
    assert [j.outcome for j in store.jobs()] == [Outcome.APPLIED, Outcome.APPLIED]
    assert store.claim("w1", 30.0) is None

    # Twice in a row: a reconnected handle is as good as a new one.
    cluster.restart(mode)
    again = store.submit(spec("again"))
    assert store.get(again.id) == again


def test_a_watch_works_after_a_server_restart(
    cluster: Cluster, schema: str, opened: list[PostgresStore]
) -> None:
    clock = ManualClock()
    watcher = PostgresStore(cluster.url, clock=clock, schema=schema)
    opened.append(watcher)
    assert watcher.watch_changes(0.0) == "freed"  # listening now; before, nothing was heard
    assert watcher.watch_changes(0.0) is None
    cluster.restart("immediate")

    # Whatever committed while it was not listening went unannounced: keys may be free.
    assert watcher.watch_changes(0.0) == "freed"
    assert watcher.watch_changes(0.0) is None
    other = PostgresStore(cluster.url, clock=clock, schema=schema)
    opened.append(other)
    other.submit(spec("one"))
    assert watcher.watch_changes(30.0) == "submitted"
    lease = claim(other)
    other.complete(lease, applied(lease))
    assert watcher.watch_changes(30.0) == "freed"


def test_a_submit_in_flight_when_the_server_dies_fails_and_is_not_run_again(
    cluster: Cluster, schema: str, opened: list[PostgresStore]
) -> None:
    """A submit whose connection died under it may or may not have committed; the store does
    not send it again on the new connection (without an idempotency key that could queue it
    twice). It raises, and the caller decides: its idempotency key makes a resubmit safe."""
    clock = ManualClock()
    store = PostgresStore(cluster.url, clock=clock, schema=schema)
    opened.append(store)
    store.submit(spec("first"))
    blocker = psycopg.connect(cluster.url)
    try:
        # Holds the submit at the server, inside its transaction, until the restart kills both.
        blocker.execute(f'LOCK TABLE "{schema}".jobs IN ACCESS EXCLUSIVE MODE')
        errors: list[BaseException] = []
        made: list[Job] = []

        def run() -> None:
            try:
                made.append(store.submit(spec("in-flight", idem="in-flight-1")))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        with psycopg.connect(cluster.url, autocommit=True) as probe:
            until(
                lambda: bool(
                    probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    ).fetchone()
                    == (1,)
                ),
                "the submit to wait for the table lock",
            )
        cluster.restart("immediate")
        thread.join(60)
        assert not thread.is_alive()
    finally:
        blocker.close()
    assert not made
    assert len(errors) == 1
    assert isinstance(errors[0], StoreError), repr(errors[0])
    assert "PostgreSQL" in str(errors[0])

    # The next call reconnects; the failed submit was not re-sent, and its key makes the
    # caller's own retry safe however often it is made.
    assert [j.spec.resource_id.rsplit("/", 1)[1] for j in store.jobs()] == ["first"]
    retried = store.submit(spec("in-flight", idem="in-flight-1"))
    assert store.submit(spec("in-flight", idem="in-flight-1")) == retried
    assert [j.spec.resource_id.rsplit("/", 1)[1] for j in store.jobs()] == ["first", "in-flight"]


def test_a_closed_handle_stays_closed(cluster: Cluster, schema: str) -> None:
    store = PostgresStore(cluster.url, clock=ManualClock(), schema=schema)
    assert store.watch_changes(0.0) == "freed"
    store.close()
    cluster.restart("immediate")
    with pytest.raises(StoreError, match="closed"):
        store.submit(spec("late"))
    with pytest.raises(StoreError, match="closed"):
        store.queue_depth()
    with pytest.raises(StoreError, match="closed"):
        store.watch_changes(0.0)


# -- a worker waits for its store ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["stopped", "recovering", "shutting_down"])
def test_a_worker_started_while_the_server_refuses_waits_then_drains(
    cluster: Cluster, schema: str, opened: list[PostgresStore], state: str
) -> None:
    """The worker's first opens (every loop's and the watcher's) meet a server that refuses
    connections; they wait as in any outage, and once it is back the worker drains the queue,
    and then outlives an immediate restart under it."""
    with served_vnet() as arm:

        def client(who: str) -> ArmClient:
            return ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url)

        store = PostgresStore(cluster.url, schema=schema)  # server time, as in production
        opened.append(store)
        first = [
            submit(store, VNET, TagsIntent({"a": "1"}), "alice"),
            submit(store, VNET, TagsIntent({"b": "2"}), "bob"),
        ]

        def open_store() -> PostgresStore:
            handle = PostgresStore(cluster.url, schema=schema)
            opened.append(handle)
            return handle

        worker = Worker(
            open_store,
            client,
            SystemClock(),
            settings=WorkerSettings(concurrency=2, lease_ttl=60.0, idle_poll=0.05),
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                worker.run_forever()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        try:
            with cluster.refusing(state):
                thread.start()
                until(lambda: worker.stats.store_reconnects >= 2, "both loops to meet the outage")
                assert not errors
                assert thread.is_alive()

            def done(jobs: list[Job]) -> Callable[[], bool]:
                return lambda: all(
                    (found := store.get(j.id)) is not None and found.state is JobState.DONE
                    for j in jobs
                )

            until(done(first), f"the worker to drain the queue: {errors}")
            cluster.restart("immediate")
            second = [submit(store, VNET, TagsIntent({"c": "3"}), "carol")]
            until(done(second), f"the worker to drain the queue after a restart: {errors}")
        finally:
            worker.stop()
            thread.join(60)
        assert not errors
        assert not thread.is_alive()
        for job in first + second:
            found = store.get(job.id)
            assert found is not None
            assert found.outcome is Outcome.APPLIED, found.reason
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        live = setup.request("GET", VNET, api_version=NET_API).body
        assert live["tags"] == {"a": "1", "b": "2", "c": "3"}


def test_the_worker_command_started_while_the_server_is_down_waits_then_drains(
    cluster: Cluster, schema: str, opened: list[PostgresStore]
) -> None:
    """`armguard worker` used to exit at once when its first open failed; it now says the
    store cannot be reached yet and waits (--store-outage), then runs the queue."""
    with served_vnet() as arm:
        store = PostgresStore(cluster.url, schema=schema)
        opened.append(store)
        job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
        url = f"{cluster.url}?schema={schema}"
        cluster.pg_ctl("-m", "immediate", "-w", "stop")
        try:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "armguard.cli.main", "worker", "--store", url),
                    *("--endpoint", arm.base_url, "--until-idle", "--linger", "0"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert proc.stderr is not None
            first = proc.stderr.readline()
            while first.startswith("worker "):
                first = proc.stderr.readline()
            assert first.startswith("WARNING: the store"), first
            assert "cannot be reached yet" in first
            assert proc.poll() is None  # still running, waiting for the server
        finally:
            cluster.ensure_up()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        done = store.get(job.id)
        assert done is not None
        assert done.outcome is Outcome.APPLIED
