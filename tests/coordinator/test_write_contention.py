"""The defects an adversarial run found in the write loop, each as it reproduced: through the
real worker, a served emulator and both stores.

* submission order is the law, folded or not (a later put is never undone by an earlier tag);
* a stale rebase is three-way on the baseline body, and never overwrites what it never saw;
* a resize folded with a tag plans the deallocate for the batch as a whole;
* outcomes tell the truth: polling an accepted write spends no write budget and never turns
  into ``failed``; a write armguard made is ``applied``; the Activity Log names the writer whose
  intent a write carries last; a power action already in its end state is satisfied.
"""

from __future__ import annotations

from typing import Any

import pytest
from writer_env import NSG, VM, Env, Interleaved, alice, make_vm, run_with

from armguard.arm.client import ArmResponse, ArmTransportError
from armguard.coordinator.intents import (
    ActionIntent,
    MergeIntent,
    PutIntent,
    ResizeIntent,
    TagsIntent,
)
from armguard.coordinator.model import Outcome
from armguard.testing import fail_with

VM_API = "2024-07-01"


def make_nsg(env: Env, tags: dict[str, str]) -> dict[str, Any]:
    env.put(NSG, {"location": "eastus", "tags": tags})
    env.settle()
    return env.get(NSG)


def hotfix(env: Env, **tags: str) -> None:
    """An unguarded writer outside armguard: read, change tags, PUT without If-Match."""
    live = env.get(NSG)
    env.put(NSG, {**live, "tags": {**live.get("tags", {}), **tags}}, who="portal")
    env.settle()


# -- 1. submission order ----------------------------------------------------------------------


def test_a_later_put_is_not_undone_by_an_earlier_tag(env: Env) -> None:
    make_nsg(env, {"env": "prod"})
    tag = env.submit(NSG, TagsIntent({"k1": "v1"}), who="tagger")
    put = env.submit(NSG, PutIntent({"location": "eastus", "tags": {"p": "1"}}), who="pipeline")
    env.run()
    assert env.get(NSG)["tags"] == {"p": "1"}  # what applying them in order gives
    for job in (tag, put):
        done = env.job(job)
        assert done.outcome is Outcome.APPLIED, done.reason
        assert done.result["writes"] == 1, done.result  # one folded write, no second round
    assert env.writes_by("tagger") == []  # nothing was re-sent after the later put


def test_an_earlier_put_then_a_later_tag_keeps_both_in_order(env: Env) -> None:
    make_nsg(env, {"env": "prod"})
    env.submit(NSG, PutIntent({"location": "eastus", "tags": {"p": "1"}}))
    env.submit(NSG, TagsIntent({"k1": "v1"}))
    env.submit(NSG, MergeIntent({"tags": {"p": None}}))
    env.run()
    assert env.get(NSG)["tags"] == {"k1": "v1"}


# -- 2. three-way rebase ----------------------------------------------------------------------


def test_a_stale_put_of_an_old_body_does_not_revert_a_hotfix_it_never_saw(env: Env) -> None:
    read = make_nsg(env, {"env": "prod", "owner": "team1"})
    hotfix(env, owner="team2", hotfix="INC-1")
    unchanged = env.submit(
        NSG, PutIntent({"location": "eastus", "tags": read["tags"]}), baseline=read
    )
    env.run()
    done = env.job(unchanged)
    # Its body changes nothing relative to what it read: nothing of its own to write.
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    assert env.get(NSG)["tags"] == {"env": "prod", "owner": "team2", "hotfix": "INC-1"}
    assert env.writes_by("alice") == []


def test_a_stale_put_applies_only_its_own_changes_on_the_live_body(env: Env) -> None:
    read = make_nsg(env, {"env": "prod", "owner": "team1"})
    hotfix(env, owner="team2", hotfix="INC-1")
    mine = {"location": "eastus", "tags": {"owner": "team1", "release": "r7"}}  # drops env
    job = env.submit(NSG, PutIntent(mine), baseline=read)
    env.run()
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert "rebased" in env.events(job)
    # Its changes (env removed, release added) on top of the hotfix, which survives whole.
    assert env.get(NSG)["tags"] == {"owner": "team2", "hotfix": "INC-1", "release": "r7"}


def test_a_field_both_changed_is_a_conflict_with_both_values_never_overwritten(env: Env) -> None:
    read = make_nsg(env, {"env": "prod", "owner": "team1"})
    hotfix(env, owner="team2", hotfix="INC-1")
    job = env.submit(NSG, TagsIntent({"owner": "team3"}), baseline=read)
    env.run()
    done = env.job(job)
    assert (done.outcome, done.kind) == (Outcome.FAILED, "stale_version")
    assert "tags.owner" in (done.reason or "")
    assert "'team3'" in (done.reason or "")
    assert "'team2'" in (done.reason or "")
    failed = next(e for e in env.store.events(job.id) if e.event == "failed")
    assert failed.detail["conflicts"] == [
        {
            "path": "tags.owner",
            "baseline": "team1",
            "yours": "team3",
            "theirs": "team2",
            "absent": [],
        }
    ]
    assert env.get(NSG)["tags"]["owner"] == "team2"
    assert env.writes_by("alice") == []


