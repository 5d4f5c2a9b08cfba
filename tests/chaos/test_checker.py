"""The chaos checker on hand-made records: each promise it checks, kept and broken."""

from __future__ import annotations

from typing import Any

from armguard.chaos.checker import Budget, Evidence, check
from armguard.coordinator.fencing import client_request_id

R = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n1"
T0 = "2026-01-01T00:00:00Z"


def tags(index: int, key: str = "hot") -> dict[str, Any]:
    return {"kind": "tags", "set": {key: str(index)}}


def job(
    index: int, intent: dict[str, Any], outcome: str | None = "applied", **kw: Any
) -> dict[str, Any]:
    return {
        "id": f"j{index}",
        "seq": index,
        "resource_id": R,
        "state": "done" if outcome else "queued",
        "outcome": outcome,
        "kind": kw.get("kind"),
        "reason": kw.get("reason"),
        "intent": intent,
        "has_baseline": kw.get("has_baseline", False),
    }


def write(fence: int, end: str = "Succeeded", **props: Any) -> list[dict[str, Any]]:
    rid = client_request_id(fence)
    base = {"resourceId": R, "eventTimestamp": T0, "caller": "alice", "eventDataId": rid}
    http = {"method": "PUT", "clientRequestId": rid}
    return [
        {**base, "httpRequest": http, "status": {"value": "Started"}, "properties": {}},
        {**base, "httpRequest": http, "status": {"value": end}, "properties": props},
    ]


def evidence(
    jobs: list[dict[str, Any]],
    final_tags: dict[str, str] | None,
    *,
    events: list[dict[str, Any]] | None = None,
    activity: list[dict[str, Any]] | None = None,
) -> Evidence:
    return Evidence(
        planned=[
            {"index": j["seq"], "resource_id": R, "intent": j["intent"], "job_id": j["id"]}
            for j in jobs
        ],
        jobs=jobs,
        events=events or [],
        activity=activity or [],
        initial={R: {"tags": {"env": "chaos"}}},
        final={R: None if final_tags is None else {"tags": final_tags}},
        budget=Budget(workers=1, floor=2, ratio=0.1),
    )


def test_a_clean_record_passes() -> None:
    jobs = [job(1, tags(1)), job(2, tags(2)), job(3, tags(3, "t3"))]
    report = check(evidence(jobs, {"env": "chaos", "hot": "2", "t3": "3", "outside": "9"}))
    assert report.ok(), report.violations
    assert report.outcomes == {"applied": 3}


def test_an_applied_effect_missing_from_the_final_state_is_lost() -> None:
    report = check(
        evidence([job(1, tags(1, "a")), job(2, tags(2, "b"))], {"env": "chaos", "a": "1"})
    )
    assert report.lost == 1
    assert not report.ok()


def test_an_older_value_over_a_newer_applied_one_is_a_stale_overwrite() -> None:
    report = check(evidence([job(1, tags(1)), job(2, tags(2))], {"env": "chaos", "hot": "1"}))
    assert report.stale_overwrites == 1
    assert report.lost == 0


def test_a_later_failed_jobs_value_is_tolerated_and_counted() -> None:
    jobs = [job(1, tags(1)), job(2, tags(2), "failed", kind="unknown")]
    report = check(evidence(jobs, {"env": "chaos", "hot": "2"}))
    assert report.failed_but_landed == 1
    assert report.stale_overwrites == 0
    assert report.conflicts_surfaced == 1  # the failure itself is still surfaced


def test_a_delete_and_its_recreate_reset_the_expected_tags() -> None:
    put = {"kind": "put", "body": {"location": "x", "tags": {"gen": "3"}}}
    jobs = [job(1, tags(1)), job(2, {"kind": "delete"}), job(3, put)]
    assert check(evidence(jobs, {"gen": "3"})).ok()
    assert check(evidence(jobs, {"gen": "3", "hot": "1"})).stale_overwrites == 1
    assert check(evidence(jobs[:2], {"env": "chaos"})).lost == 1  # should be gone


def test_a_job_still_queued_after_the_drain_is_unfinished() -> None:
    report = check(evidence([job(1, tags(1), None)], {"env": "chaos"}))
    assert report.unfinished == 1
    assert not report.ok()


def test_a_lower_fence_after_a_higher_one_is_a_zombie_landed_or_rejected() -> None:
    jobs = [job(1, tags(1))]
    final = {"env": "chaos", "hot": "1"}
    landed = check(evidence(jobs, final, activity=write(3) + write(5) + write(4)))
    assert landed.zombie_writes_landed == 1
    assert not landed.ok()
    refused = check(
        evidence(
            jobs,
            final,
            activity=write(3) + write(5) + write(4, "Failed", statusCode="PreconditionFailed"),
        )
    )
    assert refused.zombie_writes_rejected == 1
    assert refused.zombie_writes_landed == 0
    assert refused.ok()


