"""The write loop against a served emulator (real HTTP) and a real store, on one ManualClock.

Each scenario is a seed's "how to fix" line: stale baselines rebase / drop / fail, satisfied
intents complete without a write, a subnet write waits on its VNet's operation, a resize runs
deallocate → resize → start, a lock blocks, throttling backs off inside the budget, and a
worker whose lease expired cannot complete.
"""

from __future__ import annotations

import pytest
from writer_env import (
    NET_API,
    RG,
    STORAGE,
    SUBNET,
    VM,
    VNET,
    Env,
    make_vm,
    make_vnet,
    storm_without_end,
)

from armguard.coordinator.backoff import RetryBudget
from armguard.coordinator.intents import (
    ActionIntent,
    DeleteIntent,
    Intent,
    MergeIntent,
    PutIntent,
    ResizeIntent,
    TagsIntent,
)
from armguard.coordinator.model import Job, JobState, Outcome, StalePolicy
from armguard.coordinator.write import BatchWriter, WriterSettings
from armguard.events import JobEvent

# -- stale baselines -----------------------------------------------------------------------


def test_stale_baseline_is_rebased_dropped_or_failed_per_policy(env: Env) -> None:
    old_body = make_vnet(env)
    old_etag = old_body["etag"]
    live = env.get(VNET)
    env.put(VNET, {**live, "tags": {"hotfix": "portal"}}, who="portal")  # moves the ETag on
    env.settle()
    rebase = env.submit(VNET, TagsIntent({"a": "1"}), baseline=old_body)
    # Only an ETag: nobody can tell which fields moved, so the default rebase refuses.
    blind = env.submit(VNET, TagsIntent({"d": "4"}), baseline_etag=old_etag)
    drop = env.submit(
        VNET, TagsIntent({"b": "2"}), baseline_etag=old_etag, on_stale=StalePolicy.DROP
    )
    fail = env.submit(
        VNET, TagsIntent({"c": "3"}), baseline_etag=old_etag, on_stale=StalePolicy.FAIL
    )
    env.run()
    assert env.job(rebase).outcome is Outcome.APPLIED
    assert "rebased" in env.events(rebase)
    assert env.job(drop).outcome is Outcome.DROPPED_STALE
    assert "dropped_stale" in env.events(drop)
    failed = env.job(fail)
    assert failed.outcome is Outcome.FAILED
    assert failed.kind == "stale_version"
    assert old_etag in (failed.reason or "")
    unbased = env.job(blind)
    assert (unbased.outcome, unbased.kind) == (Outcome.FAILED, "stale_version")
    assert "no baseline body" in (unbased.reason or "")
    tags = env.get(VNET)["tags"]
    assert tags == {"hotfix": "portal", "a": "1"}  # the portal's change survived the rebase


def test_a_fresh_baseline_is_written_with_if_match(env: Env) -> None:
    etag = make_vnet(env)["etag"]
    job = env.submit(VNET, TagsIntent({"a": "1"}), baseline_etag=etag, on_stale=StalePolicy.FAIL)
    env.run()
    assert env.job(job).outcome is Outcome.APPLIED
    writes = [e for e in env.store.events(job.id) if e.event == "write"]
    assert [w.etag_sent for w in writes] == [etag]


# -- idempotent completion -----------------------------------------------------------------


