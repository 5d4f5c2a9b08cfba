"""``armguard apply PLAN``: queue a plan's jobs, run a worker pool to the end, account for them.

With ``--emulator`` the plan runs against an embedded emulator built from the plan's ``world``
(resources, locks, and unguarded writers already at work), with an embedded SQLite store
unless ``--store`` says otherwise. The exit code is 1 when any job failed or was blocked, or
any intent was lost.

Ctrl-C (or SIGTERM) stops the run the way SIGTERM stops ``armguard worker``: batches whose
write ARM has finish, the others release their leases, and the command exits 130 (143) with
one line saying where the jobs are; a second Ctrl-C exits at once.

``--compare`` (with ``--emulator``) first runs the same plan's writers on their own, without
armguard, against a fresh embedded emulator built from the same world (see
:mod:`armguard.coordinator.naive`), then runs armguard as usual and prints both counts side by
side: conflicts surfaced to writers and updates lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from armguard.arm.client import ArmClient, ArmTransportError
from armguard.arm.ids import ResourceId
from armguard.cli.common import (
    GracefulStop,
    add_arm_outage_argument,
    add_endpoint_arguments,
    arm_error,
    arm_reporter,
    client_factory,
    open_store_arg,
)
from armguard.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Reporter,
    add_output_argument,
    print_json,
)
from armguard.clock import SystemClock, isoformat
from armguard.coordinator.apply import (
    ApplySummary,
    WorldError,
    build_world,
    final_states,
    find_lost,
    queue_plan,
    summarise,
)
from armguard.coordinator.gates import GateTimeout, Pacer, Stopped
from armguard.coordinator.model import Job, JobState
from armguard.coordinator.naive import NaiveReport, run_naive
from armguard.coordinator.plan import Plan, PlanError, load_plan
from armguard.coordinator.store import Store
from armguard.coordinator.stores import open_store, redact
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.coordinator.write import BatchReport

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apply",
        help="apply a plan of many writers' intents, conflict-safe, and report what was avoided",
        description=(
            "Queue every intent of a plan file (YAML or JSON), run a worker pool until each "
            "job has an outcome, read the resources back and check that no intent was lost. "
            "With --emulator the plan runs against an embedded emulator seeded from the plan's "
            "world. Stderr says what it is waiting for; stdout gets a table of jobs and a "
            "summary: outcomes, jobs surfaced to their writers (failed, or blocked by a lock "
            "for a person to decide), lost intents, and what armguard absorbed. Exit 0 when "
            "every job took effect or was safely dropped; 1 when a job failed or was blocked, "
            "an intent was lost or ARM gave no answer; 2 on bad input; 130 on Ctrl-C."
        ),
    )
    parser.add_argument("plan", help="plan file (YAML or JSON)")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="run against an embedded emulator seeded from the plan's world",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="SQLite path or postgresql:// URL (default: a fresh SQLite file; "
        ".armguard/jobs.db without --emulator)",
    )
    add_endpoint_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="batch loops")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        metavar="F",
        help="embedded emulator: multiply operation durations (default 0.05)",
    )
    parser.add_argument("--seed", type=int, default=0, help="embedded emulator: RNG seed")
    add_arm_outage_argument(parser)
    parser.add_argument(
        "--lease-ttl", type=float, default=60.0, metavar="S", help="lease time-to-live (s)"
    )
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="write events.jsonl, the Activity Log (emulator) and a timeline report.html here",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="with --emulator: first run the plan's writers without armguard (each reads, then "
        "writes, all at once, with the SDK's default retries) on a fresh emulator with the same "
        "world, and print both runs' conflicts surfaced and updates lost side by side",
    )
    parser.add_argument(
        "--details",
        action="store_true",
        help="table output: add each job's full reason (--output json always has it)",
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


@contextmanager
def _embedded(time_scale: float, seed: int) -> Iterator[str]:
    from armguard.testing import emulator  # noqa: PLC0415  (only --emulator needs a server)

    # Real time, scaled durations; Retry-After capped at 1 s so polls stay brisk.
    with emulator(clock=SystemClock(), time_scale=time_scale, seed=seed, retry_after_max=1) as arm:
        yield arm.base_url


def _progress(reporter: Reporter, total: int) -> tuple[Progress, Callable[[BatchReport], None]]:
    progress = Progress(
        TextColumn("[bold]applying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs · {task.fields[writes]} ARM writes"),
        TimeElapsedColumn(),
        console=reporter.console,
        transient=False,
    )
    task = progress.add_task("jobs", total=total, writes=0)
    state = {"writes": 0}
    lock = threading.Lock()

    def on_batch(report: BatchReport) -> None:
        # On a loop's thread: count here, draw on the reporter's thread.
        with lock:
            state["writes"] += report.writes
            writes = state["writes"]
        done = len(report.results)
        reporter.call(lambda: progress.update(task, advance=done, writes=writes))

    return progress, on_batch


def _activity_log(arm: ArmClient, subscriptions: set[str], since: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    flt = f"eventTimestamp ge '{isoformat(since - 60)}'"
    for sub in sorted(subscriptions):
        url: str | None = (
            f"/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values"
        )
        params: dict[str, str] | None = {"$filter": flt}
        while url:
            response = arm.request("GET", url, api_version="2015-04-01", params=params)
            if not response.ok or not isinstance(response.body, dict):
                break
            events.extend(v for v in response.body.get("value", []) if isinstance(v, dict))
            url, params = response.body.get("nextLink"), None
    return events


def _write_report(
    directory: Path, store: Store, jobs: dict[int, Job], activity: list[dict[str, Any]] | None
) -> list[Path]:
    from armguard.diagnose.report import render_report  # noqa: PLC0415
    from armguard.diagnose.timeline import load_timeline  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    ids = {j.id for j in jobs.values()}
    events_path = directory / "events.jsonl"
    with events_path.open("w", encoding="utf-8") as fh:
        for event in store.events():
            if event.job_id in ids:
                fh.write(event.to_json() + "\n")
    written = [events_path]
    sources = [str(events_path)]
    if activity is not None:
        activity_path = directory / "activity.json"
        activity_path.write_text(json.dumps(activity, indent=1), encoding="utf-8")
        written.append(activity_path)
        sources.insert(0, str(activity_path))
    timeline = load_timeline(sources)
    html_path = directory / "report.html"
    html_path.write_text(render_report(timeline, time.time(), "armguard apply"), encoding="utf-8")
    written.append(html_path)
    return written


def _job_rows(plan: Plan, jobs: dict[int, Job], store: Store) -> list[dict[str, Any]]:
    """One row per planned job, nothing shortened: the table shows the short columns (and the
    reason with --details), JSON every field."""
    rows = []
    for planned in plan.jobs:
        job = jobs[planned.index]
        error = arm_error(store, job)
        rows.append(
            {
                "job": job.id,
                "writer": planned.writer,
                "resource": planned.resource.name,
                "name": _short_name(planned.resource),
                "resourceId": str(planned.resource),
                "type": planned.resource.type,
                "intent": planned.intent.kind,
                "outcome": job.outcome.value if job.outcome else job.state.value,
                "attempts": job.attempts,
                "takeovers": job.attempts,
                "kind": job.kind,
                "reason": job.reason,
                **({"armError": error} if error is not None else {}),
            }
        )
    return rows


def _summary_json(summary: ApplySummary) -> dict[str, Any]:
    return {
        "jobs": summary.jobs,
        "outcomes": dict(summary.outcomes),
        "armWrites": summary.arm_writes,
        "conflictsAbsorbed": dict(summary.conflicts_absorbed),
        "conflictsSurfaced": summary.conflicts_surfaced,
        "surfacedToWriters": {
            "total": sum(summary.surfaced.values()),
            "byOutcome": [
                {"outcome": outcome, "kind": kind or None, "jobs": n}
                for (outcome, kind), n in sorted(summary.surfaced.items())
            ],
            "text": summary.surfaced_line(),
        },
        "waitsOnOperations": summary.waits_on_operations,
        "prerequisitesRun": summary.prerequisites_run,
        "rebased": summary.rebased,
        "coalescedJobs": summary.coalesced_jobs,
        "backoffs": summary.backoffs,
        "lostIntents": [lost.__dict__ for lost in summary.lost],
        "avoided": summary.avoided(),
    }


def _short_name(rid: ResourceId) -> str:
    """``vnet-prod/app`` for a subnet: a child's bare name says too little in a table."""
    names = [rid.name]
    while rid.is_child and rid.parent is not None:
        rid = rid.parent
        names.insert(0, rid.name)
    return "/".join(names)


