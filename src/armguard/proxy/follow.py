"""Following a write ARM accepted, so its keys are held until its operation ends.

The proxy polls the status URL itself with the caller's token, whether or not the client
polls too: the next write on those keys must not be sent while this one still runs (ARM would
refuse it with ``AnotherOperationInProgress``). ``Retry-After`` is the polling interval, as the
SDKs use it; a 429, a 5xx or no answer on the status URL is waited out with backoff, not
counted as a failure, until ``deadline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from armguard.arm.states import is_terminal
from armguard.clock import Clock
from armguard.coordinator.backoff import Backoff
from armguard.proxy.upstream import Answer, Unreachable, Upstream

__all__ = ["follow_operation", "operation_url", "retry_after_seconds"]


def retry_after_seconds(answer: Answer) -> float | None:
    value = answer.header("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def operation_url(answer: Answer) -> str | None:
    """Where an accepted write's end can be read: ``Azure-AsyncOperation`` first (it reports
    Failed/Canceled), else ``Location``. None when the write ended in its answer."""
    if answer.status not in (200, 201, 202):
        return None
    url = answer.header("azure-asyncoperation") or answer.header("location")
    if url is None:
        return None
    if answer.status == 200 and answer.header("azure-asyncoperation") is None:
        return None  # a 200 with a Location is a redirect-like hint, not an operation
    return url


def _ended(answer: Answer, via_status_url: bool) -> str | None:
    """The operation's terminal status when this poll shows one."""
    if via_status_url:
        if answer.status != 200:
            return "Failed" if 400 <= answer.status < 500 and answer.status != 429 else None
        doc = answer.json()
        status = doc.get("status") if isinstance(doc, Mapping) else None
        if isinstance(status, str) and is_terminal(status):
            return status
        return None
    if answer.status == 202:
        return None
    if answer.status in (200, 201, 204):
        return "Succeeded"
    if answer.status == 429 or answer.status >= 500:
        return None
    return "Failed"


async def follow_operation(
    upstream: Upstream,
    url: str,
    *,
    via_status_url: bool,
    headers: Iterable[tuple[str, str]],
    clock: Clock,
    first_wait: float | None,
    deadline: float,
    backoff: Backoff,
    eager: float | None = 0.05,
) -> str:
    """Poll ``url`` until the operation ends; its status (``Succeeded``/``Failed``/
    ``Canceled``), or ``unknown`` when ``deadline`` (monotonic) passes first.

    ``eager``: every write queued behind this one waits for its end, so the proxy polls sooner
    than ``Retry-After`` at first — ``eager`` seconds, doubling until it reaches ARM's hint. A
    short write is then seen to end within a few tens of milliseconds instead of a whole
    hint, at the cost of a handful of reads per write (ARM's read limits are far above it).
    """
    headers = list(headers)
    hint = 1.0 if first_wait is None else first_wait
    step = eager
    wait = hint if step is None else min(hint, step)
    misses = 0
    while True:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return "unknown"
        await clock.asleep(min(wait, remaining))
        try:
            answer = await upstream.send("GET", url, headers)
        except (Unreachable, ValueError):
            misses += 1
            wait = backoff.delay(misses)
            continue
        ended = _ended(answer, via_status_url)
        if ended is not None:
            return ended
        if answer.status == 429 or answer.status >= 500:
            misses += 1
            wait = backoff.delay(misses, retry_after_seconds(answer))
            continue
        misses = 0
        hinted = retry_after_seconds(answer)
        hint = 1.0 if hinted is None else hinted
        if step is not None:
            step *= 2
        wait = hint if step is None else min(hint, step)
