"""Store overhead per job: submit + claim + complete + events, SQLite and PostgreSQL side by side.

Each scenario drains N jobs the way armguard's worker does: submit every job, then claim (which
records the ``claimed`` events) until the queue is empty, each claim carrying the previous
lease's completion with its ``applied`` events — two commits per cold job (the submit; the
claim with the last completion). ``cold_separate`` completes each lease in a transaction of its
own instead, three commits per cold job: the protocol before claims carried completions, run
beside the others as the reference. ``--submitted-events`` also appends a ``submitted`` event
after each submit on its own (nothing in armguard writes one): the workload this benchmark
priced before events rode with claims and completions, kept for comparing with those numbers.
Scenarios:

* ``cold``: every job on its own resource (no coalescing; one lease per job)
* ``cold_separate``: ``cold`` with every completion a transaction of its own
* ``cold_after_small``: ``cold`` on a connection that first drained 300 jobs (untimed), so its
  statements were planned on a small table: a worker that started on a new store
* ``hot``: every job on one resource (coalesced up to 64 jobs per lease)
* ``hot_barrier``: every job on one resource, all barriers (one lease per job, strict order)
* ``cold_submit_many``: ``cold`` with all jobs queued by one ``submit_many`` call (its
  ``submit_ms`` is that call's time per job)

The scenarios of one backend run interleaved, ``--repeat`` rounds of each on a fresh database,
so that load from elsewhere on a shared machine falls on all of them alike; the fastest run of
each is reported with every run's ms/job beside it.

PostgreSQL: ``ARMGUARD_BENCH_POSTGRES_URL`` (or ``ARMGUARD_TEST_POSTGRES_URL``) if set, else a
throw-away local PostgreSQL 15 with shipped durability settings (fsync on, synchronous_commit
on); leases on the server's clock, as deployed (the system clock given to the store means real
time, see ``postgres_store``). SQLite: a WAL file with ``synchronous=NORMAL`` (see
``sqlite_store``). Prints JSON.

    python benchmarks/store_overhead.py [--jobs 1000] [--repeat 3] [--backends sqlite,postgres]
        [--scenarios cold,cold_after_small,...]
        [--submitted-events] [--pg-no-sync] [--statement-timings] [--server-statements]

``--statement-timings`` adds, per backend, the p50 and per-job time of each store round trip
(one ``Tx.rows`` call, or a ``Tx.finish`` with its COMMIT) in one extra cold run, and for
PostgreSQL the floor on this machine: an empty round trip and a one-row INSERT's commit.
``--server-statements`` adds one cold PostgreSQL run with ``pg_stat_statements`` (a local
server is restarted with it preloaded; an external one must have it): the server's executor
time per statement and job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from armguard.clock import SystemClock, isoformat
from armguard.coordinator.model import Completion, JobResult, JobSpec, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.events import EventType, JobEvent

TARGET_MS = {"sqlite": 1.0, "postgres": 2.0}
# ``*_separate``: completions in a transaction of their own, as before claims carried them —
# the reference the carried protocol is measured against, not a target.
SCENARIOS = ("cold", "cold_separate", "cold_after_small", "hot", "hot_barrier", "cold_submit_many")
# ``cold_after_small``: first drains this many jobs, untimed, so that the connection's
# statements are prepared and planned on a small table (a worker started on a new store).
SMALL_FIRST = 300
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/bench/providers"


def _spec(scenario: str, i: int) -> JobSpec:
    name = f"vm{i}" if scenario.startswith("cold") else "hot-vm"
    rid = f"{RG}/Microsoft.Compute/virtualMachines/{name}"
    return JobSpec(
        resource_id=rid,
        intent={"tags": {"build": str(i)}},
        writer=f"writer-{i % 8}",
        lock_keys=(rid.lower(),),
        barrier=scenario == "hot_barrier",
    )


def _event(job_id: str, rid: str, kind: EventType, fence: int | None = None) -> JobEvent:
    return JobEvent(
        ts=isoformat(time.time()),
        job_id=job_id,
        resource_id=rid,
        writer="bench",
        event=kind.value,
        fence=fence,
    )


def _server_cpu_probe(store: SqlStore) -> Callable[[], float | None]:
    """Seconds of CPU the store's PostgreSQL backend has used, read from ``/proc`` when the
    server runs on this machine (None otherwise, and for SQLite, which runs in process)."""
    if not isinstance(store, PostgresStore):
        return lambda: None
    stat = Path(f"/proc/{store._conn.info.backend_pid}/stat")
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float | None:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None  # another machine's server, or no /proc
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    return read


def machine() -> dict[str, Any]:
    """What a result records of the machine it ran on (see ``load_average``)."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_scenario(
    store: SqlStore, scenario: str, n: int, submitted_events: bool = False
) -> dict[str, Any]:
    carry = not scenario.endswith("_separate")
    specs = [_spec(scenario, i) for i in range(n)]
    submit_ms: list[float] = []
    claim_ms: list[float] = []
    complete_ms: list[float] = []
    events_s = 0.0

    def append(events: list[JobEvent]) -> None:
        nonlocal events_s
        t = time.perf_counter()
        store.append_events(events)
        events_s += time.perf_counter() - t

    if scenario == "cold_after_small":  # untimed; its resources are done before ours queue
        run_scenario(store, "cold", SMALL_FIRST)
    server = _server_cpu_probe(store)
    cpu_start, server_start = time.process_time(), server()
    start = time.perf_counter()
    if scenario == "cold_submit_many":  # one call queues them all (``apply`` could)
        t = time.perf_counter()
        store.submit_many(specs)
        submit_ms = [(time.perf_counter() - t) * 1000 / n] * n
    for spec in specs if scenario != "cold_submit_many" else ():
        t = time.perf_counter()
        job = store.submit(spec)
        if submitted_events:
            append([_event(job.id, spec.resource_id, EventType.SUBMITTED)])
        submit_ms.append((time.perf_counter() - t) * 1000)
    leases = 0
    done = 0
    owed: Completion | None = None  # what the worker's next claim carries (see worker.py)
    while True:
        t = time.perf_counter()
        lease = store.claim("bench-worker", ttl=60, completing=owed)
        claim_ms.append((time.perf_counter() - t) * 1000)
        owed = None
        if lease is None:
            break
        results = [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs]
        events = [_event(j.id, j.resource_id, EventType.APPLIED, lease.fence) for j in lease.jobs]
        if carry:
            owed = Completion(lease, results, events)
        else:
            t = time.perf_counter()
            store.complete(lease, results, events)
            complete_ms.append((time.perf_counter() - t) * 1000)
        leases += 1
        done += len(lease.jobs)
    total = time.perf_counter() - start
    client_cpu, server_end = time.process_time() - cpu_start, server()
    if done != n:
        raise SystemExit(f"{scenario}: drained {done} of {n} jobs")
    complete_p50 = statistics.median(complete_ms) if complete_ms else 0.0
    # Every claim carries the previous completion (and the last, empty claim the final one),
    # or each lease pays a completion of its own.
    claims = len(claim_ms)
    typical = (
        statistics.median(submit_ms) * n
        + statistics.median(claim_ms) * claims
        + complete_p50 * len(complete_ms)
    )
    return {
        "jobs": n,
        "leases": leases,
        "completions": "carried by the next claim" if carry else "a transaction each",
        "ms_per_job": round(total * 1000 / n, 4),
        # CPU, this process and (a local PostgreSQL) its server backend: on a 2-core box that
        # both share, a store that is CPU-bound shows here rather than in the round trips.
        "client_cpu_ms_per_job": round(client_cpu * 1000 / n, 4),
        "server_cpu_ms_per_job": (
            round((server_end - server_start) * 1000 / n, 4)
            if server_start is not None and server_end is not None
            else None
        ),
        "of_which_event_appends_ms_per_job": round(events_s * 1000 / n, 4),
        # the same work priced at median latencies: robust to other load on a shared machine
        "ms_per_job_at_p50": round(typical / n, 4),
        "submit_ms_p50": round(statistics.median(submit_ms), 4),
        "submit_ms_p99": round(_pct(submit_ms, 0.99), 4),
        "claim_ms_p50": round(statistics.median(claim_ms), 4),
        "claim_ms_p99": round(_pct(claim_ms, 0.99), 4),
        "complete_ms_p50": round(complete_p50, 4) if complete_ms else None,
        "complete_ms_p99": round(_pct(complete_ms, 0.99), 4) if complete_ms else None,
    }


