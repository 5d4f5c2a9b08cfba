"""Serving the proxy: the CLI's blocking runner and a threaded helper for tests and the demo.

As with the emulator, the socket is bound before uvicorn starts, so the proxy knows its own
URL (port 0 resolves to a real one) before it serves the first request: it needs it to point
ARM's absolute URLs back at itself.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from armguard.clock import Clock, SystemClock
from armguard.emulator.server import bind
from armguard.emulator.tls import CertFiles, write_certificates
from armguard.proxy.app import ProxyApp
from armguard.proxy.record import EventLog, ProxyMetrics
from armguard.proxy.settings import ProxySettings
from armguard.proxy.sql_turns import open_turns
from armguard.proxy.turns import MemoryTurns, Turns
from armguard.proxy.upstream import Upstream
from armguard.proxy.write import Proxy

__all__ = ["RunningProxy", "build_proxy_server", "serve_proxy"]


@dataclass
class RunningProxy:
    proxy: Proxy
    base_url: str
    certs: CertFiles | None
    _server: uvicorn.Server
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def build_proxy_server(
    settings: ProxySettings,
    *,
    host: str,
    port: int,
    store: str | None = None,
    events: str | Path | None = None,
    cert_dir: str | Path | None = None,
    clock: Clock | None = None,
    metrics: ProxyMetrics | None = None,
) -> tuple[uvicorn.Server, socket.socket, Proxy, str, CertFiles | None]:
    clock = clock or SystemClock()
    sock = bind(host, port)
    certs = write_certificates(cert_dir, host) if cert_dir is not None else None
    scheme = "https" if certs else "http"
    shown = f"[{host}]" if ":" in host else host
    base_url = f"{scheme}://{shown}:{sock.getsockname()[1]}"
    turns: Turns = open_turns(store, clock, ttl=settings.turn_lease) if store else MemoryTurns()
    proxy = Proxy(
        settings,
        upstream=Upstream(settings.upstream, verify=settings.upstream_verify),
        turns=turns,
        clock=clock,
        public_url=base_url,
        events=EventLog(events, clock),
        metrics=metrics,
    )
    config = uvicorn.Config(
        ProxyApp(proxy),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=240,
        # ARM's own Date and Server headers pass through; uvicorn must not add a second pair.
        server_header=False,
        date_header=False,
        ssl_certfile=str(certs.cert) if certs else None,
        ssl_keyfile=str(certs.key) if certs else None,
    )
    return uvicorn.Server(config), sock, proxy, base_url, certs


def serve_proxy(
    settings: ProxySettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    store: str | None = None,
    events: str | Path | None = None,
    clock: Clock | None = None,
) -> RunningProxy:
    """Serve a proxy in a daemon thread; ``stop()`` ends it."""
    server, sock, proxy, base_url, certs = build_proxy_server(
        settings, host=host, port=port, store=store, events=events, clock=clock
    )
    started = threading.Event()

    def run() -> None:
        started.set()
        server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="armguard-proxy", daemon=True)
    thread.start()
    started.wait(5)
    return RunningProxy(proxy, base_url, certs, server, thread)
