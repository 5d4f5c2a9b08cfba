"""``armguard timeline FILE…``: who wrote what when, who overlapped whom, and why writes failed.

Reads Activity Log exports and armguard job-event logs (any mix), prints a summary per resource
and the conflicts with their causes, and with ``--html`` writes a self-contained report.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.cli.output import (
    EXIT_OK,
    CliError,
    add_output_argument,
    print_json,
    print_table,
)
from armguard.clock import Clock, SystemClock, isoformat
from armguard.diagnose.report import render_report
from armguard.diagnose.sources import SourceError
from armguard.diagnose.timeline import (
    Conflict,
    Timeline,
    TimelineOptions,
    fit_resource_ids,
    load_timeline,
    parse_time_bound,
)

__all__ = ["register", "run"]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smh]?)$", re.IGNORECASE)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "timeline",
        help="lay every writer on a timeline: overlaps, conflicts and their causes, retry storms",
        description=(
            "Read Activity Log exports (az monitor activity-log list JSON, REST pages, JSON "
            "lines) and armguard job-event logs, and find overlapping writers, each conflict "
            "and the write that caused it, retry storms, stale ETag replays and writers that "
            "send no concurrency token. Prints a headline and the findings (--output json: the "
            "whole model); --html writes a self-contained report. Exit 0 when the files were "
            "read, 2 for bad input (a file that is not a log, bad options)."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="log files to read")
    parser.add_argument("--html", metavar="REPORT", help="write a self-contained HTML report")
    parser.add_argument(
        "--resource",
        metavar="ID",
        help="only this resource, what is inside it, and its parent resources",
    )
    parser.add_argument("--since", metavar="T", help="ISO time, or back from now: 2h, 30m")
    parser.add_argument("--until", metavar="T", help="ISO time, or back from now: 2h, 30m")
    parser.add_argument(
        "--storm-retries",
        type=int,
        default=TimelineOptions.storm_retries,
        metavar="N",
        help="retries of one operation by one caller that make a storm (default %(default)s)",
    )
    parser.add_argument(
        "--storm-window",
        default=f"{int(TimelineOptions.storm_window)}s",
        metavar="DURATION",
        help="window the retries must fall in: 90s, 2m (default %(default)s)",
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


def _duration(text: str) -> float:
    m = _DURATION_RE.match(text.strip())
    if not m or not 0 < float(m.group(1)) < 1e9:
        raise CliError(f"--storm-window '{text}' is not a positive duration such as 90s or 2m")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def options_from_args(args: argparse.Namespace, clock: Clock) -> TimelineOptions:
    resource = None
    if args.resource:
        try:
            resource = parse_resource_id(args.resource)
        except InvalidResourceId as exc:
            raise CliError(f"--resource: {exc}") from None
    bounds: dict[str, float | None] = {"since": None, "until": None}
    for name in bounds:
        text = getattr(args, name)
        if text:
            try:
                bounds[name] = parse_time_bound(text, clock)
            except ValueError as exc:
                raise CliError(
                    f"--{name}: {exc}; use an ISO time or a duration such as 2h or 30m"
                ) from None
    since, until = bounds["since"], bounds["until"]
    if since is not None and until is not None and since > until:
        raise CliError(f"--since ({isoformat(since)}) is after --until ({isoformat(until)})")
    if args.storm_retries < 1:
        raise CliError("--storm-retries must be at least 1")
    return TimelineOptions(
        resource=resource,
        since=since,
        until=until,
        storm_retries=args.storm_retries,
        storm_window=_duration(args.storm_window),
    )


def _check_html_target(path: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise CliError(f"--html {path}: is a directory; give a file name such as report.html")
    if not target.parent.exists():
        raise CliError(f"--html {path}: the directory {target.parent} does not exist")
    return target


def _load(files: list[str], options: TimelineOptions) -> Timeline:
    console = Console(stderr=True)
    if not console.is_terminal:
        return load_timeline(files, options)
    total = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
    with Progress(
        TextColumn("reading logs"),
        BarColumn(),
        DownloadColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("read", total=total or None)

        def advance(chars: int) -> None:
            progress.advance(task, chars)

        return load_timeline(files, options, advance)


def _id_width(share: int) -> int:
    """Characters a resource column can show: a share of the table's width (160 when piped,
    as print_table lays it out; the terminal's width otherwise)."""
    total = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 160
    return max(24, total // share)


def _names(resource_ids: list[str], share: int) -> dict[str, str]:
    return fit_resource_ids(resource_ids, _id_width(share))


def _hms(ts: float) -> str:
    return isoformat(ts)[11:19]


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    # Cells are log and ARM text, not Rich markup: print_table escapes them (once). The title
    # is markup to print_table, so it is escaped here.
    print_table(rows, columns, title=escape(title))


def _conflict_rows(timeline: Timeline) -> list[dict[str, Any]]:
    """One row per caller, error and cause: seven refusals by the same holder read as one."""
    groups: dict[tuple[Any, ...], list[Conflict]] = {}
    for c in timeline.conflicts:
        op = c.operation
        cause_id = c.cause.id if c.cause else None
        key = (op.caller, op.resource_id.lower(), op.http_status, op.code, op.kind, cause_id)
        groups.setdefault(key, []).append(c)
    names = _names([c.cause.resource_id for c in timeline.conflicts if c.cause], 3)
    rows = []
    for items in groups.values():
        first, last = items[0], items[-1]
        op = first.operation
        when = _hms(op.end or op.start)
        if len(items) > 1:
            when += f"-{_hms(last.operation.end or last.operation.start)}"
        ids = (
            first.operation.id if len(items) == 1 else f"{first.operation.id}..{last.operation.id}"
        )
        cause = first.cause
        rows.append(
            {
                "Time": when,
                "Ops": f"{ids} ({len(items)})" if len(items) > 1 else ids,
                "Caller": op.caller,
                "Status": f"{op.http_status or ''} {op.code or ''}".strip(),
                "Kind": op.kind,
                "Caused by": (
                    f"{cause.id} {cause.caller} {cause.verb} "
                    f"{names[cause.resource_id]} ({first.relation})"
                    if cause
                    else "not in the log"
                ),
            }
        )
    return rows


def _print_tables(timeline: Timeline) -> None:
    # The run in one sentence first, as the HTML report opens: the tables are its evidence.
    sys.stdout.write(f"{timeline.headline()['text']}\n")
    rows = []
    summary = timeline.summary()
    names = _names([row["resource_id"] for row in summary], 4)
    for row in summary:
        rows.append(
            {
                "Resource": names[row["resource_id"]],
                "Writers": ", ".join(row["writers"]),
                "Writes": row["writes"],
                "Conflicts": ", ".join(f"{k} {v}" for k, v in row["conflicts"].items()) or "0",
                "Overlaps": row["overlaps"],
                "Storms": row["retry_storms"],
                "Stale replays": row["stale_replays"],
                "Tokenless": ", ".join(row["tokenless_writers"]),
            }
        )
    window = ""
    if timeline.start is not None and timeline.end is not None:
        window = f" ({isoformat(timeline.start)[:19]}Z to {isoformat(timeline.end)[:19]}Z)"
    _table(
        rows,
        [
            "Resource",
            "Writers",
            "Writes",
            "Conflicts",
            "Overlaps",
            "Storms",
            "Stale replays",
            "Tokenless",
        ],
        title=f"Writes per resource{window}",
    )
    if timeline.conflicts:
        _table(
            _conflict_rows(timeline),
            ["Time", "Ops", "Caller", "Status", "Kind", "Caused by"],
            title="Conflicts and their causes",
        )
    if timeline.storms:
        storm_names = _names([s.resource_id for s in timeline.storms], 3)
        _table(
            [
                {
                    "Caller": s.caller,
                    "Resource": storm_names[s.resource_id],
                    "Retries": s.retries,
                    "Per minute": s.rate_per_minute,
                    "From": _hms(s.start),
                    "To": _hms(s.end),
                }
                for s in timeline.storms
            ],
            ["Caller", "Resource", "Retries", "Per minute", "From", "To"],
            title="Retry storms",
        )
    if timeline.stale_replays:
        replay_names = _names([r.operation.resource_id for r in timeline.stale_replays], 4)
        _table(
            [
                {
                    "Time": _hms(r.operation.start),
                    "Caller": r.operation.caller,
                    "Resource": replay_names[r.operation.resource_id],
                    "ETag sent again": r.etag,
                    "Rejected in": r.rejected.id,
                }
                for r in timeline.stale_replays
            ],
            ["Time", "Caller", "Resource", "ETag sent again", "Rejected in"],
            title="Stale replays",
        )
    for note in timeline.notes():
        sys.stdout.write(f"Note: {note}\n")


def run(args: argparse.Namespace, clock: Clock | None = None) -> int:
    options = options_from_args(args, clock or SystemClock())
    target = _check_html_target(args.html) if args.html else None
    try:
        timeline = _load(list(args.files), options)
    except SourceError as exc:
        raise CliError(str(exc)) from None
    if not timeline.operations:
        sys.stderr.write("No operations match the given resource and time window.\n")
    if target is not None:
        try:
            target.write_text(
                render_report(timeline, generated_at=(clock or SystemClock()).now()),
                encoding="utf-8",
            )
        except OSError as exc:
            raise CliError(f"--html {args.html}: cannot write ({exc.strerror or exc})") from None
        sys.stderr.write(f"Report written to {target}\n")
    if args.output == "json":
        print_json(timeline.to_json())
    else:
        _print_tables(timeline)
    return EXIT_OK