def test_a_baseline_etag_without_its_body_is_not_rebased_blindly(env: Env) -> None:
    read = make_nsg(env, {"env": "prod", "owner": "team1"})
    hotfix(env, owner="team2")
    job = env.submit(NSG, TagsIntent({"owner": "team3"}), baseline_etag=read["etag"])
    env.run()
    done = env.job(job)
    assert (done.outcome, done.kind) == (Outcome.FAILED, "stale_version")
    assert "--baseline" in (done.reason or "")
    assert env.get(NSG)["tags"]["owner"] == "team2"


# -- 3. prerequisites for the batch as a whole ----------------------------------------------------


def test_a_resize_folded_with_a_tag_deallocates_for_both(env: Env) -> None:
    make_vm(env)
    resize = env.submit(VM, ResizeIntent("Standard_D4s_v5"), who="sizer")
    tag = env.submit(VM, TagsIntent({"owner": "ops"}), who="tagger")
    merge = env.submit(VM, MergeIntent({"tags": {"team": "core"}}), who="tagger")
    env.run(lease_ttl=20.0)
    for job in (resize, tag, merge):
        done = env.job(job)
        assert done.outcome is Outcome.APPLIED, done.reason
    vm = env.get(VM, VM_API)
    assert vm["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    assert vm["tags"] == {"owner": "ops", "team": "core"}
    view = env.setup.request("GET", f"{VM}/instanceView", api_version=VM_API).body
    assert "PowerState/running" in [s["code"] for s in view["statuses"]]


# -- 4. outcomes that tell the truth ----------------------------------------------------------


def test_polling_an_accepted_write_through_500s_spends_no_budget_and_ends_applied(
    env: Env,
) -> None:
    make_nsg(env, {"env": "prod"})
    # Every status poll fails for longer than the follower's patience.
    env.arm.inject(
        fail_with(500, "InternalServerError", "boom", method="GET", id_pattern="*/operations/*")
    )
    job = env.submit(NSG, TagsIntent({"k": "v"}))
    worker = env.run(budget_floor=0, budget_ratio=0.0)
    done = env.job(job)
    assert done.outcome is Outcome.APPLIED, done.reason  # its effect is live
    assert done.result["verified"] is True
    assert done.result["operation"] == "unobserved"
    assert worker.budget.spent == 0
    assert env.get(NSG)["tags"] == {"env": "prod", "k": "v"}


def test_a_write_whose_operation_cannot_be_followed_and_is_not_live_is_unknown(env: Env) -> None:
    make_nsg(env, {"env": "prod"})
    env.arm.inject(
        fail_with(500, "InternalServerError", "boom", method="GET", id_pattern="*/operations/*")
    )

    def revert() -> None:  # someone undoes it before armguard can see it
        live = env.get(NSG)
        env.put(NSG, {**live, "tags": {"env": "prod"}}, who="portal")

    client = Interleaved(
        alice(env),
        lambda m, p, h: m == "GET" and p.lower() == NSG.lower() and any(x[0] == "PUT" for x in h),
        revert,
    )
    job = env.submit(NSG, TagsIntent({"k": "v"}))
    run_with(env, client)
    done = env.job(job)
    assert (done.outcome, done.kind) == (Outcome.FAILED, "unknown")
    assert "could not be observed" in (done.reason or "")


class LosesFirstPutAnswer:
    """A network that delivers armguard's first PUT to ARM and loses the answer."""

    def __init__(self, env: Env) -> None:
        self.inner = alice(env)
        self.lost = False

    def request(self, method: str, path: str, **kw: Any) -> ArmResponse:
        response = self.inner.request(method, path, **kw)
        if method == "PUT" and not self.lost:
            self.lost = True
            raise ArmTransportError(f"{method} {path}: connection reset by peer")
        return response


def test_a_write_armguard_made_is_applied_even_when_its_answer_was_lost(env: Env) -> None:
    make_nsg(env, {"env": "prod"})
    job = env.submit(NSG, TagsIntent({"k": "v"}))
    client = LosesFirstPutAnswer(env)
    run_with(env, client)  # type: ignore[arg-type]
    done = env.job(job)
    assert client.lost
    assert done.outcome is Outcome.APPLIED, done.reason  # not already_satisfied: armguard wrote
    assert done.result["verified"] is True


def test_a_folded_write_goes_out_as_the_writer_whose_intent_it_carries_last(env: Env) -> None:
    make_nsg(env, {"env": "prod"})
    first = env.submit(NSG, TagsIntent({"env": "prod"}), who="normalizer")  # satisfied already
    env.submit(NSG, TagsIntent({"a": "1"}), who="tagger")
    env.submit(NSG, TagsIntent({"b": "2"}), who="pipeline")
    env.run()
    assert env.job(first).outcome is Outcome.ALREADY_SATISFIED
    assert env.writes_by("normalizer") == []
    assert env.writes_by("tagger") == []
    assert env.writes_by("pipeline") == ["Microsoft.Network/networkSecurityGroups/write"]
    assert env.get(NSG)["tags"] == {"env": "prod", "a": "1", "b": "2"}


def test_power_off_on_a_deallocated_vm_is_already_satisfied(env: Env) -> None:
    make_vm(env)
    env.submit(VM, ActionIntent("deallocate"))
    env.run()
    off = env.submit(VM, ActionIntent("powerOff"))
    env.run()
    done = env.job(off)
    assert done.outcome is Outcome.ALREADY_SATISFIED, done.reason
    assert env.writes_by("alice") == ["Microsoft.Compute/virtualMachines/deallocate/action"]


def test_start_on_a_running_vm_is_already_satisfied(env: Env) -> None:
    make_vm(env)
    job = env.submit(VM, ActionIntent("start"))
    env.run()
    assert env.job(job).outcome is Outcome.ALREADY_SATISFIED
    assert env.writes_by("alice") == []


# -- only a put creates ---------------------------------------------------------------------------


def test_a_tag_or_merge_on_a_resource_that_does_not_exist_never_creates_it(env: Env) -> None:
    ghost = NSG.replace("nsg1", "ghost")
    tag = env.submit(ghost, TagsIntent({"a": "b"}))
    merge = env.submit(ghost, MergeIntent({"tags": {"c": "d"}}))
    env.run()
    for job in (tag, merge):
        done = env.job(job)
        assert (done.outcome, done.kind) == (Outcome.FAILED, "not_found"), done.reason
    assert env.setup.request("GET", ghost, api_version="2024-05-01").status == 404
    assert env.writes_by("alice") == []


def test_a_put_creates_and_a_tag_behind_it_in_the_same_write_rides_along(env: Env) -> None:
    fresh = NSG.replace("nsg1", "fresh")
    put = env.submit(fresh, PutIntent({"location": "eastus", "tags": {"p": "1"}}))
    tag = env.submit(fresh, TagsIntent({"k": "v"}))
    env.run()
    assert env.job(put).outcome is Outcome.APPLIED
    assert env.job(tag).outcome is Outcome.APPLIED
    assert env.get(fresh)["tags"] == {"p": "1", "k": "v"}


def test_intents_whose_target_is_not_what_they_assume_end_not_found(env: Env) -> None:
    missing_vm = VM.replace("vm1", "ghost")
    no_group = NSG.replace("/resourceGroups/rg/", "/resourceGroups/nowhere/")
    no_vnet = f"{NSG.rsplit('/providers/', 1)[0]}/providers/Microsoft.Network/virtualNetworks/none/subnets/app"
    jobs = [
        env.submit(missing_vm, ResizeIntent("Standard_D4s_v5")),
        env.submit(missing_vm, ActionIntent("start")),
        env.submit(no_group, TagsIntent({"a": "1"})),
        env.submit(no_group, PutIntent({"location": "eastus"})),
        env.submit(no_vnet, MergeIntent({"properties": {"addressPrefix": "10.0.9.0/24"}})),
    ]
    env.run()
    for job in jobs:
        done = env.job(job)
        assert (done.outcome, done.kind) == (Outcome.FAILED, "not_found"), (job.spec, done.reason)


def test_a_resize_of_something_that_is_not_a_vm_is_refused_at_submit(env: Env) -> None:
    with pytest.raises(ValueError, match="virtual machine"):
        env.submit(NSG, ResizeIntent("Standard_D4s_v5"))


def test_a_writers_own_earlier_jobs_on_the_same_read_are_not_someone_elses_change(
    env: Env,
) -> None:
    read = make_nsg(env, {"env": "prod"})
    hotfix(env, hotfix="INC-1")  # someone else, on another field
    first = env.submit(NSG, TagsIntent({"step": "1"}), who="queue", baseline=read)
    env.run()
    assert env.job(first).outcome is Outcome.APPLIED
    # The same writer's next message, built on the same read, changes what its first set.
    second = env.submit(NSG, TagsIntent({"step": "2"}), who="queue", baseline=read)
    # Another writer that read the same version never saw step=1: for it, a conflict.
    other = env.submit(NSG, TagsIntent({"step": "9"}), who="other", baseline=read)
    env.run()
    assert env.job(second).outcome is Outcome.APPLIED, env.job(second).reason
    done = env.job(other)
    assert (done.outcome, done.kind) == (Outcome.FAILED, "stale_version"), done.reason
    assert env.get(NSG)["tags"] == {"env": "prod", "hotfix": "INC-1", "step": "2"}
