"""Storms that outlast the retry budget: the batch goes back to the queue, the worker claims
nothing until its budget admits a retry (never before ARM's Retry-After), and the jobs end as
if no storm had struck — or, past ``max_requeues``, fail with the storm's kind.

A real emulator (its fault API makes the 429s and 5xx) and a real store on both backends, one
ManualClock: the worker's pauses advance it instead of sleeping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import generate_latest
from writer_env import (
    VM,
    VNET,
    Env,
    Interleaved,
    alice,
    make_vm,
    make_vnet,
    run_with,
    storm_without_end,
)

from armguard.arm.client import ArmResponse
from armguard.coordinator.intents import ActionIntent, TagsIntent
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import Outcome
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.coordinator.write import WriterSettings
from armguard.events import JobEvent

VM_API = "2024-07-01"


def _at(event: JobEvent) -> float:
    return datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp()


def _throttle_puts(env: Env, times: int, retry_after: float) -> None:
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "PUT", "idPattern": VNET},
            "effect": {
                "status": 429,
                "code": "TooManyRequests",
                "message": "Storm.",
                "retryAfter": retry_after,
            },
            "schedule": {"firstN": times},
        }
    )


def test_a_storm_past_the_budget_requeues_the_batch_in_order_and_it_applies_later(
    env: Env,
) -> None:
    make_vnet(env, {"env": "prod"})
    # Three failures exhaust a budget of two retries per ten minutes; the next batch meets two
    # more, then ARM answers again.
    _throttle_puts(env, 5, retry_after=2.0)
    jobs = [
        env.submit(VNET, TagsIntent({"team": "a", "n": "1"}), who="alice"),
        env.submit(VNET, TagsIntent({"n": "2"}), who="bob"),
        env.submit(VNET, TagsIntent({"n": "3", "last": "carol"}), who="carol"),
    ]
    metrics = CoordinatorMetrics()
    worker = Worker(
        lambda: env.db.open(env.clock),
        env.client,
        env.clock,
        settings=WorkerSettings(
            lease_ttl=3600.0, budget_floor=2, budget_ratio=0.0, budget_window=600.0
        ),
        metrics=metrics,
    )
    worker.run_until_idle()

    for job in jobs:
        done = env.job(job)
        assert done.outcome is Outcome.APPLIED, done.reason
    # Submission order held through the requeue: the last job's value won.
    assert env.get(VNET)["tags"] == {"env": "prod", "team": "a", "n": "3", "last": "carol"}
    assert len(env.arm.core.faults.applied()) == 5
    assert worker.stats.requeued == 3
    assert worker.stats.outcomes == {"applied": 3}

    for job in jobs:
        events = env.store.events(job.id)
        names = [e.event for e in events]
        assert names.count("requeued") == 1, names
        assert names.count("claimed") == 2, names
        assert "failed" not in names
        requeued = events[names.index("requeued")]
        assert requeued.kind == "throttled"
        assert requeued.status == 429
        # Until the budget's two retries leave its window: ten minutes after the first.
        assert requeued.delay is not None
        assert 590.0 <= requeued.delay <= 1200.0
        assert (requeued.message or "").startswith(
            f"requeued: retry budget exhausted, resumes after {requeued.delay:.0f} s — "
        )
        assert "TooManyRequests" in (requeued.message or "")
        assert requeued.detail["retries"] == 2
        assert requeued.detail["requeues"] == 1
        # The worker claimed nothing before the delay was over.
        claimed_again = events[len(names) - 1 - names[::-1].index("claimed")]
        assert _at(claimed_again) - _at(requeued) >= requeued.delay - 0.001

    text = generate_latest(metrics.registry).decode()
    assert 'armguard_jobs_requeued_total{kind="throttled"} 3.0' in text
    assert "armguard_retry_budget_exhausted_total 1.0" in text
    assert 'armguard_jobs_total{kind="",outcome="applied"} 3.0' in text


def test_a_requeue_waits_at_least_the_retry_after_arm_gave(env: Env) -> None:
    make_vnet(env)
    _throttle_puts(env, 1, retry_after=90.0)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    # No retry at all: a budget of half a retry per write and no floor.
    env.run(budget_floor=0, budget_ratio=0.5)
    assert env.job(job).outcome is Outcome.APPLIED
    events = env.store.events(job.id)
    requeued = next(e for e in events if e.event == "requeued")
    assert requeued.delay is not None
    assert 90.0 <= requeued.delay <= 180.0
    claimed = [e for e in events if e.event == "claimed"]
    assert len(claimed) == 2
    assert _at(claimed[1]) - _at(requeued) >= 90.0


def test_a_permanent_storm_fails_the_job_after_max_requeues_with_its_kind(env: Env) -> None:
    make_vnet(env)
    storm_without_end(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    worker = env.run(budget_floor=2, budget_ratio=0.0, writer=WriterSettings(max_requeues=2))
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "transient"
    assert "retry budget exhausted" in (done.reason or "")
    assert "requeued 2 times already (the limit is 2)" in (done.reason or "")
    assert "ServiceUnavailable" in (done.reason or "")
    names = env.events(job)
    assert names.count("requeued") == 2
    assert names.count("claimed") == 3
    assert names[-1] == "failed"
    # Each batch: one write and the retries the budget admits (it resumes once one is
    # admitted, so at most two per batch); nothing beyond.
    assert 3 <= worker.budget.spent <= 6
    started = [e for e in env.activity("alice") if e["status"]["value"] == "Started"]
    assert len(started) == 3 + worker.budget.spent
    assert worker.stats.requeued == 2


def test_max_requeues_zero_fails_at_the_first_exhaustion(env: Env) -> None:
    make_vnet(env)
    _throttle_puts(env, 10, retry_after=1.0)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    env.run(budget_floor=1, budget_ratio=0.0, writer=WriterSettings(max_requeues=0))
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "throttled"
    assert "requeued" not in env.events(job)


class _AnswerLost:
    """A real client whose first answer to ``verb`` is lost: ARM took the request, armguard
    hears a 500 (a gateway that failed after forwarding it)."""

    def __init__(self, env: Env, verb: str) -> None:
        self.inner = alice(env)
        self.verb = verb
        self.lost = 0

    def request(self, method: str, path: str, **kw: Any) -> ArmResponse:
        response = self.inner.request(method, path, **kw)
        if method == self.verb and not self.lost and response.ok:
            self.lost += 1
            return ArmResponse(
                method,
                path,
                500,
                {},
                {"error": {"code": "InternalServerError", "message": "gateway failed"}},
            )
        return response


def test_an_action_whose_answer_was_lost_is_not_sent_again_after_the_requeue(env: Env) -> None:
    """The powerOff landed but armguard heard a 500, and the budget admits no retry: the job
    goes back to the queue, and the lease that resumes it reads the VM stopped and ends it
    already satisfied, as a takeover would, instead of powering it off twice."""
    make_vm(env)
    client = _AnswerLost(env, "POST")
    job = env.submit(VM, ActionIntent("powerOff", api_version=VM_API), who="alice")
    worker = Worker(
        lambda: env.db.open(env.clock),
        lambda who: client,
        env.clock,
        settings=WorkerSettings(lease_ttl=3600.0, budget_floor=0, budget_ratio=0.0),
    )
    worker.run_until_idle()
    assert client.lost == 1
    done = env.job(job)
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    assert env.events(job).count("requeued") == 1
    posts = [
        e
        for e in env.activity("alice")
        if e["status"]["value"] == "Started" and "powerOff" in e["operationName"]["value"]
    ]
    assert len(posts) == 1
    view = env.setup.request("GET", f"{VM}/instanceView", api_version=VM_API).body
    assert "PowerState/stopped" in [s["code"] for s in view["statuses"]]


# -- a power action refused while the VM's power state is elsewhere -------------------------


def _power(env: Env) -> str:
    view = env.setup.request("GET", f"{VM}/instanceView", api_version=VM_API).body
    return next(s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/"))


def _power_posts(env: Env, action: str) -> int:
    """armguard's POSTs of ``action`` that reached ARM (refused ones included)."""
    return sum(
        1
        for e in env.activity("alice")
        if e["operationName"]["value"].endswith(f"/{action}/action")
        and e["status"]["value"] == "Started"
    )


