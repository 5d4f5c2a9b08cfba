"""``armguard wait JOB``: block until the job has its outcome; exit 0 if it took effect."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from armguard.cli.common import add_store_argument, job_to_json, open_store_arg
from armguard.cli.output import EXIT_FAILED, EXIT_OK, CliError, add_output_argument, print_json
from armguard.coordinator.model import Outcome
from armguard.coordinator.waiting import JobNotFound, WaitTimeout, wait_for

__all__ = ["register"]

_SUCCESS = frozenset({Outcome.APPLIED, Outcome.ALREADY_SATISFIED})


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "wait",
        help="wait for a job's outcome (exit 0 applied/already_satisfied, 1 otherwise)",
        description=(
            "Block until the job ends, woken by the store's change notifications (no polling "
            "loop), and print its outcome, kind and reason (--output json: the whole job). "
            "A worker must be running on the same store. Exit 0 when the job was applied or "
            "already satisfied, 1 when it failed, was blocked or dropped, or is still queued or "
            "running after --timeout, 2 for bad input (an unknown job, a store that does not "
            "exist)."
        ),
    )
    parser.add_argument("job", metavar="JOB", help="job id printed by 'armguard submit'")
    add_store_argument(parser)
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds"
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.timeout < 0:
        raise CliError("--timeout must not be negative")
    store = open_store_arg(args.store)
    try:
        # The library's wait: a completion in any process wakes it, with no polling interval.
        [job] = wait_for(store, [args.job], timeout=args.timeout)
    except (JobNotFound, ValueError) as exc:
        raise CliError(str(exc)) from None
    except WaitTimeout as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
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
