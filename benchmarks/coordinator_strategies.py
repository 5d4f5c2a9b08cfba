"""Four ways to write to ARM concurrently, on the same workloads, side by side in one run,
against the ideal schedule run for real.

Strategies (``benchmarks/strategies/``):

* ``clairvoyant`` — the measured ideal: knows every intent at t=0, folds each resource's into
  one write, runs writes sharing a lock key back to back and the rest in parallel, over the same
  HTTP and polling as the others. ``makespanVsIdeal`` divides by its makespan.
* ``naive`` — GET, modify, PUT without ``If-Match``; failures go straight to the caller.
* ``blind-retry`` — GET once, PUT with ``If-Match``; on 409/412 sleep a fixed time and resend the
  SAME stale ETag and body (the seeds' wrong fix), up to ``--blind-tries`` attempts.
* ``refresh-retry`` — client-go ``RetryOnConflict``: re-GET, re-apply, ``If-Match``, exponential
  backoff (±10 % jitter) on 409/412/429, at most ``--refresh-tries`` attempts.
* ``armguard`` — every intent submitted to a SQLite store; the real ``Worker`` (``--concurrency``
  loops) drains it while the writers submit.

Strategies a–c wait for each accepted write's operation like the SDKs' ``poller.result()``
(status URL, Retry-After) before the writer's next intent. No SDK retry policy is involved.

Workloads (``strategies/workloads.py``): ``hot-tag`` (every writer sets its own tag on one VNet),
``hot-tag-noetag`` (the same on a storage account, a type without ETags), ``subnets`` (each writer
moves its own subnet of one VNet between NSGs), ``vm-resize`` (each writer resizes its own running
VM) and ``stale-queue`` (queued tag intents whose ETag and body predate another writer's change).

Every (workload, strategy) pair gets a fresh ``armguard emulator`` subprocess on 127.0.0.1 at
``--time-scale``; all client-side waits (Retry-After polls, backoff, fixed sleeps, lease TTLs) run
on a clock scaled by the same factor, so the run keeps ARM's proportions, only faster. Fixed real
costs (HTTP round trips, SQLite commits, thread scheduling) do NOT scale: the smaller the time
scale, the larger their share of the makespan, for every strategy alike.

Metrics per workload × strategy:

* ``lost`` — intents whose value is absent from the final state (read back from the emulator)
  and not superseded by a later intent on the same field; ``lostSilently`` — of those, the ones
  the strategy reported as succeeded.
* ``conflictsSeen`` — 409 and 412 answers to the writers' write requests (Activity Log);
  ``conflictsSurfaced`` — intents that ended as an error on a conflict (409/412 for a–c; for
  armguard, jobs that ended failed/blocked with a conflict kind).
* ``armWritesPerIntent`` — write requests (PUT/PATCH/POST/DELETE, accepted or refused) the
  writers sent, from the Activity Log, divided by the intents.
* ``vmsLeftNotRunning`` (vm-resize) — VMs that were running before and are not at the end.
* ``makespanSeconds`` — wall time from the first intent issued to the last one ended (armguard:
  to the store reporting every job done); ``idealSeconds`` — the clairvoyant run's makespan;
  ``modelSeconds`` — the same schedule on paper (configured durations × time scale, per workload
  in ``strategies/workloads.py``), for reference.

Defaults: 48 writers × 4 intents (each writer owns one tag in the tag workloads, and ARM allows
50 tags per resource), time scale 0.02, armguard concurrency = writers. ``--quick``: 8 × 2.
Bounds: a–c make at most ``tries`` writes per intent; every pair stops after ``--run-timeout``.

Prints one JSON document on stdout; progress on stderr.

    python benchmarks/coordinator_strategies.py --quick
    python benchmarks/coordinator_strategies.py [--workloads hot-tag,subnets] [--strategies ...]
        [--writers 48] [--intents-per-writer 4] [--time-scale 0.02] [--concurrency N]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

if not __package__:
    # Run as a script: make the repository root importable so ``benchmarks.strategies`` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.strategies import armguard_worker, blind_retry, clairvoyant, naive, refresh_retry
from benchmarks.strategies.common import (
    Clients,
    IntentOutcome,
    RunContext,
    StrategyResult,
    Tally,
    finish_write,
    run_writers,
    send_put,
)
from benchmarks.strategies.emulator_process import served_emulator
from benchmarks.strategies.scaled_clock import ScaledClock
from benchmarks.strategies.scoring import activity_counts, final_bodies, lost_intents, power_states
from benchmarks.strategies.workloads import WORKLOADS, Workload, build_workload, check_sizes
from rich.console import Console

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.cli.output import print_json

STRATEGIES = ("clairvoyant", "naive", "blind-retry", "refresh-retry", "armguard")
PER_INTENT: dict[str, Callable[[RunContext, Any], IntentOutcome]] = {
    "naive": naive.run_intent,
    "blind-retry": blind_retry.run_intent,
    "refresh-retry": refresh_retry.run_intent,
}
TARGETS = {
    "lost": 0,
    "conflictsSurfaced": 0,
    "makespanVsIdeal": 1.2,
    "armWritesPerIntent (hot-tag workloads)": 0.25,
}
QUICK = {"writers": 8, "intents_per_writer": 2, "time_scale": 0.02}

console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class UsageError(Exception):
    pass


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare naive, blind-retry, refresh-retry and armguard writes on one emulator.",
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated")
    parser.add_argument("--writers", type=int, help="concurrent writers (default 48; quick 8)")
    parser.add_argument(
        "--intents-per-writer", type=int, help="intents each writer issues in order (default 4)"
    )
    parser.add_argument(
        "--time-scale", type=float, help="emulator and client time scale (default 0.02)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="8 writers × 2 intents (explicit flags still win)"
    )
    parser.add_argument("--concurrency", type=int, help="armguard worker loops (default: writers)")
    parser.add_argument("--blind-tries", type=int, default=5, help="blind-retry attempts")
    parser.add_argument(
        "--blind-sleep", type=float, default=15.0, help="blind-retry fixed sleep, emulated s"
    )
    parser.add_argument("--refresh-tries", type=int, default=5, help="refresh-retry attempts")
    parser.add_argument(
        "--refresh-base", type=float, default=1.0, help="refresh-retry first backoff, emulated s"
    )
    parser.add_argument("--refresh-factor", type=float, default=2.0)
    parser.add_argument("--refresh-cap", type=float, default=30.0, help="emulated s")
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        help="armguard lease TTL in REAL seconds: it detects stalled workers, and stalls (the"
        " GIL, thread scheduling) do not shrink with the time scale",
    )
    parser.add_argument(
        "--linger", type=float, default=0.5, help="armguard worker debounce, emulated s"
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=256,
        help="armguard jobs folded per write (the ideal folds every intent on a resource)",
    )
    parser.add_argument(
        "--linger-max", type=float, default=5.0, help="armguard longest debounce, emulated s"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=300.0, help="real seconds per workload × strategy"
    )
    parser.add_argument("--seed", type=int, default=0, help="emulator seed")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"writers": 48, "intents_per_writer": 4, "time_scale": 0.02}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.workloads = _names(args.workloads, list(WORKLOADS), "workload(s)")
    args.strategies = _names(args.strategies, STRATEGIES, "strategy(ies)")
    if args.concurrency is None:
        args.concurrency = args.writers
    checks = [
        (args.writers >= 1, "--writers must be at least 1"),
        (args.intents_per_writer >= 1, "--intents-per-writer must be at least 1"),
        (args.writers * args.intents_per_writer <= 20_000, "at most 20000 intents per workload"),
        (0 < args.time_scale <= 1, "--time-scale must be in (0, 1]"),
        (1 <= args.concurrency <= 256, "--concurrency must be between 1 and 256"),
        (args.blind_tries >= 1 and args.refresh_tries >= 1, "tries must be at least 1"),
        (args.blind_sleep >= 0 and args.refresh_base >= 0, "sleeps must be >= 0"),
        (args.refresh_factor >= 1 and args.refresh_cap > 0, "--refresh-factor >= 1, cap > 0"),
        (args.lease_ttl > 0 and args.run_timeout > 0, "--lease-ttl and --run-timeout must be > 0"),
        (0 <= args.linger <= args.linger_max, "need 0 <= --linger <= --linger-max"),
        (args.max_batch >= 1, "--max-batch must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    problem = check_sizes(args.workloads, args.writers)
    if problem:
        raise UsageError(problem)
    return args


def _advance(ctx: RunContext, workload: Workload) -> Workload:
    """stale-queue: read the resource, then let another writer change it; the queued intents
    keep the read's ETag and body."""
    setup = workload.stale_setup
    if setup is None:
        return workload
    client = ctx.clients(setup.writer)
    live = client.request("GET", setup.resource_id, api_version=setup.api_version)
    if not live.ok:
        raise RuntimeError(f"stale-queue setup: GET answered {live.status}")
    response = send_put(ctx, setup, setup.apply(live.body), live.etag)
    outcome = finish_write(ctx, setup, response, 1) if response.ok else None
    if outcome is None or not outcome.ok:
        raise RuntimeError(f"stale-queue setup write failed: {response.status} {response.text}")
    return workload.with_baseline(live.etag, live.body)