def test_already_satisfied_completes_without_any_write(env: Env) -> None:
    make_vnet(env, tags={"env": "prod"})
    job = env.submit(VNET, TagsIntent({"env": "prod"}), who="alice")
    merge = env.submit(
        VNET,
        MergeIntent({"properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
        who="alice",
    )
    env.run()
    assert env.job(job).outcome is Outcome.ALREADY_SATISFIED
    assert env.job(merge).outcome is Outcome.ALREADY_SATISFIED
    assert "write" not in env.events(job)
    assert env.writes_by("alice") == []  # no PUT in the Activity Log


def test_intents_that_cancel_out_need_no_write(env: Env) -> None:
    make_vnet(env, tags={"a": "1"})
    first = env.submit(VNET, TagsIntent({"a": "2"}))
    second = env.submit(VNET, TagsIntent({"a": "1"}))
    env.run()
    assert env.job(first).outcome is Outcome.ALREADY_SATISFIED
    assert env.job(second).outcome is Outcome.ALREADY_SATISFIED
    assert env.writes_by("alice") == []
    assert env.get(VNET)["tags"] == {"a": "1"}  # submission order: the later "a=1" wins


def test_a_satisfied_job_batched_behind_other_fields_needs_no_write(env: Env) -> None:
    make_vnet(env, tags={"env": "prod"})
    other = env.submit(VNET, TagsIntent({"owner": "media"}))
    there = env.submit(VNET, TagsIntent({"env": "prod"}))
    env.run()
    assert env.job(other).outcome is Outcome.APPLIED
    assert env.job(there).outcome is Outcome.ALREADY_SATISFIED
    assert "write" not in env.events(there)
    assert env.get(VNET)["tags"] == {"env": "prod", "owner": "media"}


def test_a_job_behind_a_full_put_is_written_even_if_live_has_it(env: Env) -> None:
    live = make_vnet(env, tags={"env": "prod"})
    body = {k: v for k, v in live.items() if k not in ("tags", "etag", "id", "name", "type")}
    body["properties"] = {
        **body["properties"],
        "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
    }
    put = env.submit(VNET, PutIntent(body))
    there = env.submit(VNET, TagsIntent({"env": "prod"}))
    env.run()
    assert env.job(put).outcome is Outcome.APPLIED
    assert env.job(there).outcome is Outcome.APPLIED
    assert env.get(VNET)["tags"] == {"env": "prod"}  # the PUT dropped it; the later job restored it


# -- operation in progress -----------------------------------------------------------------


def test_subnet_write_waits_on_the_vnet_operation_and_succeeds(env: Env) -> None:
    live = make_vnet(env)
    env.put(VNET, {**live, "tags": {"rollout": "1"}}, who="pipeline")  # VNet now Updating
    job = env.submit(
        SUBNET, PutIntent({"properties": {"addressPrefix": "10.0.1.0/24"}}), who="alice"
    )
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    events = env.store.events(job.id)
    conflict = next(e for e in events if e.event == "conflict")
    assert conflict.kind == "operation_in_progress"
    waits = [e for e in events if e.event == "waiting" and e.operation_url]
    assert waits[0].operation_url == conflict.operation_url
    assert env.get(SUBNET)["properties"]["addressPrefix"] == "10.0.1.0/24"
    assert done.result["verified"] is True


# -- prerequisites ---------------------------------------------------------------------------


@pytest.mark.parametrize("died_while_starting", [False, True])
def test_a_takeover_after_deallocate_still_starts_the_vm_again(
    env: Env, died_while_starting: bool
) -> None:
    """A worker deallocated a running VM for a resize, then died (before starting it again,
    or after announcing the start but before it happened); its lease expires. The worker that
    takes over must finish the resize and start the VM, not leave it down."""
    make_vm(env)
    job = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="alice")
    dead = env.store.claim("dead-worker", ttl=30.0)
    assert dead is not None
    details = [{"action": "deallocate", "until": "deallocated", "restore": "running"}]
    if died_while_starting:
        details.append({"action": "start", "until": "running"})
    env.store.append_events(
        [
            JobEvent(
                ts="2026-01-01T00:00:00.0000000Z",
                job_id=job.id,
                resource_id=job.resource_id,
                writer="alice",
                event="prerequisite",
                fence=dead.fence,
                verb="POST",
                detail=detail,
            )
            for detail in details
        ]
    )
    posted = env.client("alice").request("POST", f"{VM}/deallocate", api_version="2024-07-01")
    assert posted.status in (200, 202)
    env.settle()  # the deallocate finishes and the dead worker's lease expires
    env.run()
    done = env.job(job)
    assert done.outcome in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED), done.reason
    assert done.attempts >= 1
    vm = env.get(VM, "2024-07-01")
    assert vm["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    view = env.setup.request("GET", f"{VM}/instanceView", api_version="2024-07-01").body
    assert "PowerState/running" in [s["code"] for s in view["statuses"]]


def test_a_takeover_whose_intents_fold_back_to_live_still_starts_the_vm(env: Env) -> None:
    """Two queued resizes that cancel out (to D4, then back to B1s) need no write, but the VM a
    dead worker deallocated for them is still owed its start."""
    make_vm(env)
    there = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="alice")
    back = env.submit(VM, ResizeIntent("Standard_B1s"), who="alice")
    dead = env.store.claim("dead-worker", ttl=30.0)
    assert dead is not None
    assert len(dead.jobs) == 2
    env.store.append_events(
        [
            JobEvent(
                ts="2026-01-01T00:00:00.0000000Z",
                job_id=job.id,
                resource_id=job.resource_id,
                writer="alice",
                event="prerequisite",
                fence=dead.fence,
                verb="POST",
                detail={"action": "deallocate", "until": "deallocated", "restore": "running"},
            )
            for job in (there, back)
        ]
    )
    posted = env.client("alice").request("POST", f"{VM}/deallocate", api_version="2024-07-01")
    assert posted.status in (200, 202)
    env.settle()
    env.run()
    assert env.job(there).outcome is Outcome.ALREADY_SATISFIED
    assert env.job(back).outcome is Outcome.ALREADY_SATISFIED
    assert env.get(VM, "2024-07-01")["properties"]["hardwareProfile"]["vmSize"] == "Standard_B1s"
    view = env.setup.request("GET", f"{VM}/instanceView", api_version="2024-07-01").body
    assert "PowerState/running" in [s["code"] for s in view["statuses"]]


