"""The emulator and the timeline at size: how their costs grow with the estate.

For each size (resources in the emulator, 100 per resource group, created round-robin so one
group's resources and events are interleaved with every other group's), in a fresh subprocess
so its RSS is its own:

* ``get``: GET one resource (p50/p99, µs);
* ``list_group``: list one group's 100 resources (p50, ms);
* ``activity_page``: the first page of one group's Activity Log over the whole window, and of
  the whole subscription's (p50, ms);
* ``conditional_put``: after ``size`` conditional writes, PUT with ``If-Match`` (p50/p99, µs);
* RSS after the load and after the writes; with ``--million``, RSS after 100k and after 1M
  writes (settled operations expiring past the emulator's cap) in one more process.

Then ``timeline``: ``armguard timeline`` over an Activity Log export of N operations (three
events each), in its own process: seconds, and RSS held and peak per operation.

Latencies are of the emulator core serving a request (``Emulator.dispatch``), without HTTP:
the scaling is the core's, and HTTP adds a constant (see ``emulator_throughput.py``).

``measure(sizes)`` returns the document; run alone, the script prints it as JSON::

    python benchmarks/scale_emulator.py --sizes 1000,10000,100000 [--million] [--no-freeze]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SUB = "00000000-0000-0000-0000-00000000b0b0"
API = "2024-05-01"
RG_API = "2024-03-01"
LOG_API = "2015-04-01"
PER_GROUP = 100
GROUP_SAMPLES = 200
GET_SAMPLES = 3000
PUT_SAMPLES = 20_000


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sample(n: int, fn: Any) -> tuple[list[float], list[float]]:
    """Wall and on-CPU seconds of ``n`` calls. On-CPU time leaves out the time the scheduler
    gave other processes in the middle of a call, which on a shared machine sets the tail."""
    wall, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return wall, cpu


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


class _Estate:
    """An emulator holding ``size`` virtual networks in ``size / 100`` groups."""

    def __init__(self, size: int, *, freeze: bool) -> None:
        from armguard.clock import ManualClock
        from armguard.emulator.core import Emulator, freeze_heap
        from armguard.emulator.request import Call

        self.clock = ManualClock()
        self.core = Emulator(self.clock, time_scale=0, seed=1)
        self.call = Call(base_url="http://bench.invalid", api_version=API, caller="bench")
        self.groups = max(1, size // PER_GROUP)
        self.size = size
        for g in range(self.groups):
            self.request("PUT", self.group(g), {"location": "eastus"})
        for n in range(size):
            body = {
                "location": "eastus",
                "tags": {"n": str(n)},
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
            }
            self.request("PUT", self.vnet(n), body, ok=(200, 201))
        self.core.operations.settle_all()
        self.etags = [str(self.core.store.get(self.rid(n)).etag) for n in range(size)]  # type: ignore[union-attr]
        if freeze:
            freeze_heap()
        self.writes = 0

    def group(self, g: int) -> str:
        return f"/subscriptions/{SUB}/resourceGroups/g{g}"

    def vnet(self, n: int) -> str:
        return f"{self.group(n % self.groups)}/providers/Microsoft.Network/virtualNetworks/v{n}"

    def rid(self, n: int) -> Any:
        from armguard.arm.ids import ResourceId

        return ResourceId.parse(self.vnet(n))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        from armguard.emulator.request import ArmRequest

        response = self.core.dispatch(
            ArmRequest(
                method,
                path,
                {"api-version": _api_version(path), **(query or {})},
                headers or {},
                body,
                self.call,
            )
        )
        if response.status not in ok:
            raise RuntimeError(f"{method} {path}: {response.status} {response.body}")
        return response

    def conditional_put(self, n: int) -> None:
        self.writes += 1
        body = {
            "location": "eastus",
            "tags": {"n": str(n), "w": str(self.writes)},
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        response = self.request(
            "PUT", self.vnet(n), body, headers={"if-match": self.etags[n]}, ok=(200,)
        )
        self.etags[n] = response.body["etag"]
        # Operations end on the clock: a write a millisecond apart, as a busy estate sees.
        self.clock.advance(0.001)


def _api_version(path: str) -> str:
    """The api-version a path's provider accepts (the emulator checks it, as ARM does)."""
    if "/Microsoft.Insights/" in path:
        return LOG_API
    if "/providers/" not in path:
        return RG_API  # a group, or a group's resource list
    return API


