"""Concurrent submits: many writer threads of one process queueing jobs into one store at once.

This is the front of every burst armguard coalesces: a pipeline's or a service's threads, each
with its own store handle on the same file (or server), submitting as fast as they can. Each
round starts T threads on a barrier; each submits K jobs one by one (``store.submit``, as
``armguard.coordinator.submit.submit`` does), each job on its own resource. Reported per
thread count: the wall time of the round, ms per submit, submits per second, and how many
transactions the submits took (``commits``).

The single-thread row is the reference: one submitter, one transaction per submit. Rounds of
every thread count run interleaved, ``--repeat`` times, each on a fresh database, and the
fastest run is reported with every run beside it (load from elsewhere on a shared machine
falls on all thread counts alike). Prints JSON.

    python benchmarks/concurrent_submits.py [--threads 1,4,16,64] [--per-thread 32]
        [--repeat 5] [--backends sqlite,postgres]

PostgreSQL as in ``store_overhead.py``: ``ARMGUARD_BENCH_POSTGRES_URL`` if set, else a
throw-away local PostgreSQL 15 with shipped durability settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from armguard.clock import SystemClock
from armguard.coordinator.model import JobSpec
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_overhead import _postgres_url, load_average, machine  # a sibling script

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/bench/providers"


def _spec(thread: int, i: int) -> JobSpec:
    rid = f"{RG}/Microsoft.Compute/virtualMachines/vm-{thread}-{i}"
    return JobSpec(
        resource_id=rid,
        intent={"tags": {"build": str(i)}},
        writer=f"writer-{thread}",
        lock_keys=(rid.lower(),),
    )


def _commits(store: SqlStore) -> int | None:
    """How many transactions this process's submits to the store took: the group commits,
    or (before submits were grouped) the SQLite file's commit counter; None if neither."""
    group = getattr(store, "_submit_group", None)
    if group is not None:
        return int(group.commits)
    file = getattr(store, "_file", None)
    return int(file.commits) if file is not None else None


def run_round(open_store: Callable[[], SqlStore], threads: int, per_thread: int) -> dict[str, Any]:
    stores = [open_store() for _ in range(threads)]
    # Each handle opens its connection before the clock starts, as a long-lived writer has.
    for store in stores:
        store.queue_depth()
    gate = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        store = stores[n]
        try:
            gate.wait()
            for i in range(per_thread):
                store.submit(_spec(n, i))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    commits_before = _commits(stores[0])
    gate.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    seconds = time.perf_counter() - start
    commits_after = _commits(stores[0])
    if failures:
        raise failures[0]
    total = threads * per_thread
    queued = stores[0].queue_depth()
    for store in stores:
        store.close()
    if queued != total:
        raise SystemExit(f"{threads} threads: {queued} jobs queued, expected {total}")
    return {
        "threads": threads,
        "submits": total,
        "seconds": round(seconds, 4),
        "ms_per_submit": round(seconds * 1000 / total, 4),
        "submits_per_s": round(total / seconds),
        "commits": (
            commits_after - commits_before
            if commits_before is not None and commits_after is not None
            else None
        ),
    }


def bench_backend(
    open_fresh: Callable[[], tuple[Callable[[], SqlStore], Callable[[], None]]],
    thread_counts: list[int],
    per_thread: int,
    repeat: int,
) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {t: [] for t in thread_counts}
    for _ in range(repeat):
        for threads in thread_counts:
            opener, drop = open_fresh()
            try:
                runs[threads].append(run_round(opener, threads, per_thread))
            finally:
                drop()
    out: dict[str, Any] = {}
    for threads, done in runs.items():
        best = min(done, key=lambda r: r["seconds"])
        out[str(threads)] = {**best, "ms_per_submit_runs": [r["ms_per_submit"] for r in done]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,4,16,64")
    parser.add_argument("--per-thread", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    try:
        thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        thread_counts = []
    if not thread_counts or min(thread_counts) < 1 or args.per_thread < 1 or args.repeat < 1:
        print(
            "ERROR: --threads takes positive integers; --per-thread and --repeat at least 1",
            file=sys.stderr,
        )
        return 2
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"sqlite", "postgres"}:
        print("ERROR: --backends takes sqlite and/or postgres", file=sys.stderr)
        return 2
    clock = SystemClock()
    report: dict[str, Any] = {
        "benchmark": "concurrent_submits",
        "machine": machine(),
        "per_thread": args.per_thread,
        "repeat": args.repeat,
        "results": {},
    }
    if "sqlite" in backends:
        work = Path(tempfile.mkdtemp(prefix="armguard-bench-"))

        def fresh_sqlite() -> tuple[Callable[[], SqlStore], Callable[[], None]]:
            path = work / f"{uuid.uuid4().hex}.db"
            return (lambda: SqliteStore(path, clock=clock)), (lambda: None)

        print("sqlite …", file=sys.stderr)
        report["results"]["sqlite"] = bench_backend(
            fresh_sqlite, thread_counts, args.per_thread, args.repeat
        )
    if "postgres" in backends:
        url, stop, where = _postgres_url(durable=True)
        try:

            def fresh_pg() -> tuple[Callable[[], SqlStore], Callable[[], None]]:
                schema = f"bench_{uuid.uuid4().hex[:12]}"

                def drop() -> None:
                    store = PostgresStore(url, clock=clock, schema=schema)
                    store.drop_schema()
                    store.close()

                return (lambda: PostgresStore(url, clock=clock, schema=schema)), drop

            print("postgres …", file=sys.stderr)
            report["results"]["postgres"] = bench_backend(
                fresh_pg, thread_counts, args.per_thread, args.repeat
            )
            report["postgres"] = where
        finally:
            stop()
    report["machine"]["load_average_at_end"] = load_average()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
