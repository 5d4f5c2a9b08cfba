"""The write loop where other writers interleave at chosen points, and where recovery must end.

A real emulator and real store, as in ``test_writer_loop``; another writer's step runs at an
exact point of armguard's call sequence (after its read, after its write) through
:class:`Interleaved`, a real ARM client that runs that step first. So the 412s, the
overwritten writes and the busy VMs here are the emulator's own answers, not injected ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from writer_env import (
    NET_API,
    VM,
    VNET,
    Env,
    Interleaved,
    Step,
    alice,
    make_vm,
    make_vnet,
    run_with,
)

from armguard.coordinator.intents import (
    Intent,
    Request,
    ResizeIntent,
    TagsIntent,
    register_intent,
)
from armguard.coordinator.model import Outcome, StalePolicy

VM_API = "2024-07-01"


def is_resource_get(rid: str) -> Callable[[str, str, list[tuple[str, str, int]]], bool]:
    return lambda method, path, history: method == "GET" and path.lower() == rid.lower()


def after_accepted_put(rid: str) -> Callable[[str, str, list[tuple[str, str, int]]], bool]:
    """The read-back after armguard's write to ``rid`` was accepted."""

    def when(method: str, path: str, history: list[tuple[str, str, int]]) -> bool:
        wrote = any(m == "PUT" and p.lower() == rid.lower() and s < 300 for m, p, s in history)
        return wrote and method == "GET" and path.lower() == rid.lower()

    return when


def portal_replaces_tags(env: Env, tags: Mapping[str, str]) -> Step:
    """An unguarded writer: read, replace the tags, PUT without If-Match, let it finish."""

    def step() -> None:
        env.settle()
        live = env.get(VNET)
        env.put(VNET, {**live, "tags": dict(tags)}, who="portal")
        env.settle()

    return step


def test_a_real_412_is_rebased_and_the_fresh_etag_sent(env: Env) -> None:
    make_vnet(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    read_by_armguard = env.get(VNET)["etag"]
    # The portal writes between armguard's read and its write, so the write's If-Match is
    # stale for real and the emulator answers 412 itself.
    client = Interleaved(
        alice(env),
        lambda method, path, history: method == "PUT",
        portal_replaces_tags(env, {"hotfix": "portal"}),
    )
    run_with(env, client)
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    events = env.store.events(job.id)
    assert [e.kind for e in events if e.event == "conflict"] == ["stale_version"]
    sent = [e.etag_sent for e in events if e.event == "write"]
    fresh = next(e.etag_live for e in events if e.event == "read" and e.etag_live != sent[0])
    assert sent == [read_by_armguard, fresh]
    assert fresh != read_by_armguard
    assert env.get(VNET)["tags"] == {"hotfix": "portal", "a": "1"}  # rebased, nothing lost


def test_an_accepted_write_the_live_state_lacks_is_written_once_more(env: Env) -> None:
    make_vnet(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}), baseline_etag=env.get(VNET)["etag"])
    # An unguarded writer replaces the tags right after armguard's write is done.
    client = Interleaved(
        alice(env), after_accepted_put(VNET), portal_replaces_tags(env, {"p": "1"})
    )
    run_with(env, client)
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert done.result["verified"] is True
    assert env.get(VNET)["tags"] == {"p": "1", "a": "1"}
    verified = [e.detail.get("verified") for e in env.store.events(job.id) if e.event == "verified"]
    assert verified == [False, True]
    # Its baseline was honoured by the first write; the retry is not "stale".
    assert "rebased" not in [e.event for e in env.store.events(job.id)]


def test_an_effect_that_never_shows_fails_instead_of_reporting_applied(env: Env) -> None:
    make_vnet(env)
    job = env.submit(
        VNET, TagsIntent({"a": "1"}), baseline_etag=env.get(VNET)["etag"], on_stale=StalePolicy.DROP
    )
    client = Interleaved(
        alice(env), after_accepted_put(VNET), portal_replaces_tags(env, {"p": "1"}), times=99
    )
    run_with(env, client)
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "unknown"
    assert "does not show tags.a" in (done.reason or "")
    writes = [m for m, p, s in client.history if m == "PUT" and p.lower() == VNET.lower()]
    assert len(writes) == 2  # one retry, then it stops fighting the other writer