def test_resize_of_a_running_vm_deallocates_resizes_and_starts_again(env: Env) -> None:
    make_vm(env)
    job = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="alice")
    # The transitions take minutes on the clock, far past a 20 s lease: heartbeats keep it.
    env.run(lease_ttl=20.0)
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert "lease_lost" not in env.events(job)
    vm = env.get(VM, "2024-07-01")
    assert vm["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    view = env.setup.request("GET", f"{VM}/instanceView", api_version="2024-07-01").body
    assert "PowerState/running" in [s["code"] for s in view["statuses"]]
    steps = [
        (
            e["operationName"]["value"].rsplit("/", 2)[-2]
            if "/action" in e["operationName"]["value"]
            else "write",
            e["status"]["value"],
        )
        for e in env.activity("alice")
        if e["status"]["value"] != "Accepted"
    ]
    assert steps == [
        ("write", "Started"),
        ("write", "Failed"),  # refused: the size is not available in the cluster
        ("deallocate", "Started"),
        ("deallocate", "Succeeded"),
        ("write", "Started"),
        ("write", "Succeeded"),
        ("start", "Started"),
        ("start", "Succeeded"),
    ]
    events = [e for e in env.store.events(job.id) if e.event == "prerequisite"]
    prereqs = [(e.detail.get("action"), e.detail.get("reached")) for e in events]
    assert prereqs == [
        ("deallocate", None),
        ("deallocate", "deallocated"),
        ("start", None),
        ("start", "running"),
    ]
    assert events[0].detail.get("restore") == "running"  # recorded before the deallocate


def test_a_prerequisite_the_intent_does_not_declare_fails_naming_it(env: Env) -> None:
    make_vm(env)
    job = env.submit(
        VM, MergeIntent({"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}})
    )
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "state_prerequisite"
    assert "deallocate" in (done.reason or "")


def test_power_actions_run_alone_and_are_satisfied_by_state(env: Env) -> None:
    make_vm(env)
    dealloc = env.submit(VM, ActionIntent("deallocate"))
    again = env.submit(VM, ActionIntent("deallocate"))
    env.run()
    assert env.job(dealloc).outcome is Outcome.APPLIED
    assert env.job(dealloc).result["verified"] is True
    assert env.job(again).outcome is Outcome.ALREADY_SATISFIED
    assert env.writes_by("alice") == ["Microsoft.Compute/virtualMachines/deallocate/action"]


def test_delete_then_delete_again_is_satisfied(env: Env) -> None:
    make_vnet(env)
    first = env.submit(VNET, DeleteIntent())
    second = env.submit(VNET, DeleteIntent())
    env.run()
    assert env.job(first).outcome is Outcome.APPLIED
    assert env.job(second).outcome is Outcome.ALREADY_SATISFIED
    assert env.setup.request("GET", VNET, api_version=NET_API).status == 404


# -- locks, throttling, tags without ETags ---------------------------------------------------


def test_scope_locked_blocks_and_the_lock_stays(env: Env) -> None:
    make_vnet(env)
    lock = f"{RG}/providers/Microsoft.Authorization/locks/freeze"
    env.put(lock, {"properties": {"level": "ReadOnly", "notes": "change freeze"}}, api="2020-05-01")
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.BLOCKED
    assert done.kind == "locked"
    assert "lock" in (done.reason or "")
    assert "blocked" in env.events(job)
    assert env.setup.request("GET", lock, api_version="2020-05-01").status == 200
    assert "tags" not in env.get(VNET)


def test_throttling_backs_off_past_retry_after_within_the_budget(env: Env) -> None:
    make_vnet(env)
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "PUT", "idPattern": VNET},
            "effect": {"status": 429, "code": "SubscriptionRequestsThrottled", "retryAfter": 7},
            "schedule": {"firstN": 2},
        }
    )
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    worker = env.run()
    assert env.job(job).outcome is Outcome.APPLIED
    backoffs = [e for e in env.store.events(job.id) if e.event == "backoff"]
    assert len(backoffs) == 2
    assert all(b.delay is not None and b.delay >= 7 for b in backoffs)
    assert worker.budget.spent == 2


