"""``armguard jobs``: list jobs in submission order, with state and outcome."""

from __future__ import annotations

import argparse
from typing import Any

from armguard.cli.common import (
    add_store_argument,
    arm_error,
    job_row,
    job_to_json,
    open_store_arg,
)
from armguard.cli.output import EXIT_OK, add_output_argument, print_json, print_table
from armguard.coordinator.model import JobState

__all__ = ["register"]

_COLUMNS = ("Seq", "Id", "Resource", "Intent", "Writer", "State", "Outcome", "Kind", "Reason")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "jobs",
        help="list jobs with their state and outcome",
        description=(
            "List the jobs in a store in submission order: id, resource, intent, writer, state "
            "(queued, running, done), outcome (applied, already_satisfied, dropped_stale, "
            "blocked, failed, unknown), the kind of failure and its reason. The table clips long "
            "reasons; --output json prints every field whole, with ARM's full error as "
            "armError for failed and blocked jobs. Reads only: the store must exist. Exit 0; "
            "2 on bad input or a missing store; 1 if the store cannot be reached."
        ),
    )
    add_store_argument(parser)
    parser.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    add_output_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store_arg(args.store)
    try:
        state = JobState(args.state) if args.state else None
        jobs = store.jobs(state, limit=max(1, args.limit))
        errors = {j.id: arm_error(store, j) for j in jobs} if args.output == "json" else {}
    finally:
        store.close()
    if args.output == "json":
        print_json([job_to_json(j, errors.get(j.id)) for j in jobs])
    else:
        print_table([job_row(j) for j in jobs], _COLUMNS, title=f"{len(jobs)} job(s)")
    return EXIT_OK
