"""Refusals caused by writers outside the proxy are waited out and resent; everything else
reaches the client as ARM said it, and nothing is resent that ARM may have started."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_helpers import RG, SUB, ProxyFactory, a_group_and_vnet, events, network

from armguard.clock import SystemClock
from armguard.testing import EmulatorHandle, emulator, fail_with, make_token, throttle

FAST = {"backoff_base": 0.02, "backoff_cap": 0.1}
VNET_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet"
)


def _writes(path: Path) -> list[dict[str, object]]:
    return [e for e in events(path) if e["event"] == "write"]


def test_a_writer_outside_the_proxy_holding_the_vnet_is_waited_out(
    make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """The portal (outside the proxy) runs a long VNet update; a client adds a subnet
    through the proxy. Direct it is refused 409; through the proxy it waits on the
    operation ARM names and succeeds."""
    slow_vnet = {"Microsoft.Network/virtualNetworks": {"durations": {"update": 60}}}
    with emulator(
        clock=SystemClock(), time_scale=0.02, retry_after_max=1, type_settings=slow_vnet
    ) as arm:
        a_group_and_vnet(arm.base_url)
        portal = network(arm.base_url, caller="portal@example.com")

        def hold() -> object:
            vnet = portal.virtual_networks.get(RG, "vnet")
            vnet.tags = {"portal": "1"}
            return portal.virtual_networks.begin_create_or_update(RG, "vnet", vnet)

        running = hold()
        with pytest.raises(HttpResponseError) as direct:
            network(arm.base_url, retry_total=0).subnets.begin_create_or_update(
                RG, "vnet", "direct", {"address_prefix": "10.0.9.0/24"}
            ).result()
        assert direct.value.status_code == 409
        running.result()  # type: ignore[attr-defined]

        proxy = make_proxy(upstream=arm.base_url, **FAST)
        running = hold()
        client = network(proxy.base_url, caller="app@example.com", retry_total=0)
        client.subnets.begin_create_or_update(
            RG, "vnet", "s1", {"address_prefix": "10.0.1.0/24"}
        ).result()
        assert running.status() == "Succeeded"  # type: ignore[attr-defined]
        log = events(tmp_path / "events-0.jsonl")
        kinds = [e["event"] for e in log if e["resource_id"].endswith("/subnets/s1")]
        assert "conflict" in kinds
        assert "waiting" in kinds, "it waited on the operation ARM named, not a fixed sleep"
        assert kinds[-1] == "released"
        assert proxy.proxy.metrics.absorbed.labels("operation_in_progress")._value.get() >= 1
        # The timeline reads the proxy's events as it reads a worker's.
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "armguard.cli.main",
                "timeline",
                str(tmp_path / "events-0.jsonl"),
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        headline = json.loads(shown.stdout)["headline"]
        assert set(headline["conflicts_absorbed"]) == {"operation_in_progress"}
        assert headline["conflicts_surfaced"] == {}


def test_a_429_storm_is_absorbed_within_the_budget(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy(**FAST)
    a_group_and_vnet(proxy.base_url)
    arm.inject(
        throttle(
            retry_after=0.05,
            method="PUT",
            resource_type="Microsoft.Network/virtualNetworks/subnets",
            first_n=4,
        )
    )
    client = network(proxy.base_url, retry_total=0)
    client.subnets.begin_create_or_update(
        RG, "vnet", "s1", {"address_prefix": "10.0.1.0/24"}
    ).result()
    writes = [e for e in _writes(tmp_path / "events-0.jsonl") if "/subnets/" in e["resource_id"]]
    assert len(writes) == 5, "four refusals, then the write"
    assert proxy.proxy.metrics.absorbed.labels("throttled")._value.get() == 4


def test_when_the_budget_runs_out_the_client_gets_arms_answer(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """A throttling storm that does not end: the proxy stops at its retry budget (no retry
    storm of its own) and hands the client ARM's 429 unchanged."""
    proxy = make_proxy(retry_floor=3, retry_ratio=0.0, **FAST)
    a_group_and_vnet(proxy.base_url)
    arm.inject(
        throttle(
            retry_after=0.05,
            method="PUT",
            resource_type="Microsoft.Network/virtualNetworks/subnets",
        )
    )
    with pytest.raises(HttpResponseError) as refused:
        network(proxy.base_url, retry_total=0).subnets.begin_create_or_update(
            RG, "vnet", "s1", {"address_prefix": "10.0.1.0/24"}
        ).result()
    assert refused.value.status_code == 429
    assert refused.value.error is not None
    assert refused.value.error.code == "SubscriptionRequestsThrottled"
    writes = [e for e in _writes(tmp_path / "events-0.jsonl") if "/subnets/" in e["resource_id"]]
    assert len(writes) == 4, "the first attempt and three retries: the floor of the budget"
    assert proxy.proxy.metrics.passed_after_wait.labels("throttled")._value.get() == 1


