"""``armguard worker``: run batch loops against ARM (or the emulator) until idle, SIGTERM (exit 0)
or Ctrl-C (exit 130); either signal lets written batches finish and releases the rest."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console

from armguard.cli.common import (
    GracefulStop,
    add_arm_outage_argument,
    add_endpoint_arguments,
    add_store_argument,
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
    print_table,
)
from armguard.clock import SystemClock
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.reachability import ReachabilityChange
from armguard.coordinator.sql_store import StoreError
from armguard.coordinator.stores import open_store, redact
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.coordinator.write import BatchReport, WriterSettings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run queued jobs against ARM: serialised, coalesced, rebased, gated",
        description=(
            "Run batch loops that claim the store's queued jobs per resource and dependent "
            "scope under a fenced lease, fold each resource's jobs into one write, rebase stale "
            "intents, wait on running operations and recover from each failure class, then "
            "record one outcome per job. Creates an SQLite store that does not exist yet. "
            "Stderr says what it waits for and prints outcome counts as batches finish, and a "
            "WARNING when ARM or the store stops answering; stdout gets a summary at the end. "
            "Runs until SIGTERM (exit 0), Ctrl-C (exit 130) or, with --until-idle, until no "
            "job is queued or running (exit 0); 2 on bad input; 1 if the store cannot be used."
        ),
    )
    add_store_argument(parser)
    add_endpoint_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="batch loops")
    parser.add_argument(
        "--until-idle", action="store_true", help="exit once no job is queued or running"
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on 127.0.0.1:N"
    )
    parser.add_argument(
        "--lease-ttl", type=float, default=60.0, metavar="S", help="lease time-to-live (s)"
    )
    parser.add_argument(
        "--max-batch", type=int, default=64, metavar="N", help="jobs folded per write"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.5,
        metavar="S",
        help="claim a resource's jobs once none has joined them for S seconds, so a burst of"
        " writers becomes one ARM write (0: at once)",
    )
    parser.add_argument(
        "--linger-max",
        type=float,
        default=5.0,
        metavar="S",
        help="the longest a job waits for its resource to settle",
    )
    add_arm_outage_argument(parser)
    parser.add_argument(
        "--max-requeues",
        type=int,
        default=20,
        metavar="N",
        help="when a 429/5xx storm outlasts the retry budget, a batch goes back to the queue "
        "and the worker claims nothing until the budget admits a retry; a job requeued N "
        "times fails with the storm's kind (throttled/transient) the next time (default: 20;"
        " 0: fail at once)",
    )
    parser.add_argument(
        "--store-outage",
        type=float,
        default=300.0,
        metavar="S",
        help="how long to keep reopening a store that cannot be reached (a database restart) "
        "before stopping (default: 300)",
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


class _Progress:
    """Outcome counts on stderr: a live status line on a terminal, a line per batch otherwise.

    ``on_batch`` and ``say`` are called on the loops' threads; they only count and queue, and
    the :class:`Reporter`'s one thread does the printing."""

    def __init__(self, console: Console, waiting_for: str) -> None:
        self.reporter = Reporter(console)
        self.counts: dict[str, int] = {}
        self.writes = 0
        self.batches_said = 0
        self.arm_state = "answering"
        self._lock = threading.Lock()
        # Created here, on the main thread: Console.status imports Rich's live display lazily.
        self.status = console.status(waiting_for) if console.is_terminal else None

    def line(self) -> str:
        with self._lock:
            parts = [f"{k} {v}" for k, v in sorted(self.counts.items())]
            writes = self.writes
        return f"jobs: {', '.join(parts) or 'none yet'} · ARM writes {writes}"

    def say(self, text: str) -> None:
        self.reporter.say(text)

    def arm_watcher(
        self, report: Callable[[ReachabilityChange], None]
    ) -> Callable[[ReachabilityChange], None]:
        """``report``, remembering whether ARM had gone silent for good when the run ended."""

        def watch(change: ReachabilityChange) -> None:
            with self._lock:
                self.arm_state = change.state
            report(change)

        return watch

    def on_batch(self, report: BatchReport) -> None:
        with self._lock:
            for r in report.results:
                self.counts[str(r.outcome)] = self.counts.get(str(r.outcome), 0) + 1
            self.writes += report.writes
        text = self.line()
        status = self.status
        if status is not None:
            self.reporter.call(lambda: status.update(text))
        else:
            self.batches_said += 1
            self.reporter.say(text)