class _TimedTx:
    """A transaction's statements, timed per round trip under a short name."""

    def __init__(self, tx: Any, where: str, times: dict[str, list[float]]) -> None:
        self._tx = tx
        self._where = where
        self._times = times

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        t = time.perf_counter()
        found: list[tuple[Any, ...]] = self._tx.rows(sql, params)
        self._times[f"{self._where} {' '.join(sql.split()[:4])}"].append(time.perf_counter() - t)
        return found

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._tx.run(sql, params)  # queued: its time shows in the next round trip

    def guarded(
        self, statements: Sequence[tuple[str, Sequence[Any]]], guard: tuple[str, Sequence[Any]]
    ) -> None:
        t = time.perf_counter()  # queued on PostgreSQL; in process on SQLite
        self._tx.guarded(statements, guard)
        self._times[f"{self._where} guarded[{_names(statements)}]"].append(time.perf_counter() - t)

    def finish(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, together: bool = False
    ) -> list[tuple[Any, ...]]:
        t = time.perf_counter()
        found: list[tuple[Any, ...]] = self._tx.finish(statements, together=together)
        self._times[f"{self._where} finish[{_names(statements)}; COMMIT]"].append(
            time.perf_counter() - t
        )
        return found


def _names(statements: Sequence[tuple[str, Sequence[Any]]]) -> str:
    return "; ".join(" ".join(sql.split()[:3]) for sql, _ in statements)


