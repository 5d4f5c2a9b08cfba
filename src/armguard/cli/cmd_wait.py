"""``armguard wait JOB``: block until the job has its outcome; exit 0 if it took effect."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from armguard.cli.common import add_store_argument, job_to_json, open_store_arg
from armguard.cli.output import EXIT_FAILED, EXIT_OK, CliError, add_output_argument, print_json
from armguard.clock import Clock, SystemClock
from armguard.coordinator.model import JobState, Outcome

__all__ = ["register", "wait_for_job"]

_SUCCESS = frozenset({Outcome.APPLIED, Outcome.ALREADY_SATISFIED})
# Completions wake the wait at once (Store.watch_changes); this only bounds a missed wake-up.
_RECHECK_SECONDS = 5.0


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "wait",
        help="wait for a job's outcome (exit 0 applied/already_satisfied, 1 otherwise)",
    )
    parser.add_argument("job", metavar="JOB", help="job id printed by 'armguard submit'")
    add_store_argument(parser)
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds"
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


def wait_for_job(store: Any, job_id: str, timeout: float, clock: Clock) -> Any:
    """Look again at every change the store announces until the job is done or the timeout
    passes: a completion in any process wakes this wait, with no polling interval."""
    deadline = clock.monotonic() + timeout
    while True:
        job = store.get(job_id)
        if job is None:
            raise CliError(f"no job '{job_id}' in this store")
        if job.state is JobState.DONE:
            return job
        if clock.monotonic() >= deadline:
            raise CliError(
                f"job {job_id} is still {job.state} after {timeout:g} s; is a worker running?",
                EXIT_FAILED,
            )
        store.watch_changes(min(_RECHECK_SECONDS, max(0.0, deadline - clock.monotonic())))


def run(args: argparse.Namespace) -> int:
    if args.timeout < 0:
        raise CliError("--timeout must not be negative")
    store = open_store_arg(args.store)
    try:
        job = wait_for_job(store, args.job, args.timeout, SystemClock())
    finally:
        store.close()
    if args.output == "json":
        print_json(job_to_json(job))
    else:
        line = str(job.outcome)
        if job.kind:
            line += f" ({job.kind})"
        if job.reason:
            line += f": {job.reason}"
        sys.stdout.write(line + "\n")
    return EXIT_OK if job.outcome in _SUCCESS else EXIT_FAILED
