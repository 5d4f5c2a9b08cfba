"""``armguard inspect RESOURCE_ID``: what a write would hit right now, and what to do about it.

Exit 0 when the write would go through now, 1 when it would be refused (the verdict says by
what), 2 on bad input (a malformed ID, intent or duration, an endpoint that does not answer).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any
from urllib.parse import urlsplit

from azure.identity import DefaultAzureCredential
from rich.markup import escape

from armguard.arm.client import CLOUDS, ArmClient, StaticIdentityCredential
from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_output_argument,
    print_json,
    print_table,
)
from armguard.clock import Clock, SystemClock, isoformat
from armguard.diagnose.inspect import InspectError, Inspection, inspect_resource, parse_intent
from armguard.diagnose.timeline import fit_resource_ids, short_resource_id

__all__ = ["register", "run"]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_MAX_HISTORY = 90 * 86400.0
"""The Activity Log keeps 90 days."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="read one resource's state, locks and running operations: would a write go through?",
        description=(
            "Read a resource's provisioningState and ETag, a VM's power state, the locks in "
            "effect at its scope, running operations on it, its parent and its children, and "
            "the last hour of Activity Log writes, then say what a write would hit now and what "
            "to do. Read-only. Exit 0: a write would go through; 1: it would be refused."
        ),
    )
    parser.add_argument("resource_id", metavar="RESOURCE_ID", help="full ARM resource ID")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--endpoint",
        metavar="URL",
        help="ARM endpoint; an http://127.0.0.1 emulator uses a static identity, no login",
    )
    target.add_argument(
        "--cloud", choices=sorted(CLOUDS), default=None, help="Azure cloud (default AzureCloud)"
    )
    parser.add_argument("--api-version", metavar="V", help="api-version for the resource GET")
    parser.add_argument(
        "--intent",
        default="write",
        metavar="INTENT",
        help="write (default), delete, or resize:SIZE for a VM",
    )
    parser.add_argument("--etag", metavar="E", help="the ETag your write would send (If-Match)")
    parser.add_argument(
        "--history",
        default="1h",
        metavar="DURATION",
        help="how far back to read the Activity Log (default %(default)s)",
    )
    parser.add_argument(
        "--identity",
        default="armguard-inspect",
        metavar="NAME",
        help="caller name to use against an emulator (default %(default)s)",
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


def _history(text: str) -> float:
    m = _DURATION_RE.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise CliError(f"--history '{text}' is not a positive duration such as 1h or 30m")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if seconds > _MAX_HISTORY:
        raise CliError(f"--history '{text}' is longer than the 90 days the Activity Log keeps")
    return seconds


def _client(args: argparse.Namespace) -> ArmClient:
    if args.endpoint:
        parts = urlsplit(args.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"--endpoint '{args.endpoint}' is not an http(s) URL")
        if parts.hostname in _LOOPBACK:
            return ArmClient(StaticIdentityCredential(args.identity), endpoint=args.endpoint)
        endpoint = args.endpoint
    else:
        endpoint = CLOUDS[args.cloud or "AzureCloud"][0]
    return ArmClient(DefaultAzureCredential(), endpoint=endpoint)


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    # Cells are log and ARM text, not Rich markup: print_table escapes them (once). The title
    # is markup to print_table, so it is escaped here.
    print_table(rows, columns, title=escape(title))


def _print(result: Inspection) -> None:
    facts = [
        ("Resource", result.resource_id),
        ("Exists", "yes" if result.exists else "no"),
        ("Provisioning state", result.provisioning_state or "-"),
        ("ETag", result.etag or "-"),
    ]
    if result.power_state is not None:
        facts.append(("Power state", result.power_state))
    if result.vm_size is not None:
        facts.append(("VM size", result.vm_size))
    facts.append(
        (
            "Locks",
            "; ".join(
                f"{lock.level} '{lock.name}'" + (f" (from {lock.scope})" if lock.inherited else "")
                for lock in result.locks
            )
            or "none",
        )
    )
    busy = [r for r in result.related if r.running]
    facts.append(
        (
            "Running",
            "; ".join(
                f"{r.relation} {short_resource_id(r.resource_id)}: {r.provisioning_state}"
                for r in busy
            )
            or "nothing",
        )
    )
    _table([{"Field": k, "Value": v} for k, v in facts], ["Field", "Value"], "State")
    if result.recent_writes:
        # Piped output is 160 characters wide: the tail of an ID is what tells rows apart.
        names = fit_resource_ids([o.resource_id for o in result.recent_writes], 48)
        _table(
            [
                {
                    "Time": isoformat(o.start)[11:19],
                    "Caller": o.caller,
                    "Operation": o.operation.rsplit("/", 2)[-2] + "/" + o.verb,
                    "Resource": names[o.resource_id],
                    "Outcome": o.outcome
                    + (f" {o.http_status} {o.code or ''}".rstrip() if o.http_status else ""),
                }
                for o in result.recent_writes
            ],
            ["Time", "Caller", "Resource", "Operation", "Outcome"],
            "Recent writes (Activity Log)",
        )
    if result.blockers:
        _table(
            [
                {"Kind": str(b.kind), "Why": b.reason, "What to do": b.action}
                for b in result.blockers
            ],
            ["Kind", "Why", "What to do"],
            "What a write would hit now",
        )
    sys.stdout.write(f"Verdict: {result.verdict()}\n")
    for note in result.notes:
        sys.stdout.write(f"Note: {note}\n")


def run(args: argparse.Namespace, clock: Clock | None = None) -> int:
    try:
        rid = parse_resource_id(args.resource_id)
    except InvalidResourceId as exc:
        raise CliError(str(exc)) from None
    try:
        intent = parse_intent(args.intent)
    except ValueError as exc:
        raise CliError(f"--intent: {exc}") from None
    if intent.kind == "resize" and rid.type.lower() != "microsoft.compute/virtualmachines":
        raise CliError(f"--intent resize applies to virtual machines, not {rid.type}")
    history = _history(args.history)
    client = _client(args)
    try:
        result = inspect_resource(
            client,
            rid,
            clock=clock or SystemClock(),
            intent=intent,
            etag=args.etag,
            api_version=args.api_version,
            history=history,
        )
    except InspectError as exc:
        raise CliError(str(exc), 2 if exc.unreachable else EXIT_FAILED) from None
    finally:
        client.close()
    if args.output == "json":
        print_json(result.to_json())
    else:
        _print(result)
    return EXIT_OK if result.clear else EXIT_FAILED