def test_a_412_is_never_retried(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy(**FAST)
    a_group_and_vnet(proxy.base_url)
    token = make_token("user@example.com")
    body = {
        "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
    }
    r = httpx.put(
        f"{proxy.base_url}{VNET_ID}?api-version=2024-05-01",
        json=body,
        headers={"Authorization": f"Bearer {token}", "If-Match": 'W/"stale"'},
    )
    assert r.status_code == 412
    assert (
        len([e for e in _writes(tmp_path / "events-0.jsonl") if e["resource_id"].endswith("/vnet")])
        == 2
    )  # create + this one


def test_a_post_action_that_failed_with_5xx_is_not_repeated(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """ARM may have started it: only the client (or a person) may decide to run it again."""
    proxy = make_proxy(**FAST)
    resources_url = (
        f"{proxy.base_url}/subscriptions/{SUB}/resourcegroups/{RG}?api-version=2024-03-01"
    )
    token = make_token("user@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.put(resources_url, json={"location": "eastus"}, headers=auth).status_code in (
        200,
        201,
    )
    vm = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
    created = httpx.put(
        f"{proxy.base_url}{vm}?api-version=2024-07-01",
        json={
            "location": "eastus",
            "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}},
        },
        headers=auth,
    )
    assert created.status_code in (200, 201), created.text
    arm.inject(fail_with(500, "InternalServerError", "boom", method="POST", first_n=1))
    r = httpx.post(f"{proxy.base_url}{vm}/restart?api-version=2024-07-01", headers=auth)
    assert r.status_code == 500
    posts = [e for e in _writes(tmp_path / "events-0.jsonl") if e.get("verb") == "POST restart"]
    assert len(posts) == 1


def test_an_unreachable_upstream_is_a_502_with_an_arm_body(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(upstream="http://127.0.0.1:9")
    token = make_token("user@example.com")
    for method in ("GET", "PUT"):
        r = httpx.request(
            method,
            f"{proxy.base_url}{VNET_ID}?api-version=2024-05-01",
            json={"location": "eastus"} if method == "PUT" else None,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "BadGateway"


def test_a_client_that_disconnects_while_queued_is_never_sent(
    make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    slow_vnet = {"Microsoft.Network/virtualNetworks": {"durations": {"update": 50}}}
    with emulator(
        clock=SystemClock(), time_scale=0.02, retry_after_max=1, type_settings=slow_vnet
    ) as arm:
        a_group_and_vnet(arm.base_url)
        proxy = make_proxy(upstream=arm.base_url, **FAST)
        token = make_token("first@example.com")
        url = f"{proxy.base_url}{VNET_ID}?api-version=2024-05-01"
        body = {
            "location": "eastus",
            "tags": {"first": "1"},
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        first = httpx.put(url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert first.status_code in (200, 201)
        # The proxy now holds the VNet's key until the update's operation ends (~1 s).
        gone = threading.Event()

        def impatient() -> None:
            try:
                httpx.put(
                    url,
                    json={**body, "tags": {"second": "1"}},
                    headers={"Authorization": f"Bearer {make_token('second@example.com')}"},
                    timeout=0.2,
                )
            except httpx.ReadTimeout:
                gone.set()

        t = threading.Thread(target=impatient)
        t.start()
        t.join()
        assert gone.is_set()
        network(arm.base_url).virtual_networks.get(RG, "vnet")
        # Wait for the first write's operation to end and the proxy to release its key.
        deadline = 50
        while deadline and not [
            e
            for e in events(tmp_path / "events-0.jsonl")
            if e["event"] == "released" and e["writer"] == "second@example.com"
        ]:
            threading.Event().wait(0.1)
            deadline -= 1
        second = [
            e for e in events(tmp_path / "events-0.jsonl") if e["writer"] == "second@example.com"
        ]
        assert [e["event"] for e in second] == ["submitted", "released"]
        assert "disconnected" in second[-1]["message"]
        assert network(arm.base_url).virtual_networks.get(RG, "vnet").tags == {"first": "1"}