def test_an_exhausted_retry_budget_with_no_requeue_left_fails_instead_of_storming(
    env: Env,
) -> None:
    make_vnet(env)
    storm_without_end(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    # Requeues are test_writer_requeue's subject: here the job may not go back at all.
    worker = env.run(budget_floor=2, budget_ratio=0.0, writer=WriterSettings(max_requeues=0))
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "transient"
    assert "retry budget exhausted" in (done.reason or "")
    assert worker.budget.spent == 2
    assert len([e for e in env.activity("alice") if e["status"]["value"] == "Started"]) <= 3


def test_tags_on_a_type_without_etags_use_the_tags_api(env: Env) -> None:
    env.put(
        STORAGE,
        {
            "location": "eastus",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "tags": {"old": "x", "keep": "y"},
        },
        api="2023-05-01",
    )
    env.settle()
    first = env.submit(STORAGE, TagsIntent({"team": "media"}, ("old",)))
    second = env.submit(STORAGE, TagsIntent({"cost": "42"}))
    env.run()
    assert env.job(first).outcome is Outcome.APPLIED
    assert env.job(second).outcome is Outcome.APPLIED
    assert env.get(STORAGE, "2023-05-01")["tags"] == {"keep": "y", "team": "media", "cost": "42"}
    writes = env.writes_by("alice")
    assert writes
    assert all(w.startswith("Microsoft.Resources/tags/") for w in writes), writes


# -- leases ------------------------------------------------------------------------------------


def test_a_worker_whose_lease_expired_cannot_complete_or_write(env: Env) -> None:
    make_vnet(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}), who="alice")
    claimed_at = env.clock.now()
    lease = env.store.claim("slow-worker", ttl=30)
    assert lease is not None
    env.clock.advance(31)  # the slow worker paused past its TTL…
    other = env.db.open(env.clock).claim("fast-worker", ttl=30)  # …and was taken over
    assert other is not None
    report = BatchWriter(env.store, env.client, env.clock, ttl=30, budget=RetryBudget()).run(
        lease, claimed_at=claimed_at
    )
    assert report.lease_lost
    assert report.results == []
    assert env.writes_by("alice") == []  # it stopped before touching ARM
    assert env.job(job).state is JobState.RUNNING  # still the fast worker's
    assert "lease_lost" in env.events(job)


def test_a_conflict_naming_another_resource_is_learned_as_a_scope(env: Env) -> None:
    make_vnet(env)
    nic = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic1"
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "PUT", "idPattern": SUBNET},
            "effect": {
                "status": 409,
                "code": "AnotherOperationInProgress",
                "message": f"The resource '{nic}' is currently being updated.",
            },
            "schedule": {"firstN": 1},
        }
    )
    job = env.submit(SUBNET, PutIntent({"properties": {"addressPrefix": "10.0.2.0/24"}}))
    env.run()
    assert env.job(job).outcome is Outcome.APPLIED
    learned = env.store.learned_scopes()
    assert [(s.key, s.other) for s in learned] == [(SUBNET.lower(), nic.lower())]
    assert "currently being updated" in learned[0].reason
    # Nothing observable said when the NIC would be free: a jittered backoff, not a hot retry.
    backoffs = [e for e in env.store.events(job.id) if e.event == "backoff"]
    assert backoffs
    assert backoffs[0].kind == "operation_in_progress"


def test_barriers_are_never_folded_even_if_handed_a_mixed_batch() -> None:
    from armguard.coordinator.model import JobSpec
    from armguard.coordinator.write.items import Item as _Item
    from armguard.coordinator.write.items import segments as _segments

    def item(n: int, intent: Intent) -> _Item:
        spec = JobSpec(VM, intent.to_json(), "w", (VM.lower(),), barrier=intent.barrier)
        return _Item(Job(str(n), n, spec, JobState.RUNNING), intent)

    items = [
        item(1, TagsIntent({"a": "1"})),
        item(2, MergeIntent({"x": 1})),
        item(3, ActionIntent("deallocate")),
        item(4, ActionIntent("start")),
        item(5, TagsIntent({"b": "1"})),
    ]
    assert [[i.job.id for i in seg] for seg in _segments(items)] == [
        ["1", "2"],
        ["3"],
        ["4"],
        ["5"],
    ]


def test_a_job_riding_a_blocked_write_is_blocked_too(env: Env) -> None:
    make_vnet(env)
    lock = f"{VNET}/providers/Microsoft.Authorization/locks/freeze"
    env.put(lock, {"properties": {"level": "ReadOnly"}}, api="2020-05-01")
    alice = env.submit(VNET, TagsIntent({"a": "1"}), who="alice")
    bob = env.submit(VNET, TagsIntent({"a": "1"}), who="bob")  # satisfied only by alice's write
    env.run()
    assert env.job(alice).outcome is Outcome.BLOCKED
    assert env.job(bob).outcome is Outcome.BLOCKED
    assert "coalesced" in env.events(bob)
