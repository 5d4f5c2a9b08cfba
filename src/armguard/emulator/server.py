"""Serving the emulator: a blocking runner for the CLI and a threaded helper for tests.

The listening socket is bound before uvicorn starts, so port 0 resolves to a real port that can
be printed at once, and clients may connect immediately (the kernel queues them until the
server accepts).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from armguard.emulator.app import create_app
from armguard.emulator.coalesce import CoalescingHttpProtocol
from armguard.emulator.core import Emulator
from armguard.emulator.tls import CertFiles, write_certificates

__all__ = ["RunningServer", "bind", "build_server", "serve"]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every small response waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def build_server(
    core: Emulator, *, cert_dir: str | Path | None = None, host: str = "127.0.0.1"
) -> tuple[uvicorn.Server, CertFiles | None]:
    certs = write_certificates(cert_dir, host) if cert_dir is not None else None
    config = uvicorn.Config(
        create_app(core),
        http=CoalescingHttpProtocol,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        # uvicorn's 5 s default closes a client's pooled connection between two polls that
        # honour a 10 s Retry-After, and the client's next request on it dies on the race
        # (RemoteDisconnected). ARM's front end keeps idle connections for minutes.
        timeout_keep_alive=240,
        ssl_certfile=str(certs.cert) if certs else None,
        ssl_keyfile=str(certs.key) if certs else None,
    )
    return uvicorn.Server(config), certs


@dataclass
class RunningServer:
    """A server running in a background thread. ``stop()`` ends it and waits for the thread."""

    core: Emulator
    base_url: str
    certs: CertFiles | None
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def serve(
    core: Emulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: str | Path | None = None,
) -> RunningServer:
    """Serve ``core`` on ``host:port`` (0 = a free port) in a daemon thread."""
    sock = bind(host, port)
    server, certs = build_server(core, cert_dir=cert_dir, host=host)
    real_port = sock.getsockname()[1]
    scheme = "https" if certs else "http"
    shown = f"[{host}]" if ":" in host else host
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="armguard-emulator", daemon=True
    )
    thread.start()
    return RunningServer(core, f"{scheme}://{shown}:{real_port}", certs, server, thread)
