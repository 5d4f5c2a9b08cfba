"""Flat cost at scale: the coordinator stores (and, when present, the emulator) as backlogs grow.

Store part, SQLite and PostgreSQL side by side, for each backlog size (``--sizes``, default
1k, 10k, 100k; ``--million`` adds 1M on SQLite):

* ``backlogs``: a fresh store is filled with ``size`` queued jobs by ``submit_many`` (the bulk
  submit cost per job), then ``--submits`` single submits are timed on top of it, then
  ``--claims`` claims (``max_batch`` 64), each followed by its completion, are timed at the
  head of the backlog. Two shapes: *distinct* (every job on its own resource) and
  *interleaved* (the jobs spread round-robin over ``--resources`` resources, 1k by default:
  resource 0, 1, …, 999, 0, 1, …), the shape that made a claim read the whole queue between a
  head and its last same-resource follower.
* ``drain``: ``--drain-jobs`` jobs on ``--drain-resources`` resources, queued interleaved and
  queued grouped (all of one resource, then the next), drained by one worker loop (each claim
  carrying the previous completion, as ``worker.py`` does): jobs per second.
* ``workers``: ``--drain-jobs`` jobs, each on its own resource (one lease per job: the store
  is all the work), drained by 1, 2, 4 and 8 worker loops, as threads of one process (what
  ``armguard worker --concurrency N`` runs) and as separate processes (N ``armguard worker``
  commands, or machines): jobs per second and CPU seconds of this process and (a local
  PostgreSQL) of the server. ``--work-ms`` gives each lease that much waiting, as an ARM call
  would; ``--pg-waits`` adds, for SQLite worker processes, how often the write lock changed
  process and what a transaction held it for just after a change.

Targets (ratios from one run): the claim at 100k × 1k interleaved ≤ 2× the claim at 1k × 1k
interleaved, per claim and per claimed job, on both stores; interleaved drain ≥ 0.8× grouped.

Emulator part: ``benchmarks/scale_emulator.py``'s ``measure(sizes)`` when that module exists.

PostgreSQL: ``ARMGUARD_BENCH_POSTGRES_URL`` (or ``ARMGUARD_TEST_POSTGRES_URL``) if set, else a
throw-away local PostgreSQL 15 with fsync and synchronous_commit on. Prints JSON.

    python benchmarks/scale.py [--part store|emulator|all] [--sizes 1000,10000,100000]
        [--million] [--backends sqlite,postgres] [--claims 30] [--submits 30]
        [--drain-jobs 5000] [--drain-resources 100] [--workers 1,2,4,8] [--rounds 2] [--pg-waits]
        [--apart] [--work-ms 0] [--sections backlogs,drain,workers]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from armguard.clock import SystemClock
from armguard.coordinator.model import Completion, JobResult, JobSpec, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore

HERE = Path(__file__).resolve().parent
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scale/providers"
BATCH = 64
CHUNK = 10_000  # jobs per submit_many call while filling a backlog


def _rid(n: int) -> str:
    return f"{RG}/Microsoft.Compute/virtualMachines/vm{n}"


def _spec(resource: int, i: int) -> JobSpec:
    rid = _rid(resource)
    return JobSpec(
        resource_id=rid,
        intent={"tags": {"build": str(i)}},
        writer=f"writer-{i % 8}",
        lock_keys=(rid.lower(),),
    )


def _resource_of(shape: str, i: int, size: int, resources: int) -> int:
    if shape == "distinct":
        return i
    if shape == "interleaved":
        return i % resources
    return i * resources // size  # grouped: all of one resource, then the next


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


# -- stores ------------------------------------------------------------------------------------


class Backend:
    """Opens fresh stores of one kind, and says how to reopen the same one elsewhere."""

    def __init__(self, name: str, work: Path, pg_url: str | None) -> None:
        self.name = name
        self.work = work
        self.pg_url = pg_url

    def new_target(self) -> str:
        if self.name == "sqlite":
            return str(self.work / f"{uuid.uuid4().hex}.db")
        return f"bench_{uuid.uuid4().hex[:12]}"

    def open(self, target: str) -> SqlStore:
        return open_target(self.name, target, self.pg_url)

    def drop(self, store: SqlStore, target: str) -> None:
        if isinstance(store, PostgresStore):
            store.drop_schema()
        store.close()
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(target + suffix).unlink(missing_ok=True)


def open_target(backend: str, target: str, pg_url: str | None) -> SqlStore:
    if backend == "sqlite":
        return SqliteStore(target, clock=SystemClock())
    assert pg_url is not None
    return PostgresStore(pg_url, clock=SystemClock(), schema=target)


def _server_cpu(store: SqlStore) -> Callable[[], float]:
    """CPU seconds of a local PostgreSQL's backend for this store (0 for SQLite / remote)."""
    if not isinstance(store, PostgresStore):
        return lambda: 0.0
    stat = Path(f"/proc/{store._conn.info.backend_pid}/stat")
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    return read