def statement_timings(store: SqlStore, n: int) -> dict[str, Any]:
    """One cold run with every round trip timed (the instrumentation adds a little)."""
    times: dict[str, list[float]] = defaultdict(list)
    write, read, once = store._write, store._read, store._once

    def timed_once(statements: Sequence[tuple[str, Sequence[Any]]], **kw: Any) -> Any:
        # A backend may build it on _write (SQLite): time it once, as a whole.
        store._write = write  # type: ignore[method-assign]
        t = time.perf_counter()
        try:
            found = once(statements, **kw)
        finally:
            store._write = timed_write  # type: ignore[method-assign]
        guard = "guard; " if kw.get("guard") else ""
        name = f"once({kw['lock']}) [{guard}{_names(statements)}; COMMIT]"
        times[name].append(time.perf_counter() - t)
        return found

    @contextmanager
    def timed_write(lock: Any = "exclusive", notify: Any = None) -> Iterator[Any]:
        with write(lock, notify) as tx:
            yield _TimedTx(tx, f"write({lock})", times)

    @contextmanager
    def timed_read() -> Iterator[Any]:
        with read() as tx:
            yield _TimedTx(tx, "autocommit", times)

    store._write = timed_write  # type: ignore[method-assign]
    store._read = timed_read  # type: ignore[method-assign]
    store._once = timed_once  # type: ignore[method-assign]
    run = run_scenario(store, "cold", n)
    return {
        "cold_ms_per_job": run["ms_per_job"],
        "round_trips": {
            name: {
                "count": len(v),
                "p50_ms": round(statistics.median(v) * 1000, 4),
                "ms_per_job": round(sum(v) * 1000 / n, 4),
            }
            for name, v in sorted(times.items(), key=lambda kv: -sum(kv[1]))
        },
        "all_round_trips_ms_per_job": round(sum(sum(v) for v in times.values()) * 1000 / n, 4),
    }


def postgres_floor(url: str, n: int = 500) -> dict[str, float]:
    """What one round trip and one durable commit cost on this server, with nothing else."""
    import psycopg

    def p50(action: Callable[[], object]) -> float:
        spent = []
        for _ in range(n):
            t = time.perf_counter()
            action()
            spent.append(time.perf_counter() - t)
        return round(statistics.median(spent) * 1000, 4)

    table = f"armguard_floor_{uuid.uuid4().hex[:12]}"  # a logged table: its commits flush WAL
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)")
        try:
            return {
                "select_1_round_trip_ms_p50": p50(lambda: conn.execute("SELECT 1").fetchall()),
                "insert_commit_ms_p50": p50(
                    lambda: conn.execute(f"INSERT INTO {table} VALUES (1)")
                ),
            }
        finally:
            conn.execute(f"DROP TABLE {table}")


def server_statements(store: PostgresStore, url: str, n: int) -> dict[str, Any]:
    """One cold run with ``pg_stat_statements`` on: the server's executor time per statement,
    per job (planning is not counted: every statement is prepared once)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    run = run_scenario(store, "cold", n)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE calls >= %s ORDER BY total_exec_time DESC",
            (n,),
        ).fetchall()
    return {
        "cold_ms_per_job": run["ms_per_job"],
        "server_exec_ms_per_job": round(sum(float(r[1]) for r in rows) / n, 4),
        "statements": [
            {
                "calls": int(calls),
                "exec_ms_per_job": round(float(total) / n, 4),
                "statement": " ".join(str(query).split())[:100],
            }
            for calls, total, query in rows
        ],
    }


def bench_backend(
    opener: Callable[[], SqlStore],
    cleanup: Callable[[SqlStore], None],
    n: int,
    repeat: int,
    submitted_events: bool,
    *,
    scenarios: Sequence[str] = SCENARIOS,
) -> dict[str, Any]:
    """Each scenario ``repeat`` times on a fresh database; the fastest run is reported (the one
    least disturbed by other processes), with every run's ms/job alongside."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    for _ in range(repeat):  # scenarios interleaved, so a noisy minute hits them all alike
        for scenario in scenarios:
            store = opener()
            try:
                runs[scenario].append(run_scenario(store, scenario, n, submitted_events))
            finally:
                cleanup(store)
    results: dict[str, Any] = {}
    for scenario, done in runs.items():
        best = min(done, key=lambda r: r["ms_per_job"])
        results[scenario] = {**best, "ms_per_job_runs": [r["ms_per_job"] for r in done]}
    return results