def _print_jobs(rows: list[dict[str, Any]], details: bool, title: str) -> None:
    columns = ["writer", "resource", "intent", "outcome", "takeovers", "kind"]
    if details:
        columns.append("reason")
    table = Table(title=title, header_style="bold")
    for col in columns:
        # Fold, never cut: a name ending in an ellipsis cannot be looked up.
        table.add_column(col, overflow="fold")
    for row in rows:
        cells = {**row, "resource": row["name"]}
        table.add_row(*("" if cells.get(c) is None else escape(str(cells[c])) for c in columns))
    # COLUMNS is honoured even when piped; without it, CI logs get room for --details.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    Console(soft_wrap=True, width=width).print(table)


def _build_world(
    reporter: Reporter, client_for: Callable[[str], ArmClient], plan: Plan, pacer: Pacer
) -> None:
    reporter.say(
        f"building the plan's world ({len(plan.resources)} resource(s), "
        f"{len(plan.locks)} lock(s), {len(plan.unguarded)} unguarded write(s)); "
        "waiting for the resources' operations to finish"
    )
    try:
        for note in build_world(
            client_for, plan, pacer, lambda step: reporter.say(f"world {step}")
        ):
            reporter.say(f"world: {note}")
    except Stopped:
        pass  # reported by the caller, with nothing queued
    except (WorldError, GateTimeout) as exc:
        raise CliError(f"cannot build the plan's world: {exc}", EXIT_FAILED) from None


