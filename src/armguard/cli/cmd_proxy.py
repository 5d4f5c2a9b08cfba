"""``armguard proxy``: an ARM endpoint that gives unchanged tools the coordinator's discipline.

Prints exactly one line, ``armguard proxy listening on URL (upstream UPSTREAM)``, once it
listens, then serves until Ctrl-C or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from prometheus_client import start_http_server

from armguard.arm.client import CLOUDS
from armguard.cli.output import EXIT_FAILED, EXIT_OK, CliError
from armguard.clock import SystemClock
from armguard.emulator.core import Emulator
from armguard.emulator.server import serve
from armguard.proxy.guard import Mode
from armguard.proxy.record import ProxyMetrics
from armguard.proxy.server import build_proxy_server
from armguard.proxy.settings import ProxySettings
from armguard.proxy.sql_turns import TurnStoreError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "proxy",
        help="an ARM endpoint that queues overlapping writes and absorbs conflicts",
        description=(
            "Serve an ARM-compatible endpoint in front of ARM (or an emulator). Point any tool "
            "at it (az, Terraform, Bicep via az, the SDKs; see docs/proxy.md): writes whose "
            "lock keys overlap take turns, refusals caused by other writers (409 "
            "AnotherOperationInProgress, 429) are waited out and resent within a retry "
            "budget, and blind full-body PUTs over a version their caller never read are "
            "warned, guarded with If-Match, or merged (--lost-updates). Reads pass through. "
            "Prints one line, 'armguard proxy listening on URL (upstream U)', once it "
            "listens, then serves until Ctrl-C or SIGTERM and exits 0; 2 on a bad flag; 1 if "
            "it cannot listen or open its store."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--upstream", metavar="URL", help="the ARM endpoint to forward to")
    where.add_argument(
        "--emulator", action="store_true", help="run an embedded emulator behind the proxy"
    )
    parser.add_argument(
        "--cloud",
        default="AzureCloud",
        choices=sorted(CLOUDS),
        help="the cloud whose ARM endpoint is the default upstream (default AzureCloud)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--tls", action="store_true", help="serve https with a throw-away CA")
    parser.add_argument("--cert-dir", help="where --tls writes ca.pem, cert.pem and key.pem")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="share turns with other proxies: a SQLite file or postgresql:// URL "
        "(default: in memory, this process only)",
    )
    parser.add_argument(
        "--lost-updates",
        choices=[m.value for m in Mode],
        default=Mode.WARN.value,
        help="blind PUTs over an unread version: off, warn (default), guard (If-Match), merge",
    )
    parser.add_argument(
        "--wait-max",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to absorb refusals caused by other writers before passing ARM's "
        "answer through (default 120)",
    )
    parser.add_argument(
        "--queue-max",
        type=float,
        default=240.0,
        metavar="SECONDS",
        help="how long a write may wait for its turn before it is answered 409 unsent "
        "(default 240, under the SDKs' 300 s read timeout)",
    )
    parser.add_argument(
        "--turn-lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --store: how long a stopped proxy's turns outlive it (default 30)",
    )
    parser.add_argument("--events", metavar="FILE", help="append job events (JSON lines) here")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--upstream-ca", metavar="FILE", help="CA bundle that verifies the upstream's certificate"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="with --emulator: multiply every operation's duration (default 1)",
    )
    parser.set_defaults(func=run)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Replaces the default SIGINT/SIGTERM actions once uvicorn has handled the signal."""


def _positive(name: str, value: float) -> float:
    if not value >= 0:
        raise CliError(f"{name} must be >= 0, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, not {args.port}")
    if args.tls and not args.cert_dir:
        raise CliError("--tls needs --cert-dir DIR (where the certificate files are written)")
    if args.cert_dir and not args.tls:
        raise CliError("--cert-dir is only used with --tls")
    if args.time_scale is not None and not args.emulator:
        raise CliError("--time-scale is only used with --emulator")
    if args.metrics_port is not None and not 0 < args.metrics_port <= 65535:
        raise CliError(f"--metrics-port must be between 1 and 65535, not {args.metrics_port}")
    _positive("--wait-max", args.wait_max)
    _positive("--queue-max", args.queue_max)
    if not args.turn_lease > 0:
        raise CliError(f"--turn-lease must be > 0, not {args.turn_lease}")
    embedded = None
    if args.emulator:
        scale = 1.0 if args.time_scale is None else _positive("--time-scale", args.time_scale)
        embedded = serve(Emulator(SystemClock(), time_scale=scale))
        upstream = embedded.base_url
    elif args.upstream:
        upstream = args.upstream.rstrip("/")
        if not upstream.startswith(("http://", "https://")):
            raise CliError(f"--upstream must be an http(s) URL, not '{args.upstream}'")
    else:
        upstream = CLOUDS[args.cloud][0]
    settings = ProxySettings(
        upstream=upstream,
        lost_updates=Mode(args.lost_updates),
        wait_max=args.wait_max,
        queue_max=args.queue_max,
        turn_lease=args.turn_lease,
        upstream_verify=args.upstream_ca or True,
        cloud=args.cloud,
    )
    metrics = ProxyMetrics()
    try:
        server, sock, _proxy, base_url, _certs = build_proxy_server(
            settings,
            host=args.host,
            port=args.port,
            store=args.store,
            events=args.events,
            cert_dir=args.cert_dir if args.tls else None,
            metrics=metrics,
        )
    except TurnStoreError as err:
        raise CliError(str(err), EXIT_FAILED) from None
    except OSError as err:
        raise CliError(f"cannot start the proxy: {err.strerror or err}", EXIT_FAILED) from None
    if args.metrics_port is not None:
        try:
            start_http_server(args.metrics_port, addr=args.host, registry=metrics.registry)
        except OSError as err:
            raise CliError(
                f"cannot serve metrics on port {args.metrics_port}: {err.strerror or err}",
                EXIT_FAILED,
            ) from None
    sys.stdout.write(f"armguard proxy listening on {base_url} (upstream {upstream})\n")
    sys.stdout.flush()
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run(sockets=[sock])
    finally:
        if embedded is not None:
            embedded.stop()
    return EXIT_OK
