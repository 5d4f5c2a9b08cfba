"""(c) Refresh and retry, client-go ``RetryOnConflict`` style: every attempt re-GETs, re-applies
the change and PUTs with ``If-Match``; 409/412/429 back off exponentially (±10 % jitter, as
``wait.Backoff``) up to ``refresh_tries`` attempts, then the last error is returned. Durations are
ARM-sized (seconds), not client-go's etcd-sized milliseconds, which would only spin faster."""

from __future__ import annotations

import random

from .common import (
    CONFLICT_STATUSES,
    IntentOutcome,
    RunContext,
    failed,
    finish_write,
    read,
    send_put,
)
from .workloads import WorkIntent

__all__ = ["run_intent"]

_RETRIED = CONFLICT_STATUSES | {429}


def run_intent(ctx: RunContext, intent: WorkIntent) -> IntentOutcome:
    tries = int(ctx.options["refresh_tries"])
    delay = float(ctx.options["refresh_base"])
    factor = float(ctx.options["refresh_factor"])
    cap = float(ctx.options["refresh_cap"])
    rng = random.Random(f"{intent.writer}/{intent.index}")
    attempt = 0
    while True:
        attempt += 1
        if attempt == 1 and intent.baseline_body is not None:
            body, etag = intent.baseline_body, intent.baseline_etag
        else:
            live = read(ctx, intent)
            if not live.ok:
                return failed(intent, live, attempt)
            body, etag = live.body, live.etag
        response = send_put(ctx, intent, intent.apply(body), etag)
        if response.ok:
            return finish_write(ctx, intent, response, attempt)
        if response.status not in _RETRIED or attempt >= tries:
            return failed(intent, response, attempt)
        ctx.sleep(min(cap, delay) * (1 + 0.1 * rng.random()))
        delay *= factor