def test_a_patch_is_not_rebased_onto_a_resource_deleted_since_its_baseline(env: Env) -> None:
    etag = make_vnet(env)["etag"]
    response = env.client("ops").request("DELETE", VNET, api_version=NET_API)
    assert response.status in (200, 202, 204)
    env.settle()
    job = env.submit(VNET, TagsIntent({"a": "1"}), baseline_etag=etag)
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "not_found"
    assert "deleted after the baseline" in (done.reason or "")
    assert env.setup.request("GET", VNET, api_version=NET_API).status == 404  # not recreated


@register_intent
@dataclass(frozen=True)
class _RedeployIntent(Intent):
    """A user's own request-shaped kind: a POST the writer cannot fold into a body."""

    kind: ClassVar[str] = "test-restart-post"
    api_version: str | None = None

    def satisfied_by(self, live: Mapping[str, Any] | None) -> bool:
        return False

    def rebase(self, live: Mapping[str, Any] | None) -> Request:
        return Request("POST", "/restart")

    def fields(self) -> set[str]:
        return set()

    def _payload(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _RedeployIntent:
        return cls()


def test_a_custom_request_intent_is_sent_not_folded_into_a_neighbours_write(env: Env) -> None:
    make_vm(env)
    restart = env.submit(VM, _RedeployIntent(), who="alice")
    tag = env.submit(VM, TagsIntent({"team": "media"}, api_version=VM_API), who="alice")
    env.run()
    assert env.job(restart).outcome is Outcome.APPLIED
    assert env.job(tag).outcome is Outcome.APPLIED
    ops = [e["operationName"]["value"].lower() for e in env.activity("alice")]
    assert any(op.endswith("/restart/action") for op in ops), ops
    assert env.get(VM, VM_API)["tags"] == {"team": "media"}


def test_a_transition_refused_again_and_again_ends_instead_of_looping(env: Env) -> None:
    make_vm(env)
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "POST", "idPattern": VM, "operation": "deallocate"},
            "effect": {
                "status": 409,
                "code": "AnotherOperationInProgress",
                "message": "Another operation on this or dependent resource is in progress.",
            },
        }
    )
    job = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="alice")
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.FAILED
    assert done.kind == "operation_in_progress"
    assert "deallocate" in (done.reason or "")
    posts = [
        e
        for e in env.activity("alice")
        if e["status"]["value"] == "Failed" and "deallocate" in e["operationName"]["value"]
    ]
    assert len(posts) == 12  # WriterSettings.max_rounds


def test_a_status_url_on_another_host_gets_no_token_and_the_resource_is_watched(
    env: Env,
) -> None:
    make_vnet(env)
    live = env.get(VNET)
    env.put(VNET, {**live, "tags": {"rollout": "1"}}, who="pipeline")  # VNet now Updating
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "PUT", "idPattern": VNET},
            "effect": {
                "status": 409,
                "code": "AnotherOperationInProgress",
                "message": "Another operation on this or dependent resource is in progress. "
                "To retrieve status of the operation use uri: "
                "https://collector.example.invalid/operations/1?api-version=2024-05-01&sig=secret.",
            },
            "schedule": {"firstN": 1},
        }
    )
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    client = Interleaved(alice(env), lambda *_: False, lambda: None)
    run_with(env, client)
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    untrusted = [status for _, path, status in client.history if "example.invalid" in path]
    assert untrusted  # armguard asked its client for it…
    assert set(untrusted) == {400}  # …which refused locally: sent, it would be a transport error
    events = env.store.events(job.id)
    assert all("sig=" not in (e.operation_url or "") for e in events)
    assert any(e.event == "waiting" and e.detail.get("on") == "provisioningState" for e in events)


