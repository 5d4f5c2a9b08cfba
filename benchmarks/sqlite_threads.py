"""SQLite worker threads of one process: one store object (one connection) per thread, as
``armguard worker --concurrency`` opens them, against one store object shared by every thread.

Answers whether the fall from 1 to 8 threads in ``scale.py``'s worker section comes from the
connections (each one's page cache is dropped whenever another connection has written) or from
the threads themselves (a lock and GIL hand-over per claim). Each drain is 5,000 single-job
claims on distinct resources, the store being all the work, as in ``scale.py``. Prints JSON:
per variant and thread count, jobs/s and client CPU ms per job for each round.

    python benchmarks/sqlite_threads.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale
from armguard.clock import SystemClock
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore


def drain(count: int, shared: bool, jobs: int) -> tuple[float, float]:
    """(jobs/s, client CPU ms per job) of one drain by ``count`` threads."""
    with tempfile.TemporaryDirectory(prefix="armguard-threads-") as tmp:
        target = str(Path(tmp) / "q.db")
        store = SqliteStore(target, clock=SystemClock())
        scale._fill(store, "distinct", jobs, jobs)
        handles: list[SqlStore] = (
            [store] * count
            if shared
            else [SqliteStore(target, clock=SystemClock()) for _ in range(count)]
        )
        done = [0] * count
        barrier = threading.Barrier(count + 1)
        threads = [
            threading.Thread(target=scale._thread_worker, args=(handles, i, barrier, done))
            for i in range(count)
        ]
        for t in threads:
            t.start()
        cpu0 = time.process_time()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        took = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        for handle in set(handles) | {store}:
            handle.close()
    if sum(done) != jobs:
        raise SystemExit(f"drained {sum(done)} of {jobs} jobs")
    return round(jobs / took, 1), round(cpu / jobs * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--threads", default="1,2,8")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    out: dict[str, list[list[float]]] = {}
    for _ in range(args.rounds):
        for shared in (False, True):
            for n in counts:
                key = f"{'shared' if shared else 'own'}-{n}"
                out.setdefault(key, []).append(list(drain(n, shared, args.jobs)))
    print(json.dumps({"jobs": args.jobs, "runs": out}, indent=1))


if __name__ == "__main__":
    main()
