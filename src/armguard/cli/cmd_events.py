"""``armguard events``: a store's job events as JSON lines, the shape ``armguard timeline`` reads.

Workers write every step of every job into the store; this is how a pipeline gets them out
without ``apply --report``: ``armguard events --store jobs.db > events.jsonl`` and then
``armguard timeline activity.json events.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.cli.common import add_store_argument, open_store_arg
from armguard.cli.output import EXIT_OK, CliError, print_json, print_table
from armguard.events import JobEvent

__all__ = ["register"]

_COLUMNS = ("Time", "Job", "Writer", "Event", "Attempt", "Kind", "Status", "Code", "Resource")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "events",
        help="print job events as JSON lines (input for 'armguard timeline')",
        description=(
            "Print every step the workers recorded for the store's jobs (claimed, read, "
            "conflict, waiting, rebased, write, completed…) on stdout, one JSON object per "
            "line by default: the shape 'armguard timeline' reads. --job, --resource and "
            "--writer narrow it; -o json prints one array, -o table a table. Reads only: the "
            "store must exist. Exit 0; 2 on bad input, a missing store or an unknown --job; "
            "1 if the store cannot be reached."
        ),
    )
    add_store_argument(parser)
    parser.add_argument("--job", metavar="JOB", help="only this job's events")
    parser.add_argument("--resource", metavar="ID", help="only events on this resource")
    parser.add_argument("--writer", metavar="NAME", help="only this writer's events")
    parser.add_argument(
        "--output",
        "-o",
        choices=("jsonl", "json", "table"),
        default="jsonl",
        help="jsonl (default: one event per line, for timeline), json or table",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resource = None
    if args.resource:
        try:
            resource = parse_resource_id(args.resource).key
        except InvalidResourceId as exc:
            raise CliError(f"--resource: {exc}") from None
    store = open_store_arg(args.store)
    try:
        if args.job and store.get(args.job) is None:
            raise CliError(f"no job '{args.job}' in this store")
        events = store.events(args.job or None)
    finally:
        store.close()
    chosen = [e for e in events if _wanted(e, resource, args.writer)]
    if args.output == "jsonl":
        out = sys.stdout
        for event in chosen:
            out.write(event.to_json() + "\n")
    elif args.output == "json":
        print_json([_plain(e) for e in chosen])
    else:
        rows = [
            {
                "Time": e.ts,
                "Job": e.job_id[:8],
                "Writer": e.writer,
                "Event": e.event,
                "Attempt": e.attempt,
                "Kind": e.kind,
                "Status": e.status,
                "Code": e.code,
                "Resource": e.resource_id,
            }
            for e in chosen
        ]
        print_table(rows, _COLUMNS, title=f"{len(rows)} event(s)")
    return EXIT_OK


def _wanted(event: JobEvent, resource: str | None, writer: str | None) -> bool:
    if writer is not None and event.writer != writer:
        return False
    return resource is None or event.resource_id.lower() == resource


def _plain(event: JobEvent) -> dict[str, Any]:
    return {k: v for k, v in event.__dict__.items() if v is not None and v != {}}