def _postgres_url(durable: bool, preload: str | None = None) -> tuple[str, Callable[[], None], str]:
    url = os.environ.get("ARMGUARD_BENCH_POSTGRES_URL") or os.environ.get(
        "ARMGUARD_TEST_POSTGRES_URL"
    )
    if url:
        return url, lambda: None, "external server"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_server import PgServer

    server = PgServer(durable=durable)
    url = server.start()
    if preload:
        server.preload(preload)
    if durable:
        return url, server.stop, "local PostgreSQL 15, fsync=on, synchronous_commit=on"
    return url, server.stop, "local PostgreSQL 15, fsync=off, synchronous_commit=off (NOT safe)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, run in this order"
    )
    parser.add_argument(
        "--pg-no-sync",
        action="store_true",
        help="start PostgreSQL without fsync/synchronous_commit, to separate commit latency"
        " from round trips (unsafe for a real coordinator: a crash could forget a lease)",
    )
    parser.add_argument(
        "--submitted-events",
        action="store_true",
        help="also append a 'submitted' event after each submit, in its own commit (the"
        " workload of earlier runs of this benchmark)",
    )
    parser.add_argument(
        "--statement-timings",
        action="store_true",
        help="add one instrumented cold run per backend: time per store round trip",
    )
    parser.add_argument(
        "--server-statements",
        action="store_true",
        help="add one cold PostgreSQL run with pg_stat_statements: the server's executor time"
        " per statement (a local server is restarted with the library preloaded)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.repeat < 1:
        print("ERROR: --jobs and --repeat must be at least 1", file=sys.stderr)
        return 2
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(TARGET_MS)
    if unknown:
        print(f"ERROR: unknown backends: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        print(f"ERROR: --scenarios takes some of {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    clock = SystemClock()
    report: dict[str, Any] = {
        "benchmark": "store_overhead",
        "machine": machine(),
        "target_ms_per_job": {b: TARGET_MS[b] for b in backends},
        "workload": "submit; claim (+claimed events) carrying the previous complete"
        " (+applied events); cold_separate: complete on its own"
        + ("; plus a submitted event appended after each submit" if args.submitted_events else ""),
        "results": {},
        "notes": {},
    }
    if "sqlite" in backends:
        work = Path(tempfile.mkdtemp(prefix="armguard-bench-"))

        def open_sqlite() -> SqlStore:
            return SqliteStore(work / f"{uuid.uuid4().hex}.db", clock=clock)

        report["results"]["sqlite"] = bench_backend(
            open_sqlite,
            lambda s: s.close(),
            args.jobs,
            args.repeat,
            args.submitted_events,
            scenarios=scenarios,
        )
        if args.statement_timings:
            store = open_sqlite()
            try:
                report["statement_timings"] = {"sqlite": statement_timings(store, args.jobs)}
            finally:
                store.close()
        report["notes"]["sqlite"] = (
            f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL, file in {work}"
        )
    if "postgres" in backends:
        url, stop, where = _postgres_url(
            durable=not args.pg_no_sync,
            preload="pg_stat_statements" if args.server_statements else None,
        )
        try:

            def open_pg() -> SqlStore:
                return PostgresStore(url, clock=clock, schema=f"bench_{uuid.uuid4().hex[:12]}")

            def drop_pg(store: SqlStore) -> None:
                assert isinstance(store, PostgresStore)
                store.drop_schema()
                store.close()

            report["results"]["postgres"] = bench_backend(
                open_pg, drop_pg, args.jobs, args.repeat, args.submitted_events, scenarios=scenarios
            )
            report["notes"]["postgres"] = (
                f"{where}, psycopg, one connection, loopback, leases on the server's clock"
            )
            if args.statement_timings:
                store = open_pg()
                try:
                    timings = statement_timings(store, args.jobs)
                finally:
                    drop_pg(store)
                timings["floor"] = postgres_floor(url)
                report.setdefault("statement_timings", {})["postgres"] = timings
            if args.server_statements:
                store = open_pg()
                try:
                    assert isinstance(store, PostgresStore)
                    report["server_statements"] = server_statements(store, url, args.jobs)
                finally:
                    drop_pg(store)
        finally:
            stop()
    report["machine"]["load_average_at_end"] = load_average()
    report["within_target"] = {
        b: all(
            r["ms_per_job"] <= TARGET_MS[b]
            for name, r in report["results"][b].items()
            if not name.endswith("_separate")
        )
        for b in backends
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