def _fill(store: SqlStore, shape: str, size: int, resources: int) -> float:
    """Queue ``size`` jobs of ``shape``; seconds taken."""
    start = time.perf_counter()
    for at in range(0, size, CHUNK):
        store.submit_many(
            [
                _spec(_resource_of(shape, i, size, resources), i)
                for i in range(at, min(size, at + CHUNK))
            ]
        )
    return time.perf_counter() - start


def _analyze(store: SqlStore) -> None:
    # What autovacuum does on its own a little later: statistics for the planner.
    if isinstance(store, PostgresStore):
        with store._read() as tx:
            tx.rows("ANALYZE jobs")


def backlog(
    backend: Backend, shape: str, size: int, *, resources: int, claims: int, submits: int
) -> dict[str, Any]:
    target = backend.new_target()
    store = backend.open(target)
    try:
        fill_s = _fill(store, shape, size, resources)
        _analyze(store)
        submit_ms = []
        for i in range(submits):
            t = time.perf_counter()
            store.submit(_spec(_resource_of(shape, size + i, size, resources), size + i))
            submit_ms.append(time.perf_counter() - t)
        claim_ms: list[float] = []
        complete_ms: list[float] = []
        batch: list[int] = []
        for _ in range(claims):
            t = time.perf_counter()
            lease = store.claim("scale", ttl=300, max_batch=BATCH)
            claim_ms.append(time.perf_counter() - t)
            assert lease is not None
            batch.append(len(lease.jobs))
            t = time.perf_counter()
            store.complete(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])
            complete_ms.append(time.perf_counter() - t)
        claim_p50 = statistics.median(claim_ms)
        jobs_p50 = statistics.median(batch)
        return {
            "queued": size,
            "resources": size if shape == "distinct" else min(resources, size),
            "submit_many_ms_per_job": round(fill_s * 1000 / size, 4),
            "submit_ms_p50": _ms(statistics.median(submit_ms)) if submit_ms else None,
            "claim_ms_p50": _ms(claim_p50),
            "claim_ms_p99": _ms(_pct(claim_ms, 0.99)),
            "jobs_per_claim_p50": jobs_p50,
            "claim_ms_per_job_p50": _ms(claim_p50 / jobs_p50),
            "complete_ms_p50": _ms(statistics.median(complete_ms)),
        }
    finally:
        backend.drop(store, target)


def drain(backend: Backend, shape: str, jobs: int, resources: int) -> dict[str, Any]:
    target = backend.new_target()
    store = backend.open(target)
    try:
        _fill(store, shape, jobs, resources)
        _analyze(store)
        start = time.perf_counter()
        done, leases = _drain_one(store)
        took = time.perf_counter() - start
        assert done == jobs, (done, jobs)
        return {
            "jobs": jobs,
            "resources": resources,
            "leases": leases,
            "jobs_per_s": round(jobs / took, 1),
        }
    finally:
        backend.drop(store, target)


def _drain_one(store: SqlStore) -> tuple[int, int]:
    owed: Completion | None = None
    done = leases = 0
    while True:
        lease = store.claim("drain", ttl=300, max_batch=BATCH, completing=owed)
        if lease is None:
            return done, leases
        leases += 1
        done += len(lease.jobs)
        owed = Completion(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])


