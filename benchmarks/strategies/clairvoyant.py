"""(0) The measured ideal: a clairvoyant script that knows every intent at t=0.

It is what the ideal serialised schedule looks like when it is actually run on the same
emulator, over the same HTTP, with the same Retry-After polling as every other strategy, so the
ratio to it measures the coordination overhead alone (store, leases, debounce, scheduling)
instead of comparing real costs with a paper schedule:

* every resource's intents are folded into its final value before anything is sent (the last
  intent per field wins, as the ideal assumes), and written once;
* writes that share a lock key (subnets of one VNet) run back to back on one thread; the rest
  run in parallel, one thread per key;
* the only transitions are the unavoidable ones (a running VM: deallocate, resize, start), and
  tags on a type without ETags go through the tags API Merge, the cheapest write that sets them.

It has no retries and no conflicts by construction: nobody else writes. A refused write is a
harness error, reported as a failed intent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from armguard.arm.client import ArmTransportError
from armguard.arm.ids import parse_resource_id
from armguard.coordinator.gates import wait_for_operation, wait_for_power_state

from .common import IntentOutcome, RunContext, StrategyResult, finish_write, read, send_put
from .workloads import WorkIntent

__all__ = ["run"]

_TAGS_API = "2021-04-01"


def _final(intents: Sequence[WorkIntent]) -> list[WorkIntent]:
    """The intents whose values end up in the state: the last one per field."""
    last: dict[str, WorkIntent] = {}
    for intent in intents:
        held = last.get(intent.field)
        if held is None or intent.index >= held.index:
            last[intent.field] = intent
    return list(last.values())


def _lock_key(rid: str) -> str:
    parsed = parse_resource_id(rid)
    return (parsed.top_level if parsed.is_child else parsed).key


def _write_resource(ctx: RunContext, intents: list[WorkIntent]) -> str | None:
    """Write one resource's folded intents; None on success, else what went wrong."""
    first = intents[0]
    if first.kind == "size":
        # A running VM: deallocate, resize, start again, each waited for.
        return (
            _power(ctx, first, "deallocate", "deallocated")
            or _write_body(ctx, intents)
            or _power(ctx, first, "start", "running")
        )
    return _write_body(ctx, intents)


def _write_body(ctx: RunContext, intents: list[WorkIntent]) -> str | None:
    first = intents[0]
    live = read(ctx, first)
    if not live.ok:
        return f"GET {live.status}"
    if first.kind == "tag" and live.etag is None:
        # No ETag, no read-modify-write: the tags API Merge changes only the named keys.
        response = ctx.clients(first.writer).request(
            "PATCH",
            f"{first.resource_id}/providers/Microsoft.Resources/tags/default",
            api_version=_TAGS_API,
            body={"operation": "Merge", "properties": {"tags": {i.key: i.value for i in intents}}},
        )
        ctx.tally.write(response.status)
        return None if response.ok else f"tags Merge {response.status}"
    body = live.body
    for intent in intents:
        body = intent.apply(body)
    response = send_put(ctx, first, body, live.etag)
    if not response.ok:
        return f"PUT {response.status}"
    outcome = finish_write(ctx, first, response, 1)
    return None if outcome.ok else f"operation {outcome.code}"


def _power(ctx: RunContext, intent: WorkIntent, action: str, state: str) -> str | None:
    client = ctx.clients(intent.writer)
    rid, api = intent.resource_id, intent.api_version
    response = client.request("POST", f"{rid}/{action}", api_version=api)
    ctx.tally.write(response.status)
    if not response.ok:
        return f"{action} {response.status}"
    url = response.header("azure-asyncoperation") or response.header("location")
    if url:
        done = wait_for_operation(client, url, ctx.pacer(), first=response)
        if not done.succeeded:
            return f"{action} ended {done.status}"
    wait_for_power_state(client, rid, api, state, ctx.pacer())
    return None


def run(ctx: RunContext, writers: Sequence[Sequence[WorkIntent]]) -> StrategyResult:
    everything = [i for w in writers for i in w]
    by_key: dict[str, dict[str, list[WorkIntent]]] = {}
    for intent in _final(everything):
        key = _lock_key(intent.resource_id)
        by_key.setdefault(key, {}).setdefault(intent.resource_id.lower(), []).append(intent)
    for resources in by_key.values():
        for intents in resources.values():
            intents.sort(key=lambda i: (i.writer, i.index))
    problems: dict[str, str] = {}
    lock = threading.Lock()

    def serial(resources: dict[str, list[WorkIntent]]) -> Callable[[], None]:
        def go() -> None:
            for rid, intents in resources.items():
                try:
                    problem = _write_resource(ctx, intents)
                except ArmTransportError as err:
                    problem = f"no answer: {err}"
                if problem is not None:
                    with lock:
                        problems[rid] = problem

        return go

    threads = [threading.Thread(target=serial(r), daemon=True) for r in by_key.values()]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    outcomes = [
        IntentOutcome(i, True)
        if i.resource_id.lower() not in problems
        else IntentOutcome(i, False, None, problems[i.resource_id.lower()], "harness")
        for i in everything
    ]
    resources = sum(len(r) for r in by_key.values())
    return StrategyResult(outcomes, seconds, {"resources": resources, "lockKeys": len(by_key)})
