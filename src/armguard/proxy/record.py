"""What the proxy did, in the coordinator's job-event format and as Prometheus metrics.

Each proxied write is one job in ``armguard events``' JSON-lines shape (``job_id`` =
``proxy-…``, ``writer`` = the caller), so ``armguard timeline`` lays proxy traffic beside an
Activity Log export: queued, claimed (with its ticket as fencing token), absorbed conflicts and
their waits, lost updates warned/guarded/merged/refused, the write and its end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from armguard.clock import Clock, isoformat
from armguard.events import JobEvent

__all__ = ["EventLog", "ProxyMetrics"]


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge(
            "armguard_proxy_queue_depth", "writes waiting for their turn", registry=r
        )
        self.wait_seconds = Histogram(
            "armguard_proxy_wait_seconds",
            "time a write waited for its turn",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=r,
        )
        self.writes = Counter(
            "armguard_proxy_writes_total", "writes sent upstream, by method", ["method"], registry=r
        )
        self.absorbed = Counter(
            "armguard_proxy_refusals_absorbed_total",
            "refusals from ARM waited out and resent, by conflict kind",
            ["kind"],
            registry=r,
        )
        self.passed_after_wait = Counter(
            "armguard_proxy_passed_through_after_wait_max_total",
            "refusals returned unchanged because --wait-max or the retry budget ran out",
            ["kind"],
            registry=r,
        )
        self.lost_updates = Counter(
            "armguard_proxy_lost_updates_total",
            "blind PUTs over a version their caller never read, by what the proxy did",
            ["action"],
            registry=r,
        )
        self.requests = Counter(
            "armguard_proxy_requests_total",
            "requests by method and answer class",
            ["method", "status_class"],
            registry=r,
        )


class EventLog:
    """Appends job events to a JSON-lines file (or nowhere). Thread-safe; a line per event."""

    def __init__(self, path: str | Path | None, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._file: IO[str] | None = (
            open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        )
        self.count = 0

    def emit(
        self,
        job_id: str,
        resource_id: str,
        writer: str,
        event: str,
        **fields: object,
    ) -> None:
        self.count += 1
        if self._file is None:
            return
        line = JobEvent(
            ts=isoformat(self._clock.now()),
            job_id=job_id,
            resource_id=resource_id,
            writer=writer,
            event=event,
            **fields,  # type: ignore[arg-type]
        ).to_json()
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
