"""(a) Naive read-modify-write: GET, modify, PUT without ``If-Match``; any failure is returned
to the caller as is. A queued intent (``stale-queue``) PUTs the body it was prepared with."""

from __future__ import annotations

from .common import IntentOutcome, RunContext, failed, finish_write, read, send_put
from .workloads import WorkIntent

__all__ = ["run_intent"]


def run_intent(ctx: RunContext, intent: WorkIntent) -> IntentOutcome:
    if intent.baseline_body is not None:
        body = intent.baseline_body
    else:
        live = read(ctx, intent)
        if not live.ok:
            return failed(intent, live, 1)
        body = live.body
    response = send_put(ctx, intent, intent.apply(body), None)
    if not response.ok:
        return failed(intent, response, 1)
    return finish_write(ctx, intent, response, 1)