def _warm_up(clients: Clients, workload: Workload) -> None:
    """One read per writer before the clock starts: the first request of a process pays for
    importing the HTTP transport and connecting (~90 ms here), which would otherwise be charged
    to whichever strategy happens to run first."""
    for intent in {i.writer: i for i in workload.intents}.values():
        clients(intent.writer).request("GET", intent.resource_id, api_version=intent.api_version)


def run_pair(
    workload: Workload, strategy: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    options = {
        "blind_tries": args.blind_tries,
        "blind_sleep": args.blind_sleep,
        "refresh_tries": args.refresh_tries,
        "refresh_base": args.refresh_base,
        "refresh_factor": args.refresh_factor,
        "refresh_cap": args.refresh_cap,
        "concurrency": args.concurrency,
        "lease_ttl": args.lease_ttl / args.time_scale,
        "linger": args.linger,
        "linger_max": args.linger_max,
        "max_batch": args.max_batch,
    }
    with served_emulator(
        workdir, workload.resources, time_scale=args.time_scale, seed=args.seed
    ) as emulator:
        clients = Clients(emulator.base_url)
        ctx = RunContext(
            clients,
            ScaledClock(args.time_scale),
            Tally(),
            options,
            time.monotonic() + args.run_timeout,
        )
        try:
            staged = _advance(ctx, workload)
            _warm_up(clients, staged)
            ctx.tally = Tally()  # the setup write is not the strategy's
            load = os.getloadavg()[0]
            if strategy == "armguard":
                result = armguard_worker.run(ctx, staged.writers, workdir)
            elif strategy == "clairvoyant":
                result = clairvoyant.run(ctx, staged.writers)
            else:
                one = PER_INTENT[strategy]
                outcomes, seconds = run_writers(staged.writers, lambda i: one(ctx, i))
                result = StrategyResult(outcomes, seconds)
            harness = ArmClient(
                StaticIdentityCredential("bench-harness"), endpoint=emulator.base_url
            )
            final = final_bodies(harness, staged.intents)
            powers = (
                power_states(harness, staged.intents)
                if workload.extra.get("checkRunning")
                else None
            )
            harness.close()
            events = emulator.state().get("activityLog") or []
        finally:
            clients.close()
    return score(
        staged,
        result,
        tally=ctx.tally,
        final=final,
        powers=powers,
        events=events,
        args=args,
        load=load,
    )


def score(
    workload: Workload,
    result: StrategyResult,
    *,
    tally: Tally,
    final: dict[str, Any],
    powers: Counter[str] | None,
    events: list[dict[str, Any]],
    args: argparse.Namespace,
    load: float,
) -> dict[str, Any]:
    n = len(result.outcomes)
    lost, silent = lost_intents(result.outcomes, final, workload.stale_setup)
    writers = {i.writer for i in workload.intents}
    activity = activity_counts(events, writers)
    ideal = workload.ideal.seconds * args.time_scale
    failed = Counter(f"{o.status or '-'} {o.code}" for o in result.outcomes if not o.ok)
    out: dict[str, Any] = {
        "intents": n,
        "succeeded": sum(o.ok for o in result.outcomes),
        "failed": sum(not o.ok for o in result.outcomes),
        "failedBy": dict(failed.most_common()),
        "lost": len(lost),
        "lostSilently": len(silent),
        "lostFields": sorted(o.intent.field.rsplit("/", 1)[-1] for o in lost)[:10],
        "conflictsSeen": activity.conflicts,
        "conflictsSurfaced": sum(o.conflict_surfaced for o in result.outcomes),
        "armWriteRequests": activity.requests,
        "armWritesPerIntent": round(activity.requests / n, 3) if n else None,
        "acceptedWritesPerIntent": round((activity.requests - activity.refused) / n, 3)
        if n
        else None,
        "writeAnswers": activity.to_json()["byStatus"],
        "writeOperations": activity.to_json()["byOperation"],
        "makespanSeconds": round(result.seconds, 3),
        "modelSeconds": round(ideal, 4),
        "makespanVsModel": round(result.seconds / ideal, 2) if ideal else None,
        "loadAverage1m": round(load, 2),
    }
    if tally.write_statuses or tally.sleeps or tally.polls:
        out["client"] = {
            "writeStatuses": {str(k): v for k, v in sorted(tally.write_statuses.items())},
            "fixedOrBackoffSleeps": tally.sleeps,
            "sleptEmulatedSeconds": round(tally.slept_s, 1),
            "operationPolls": tally.polls,
        }
    if result.details:
        out["armguard"] = result.details
    if powers is not None:
        out["vmPowerStates"] = dict(sorted(powers.items()))
        # The resize happened, but a VM that was running and is not any more is an outage.
        out["vmsLeftNotRunning"] = sum(powers.values()) - powers["running"]
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, data in results.items():
        mine = data["strategies"].get("armguard")
        if mine is None or "error" in mine:
            continue
        checks = [
            ("lost", mine["lost"], 0),
            ("conflictsSurfaced", mine["conflictsSurfaced"], 0),
            ("makespanVsIdeal", mine["makespanVsIdeal"], 1.2),
        ]
        if name.startswith("hot-tag"):
            checks.append(("armWritesPerIntent", mine["armWritesPerIntent"], 0.25))
        if "vmsLeftNotRunning" in mine:
            checks.append(("vmsLeftNotRunning", mine["vmsLeftNotRunning"], 0))
        for metric, value, target in checks:
            rows.append(
                {
                    "workload": name,
                    "metric": metric,
                    "value": value,
                    "target": target,
                    "met": value is not None and value <= target,
                }
            )
    return rows


def _against_ideal(entry: dict[str, Any]) -> None:
    """The measured ideal is the clairvoyant run's makespan; without one (not selected, or it
    failed), the schedule model stands in, and the rows say which."""
    clair = entry["strategies"].get("clairvoyant")
    measured = clair is not None and "error" not in clair and clair["failed"] == 0
    entry["idealSource"] = "clairvoyant run" if measured else "schedule model"
    ideal = clair["makespanSeconds"] if measured else entry["ideal"]["seconds"]
    entry["idealSeconds"] = ideal
    for row in entry["strategies"].values():
        if "error" in row:
            continue
        row["idealSeconds"] = ideal
        row["makespanVsIdeal"] = round(row["makespanSeconds"] / ideal, 2) if ideal else None


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as err:
        sys.stderr.write(f"ERROR: {err}\n")
        return 2
    # SIGTERM unwinds like Ctrl-C, so the emulator subprocess of the current run is stopped too.
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    errors: list[str] = []
    for name in args.workloads:
        workload = build_workload(name, args.writers, args.intents_per_writer)
        entry: dict[str, Any] = {
            "description": workload.description,
            "intents": len(workload.intents),
            "ideal": workload.ideal.to_json(args.time_scale),
            "strategies": {},
        }
        for strategy in args.strategies:
            console.print(f"[{name}] {strategy}: {len(workload.intents)} intents…")
            with tempfile.TemporaryDirectory(prefix="armguard-bench-") as tmp:
                try:
                    row = run_pair(workload, strategy, args, Path(tmp))
                except Exception as err:  # one broken pair must not hide the others' numbers
                    errors.append(f"{name}/{strategy}: {type(err).__name__}: {err}")
                    entry["strategies"][strategy] = {"error": f"{type(err).__name__}: {err}"}
                    console.print(f"[{name}] {strategy}: ERROR {err}")
                    continue
            entry["strategies"][strategy] = row
            clair = entry["strategies"].get("clairvoyant", {})
            versus = (
                f"{row['makespanSeconds'] / clair['makespanSeconds']:.2f}× clairvoyant"
                if clair.get("makespanSeconds")
                else f"{row['makespanVsModel']}× model"
            )
            console.print(
                f"[{name}] {strategy}: lost {row['lost']} (silently {row['lostSilently']}),"
                f" 409/412 seen {row['conflictsSeen']} surfaced {row['conflictsSurfaced']},"
                f" writes/intent {row['armWritesPerIntent']},"
                f" makespan {row['makespanSeconds']} s = {versus}"
                + (
                    f", VMs left not running {row['vmsLeftNotRunning']}"
                    if "vmsLeftNotRunning" in row
                    else ""
                )
            )
        _against_ideal(entry)
        results[name] = entry
    document = {
        "benchmark": "coordinator_strategies",
        "config": {
            "workloads": args.workloads,
            "strategies": args.strategies,
            "writers": args.writers,
            "intentsPerWriter": args.intents_per_writer,
            "timeScale": args.time_scale,
            "armguardConcurrency": args.concurrency,
            "armguardLeaseTtlRealS": args.lease_ttl,
            "armguardLingerEmulatedS": [args.linger, args.linger_max],
            "armguardMaxBatch": args.max_batch,
            "blindRetry": {"tries": args.blind_tries, "sleepEmulatedS": args.blind_sleep},
            "refreshRetry": {
                "tries": args.refresh_tries,
                "baseEmulatedS": args.refresh_base,
                "factor": args.refresh_factor,
                "capEmulatedS": args.refresh_cap,
                "jitter": "+0-10%",
            },
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadAverageAtStart": [round(x, 2) for x in load_start],
        },
        "definitions": {
            "lost": "intents whose value is absent from the final state and not superseded by a"
            " later intent on the same field; lostSilently: of those, reported as succeeded",
            "conflictsSeen": "409/412 answers to the writers' write requests (Activity Log)",
            "conflictsSurfaced": "intents that ended as an error on a 409/412 (armguard: on a"
            " conflict kind)",
            "armWritesPerIntent": "writers' write requests (accepted or refused, Activity Log)"
            " / intents",
            "makespanSeconds": "wall time, first intent issued → last intent ended",
            "vmsLeftNotRunning": "vm-resize: VMs running before the run and not after it",
            "idealSeconds": "the ideal serialised schedule, run: the clairvoyant strategy knows"
            " every intent at t=0, folds each resource's into one write, runs writes sharing a"
            " lock key back to back and the rest in parallel, over the same HTTP and Retry-After"
            " polling as everyone (so the ratio is coordination overhead alone); 'schedule"
            " model' when it did not run",
            "modelSeconds": "the same schedule on paper: the emulator's configured durations ×"
            " time scale, no HTTP, no polling (a synchronous write counts its configured"
            " duration although the emulator answers it at once)",
        },
        "results": results,
        "armguardTargets": targets(results),
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_json(document)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