# -- worker scaling --------------------------------------------------------------------------


def _worker_loop(store: SqlStore, owner: str, work_s: float = 0.0) -> int:
    owed: Completion | None = None
    done = 0
    while True:
        lease = store.claim(owner, ttl=300, max_batch=BATCH, completing=owed)
        owed = None
        if lease is None:
            if store.queue_depth() == 0:
                return done
            time.sleep(0.0005)
            continue
        if work_s:
            time.sleep(work_s)  # the job's own work: an ARM call waits, it does not compute
        done += len(lease.jobs)
        owed = Completion(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])


def _process_worker(
    backend: str,
    target: str,
    pg_url: str | None,
    n: int,
    pipes: Any,
    *,
    work_s: float,
    handovers: WriteLockLog | None,
) -> None:
    ready, go, out = pipes
    store = open_target(backend, target, pg_url)
    try:
        cpu = _server_cpu(store)
        ready.put(n)
        go.wait()
        c0, s0 = time.process_time(), cpu()
        with handovers if handovers is not None else _nothing():
            done = _worker_loop(store, f"proc-{n}", work_s)
        spans = handovers.spans if handovers is not None else []
        out.put((done, time.process_time() - c0, cpu() - s0, spans))
    finally:
        store.close()


def _thread_worker(
    handles: list[SqlStore], i: int, barrier: threading.Barrier, done: list[int], work_s: float
) -> None:
    barrier.wait()
    done[i] = _worker_loop(handles[i], f"thread-{i}", work_s)


class WaitSampler:
    """What the store's PostgreSQL backends are doing, sampled every 2 ms from
    ``pg_stat_activity`` during a run: the share of samples per state and wait event
    (``active/Lock/advisory``: waiting for the store lock; ``idle/Client/ClientRead``: between
    transactions, waiting for the client; ``active/Client/ClientRead``: inside one, waiting
    for the client's next round trip; ``active/IO/WALSync``: flushing a commit)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.samples: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.url is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.url is not None:
            self._thread.join()

    def _run(self) -> None:
        import psycopg

        assert self.url is not None
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                for state, kind, event in conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " AND datname = current_database()"
                ):
                    key = f"{state}/{kind}/{event}"
                    self.samples[key] = self.samples.get(key, 0) + 1
                time.sleep(0.002)

    def shares(self) -> dict[str, float]:
        total = sum(self.samples.values()) or 1
        ranked = sorted(self.samples.items(), key=lambda kv: -kv[1])[:8]
        return {k: round(v / total, 3) for k, v in ranked}


class WriteLockLog:
    """For SQLite workers: each write transaction's moments (asked for the write gate and
    ``BEGIN IMMEDIATE``, got them, ``COMMIT`` returned), on the machine-wide monotonic clock,
    recorded by wrapping ``SqliteStore._transaction`` while installed. Worker threads sum how
    long they waited for the gate and held it; worker processes send their spans to the
    parent, which lines them up to see how often the write lock changed process and what a
    transaction held it for just after a change. A checkpoint the commit runs after releasing
    SQLite's lock counts as held."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, float]] = []
        self._original = SqliteStore._transaction

    def __enter__(self) -> WriteLockLog:
        log, original = self, self._original

        @contextmanager
        def timed(store: SqliteStore, conn: sqlite3.Connection) -> Iterator[Any]:
            asked = time.perf_counter()
            with original(store, conn) as tx:
                got = time.perf_counter()
                yield tx
            log.spans.append((asked, got, time.perf_counter()))  # list.append: thread-safe

        SqliteStore._transaction = timed  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        SqliteStore._transaction = self._original  # type: ignore[method-assign]

    @property
    def waited(self) -> float:
        return sum(got - asked for asked, got, _ in self.spans)

    @property
    def held(self) -> float:
        return sum(ended - got for _, got, ended in self.spans)

    @staticmethod
    def summary(by_process: list[list[tuple[float, float, float]]]) -> dict[str, Any]:
        spans = sorted(
            (start, end, who) for who, found in enumerate(by_process) for _, start, end in found
        )
        after_change: list[float] = []
        after_same: list[float] = []
        for (_, _, before), (start, end, who) in itertools.pairwise(spans):
            (after_change if who != before else after_same).append(end - start)
        if not after_same:
            return {}

        def ms(values: list[float], q: float) -> float | None:
            return round(_pct(values, q) * 1000, 3) if values else None

        return {
            "transactions": len(spans),
            "changed_process_share": round(len(after_change) / (len(spans) - 1), 3),
            "held_ms_after_change_p50": ms(after_change, 0.5),
            "held_ms_after_change_p90": ms(after_change, 0.9),
            "held_ms_same_process_p50": ms(after_same, 0.5),
            "held_ms_same_process_p90": ms(after_same, 0.9),
            "held_s_after_change": round(sum(after_change), 3),
            "held_s_same_process": round(sum(after_same), 3),
        }


