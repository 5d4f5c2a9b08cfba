"""The worker's Prometheus metrics, scraped over HTTP: outcomes, conflicts by kind / type /
writer / field / attempt, ARM calls by verb and status, budget spent, queue depth."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_count_outcomes_conflicts_calls_and_budget(db: Any, clock: ManualClock) -> None:
    with emulator(clock=clock) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        body = {
            "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        assert setup.request("PUT", VNET, api_version="2024-05-01", body=body).ok
        clock.advance(600)
        arm.core.faults.add_rule(
            {
                "match": {"method": "PUT", "idPattern": VNET},
                "effect": {"status": 429, "code": "SubscriptionRequestsThrottled", "retryAfter": 3},
                "schedule": {"firstN": 1},
            }
        )
        store = db.open(clock)
        submit(store, VNET, TagsIntent({"team": "net"}), "alice")
        submit(store, VNET, TagsIntent({"team": "net"}), "bob")
        metrics = CoordinatorMetrics()
        port = _free_port()
        metrics.serve(port)
        Worker(
            lambda: db.open(clock),
            lambda who: ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url),
            clock,
            settings=WorkerSettings(lease_ttl=3600.0),
            metrics=metrics,
        ).run_until_idle()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text

    # bob's identical intent rides alice's write: one write, both applied.
    assert 'armguard_jobs_total{kind="",outcome="applied"} 2.0' in text
    assert (
        'armguard_conflicts_total{attempt="1",field="tags.team",kind="throttled",'
        'resource_type="Microsoft.Network/virtualNetworks",writer="alice"} 1.0'
    ) in text
    assert 'armguard_arm_calls_total{status="429",verb="PUT"} 1.0' in text
    assert 'armguard_arm_calls_total{status="200",verb="PUT"} 1.0' in text
    assert "armguard_retry_budget_spent_total 1.0" in text
    assert "armguard_writes_total 2.0" in text
    assert "armguard_queue_depth 0.0" in text
    assert "armguard_lease_wait_seconds_count 2.0" in text
    assert "Bearer" not in text
    assert "eyJ" not in text  # no token fragments in labels


def test_conflict_field_labels_are_bounded() -> None:
    from prometheus_client import generate_latest

    from armguard.coordinator.metrics import CoordinatorMetrics

    metrics = CoordinatorMetrics()
    for n in range(500):  # a tag normalizer touching 500 distinct keys
        metrics.conflict(
            "stale_version", "Microsoft.Network/virtualNetworks", "w", {f"tags.k{n}"}, 1
        )
    text = generate_latest(metrics.registry).decode()
    series = [line for line in text.splitlines() if line.startswith("armguard_conflicts_total{")]
    assert len(series) == 201  # 200 named fields and one "other"
    other = next(line for line in series if 'field="other"' in line)
    assert other.endswith(" 300.0")
    assert any('field="tags.k0"' in line for line in series)