def test_outcomes_refused_with_the_next_claim_are_taken_over_not_lost(env: Env) -> None:
    make_vnet(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}))
    # The worker stalls past its TTL during the read-back after its write: the batch reaches
    # its outcome, and the claim carrying that outcome finds the lease expired.
    client = Interleaved(alice(env), after_accepted_put(VNET), lambda: env.clock.advance(61.0))
    worker = run_with(env, client, lease_ttl=60.0)
    done = env.job(job)
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    assert done.attempts == 1
    events = env.store.events(job.id)
    names = [e.event for e in events]
    lost = names.index("lease_lost")
    assert "verified" in names[:lost], "the outcome was reached before the lease was lost"
    assert "expired" in (events[lost].message or "")
    assert names[lost + 1] == "claimed"
    assert events[lost + 1].fence > events[lost].fence  # type: ignore[operator]
    assert env.writes_by("alice") == ["Microsoft.Network/virtualNetworks/write"], "one write"
    assert (worker.stats.leases_lost, worker.stats.batches) == (1, 2)
    assert worker.stats.outcomes == {"already_satisfied": 1}


def test_a_read_back_that_fails_is_one_unverified_verdict_not_two(env: Env) -> None:
    make_vnet(env)
    job = env.submit(VNET, TagsIntent({"a": "1"}))

    def refuse_reads() -> None:
        env.arm.core.faults.add_rule(
            {
                "match": {"method": "GET", "idPattern": VNET},
                "effect": {"status": 403, "code": "AuthorizationFailed"},
                "schedule": {"firstN": 1},
            }
        )

    # ARM accepts the write; the read-back after it is refused.
    run_with(env, Interleaved(alice(env), after_accepted_put(VNET), refuse_reads))
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert done.result["verified"] is None
    verdicts = [e.detail for e in env.store.events(job.id) if e.event == "verified"]
    assert len(verdicts) == 1, verdicts
    assert verdicts[0]["verified"] is None
    assert "AuthorizationFailed" in verdicts[0]["why"]
    assert env.get(VNET)["tags"] == {"a": "1"}


def test_a_failed_poll_while_following_a_transition_is_read_again_not_a_failed_job(
    env: Env,
) -> None:
    """A 500 on the deallocate's status poll says nothing about the deallocation: the job
    backs off and reads it again, instead of failing with the VM left deallocated."""
    make_vm(env)
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "GET", "idPattern": "*/operations/*"},
            "effect": {"status": 500, "code": "InternalServerError", "message": "poll failed"},
            "schedule": {"firstN": 2},
        }
    )
    job = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="alice")
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert len(env.arm.core.faults.applied()) == 2  # the polls did fail, and were read again
    live = env.get(VM, VM_API)
    assert live["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"


def test_a_stale_job_whose_effect_is_already_live_is_satisfied_not_dropped(env: Env) -> None:
    """A job whose baseline moved but whose effect the live body already shows (typically: a
    lease that took it before wrote it, then died) is done; ``dropped_stale`` or a stale
    failure would say its effect is not there while it is."""
    read = make_vnet(env)
    env.settle()
    read = env.get(VNET)
    dropped = env.submit(VNET, TagsIntent({"b": "1"}), baseline=read, on_stale=StalePolicy.DROP)
    failed = env.submit(VNET, TagsIntent({"c": "1"}), baseline=read, on_stale=StalePolicy.FAIL)
    moved = env.submit(VNET, TagsIntent({"d": "1"}), baseline=read, on_stale=StalePolicy.DROP)
    env.put(VNET, {**read, "tags": {**read.get("tags", {}), "b": "1", "c": "1"}}, who="portal")
    env.settle()
    env.run()
    assert env.job(dropped).outcome is Outcome.ALREADY_SATISFIED
    assert env.job(failed).outcome is Outcome.ALREADY_SATISFIED
    assert env.job(moved).outcome is Outcome.DROPPED_STALE  # its effect is not there: dropped
    assert "d" not in env.get(VNET).get("tags", {})