def workers(
    backend: Backend,
    jobs: int,
    count: int,
    mode: str,
    *,
    waits: bool = False,
    apart: bool = False,
    work_s: float = 0.0,
) -> dict[str, Any]:
    """One drain of ``jobs`` distinct jobs by ``count`` worker loops (threads or processes).

    ``apart``: each worker drains a store of its own (its share of the jobs in a schema or file
    nobody else uses), so nothing is shared but the machine, the Python process (threads) and
    the PostgreSQL server: the ceiling any store lock could reach on this machine.

    ``work_s``: each worker waits this long per lease before completing it, as it would for
    the ARM call it makes (a sleep: no CPU, the GIL released)."""
    sampler = WaitSampler(backend.pg_url if waits and backend.name == "postgres" else None)
    # Installed here for threads; for processes, each child installs its copy and sends spans.
    lock_log = WriteLockLog() if waits and backend.name == "sqlite" else None
    shares = [jobs // count + (1 if i < jobs % count else 0) for i in range(count)]
    targets = [backend.new_target() for _ in range(count if apart else 1)]
    stores = [backend.open(t) for t in targets]
    spans: list[list[tuple[float, float, float]]] = []
    mine = [targets[i if apart else 0] for i in range(count)]
    try:
        for store, share in zip(stores, shares if apart else [jobs], strict=True):
            _fill(store, "distinct", share, share)
            _analyze(store)
        if mode == "threads":
            handles = [backend.open(mine[i]) for i in range(count)]
            cpus = [_server_cpu(h) for h in handles]
            done = [0] * count
            barrier = threading.Barrier(count + 1)
            threads = [
                threading.Thread(target=_thread_worker, args=(handles, i, barrier, done, work_s))
                for i in range(count)
            ]
            for t in threads:
                t.start()
            s0 = sum(c() for c in cpus)
            c0 = time.process_time()
            sampler.start()
            with lock_log if lock_log is not None else _nothing():
                barrier.wait()
                start = time.perf_counter()
                for t in threads:
                    t.join()
                took = time.perf_counter() - start
            sampler.stop()
            client_cpu = time.process_time() - c0
            server_cpu = sum(c() for c in cpus) - s0
            for h in handles:
                h.close()
            total = sum(done)
        else:
            ctx = mp.get_context("fork")
            ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
            procs = [
                ctx.Process(
                    target=_process_worker,
                    args=(backend.name, mine[i], backend.pg_url, i, (ready, go, out)),
                    kwargs={"work_s": work_s, "handovers": lock_log},
                )
                for i in range(count)
            ]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=60)
            sampler.start()
            start = time.perf_counter()
            go.set()
            got = [out.get(timeout=600) for _ in procs]
            took = time.perf_counter() - start
            sampler.stop()
            for p in procs:
                p.join()
            total = sum(g[0] for g in got)
            client_cpu = sum(g[1] for g in got)
            server_cpu = sum(g[2] for g in got)
            spans = [g[3] for g in got]
        assert total == jobs, (total, jobs)
        result: dict[str, Any] = {
            "jobs_per_s": round(jobs / took, 1),
            "client_cpu_ms_per_job": round(client_cpu * 1000 / jobs, 4),
            "server_cpu_ms_per_job": round(server_cpu * 1000 / jobs, 4),
            "wall_ms_per_job": round(took * 1000 / jobs, 4),
        }
    finally:
        for store, target in zip(stores, targets, strict=True):
            backend.drop(store, target)
    if sampler.samples:
        result["postgres_backends"] = sampler.shares()
    if lock_log is not None and mode == "processes":
        result["write_lock"] = WriteLockLog.summary(spans)
    elif lock_log is not None:
        result["write_gate_waited_ms_per_job"] = round(lock_log.waited * 1000 / jobs, 4)
        result["write_gate_held_ms_per_job"] = round(lock_log.held * 1000 / jobs, 4)
    if work_s:
        result["work_ms_per_lease"] = round(work_s * 1000, 3)
    label = f"{mode}{' apart' if apart else ''}"
    print(f"  {backend.name} {label} x{count}: {result}", file=sys.stderr)
    return result