def _before_power_off(method: str, path: str, history: list[tuple[str, str, int]]) -> bool:
    return method == "POST" and path.endswith("/powerOff")


def _deallocate(env: Env) -> None:
    """Another writer deallocates the VM. While that runs the emulator refuses a powerOff as
    ARM does: "… not allowed … since the VM is either deallocated or marked to be deallocated"."""
    r = env.setup.request("POST", f"{VM}/deallocate", api_version=VM_API)
    assert r.status in (200, 202), r.text


def test_a_power_off_refused_because_the_vm_was_deallocated_meanwhile_is_satisfied(
    env: Env,
) -> None:
    """The emulator's own refusal: between armguard's read and its POST, someone deallocated
    the VM. A deallocated VM is powered off already: the job ends satisfied, not failed."""
    make_vm(env)
    job = env.submit(VM, ActionIntent("powerOff", api_version=VM_API), who="alice")

    def deallocate() -> None:
        _deallocate(env)
        env.settle()

    run_with(env, Interleaved(alice(env), _before_power_off, deallocate))
    done = env.job(job)
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    events = env.store.events(job.id)
    refused = [e for e in events if e.event == "conflict"]
    assert [(e.kind, e.code) for e in refused] == [("state_prerequisite", "OperationNotAllowed")]
    assert "marked to be deallocated" in (refused[0].message or "")
    assert any(e.event == "waiting" and e.detail.get("until") == "settled" for e in events)
    assert _power_posts(env, "powerOff") == 1  # refused once, never sent again
    assert _power(env) == "PowerState/deallocated"