def _naive_json(naive: NaiveReport) -> dict[str, Any]:
    return {
        "writers": len(naive.results),
        "conflictsSurfaced": len(naive.surfaced),
        "updatesLost": len(naive.lost),
        "requests": naive.requests,
        "surfaced": [
            {
                "writer": r.writer,
                "resourceId": r.resource_id,
                "method": r.method,
                "status": r.status,
                "code": r.code or None,
                "message": r.message,
            }
            for r in naive.surfaced
        ],
        "lost": [
            {"writer": p.writer, "resourceId": str(p.resource), "intent": p.intent.to_json()}
            for p in naive.lost
        ],
    }


def _run_naive(
    args: argparse.Namespace, reporter: Reporter, plan: Plan, pacer: Pacer, stop: GracefulStop
) -> NaiveReport:
    """The plan's writers without armguard, on an emulator of their own: armguard's run must
    start from the same untouched world, not from what the naive writers left behind."""
    with _embedded(args.time_scale, args.seed) as endpoint:
        reporter.say(
            f"naive run first: {len(plan.jobs)} writers without armguard on a fresh embedded "
            f"emulator at {endpoint}, same world"
        )
        _build_world(reporter, client_factory(endpoint, args.cloud), plan, pacer)
        if stop.stopping:
            raise CliError(f"{stop.reason()} during the naive run", stop.exit_code())
        reporter.say(
            f"naive run: {len(plan.jobs)} writers at once, each reads then writes "
            "(SDK default retries, no If-Match unless it holds an ETag); waiting for them"
        )
        try:
            naive = run_naive(plan, endpoint, pacer, cloud=args.cloud)
        except Stopped:
            raise CliError(f"{stop.reason()} during the naive run", stop.exit_code()) from None
    by_error = ", ".join(f"{n}× {e}" for e, n in sorted(naive.surfaced_by_error().items()))
    reporter.say(
        f"naive run: {len(naive.surfaced)} of {len(naive.results)} writers were handed an error"
        + (f" ({by_error})" if by_error else "")
        + f", {len(naive.lost)} updates lost, {naive.requests} requests"
    )
    return naive