def scaling(
    backend: Backend,
    jobs: int,
    counts: list[int],
    rounds: int,
    *,
    waits: bool,
    apart: bool = False,
    work_s: float = 0.0,
) -> dict[str, Any]:
    """Every (mode, count) once per round, rounds interleaved so that load from elsewhere on a
    shared machine falls on all alike; the fastest run of each, with every run's jobs/s.
    ``apart`` adds each mode with a store per worker, in the same rounds (see :func:`workers`)."""
    modes = [("threads", False), ("processes", False)]
    if apart:
        modes += [("threads", True), ("processes", True)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"{mode}{'_apart' if sep else ''}": {} for mode, sep in modes
    }
    for _ in range(rounds):
        for count in counts:
            for mode, sep in modes:
                runs[f"{mode}{'_apart' if sep else ''}"].setdefault(str(count), []).append(
                    workers(backend, jobs, count, mode, waits=waits, apart=sep, work_s=work_s)
                )
    return {
        mode: {
            count: {
                **max(found, key=lambda r: float(r["jobs_per_s"])),
                "jobs_per_s_runs": [r["jobs_per_s"] for r in found],
            }
            for count, found in by_count.items()
        }
        for mode, by_count in runs.items()
    }


# -- the whole picture -------------------------------------------------------------------------


@contextmanager
def postgres_url() -> Iterator[tuple[str, str]]:
    url = os.environ.get("ARMGUARD_BENCH_POSTGRES_URL") or os.environ.get(
        "ARMGUARD_TEST_POSTGRES_URL"
    )
    if url:
        yield url, "external server"
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PgServer

    server = PgServer(durable=True)
    try:
        yield server.start(), "local PostgreSQL 15, fsync=on, synchronous_commit=on"
    finally:
        server.stop()