def test_one_jobs_effect_written_by_two_leases_that_both_landed_is_double_applied() -> None:
    jobs = [job(1, {"kind": "action", "name": "restart"})]
    events = [
        {"ts": T0, "job_id": "j1", "resource_id": R, "event": "write", "fence": f, "verb": "PUT"}
        for f in (3, 5)
    ]
    final = {"env": "chaos", "hot": "1"}
    assert (
        check(evidence(jobs, final, events=events, activity=write(3) + write(5))).double_applied
        == 1
    )
    assert check(evidence(jobs, final, events=events, activity=write(5))).double_applied == 0
    # The first lease's PUT was accepted, but its operation ended Failed: it took no effect.
    accepted = write(3, "Accepted")
    failed_op = [*accepted, {**accepted[1], "status": {"value": "Failed"}}]
    once = check(evidence(jobs, final, events=events, activity=failed_op + write(5)))
    assert once.double_applied == 0
    # Only its write counts: a lease's deallocate before a resize is not the job's effect.
    post = [{**e, "httpRequest": {**e["httpRequest"], "method": "POST"}} for e in write(3)]
    assert check(evidence(jobs, final, events=events, activity=post + write(5))).double_applied == 0


def test_an_etag_resent_after_it_was_refused_is_caught() -> None:
    e = {"ts": T0, "job_id": "j1", "resource_id": R}
    events = [
        {**e, "event": "write", "etag_sent": '"a"'},
        {**e, "event": "conflict", "kind": "stale_version", "etag_sent": '"a"'},
        {**e, "event": "write", "etag_sent": '"a"'},
    ]
    report = check(evidence([job(1, tags(1))], {"env": "chaos", "hot": "1"}, events=events))
    assert report.stale_token_resent == 1


def test_injected_5xx_are_counted_apart_from_the_emulators_own() -> None:
    e = {"ts": T0, "job_id": "j1", "resource_id": R, "event": "conflict", "status": 500}
    events = [{**e, "message": "Chaos: an injected server error."}, {**e, "message": "boom"}]
    report = check(evidence([job(1, tags(1))], {"env": "chaos", "hot": "1"}, events=events))
    assert report.injected_errors_seen == 1
    assert report.server_errors == 1


def test_a_stale_intent_handed_back_is_not_a_surfaced_conflict() -> None:
    jobs = [
        job(1, tags(1)),
        job(2, tags(2, "b"), "failed", kind="stale_version", has_baseline=True),
        job(3, tags(3, "c"), "failed", kind="operation_in_progress"),
        job(4, tags(4, "d"), "failed", kind="not_found", has_baseline=True),  # read, then deleted
        job(5, tags(5, "e"), "failed", kind="not_found"),  # never existed: surfaced
    ]
    report = check(evidence(jobs, {"env": "chaos", "hot": "1"}))
    assert report.stale_handed_back == 2
    assert report.conflicts_surfaced == 2
    assert report.conflicts_by_kind == {"operation_in_progress": 1, "not_found": 1}


def test_backoffs_beyond_the_retry_budget_are_caught() -> None:
    writes = [{"ts": T0, "job_id": "j1", "resource_id": R, "event": "write"}]
    backoff = {
        "ts": "2026-01-01T00:00:01Z",
        "job_id": "j1",
        "resource_id": R,
        "event": "backoff",
        "detail": {"budget_left": 1},
    }
    spends = [{**backoff, "attempt": a} for a in (1, 2, 3)]
    not_spent = {**backoff, "attempt": 9, "detail": {"budget": "not spent"}}
    final = {"env": "chaos", "hot": "1"}
    assert check(evidence([job(1, tags(1))], final, events=writes + spends[:2] + [not_spent])).ok()
    over = check(evidence([job(1, tags(1))], final, events=writes + spends))
    assert over.budget_exceeded_windows == 1


def test_one_backoff_of_a_batch_is_one_spend_however_many_jobs_it_carries() -> None:
    jobs = [job(n, tags(n, f"k{n}")) for n in (1, 2, 3)]
    final = {"env": "chaos", "k1": "1", "k2": "2", "k3": "3"}
    base = {
        "ts": "2026-01-01T00:00:01Z",
        "resource_id": R,
        "event": "backoff",
        "fence": 4,
        "detail": {"budget_left": 1},
    }
    events = [{**base, "job_id": j["id"], "attempt": a} for a in (1, 2) for j in jobs]
    assert check(evidence(jobs, final, events=events)).budget_exceeded_windows == 0
    events.append({**base, "job_id": "j1", "attempt": 3})
    assert check(evidence(jobs, final, events=events)).budget_exceeded_windows == 1


def test_a_power_off_that_found_the_vm_deallocated_leaves_it_so() -> None:
    def vm(power: str) -> dict[str, Any]:
        view = {"statuses": [{"code": f"PowerState/{power}"}]}
        return {"tags": {"env": "chaos"}, "properties": {"instanceView": view}}

    off = {"kind": "action", "name": "powerOff"}
    for outcome, ok in (("already_satisfied", True), ("applied", False)):
        ev = evidence([job(1, off, outcome)], None)
        ev = Evidence(**{**ev.__dict__, "final": {R: vm("deallocated")}})
        assert check(ev).ok() is ok


def test_requeues_are_counted_and_are_no_violation() -> None:
    jobs = [job(1, tags(1, "a")), job(2, tags(2, "b"))]
    requeued = {"ts": T0, "resource_id": R, "event": "requeued", "kind": "throttled"}
    events = [{**requeued, "job_id": "j1"}, {**requeued, "job_id": "j2"}]
    events.append({**requeued, "job_id": "j1", "ts": "2026-01-01T00:01:05Z"})
    report = check(evidence(jobs, {"env": "chaos", "a": "1", "b": "2"}, events=events))
    assert report.ok(), report.violations
    assert (report.requeues, report.requeued_jobs) == (3, 2)