def _print_compare(out: Console, naive: NaiveReport, summary: ApplySummary) -> None:
    surfaced = sum(summary.surfaced.values())
    out.print("\n[bold]side by side[/bold] — the same plan on the same world:")
    out.print(
        f"  naive:    [bold]{len(naive.surfaced)}[/bold] conflicts surfaced, "
        f"[bold]{len(naive.lost)}[/bold] updates lost  (each writer reads then writes, at once)"
    )
    out.print(
        f"  armguard: [bold]{surfaced}[/bold] conflicts surfaced, "
        f"[bold]{len(summary.lost)}[/bold] updates lost"
    )
    for result in naive.surfaced:
        name = _short_name(ResourceId.parse(result.resource_id))
        out.print(
            f"  naive [red]surfaced[/red]: {escape(result.writer)} {result.method} {escape(name)}"
            f" → {escape(result.error)}",
            highlight=False,
        )
    for planned in naive.lost:
        out.print(
            f"  naive [red]lost[/red]: {escape(planned.writer)}'s {planned.intent.kind} on "
            f"{escape(_short_name(planned.resource))}",
            highlight=False,
        )


def _stopped(reason: str, jobs: dict[int, Job], store_url: str | None) -> str:
    finished = sum(1 for j in jobs.values() if j.outcome is not None)
    queued = sum(1 for j in jobs.values() if j.state is JobState.QUEUED)
    message = f"{reason}: {finished} of {len(jobs)} jobs finished, {queued} back in the queue"
    leased = len(jobs) - finished - queued
    if leased:
        message += f", {leased} still leased (taken over once the lease expires)"
    if store_url is not None and queued + leased:
        message += f", in {redact(store_url)} for the next worker"
    return message


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    if args.time_scale < 0:
        raise CliError("--time-scale must be 0 or more")
    if args.lease_ttl <= 0:
        raise CliError("--lease-ttl must be positive")
    if args.arm_outage < 0:
        raise CliError("--arm-outage must be >= 0")
    if args.emulator and args.endpoint:
        raise CliError("give either --emulator or --endpoint, not both")
    if args.compare and not args.emulator:
        raise CliError("--compare needs --emulator: the naive run must not touch real resources")
    try:
        plan = load_plan(args.plan)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    console = Console(stderr=True)
    # Made before any thread starts: it loads what Rich loads lazily, on this thread.
    reporter = Reporter(console)
    clock = SystemClock()
    stop = GracefulStop(reporter.say)
    # Outermost, so a signal during start-up or tear-down (the embedded emulator stopping)
    # is a stop request too, not a traceback from wherever the main thread was.
    with stop, ExitStack() as stack:
        endpoint = args.endpoint
        store_url = args.store
        # Jobs left unfinished by a stop are only worth pointing at in a store that outlives
        # this run against an endpoint that does too.
        kept = not args.emulator
        # Short slices: a stop during the world's operations is seen within a second.
        pacer = Pacer(
            clock,
            keep_alive=lambda: None,
            should_stop=lambda: stop.stopping,
            slice=1.0,
            max_wait=600,
        )
        naive: NaiveReport | None = None
        if args.compare:
            naive = _run_naive(args, reporter, plan, pacer, stop)
        if args.emulator:
            endpoint = stack.enter_context(_embedded(args.time_scale, args.seed))
            console.print(
                f"embedded emulator at {endpoint} (time scale {args.time_scale})"
                + (" for armguard's run" if args.compare else "")
            )
            if store_url is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="armguard-"))
                store_url = str(Path(tmp) / "jobs.db")
        elif store_url is None:
            Path(".armguard").mkdir(exist_ok=True)
            store_url = ".armguard/jobs.db"
        if (plan.resources or plan.locks or plan.unguarded) and not args.emulator:
            console.print("note: the plan's world is only built on the embedded emulator; ignored")
        client_for = client_factory(endpoint, args.cloud)
        store = open_store_arg(store_url, clock, create=True)
        stack.callback(store.close)
        started = clock.now()
        if args.emulator:
            _build_world(reporter, client_for, plan, pacer)
        if stop.stopping:
            raise CliError(f"{stop.reason()} before any job was queued", stop.exit_code())
        jobs = queue_plan(store, plan)
        console.print(
            f"queued {len(jobs)} jobs from {len(plan.jobs)} intents of plan '{plan.name}'"
        )
        progress, on_batch = _progress(reporter, len(jobs))
        worker = Worker(
            # Not open_store_arg: a StoreError must reach the loops, which wait it out.
            lambda: open_store(store_url, clock=clock),
            client_for,
            clock,
            settings=WorkerSettings(
                concurrency=args.concurrency,
                lease_ttl=args.lease_ttl,
                arm_outage=args.arm_outage,
            ),
            on_batch=on_batch,
            on_arm=arm_reporter(endpoint or args.cloud, reporter.say),
        )
        stop.on_stop(worker.stop)
        console.print(
            f"running them with {args.concurrency} loop(s) against {endpoint or args.cloud}; "
            "waiting until every job has an outcome",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        # Leaving, the reporter prints what the loops queued before the bar's last frame.
        with progress, reporter:
            stats = worker.run_until_idle()
        if stop.stopping:
            # The run did not end: no accounting of final states, only where the jobs are.
            done = {i: store.get(j.id) or j for i, j in jobs.items()}
            raise CliError(
                _stopped(stop.reason(), done, store_url if kept else None), stop.exit_code()
            )
        console.print(
            f"reading the final state of {len({p.resource.key for p in plan.jobs})} resource(s)"
            " to check that no intent was lost",
            highlight=False,
            markup=False,
        )
        reader = client_for("armguard-verify")
        versions = {p.resource.key: p.intent.api_version for p in plan.jobs if p.intent.api_version}
        try:
            final = final_states(reader, [p.resource for p in plan.jobs], versions)
        except ArmTransportError as exc:
            done = {i: store.get(j.id) or j for i, j in jobs.items()}
            counts = Counter(str(j.outcome or j.state) for j in done.values())
            raise CliError(
                f"ARM gave no answer reading the final states ({exc}); the jobs ended "
                + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
                EXIT_FAILED,
            ) from None
        done = {i: store.get(j.id) or j for i, j in jobs.items()}
        lost = find_lost(plan, done, final)
        summary = summarise(store, done, stats.writes, lost)
        written: list[Path] = []
        if args.report:
            activity = None
            if args.emulator:
                subs = {p.resource.subscription for p in plan.jobs}
                activity = _activity_log(client_for("armguard-report"), subs, started)
            written = _write_report(Path(args.report), store, done, activity)
        rows = _job_rows(plan, done, store)
    if args.output == "json":
        doc: dict[str, Any] = {"plan": plan.name, "summary": _summary_json(summary), "jobs": rows}
        if naive is not None:
            doc["compare"] = {
                "naive": _naive_json(naive),
                "armguard": {
                    "writers": summary.jobs,
                    "conflictsSurfaced": sum(summary.surfaced.values()),
                    "updatesLost": len(summary.lost),
                },
            }
        print_json(doc)
    else:
        _print_jobs(rows, args.details, f"plan: {plan.name}")
        # Piped summaries are read in CI logs: long lines stay whole, as print_table's do.
        out = Console(soft_wrap=True)
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items()))
        out.print(f"\n[bold]{summary.jobs} intents[/bold]: {outcomes}")
        out.print(
            f"surfaced to writers: [bold]{escape(summary.surfaced_line())}[/bold] · "
            f"lost intents: [bold]{len(summary.lost)}[/bold]"
        )
        for line in summary.avoided():
            out.print(f"  • armguard {line}")
        for missing in summary.lost:
            out.print(
                f"[red]lost[/red]: {missing.writer} {missing.intent} on {missing.resource_id}"
            )
        if naive is not None:
            _print_compare(out, naive, summary)
        for path in written:
            out.print(f"wrote {path}")
    sys.stdout.flush()
    return EXIT_OK if summary.ok else EXIT_FAILED
