"""(b) Blind retry, the seeds' wrong fix: read once, PUT with ``If-Match``; on 409/412 sleep a
fixed time and resend the SAME ETag and body, up to ``blind_tries`` attempts."""

from __future__ import annotations

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


def run_intent(ctx: RunContext, intent: WorkIntent) -> IntentOutcome:
    tries = int(ctx.options["blind_tries"])
    pause = float(ctx.options["blind_sleep"])
    if intent.baseline_body is not None:
        body, etag = intent.baseline_body, intent.baseline_etag
    else:
        live = read(ctx, intent)
        if not live.ok:
            return failed(intent, live, 1)
        body, etag = live.body, live.etag
    desired = intent.apply(body)
    attempt = 0
    while True:
        attempt += 1
        response = send_put(ctx, intent, desired, etag)
        if response.ok:
            return finish_write(ctx, intent, response, attempt)
        if response.status not in CONFLICT_STATUSES or attempt >= tries:
            return failed(intent, response, attempt)
        ctx.sleep(pause)