def _first_open(args: argparse.Namespace, clock: SystemClock, console: Console) -> None:
    """Fail fast on a store that cannot work (a bad URL, an SQLite path that cannot be a
    database). A database server that is down or still starting is an outage the loops wait
    out (--store-outage): say so, and start."""
    url = args.store
    if not (url and url.startswith(("postgresql://", "postgres://"))):
        open_store_arg(url, clock, create=True).close()
        return
    try:
        open_store(url, clock=clock).close()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except StoreError as exc:
        console.print(
            f"WARNING: the store {redact(url)} cannot be reached yet ({exc}); waiting up to "
            f"{args.store_outage:.0f} s (--store-outage)",
            highlight=False,
            soft_wrap=True,
        )
    except Exception as exc:
        raise CliError(f"cannot open the store {redact(url)}: {exc}", 1) from None


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    if args.lease_ttl <= 0:
        raise CliError("--lease-ttl must be positive")
    if args.max_batch < 1:
        raise CliError("--max-batch must be at least 1")
    if not (args.linger >= 0 and args.linger_max >= 0):
        raise CliError("--linger and --linger-max must be >= 0")
    if args.linger > 0 and args.linger_max < args.linger:
        raise CliError("--linger-max must be at least --linger")
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise CliError("--metrics-port must be a TCP port (1-65535)")
    if not (args.arm_outage >= 0 and args.store_outage >= 0):
        raise CliError("--arm-outage and --store-outage must be >= 0")
    if args.max_requeues < 0:
        raise CliError("--max-requeues must be >= 0")
    clock = SystemClock()
    client_for = client_factory(args.endpoint, args.cloud)
    console = Console(stderr=True)
    _first_open(args, clock, console)
    metrics = CoordinatorMetrics()
    if args.metrics_port is not None:
        try:
            metrics.serve(args.metrics_port)
        except OSError as exc:
            raise CliError(f"cannot serve metrics on port {args.metrics_port}: {exc}", 1) from None
    if args.until_idle:
        waiting_for = "running queued jobs until none is queued or running (--until-idle)…"
    else:
        waiting_for = "waiting for jobs (Ctrl-C or SIGTERM to stop)…"
    progress = _Progress(console, waiting_for)
    worker = Worker(
        # Not open_store_arg: a StoreError must reach the loops, which wait it out.
        lambda: open_store(args.store, clock=clock),
        client_for,
        clock,
        settings=WorkerSettings(
            concurrency=args.concurrency,
            lease_ttl=args.lease_ttl,
            max_batch=args.max_batch,
            linger=args.linger,
            linger_max=args.linger_max,
            arm_outage=args.arm_outage,
            store_outage=args.store_outage,
            writer=WriterSettings(max_requeues=args.max_requeues),
        ),
        metrics=metrics,
        on_batch=progress.on_batch,
        on_arm=progress.arm_watcher(arm_reporter(args.endpoint or args.cloud, progress.say)),
    )

    stop = GracefulStop(progress.say)
    stop.on_stop(worker.stop)
    with stop:
        console.print(
            f"worker {worker.owner}: {args.concurrency} loop(s) on {redact(args.store)}"
            f" → {args.endpoint or args.cloud}"
            + ("" if args.metrics_port is None else f"; metrics on 127.0.0.1:{args.metrics_port}"),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if progress.status is None:
            # On a terminal the status line says this and keeps saying it.
            console.print(waiting_for, highlight=False, markup=False)
        try:
            with progress.reporter:
                if progress.status is not None:
                    progress.status.start()
                try:
                    stats = worker.run_until_idle() if args.until_idle else worker.run_forever()
                finally:
                    if progress.status is not None:
                        # Queued, so it runs after every update the loops queued before it.
                        progress.reporter.call(progress.status.stop)
        except Exception as exc:
            # The store went away or a loop broke: say so (credentials never appear in these).
            raise CliError(f"the worker stopped: {exc}", 1) from None
    summary = {
        "owner": worker.owner,
        "batches": stats.batches,
        "jobs": stats.jobs,
        "armWrites": stats.writes,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "leasesLost": stats.leases_lost,
        "released": stats.released,
        "requeued": stats.requeued,
        "retryBudgetSpent": worker.budget.spent,
    }
    if args.output == "json":
        print_json(summary)
    else:
        shown = {
            **summary,
            "outcomes": ", ".join(f"{k} {n}" for k, n in stats.outcomes.items()) or "none",
        }
        print_table(
            [{"metric": k, "value": v} for k, v in shown.items()],
            ("metric", "value"),
            title="worker summary",
        )
    if progress.status is not None or not progress.batches_said:
        # A live status line vanishes when it stops; piped output already has the last count.
        sys.stderr.write(progress.line() + "\n")
    if stop.interrupted:
        # SIGTERM is how a service manager stops a worker (exit 0); Ctrl-C is a person
        # cutting a run short, which scripts must be able to tell apart.
        raise CliError(
            "interrupted: batches that had written finished; "
            f"{stats.released} released back to the queue before writing",
            stop.exit_code(),
        )
    if args.until_idle and progress.arm_state == "gave_up":
        # The queue is empty because its jobs failed without ever reaching ARM: a script
        # running `worker --until-idle` must not read that as done.
        failed = stats.outcomes.get("failed", 0)
        raise CliError(
            f"ARM at {args.endpoint or args.cloud} gave no answer within --arm-outage "
            f"{args.arm_outage:g} s; {failed} job(s) ended failed "
            "('armguard jobs' lists them; submit them again once ARM answers)",
            EXIT_FAILED,
        )
    return EXIT_OK