def test_a_power_off_refused_while_deallocating_waits_for_the_deallocation(env: Env) -> None:
    """ARM's refusal while a deallocation is still under way ("… or marked to be
    deallocated"): armguard follows the power state until it settles, then decides again."""
    make_vm(env)
    job = env.submit(VM, ActionIntent("powerOff", api_version=VM_API), who="alice")

    run_with(env, Interleaved(alice(env), _before_power_off, lambda: _deallocate(env)))
    done = env.job(job)
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    [refused] = [e for e in env.store.events(job.id) if e.event == "conflict"]
    assert "is either deallocated or marked to be deallocated" in (refused.message or "")
    waits = [e.detail for e in env.store.events(job.id) if e.event == "waiting"]
    assert {"on": "powerState", "reached": "deallocated"} in waits
    assert _power(env) == "PowerState/deallocated"


def test_a_power_off_refused_while_deallocating_is_sent_once_the_vm_runs_again(
    env: Env,
) -> None:
    make_vm(env)
    job = env.submit(VM, ActionIntent("powerOff", api_version=VM_API), who="alice")
    steps: list[str] = []

    def when(method: str, path: str, history: list[tuple[str, str, int]]) -> bool:
        if not steps:
            return _before_power_off(method, path, history)
        # The first power-state read after the refusal.
        refused = any(m == "POST" and s == 409 for m, _, s in history)
        return refused and method == "GET" and path.endswith("/instanceView")

    def step() -> None:
        if not steps:
            steps.append("deallocate")
            _deallocate(env)
            return
        steps.append("start")  # someone starts it again once it is deallocated
        env.settle()
        r = env.setup.request("POST", f"{VM}/start", api_version=VM_API)
        assert r.status in (200, 202), r.text

    run_with(env, Interleaved(alice(env), when, step, times=2))
    assert steps == ["deallocate", "start"]
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    waits = [e.detail for e in env.store.events(job.id) if e.event == "waiting"]
    assert {"on": "powerState", "reached": "running"} in waits
    assert _power(env) == "PowerState/stopped"
    assert _power_posts(env, "powerOff") == 2  # refused, then sent to the running VM


def test_a_power_action_is_not_decided_on_a_power_state_a_storm_hid(env: Env) -> None:
    """A throttled instance-view read is read again, not taken as 'power state unknown' (which
    sends the action blind, into a refusal, when the VM is already where it should be)."""
    make_vm(env)
    r = env.setup.request("POST", f"{VM}/deallocate", api_version=VM_API)
    assert r.status in (200, 202), r.text
    env.settle()
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "GET", "idPattern": VM, "operation": "instanceView"},
            "effect": {"status": 429, "code": "TooManyRequests", "retryAfter": 2},
            "schedule": {"firstN": 1},
        }
    )
    job = env.submit(VM, ActionIntent("powerOff", api_version=VM_API), who="alice")
    env.run()
    assert env.job(job).outcome is Outcome.ALREADY_SATISFIED
    assert len(env.arm.core.faults.applied()) == 1
    assert _power_posts(env, "powerOff") == 0
