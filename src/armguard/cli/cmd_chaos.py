"""``armguard chaos``: run the seeded adversarial suite and check the record it leaves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from armguard.chaos.nemesis import NEMESES
from armguard.chaos.pg import PgUnavailable
from armguard.chaos.run import ChaosConfig, ChaosError, run_chaos
from armguard.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_output_argument,
    print_json,
    print_table,
)

__all__ = ["register"]

_COLUMNS = (
    "store",
    "intents",
    "lost",
    "doubleApplied",
    "staleOverwrites",
    "zombiesRejected",
    "zombiesLanded",
    "conflictsSurfaced",
    "5xx",
    "drainS",
    "ok",
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "chaos",
        help="prove the promise: a seeded load through kills, outages and fault storms",
        description=(
            "Start an emulator, a store (an SQLite file, or a throw-away PostgreSQL cluster) "
            "and worker processes on loopback; submit a seeded load of intents over many "
            "resources while a seeded nemesis kills and pauses workers, crashes or cuts off "
            "the store, injects 429 storms, 500s, stuck and preempted operations and latency, "
            "and writes from outside armguard; drain; then check the store's job events, the "
            "Activity Log and the final state: nothing lost, applied twice or overwritten, no "
            "zombie write landed, no conflict surfaced, no 5xx, retries within budget. Stops "
            "by itself and ends every process it started. Prints the report (-o table: one "
            "row per store). Exit 0 if every check held; 1 if one did not, or the run could "
            "not be carried out; 2 on bad input."
        ),
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres", "both"),
        default="sqlite",
        help="the store to run on (both: one run each, SQLite first)",
    )
    parser.add_argument("--seed", type=int, default=1, help="draws the load and the nemesis")
    parser.add_argument("--intents", type=int, default=600, metavar="N", help="intents to submit")
    parser.add_argument(
        "--resources", type=int, default=50, metavar="N", help="resources they target"
    )
    parser.add_argument("--workers", type=int, default=3, metavar="N", help="worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=2, metavar="N", help="batch loops per worker"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=40.0,
        metavar="S",
        help="seconds the load is submitted over; the nemesis acts within them",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=180.0,
        metavar="S",
        help="longest wait for the queue to empty after the load",
    )
    parser.add_argument("--lease-ttl", type=float, default=3.0, metavar="S", help="worker leases")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        metavar="F",
        help="the emulator's operation durations × F",
    )
    parser.add_argument(
        "--nemesis-every", type=float, default=4.0, metavar="S", help="mean gap between faults"
    )
    parser.add_argument(
        "--nemesis",
        default="all",
        metavar="LIST",
        help=f"comma-separated subset of: {', '.join(NEMESES)} (default: all the store allows)",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="keep logs, the SQLite file and the evidence in DIR"
    )
    add_output_argument(parser, default="json")
    parser.set_defaults(func=run)


def _nemeses(text: str) -> tuple[str, ...] | None:
    if text.strip().lower() == "all":
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in NEMESES]
    if not names or unknown:
        raise CliError(
            f"--nemesis: unknown {', '.join(unknown) or '(empty)'}; use 'all' or any of "
            f"{', '.join(NEMESES)}"
        )
    return names


def _row(report: dict[str, Any]) -> dict[str, Any]:
    c = report["checks"]
    return {
        "store": report["store"],
        "intents": report["intents"],
        "lost": c["lost"] + c["unfinished"],
        "doubleApplied": c["double_applied"],
        "staleOverwrites": c["stale_overwrites"],
        "zombiesRejected": c["zombie_writes_rejected"],
        "zombiesLanded": c["zombie_writes_landed"],
        "conflictsSurfaced": c["conflicts_surfaced"],
        "5xx": c["server_errors"],
        "drainS": report["drainedAfterLastFaultSeconds"],
        "ok": c["ok"],
    }


def run(args: argparse.Namespace) -> int:
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    nemeses = _nemeses(args.nemesis)
    configs = []
    for store in stores:
        keep = Path(args.keep) / store if args.keep else None
        cfg = ChaosConfig(
            store=store,
            seed=args.seed,
            intents=args.intents,
            resources=args.resources,
            workers=args.workers,
            concurrency=args.concurrency,
            duration=args.duration,
            drain_timeout=args.drain_timeout,
            lease_ttl=args.lease_ttl,
            time_scale=args.time_scale,
            nemesis_every=args.nemesis_every,
            nemeses=nemeses,
            keep=keep,
        )
        try:
            cfg.check()
        except ValueError as exc:
            raise CliError(str(exc)) from None
        configs.append(cfg)
    reports = []
    for cfg in configs:
        try:
            reports.append(run_chaos(cfg, say=_say))
        except (ChaosError, PgUnavailable) as exc:
            raise CliError(f"the {cfg.store} run could not be carried out: {exc}", 1) from None
    if args.output == "json":
        print_json(reports if len(reports) > 1 else reports[0])
    else:
        print_table([_row(r) for r in reports], _COLUMNS, title="armguard chaos")
        for r in reports:
            for line in r["checks"]["violations"][:10]:
                sys.stderr.write(f"{r['store']}: {line}\n")
    return EXIT_OK if all(r["checks"]["ok"] for r in reports) else EXIT_FAILED


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
