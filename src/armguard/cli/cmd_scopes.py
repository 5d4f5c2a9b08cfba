"""``armguard scopes``: the dependencies ARM revealed, which later claims lock together."""

from __future__ import annotations

import argparse
from typing import Any

from armguard.cli.common import add_store_argument, open_store_arg
from armguard.cli.output import EXIT_OK, add_output_argument, print_json, print_table
from armguard.clock import isoformat

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scopes",
        help="list learned lock scopes (resource pairs ARM serialises) and why",
        description=(
            "List the dependencies ARM has revealed to the workers (a subnet held by its VNet's "
            "operation, a NIC by its VM…): each resource key, the key it depends on, why "
            "(ARM's error), how often and when it was last seen. Later claims lock both keys "
            "together. Reads only: the store must exist. Exit 0; 2 on bad input or a missing "
            "store; 1 if the store cannot be reached."
        ),
    )
    add_store_argument(parser)
    add_output_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store_arg(args.store)
    try:
        scopes = store.learned_scopes()
    finally:
        store.close()
    rows = [
        {
            "key": s.key,
            "dependsOn": s.other,
            "reason": s.reason,
            "seen": s.seen,
            "firstSeen": isoformat(s.first_seen),
            "lastSeen": isoformat(s.last_seen),
        }
        for s in scopes
    ]
    if args.output == "json":
        print_json(rows)
    else:
        print_table(
            rows,
            ("key", "dependsOn", "seen", "lastSeen", "reason"),
            title=f"{len(rows)} learned scope(s)",
        )
    return EXIT_OK
