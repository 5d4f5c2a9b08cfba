"""``armguard emulator``: serve a local ARM control plane until SIGINT/SIGTERM.

Prints exactly one line, ``armguard emulator listening on http://HOST:PORT``, once the socket is
listening (port 0 picks a free port and prints the real one), then serves until interrupted and
exits 0.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from types import FrameType
from typing import Any

from armguard.cli.output import EXIT_FAILED, EXIT_OK, CliError
from armguard.clock import SystemClock
from armguard.emulator.activity import MAX_BYTES, MAX_EVENTS
from armguard.emulator.config import ConfigError, EmulatorConfig, apply_seed_data, load_config
from armguard.emulator.core import Emulator, freeze_heap
from armguard.emulator.heap import on_system_allocator, start_trimmer, tune_allocator
from armguard.emulator.paging import DEFAULT_PAGE_SIZE
from armguard.emulator.server import bind, build_server
from armguard.emulator.store import MAX_SETTLED_OPERATIONS, OPERATION_RETENTION

__all__ = ["register", "run"]

# A budget past the machine's memory is a typo; a terabyte is past any machine here.
_MAX_ACTIVITY_MB = 1024 * 1024


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="serve a local ARM control plane with real concurrency semantics",
        description=(
            "Serve a local Azure Resource Manager emulator (ETags, long-running operations, "
            "409 conflicts, locks, deployments, Activity Log, fault injection) that the official "
            "Azure SDKs use unmodified. Control API under /_armguard/ (see docs/emulator.md). "
            "Prints one line, 'armguard emulator listening on URL', once it listens, then "
            "serves until Ctrl-C or SIGTERM and exits 0; 2 on a bad flag or config file; 1 if "
            "it cannot listen on the port."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="multiply every operation's duration (0.01 = 100x faster, 0 = instant; default 1)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for ETags, ids and probabilistic faults, to replay a run (default: random)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=None,
        help="most items a list or Activity Log page holds before its nextLink (default 1000)",
    )
    parser.add_argument(
        "--operation-retention",
        type=float,
        default=None,
        help="seconds a settled operation's status URLs keep answering (default 86400)",
    )
    parser.add_argument(
        "--activity-retention",
        type=int,
        default=None,
        metavar="EVENTS",
        help="most Activity Log events kept; the oldest go first (default 100000)",
    )
    parser.add_argument(
        "--activity-memory",
        type=float,
        default=None,
        metavar="MB",
        help=(
            "most estimated megabytes of Activity Log events kept; the oldest go first (default 64)"
        ),
    )
    parser.add_argument("--tls", action="store_true", help="serve https with a throw-away CA")
    parser.add_argument("--cert-dir", help="where --tls writes ca.pem, cert.pem and key.pem")
    parser.add_argument("--config", help="YAML/JSON file: type settings, faults, seed data")
    parser.set_defaults(func=run)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Replaces the default SIGINT/SIGTERM actions once uvicorn has handled the signal
    (it re-raises it after shutting down), so a requested stop exits 0."""


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, not {args.port}")
    if args.tls and not args.cert_dir:
        raise CliError("--tls needs --cert-dir DIR (where the certificate files are written)")
    if args.cert_dir and not args.tls:
        raise CliError("--cert-dir is only used with --tls")
    try:
        cfg = load_config(args.config) if args.config else EmulatorConfig()
    except ConfigError as err:
        raise CliError(str(err)) from None
    except RecursionError:
        # The YAML and JSON readers recurse once per level of nesting.
        raise CliError(
            f"config file '{args.config}' is nested too deeply to read "
            "(emulator configs and ARM bodies are a few levels deep)"
        ) from None
    time_scale = args.time_scale if args.time_scale is not None else cfg.time_scale
    if time_scale is not None and time_scale < 0:
        raise CliError(f"--time-scale must be >= 0, not {time_scale}")
    seed = args.seed if args.seed is not None else cfg.seed
    if seed is None:
        # A fixed default would hand a restarted emulator's clients the request ids,
        # operation ids and vmIds of the last run, which they may still hold.
        seed = secrets.randbits(63)
    page_size = args.page_size if args.page_size is not None else cfg.page_size
    if page_size is not None and page_size < 1:
        raise CliError(f"--page-size must be >= 1, not {page_size}")
    retention = (
        args.operation_retention
        if args.operation_retention is not None
        else cfg.operation_retention
    )
    if retention is not None and not retention >= 0:
        raise CliError(f"--operation-retention must be >= 0, not {retention}")
    events = (
        args.activity_retention if args.activity_retention is not None else cfg.activity_retention
    )
    if events is not None and events < 1:
        raise CliError(f"--activity-retention must be >= 1, not {events}")
    memory_mb = args.activity_memory if args.activity_memory is not None else cfg.activity_memory_mb
    if memory_mb is not None and not 0 < memory_mb <= _MAX_ACTIVITY_MB:
        raise CliError(
            f"--activity-memory must be a number of megabytes > 0 and <= {_MAX_ACTIVITY_MB}, "
            f"not {memory_mb}"
        )
    # Before the first large block is freed: glibc's threshold moves once one is.
    tune_allocator()
    if on_system_allocator():
        start_trimmer()
    try:
        core = Emulator(
            SystemClock(),
            time_scale=1.0 if time_scale is None else time_scale,
            seed=seed,
            type_settings=cfg.types,
            page_size=page_size or DEFAULT_PAGE_SIZE,
            operation_retention=OPERATION_RETENTION if retention is None else retention,
            max_settled_operations=(
                MAX_SETTLED_OPERATIONS
                if cfg.max_settled_operations is None
                else cfg.max_settled_operations
            ),
            activity_events=MAX_EVENTS if events is None else events,
            activity_bytes=(
                MAX_BYTES if memory_mb is None else max(1, int(memory_mb * 1024 * 1024))
            ),
        )
        if cfg.faults:
            core.faults.load_config({"faults": cfg.faults})
        apply_seed_data(core, cfg.resources, args.config or "seed")
        # The seed and the emulator's own tables live as long as the process.
        freeze_heap()
    except (ConfigError, ValueError) as err:
        raise CliError(f"{args.config}: {err}" if args.config else str(err)) from None
    except RecursionError:
        # Seed bodies are copied and checked level by level.
        raise CliError(f"{args.config}: a seed resource body is nested too deeply") from None
    try:
        sock = bind(args.host, args.port)
    except OSError as err:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {err.strerror or err}", EXIT_FAILED
        ) from None
    try:
        server, certs = build_server(
            core, cert_dir=args.cert_dir if args.tls else None, host=args.host
        )
    except OSError as err:
        sock.close()
        raise CliError(f"cannot write certificates to {args.cert_dir}: {err}") from None
    scheme = "https" if certs else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    sys.stdout.write(f"armguard emulator listening on {scheme}://{host}:{sock.getsockname()[1]}\n")
    sys.stdout.flush()
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    server.run(sockets=[sock])
    return EXIT_OK