def measure_store(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    backends = [b for b in args.backends.split(",") if b]
    work = Path(tempfile.mkdtemp(prefix="armguard-scale-"))
    with postgres_url() if "postgres" in backends else _nothing() as pg:
        url, where = pg if pg else (None, None)
        for name in backends:
            backend = Backend(name, work, url)
            result: dict[str, Any] = {
                "where": (
                    f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL"
                    if name == "sqlite"
                    else where
                ),
            }
            if "backlogs" in args.sections:
                sizes = list(args.sizes)
                if args.million and name == "sqlite":
                    sizes.append(1_000_000)
                for shape in ("distinct", "interleaved"):
                    for size in sizes:
                        print(f"{name} {shape} {size}", file=sys.stderr)
                        result.setdefault("backlogs", {}).setdefault(shape, {})[str(size)] = (
                            backlog(
                                backend,
                                shape,
                                size,
                                resources=args.resources,
                                claims=args.claims,
                                submits=args.submits,
                            )
                        )
                        print(f"  {result['backlogs'][shape][str(size)]}", file=sys.stderr)
                inter = result["backlogs"]["interleaved"]
                small, large = str(min(sizes)), str(max(s for s in sizes if s <= 100_000))
                # The same 64-job batch on a small backlog: 1,024 jobs over 16 resources, so each
                # claim passes 15 other resources' jobs per follower, like the large one (999).
                same_batch = backlog(
                    backend,
                    "interleaved",
                    1024,
                    resources=16,
                    claims=min(args.claims, 1024 // BATCH),
                    submits=0,
                )
                result["backlogs"]["interleaved_1024_over_16"] = same_batch
                result["claim_ratio"] = {
                    "sizes": f"{large} vs {small} jobs over {args.resources} resources, interleaved",
                    "per_claim": round(
                        inter[large]["claim_ms_p50"] / inter[small]["claim_ms_p50"], 2
                    ),
                    "per_job": round(
                        inter[large]["claim_ms_per_job_p50"] / inter[small]["claim_ms_per_job_p50"],
                        2,
                    ),
                    "per_claim_same_batch": round(
                        inter[large]["claim_ms_p50"] / same_batch["claim_ms_p50"], 2
                    ),
                    "same_batch": f"{large} jobs over {args.resources} resources vs 1,024 over 16,"
                    f" {BATCH} jobs a claim",
                    "target": "<= 2",
                }
            if "drain" in args.sections:
                result["drain"] = {}
                for shape in ("interleaved", "grouped"):
                    print(f"{name} drain {shape}", file=sys.stderr)
                    result["drain"][shape] = drain(
                        backend, shape, args.drain_jobs, args.drain_resources
                    )
                result["drain"]["interleaved_vs_grouped"] = round(
                    result["drain"]["interleaved"]["jobs_per_s"]
                    / result["drain"]["grouped"]["jobs_per_s"],
                    2,
                )
                result["drain"]["target"] = ">= 0.8"
            if "workers" in args.sections:
                result["workers"] = scaling(
                    backend,
                    args.drain_jobs,
                    args.workers,
                    args.rounds,
                    waits=args.pg_waits,
                    apart=args.apart,
                    work_s=args.work_ms / 1000,
                )
            out[name] = result
    return out


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def measure_emulator(sizes: list[int]) -> dict[str, Any] | str:
    path = HERE / "scale_emulator.py"
    if not path.exists():
        return "benchmarks/scale_emulator.py is not present"
    spec = importlib.util.spec_from_file_location("scale_emulator", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.measure(sizes))


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("a number of milliseconds, 0 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("store", "emulator", "all"), default="all")
    parser.add_argument("--sizes", type=_ints, default=[1000, 10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="add 1M jobs (SQLite only)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=30)
    parser.add_argument("--submits", type=int, default=30)
    parser.add_argument("--drain-jobs", type=int, default=5000)
    parser.add_argument("--drain-resources", type=int, default=100)
    parser.add_argument("--workers", type=_ints, default=[1, 2, 4, 8])
    parser.add_argument(
        "--sections",
        type=lambda v: set(v.split(",")),
        default={"backlogs", "drain", "workers"},
        help="of the store part: backlogs,drain,workers",
    )
    parser.add_argument("--rounds", type=int, default=2, help="worker-scaling rounds")
    parser.add_argument(
        "--work-ms",
        type=_milliseconds,
        default=0.0,
        help="worker scaling: each worker waits this long per lease, as for its ARM call"
        " (default 0: the store is all the work)",
    )
    parser.add_argument(
        "--apart",
        action="store_true",
        help="also run every worker count with a store per worker (nothing shared but the"
        " machine): the ceiling a store lock could reach",
    )
    parser.add_argument(
        "--pg-waits",
        action="store_true",
        help="during each worker-scaling run, sample what PostgreSQL's backends wait on, and"
        " time how long SQLite worker threads wait for and hold the store's write gate and how"
        " often SQLite worker processes hand its write lock to one another",
    )
    args = parser.parse_args(argv)
    if set(args.backends.split(",")) - {"sqlite", "postgres", ""}:
        print("ERROR: --backends takes sqlite and/or postgres", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "benchmark": "scale",
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if args.part in ("store", "all"):
        report["store"] = measure_store(args)
    if args.part in ("emulator", "all"):
        report["emulator"] = measure_emulator(args.sizes)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