def _emulator_worker(size: int, freeze: bool) -> dict[str, Any]:
    rng = random.Random(7)
    build_s, estate = _timed(_Estate, size, freeze=freeze)
    out: dict[str, Any] = {"size": size, "groups": estate.groups, "build_s": round(build_s, 1)}
    out["rss_loaded_mb"] = round(_rss_mb(), 1)

    gets = _sample(GET_SAMPLES, lambda: estate.request("GET", estate.vnet(rng.randrange(size))))
    out["get_us"] = {
        "p50": round(_pct(gets[0], 0.5) * 1e6, 1),
        "p99": round(_pct(gets[0], 0.99) * 1e6, 1),
        "cpu_p50": round(_pct(gets[1], 0.5) * 1e6, 1),
    }

    def list_group() -> None:
        response = estate.request("GET", f"{estate.group(rng.randrange(estate.groups))}/resources")
        assert len(response.body["value"]) == min(PER_GROUP, size)

    lists = _sample(GROUP_SAMPLES, list_group)
    out["list_group_ms"] = {
        "items": min(PER_GROUP, size),
        "p50": round(statistics.median(lists[0]) * 1e3, 3),
        "cpu_p50": round(statistics.median(lists[1]) * 1e3, 3),
    }

    log = f"/subscriptions/{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
    since = "eventTimestamp ge '2020-01-01T00:00:00Z'"
    counts: dict[str, int] = {}

    def group_page() -> None:
        g = rng.randrange(estate.groups)
        query = {"$filter": f"{since} and resourceGroupName eq 'g{g}'"}
        counts["group"] = len(estate.request("GET", log, query=query).body["value"])

    def subscription_page() -> None:
        counts["subscription"] = len(
            estate.request("GET", log, query={"$filter": since}).body["value"]
        )

    # Pages of one size at every estate size: a group keeps ~100 events at 100k resources
    # (the log keeps the newest 100,000), so its pages hold 50.
    estate.core.page_size = 50
    group_pages = _sample(GROUP_SAMPLES, group_page)
    estate.core.page_size = 1000
    sub_pages = _sample(GROUP_SAMPLES // 4, subscription_page)
    out["activity_page_ms"] = {
        "group_page_events": counts["group"],
        "group_p50": round(statistics.median(group_pages[0]) * 1e3, 3),
        "group_cpu_p50": round(statistics.median(group_pages[1]) * 1e3, 3),
        "subscription_page_events": counts["subscription"],
        "subscription_p50": round(statistics.median(sub_pages[0]) * 1e3, 3),
        "subscription_cpu_p50": round(statistics.median(sub_pages[1]) * 1e3, 3),
    }

    for n in range(size):
        estate.conditional_put(n)
    puts, cpu = [], []
    for _ in range(PUT_SAMPLES):
        n = rng.randrange(size)
        start, start_cpu = time.perf_counter(), time.thread_time()
        estate.conditional_put(n)
        cpu.append(time.thread_time() - start_cpu)
        puts.append(time.perf_counter() - start)
    p50, p99 = _pct(puts, 0.5), _pct(puts, 0.99)
    cpu50, cpu99 = _pct(cpu, 0.5), _pct(cpu, 0.99)
    out["conditional_put_us"] = {
        "after_writes": size,
        "samples": len(puts),
        "p50": round(p50 * 1e6, 1),
        "p99": round(p99 * 1e6, 1),
        "max": round(max(puts) * 1e6, 1),
        "p99_over_p50": round(p99 / p50, 2),
        # On-CPU time: the emulator's own tail (GC pauses included), without the time the
        # machine's scheduler gave other processes in the middle of a write.
        "cpu_p50": round(cpu50 * 1e6, 1),
        "cpu_p99": round(cpu99 * 1e6, 1),
        "cpu_max": round(max(cpu) * 1e6, 1),
        "cpu_p99_over_p50": round(cpu99 / cpu50, 2),
    }
    out["rss_after_writes_mb"] = round(_rss_mb(), 1)
    out["operations_kept"] = len(estate.core.store.operations())
    out["activity_events_kept"] = len(estate.core.audit.log)
    return out


def _million_worker(size: int, freeze: bool) -> dict[str, Any]:
    """RSS after 100k and after 1M conditional writes on ``size`` resources."""
    estate = _Estate(size, freeze=freeze)
    out: dict[str, Any] = {"size": size}
    start = time.perf_counter()
    for w in range(1, 1_000_001):
        estate.conditional_put(w % size)
        if w == 100_000:
            out["rss_after_100k_writes_mb"] = round(_rss_mb(), 1)
    out["rss_after_1m_writes_mb"] = round(_rss_mb(), 1)
    out["writes_s"] = round(time.perf_counter() - start, 1)
    out["ratio_1m_over_100k"] = round(
        out["rss_after_1m_writes_mb"] / out["rss_after_100k_writes_mb"], 3
    )
    out["operations_kept"] = len(estate.core.store.operations())
    out["activity_events_kept"] = len(estate.core.audit.log)
    return out


def _timeline_make(ops: int, path: str) -> dict[str, Any]:
    """An Activity Log export of ``ops`` operations by 10 callers on 1,000 resources: a start
    and an end event each, every tenth a 409 conflict, as ``az monitor activity-log list``
    prints it (a JSON array)."""
    from armguard.clock import ManualClock
    from armguard.emulator.activity import ActivityLog

    clock = ManualClock()
    log = ActivityLog(clock, max_events=2 * ops + 1, seed=1)
    conflict = {
        "error": {
            "code": "AnotherOperationInProgress",
            "message": "Another operation on this or dependent resource is in progress.",
        }
    }
    for n in range(ops):
        rid = (
            f"/subscriptions/{SUB}/resourceGroups/g{n % 10}/providers/Microsoft.Network/"
            f"virtualNetworks/v{n % 1000}"
        )
        common = {
            "subscription": SUB,
            "caller": f"writer-{n % 10}@example.com",
            "operation_name": "Microsoft.Network/virtualNetworks/write",
            "resource_id": rid,
            "correlation_id": f"c-{n}",
            "operation_id": f"op-{n}",
            "method": "PUT",
            "uri": f"https://management.azure.com{rid}?api-version={API}",
        }
        log.append(status="Started", http_status=None, **common)
        clock.advance(0.05)
        if n % 10 == 9:
            log.append(status="Failed", http_status=409, error=conflict, **common)
        else:
            log.append(status="Succeeded", http_status=200, **common)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(list(reversed(log.dump())), out)
    return {"ops": ops, "bytes": os.path.getsize(path)}


def _timeline_worker(path: str, ops: int) -> dict[str, Any]:
    from armguard.diagnose.timeline import load_timeline

    before = _rss_mb()
    elapsed, found = _timed(load_timeline, [path])
    held = _rss_mb() - before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    assert len(found.operations) == ops, len(found.operations)
    return {
        "ops": ops,
        "seconds": round(elapsed, 2),
        "us_per_op": round(elapsed / ops * 1e6, 1),
        "held_bytes_per_op": round(held * 1024 * 1024 / ops),
        "peak_bytes_per_op": round(peak * 1024 * 1024 / ops),
        "conflicts": len(found.conflicts),
    }


def _run_worker(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(
    sizes: list[int],
    *,
    million: bool = False,
    freeze: bool = True,
    timeline_ops: int | None = None,
) -> dict[str, object]:
    """The emulator at each size, each in its own process; the timeline over
    ``timeline_ops`` operations (default: the largest size); the targets' ratios."""
    flag = "freeze" if freeze else "no-freeze"
    runs = []
    for size in sizes:
        print(f"emulator at {size} resources", file=sys.stderr)
        runs.append(_run_worker("emulator", str(size), flag))
    out: dict[str, object] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
        "gc_freeze_after_load": freeze,
        "emulator": runs,
    }
    small, large = runs[0], runs[-1]
    over = f"{large['size']}_over_{small['size']}"

    def ratio(section: str, key: str) -> float:
        return round(float(large[section][key]) / float(small[section][key]), 2)

    out["ratios"] = {
        f"list_group_{over}": ratio("list_group_ms", "p50"),
        f"list_group_cpu_{over}": ratio("list_group_ms", "cpu_p50"),
        f"activity_group_page_{over}": ratio("activity_page_ms", "group_p50"),
        f"activity_group_page_cpu_{over}": ratio("activity_page_ms", "group_cpu_p50"),
        f"activity_subscription_page_{over}": ratio("activity_page_ms", "subscription_p50"),
        f"activity_subscription_page_cpu_{over}": ratio("activity_page_ms", "subscription_cpu_p50"),
        f"conditional_put_p99_over_p50_at_{large['size']}": large["conditional_put_us"][
            "p99_over_p50"
        ],
        f"conditional_put_cpu_p99_over_p50_at_{large['size']}": large["conditional_put_us"][
            "cpu_p99_over_p50"
        ],
    }
    if million:
        print("1M writes", file=sys.stderr)
        out["million_writes"] = _run_worker("million", str(max(sizes)), flag)
    ops = timeline_ops or max(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "activity.json")
        print(f"timeline over {ops} operations", file=sys.stderr)
        made = _run_worker("timeline-make", str(ops), path)
        out["timeline"] = {"input_bytes": made["bytes"], **_run_worker("timeline", path, str(ops))}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="resources per run")
    parser.add_argument("--million", action="store_true", help="also RSS after 1M writes (slow)")
    parser.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() after load")
    parser.add_argument("--timeline-ops", type=int, help="operations in the timeline input")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "emulator":
            result = _emulator_worker(int(rest[0]), rest[1] == "freeze")
        elif kind == "million":
            result = _million_worker(int(rest[0]), rest[1] == "freeze")
        elif kind == "timeline-make":
            result = _timeline_make(int(rest[0]), rest[1])
        else:
            result = _timeline_worker(rest[0], int(rest[1]))
        print(json.dumps(result))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be integers separated by commas, not {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs at least one positive size")
    result = measure(
        sizes, million=args.million, freeze=not args.no_freeze, timeline_ops=args.timeline_ops
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
