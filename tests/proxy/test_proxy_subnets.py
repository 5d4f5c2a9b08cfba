"""Seed scenario: sixteen clients create subnets on one VNet at once. Direct, ARM refuses all
but the first few with 409 AnotherOperationInProgress; through the proxy they take turns and
every one is created, with no error handed to any client."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import HttpResponseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_helpers import RG, ProxyFactory, a_group_and_vnet, events, network

from armguard.testing import EmulatorHandle


def _sixteen(url: str) -> list[str]:
    def one(i: int) -> str:
        client = network(url, caller=f"team{i}@example.com")
        try:
            client.subnets.begin_create_or_update(
                RG, "vnet", f"s{i}", {"address_prefix": f"10.0.{i}.0/24"}
            ).result()
        except HttpResponseError as err:
            return f"{err.status_code} {err.error.code if err.error else ''}"
        return "ok"

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(16)))


def test_direct_clients_are_refused(arm: EmulatorHandle) -> None:
    a_group_and_vnet(arm.base_url)
    outcomes = _sixteen(arm.base_url)
    assert any(o.startswith("409 AnotherOperationInProgress") for o in outcomes), outcomes


def test_through_the_proxy_every_subnet_is_created(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy()
    a_group_and_vnet(proxy.base_url)
    outcomes = _sixteen(proxy.base_url)
    assert outcomes == ["ok"] * 16
    names = {s.name for s in network(arm.base_url).subnets.list(RG, "vnet")}
    assert names == {f"s{i}" for i in range(16)}
    log = events(tmp_path / "events-0.jsonl")
    subnet_writes = [e for e in log if e["event"] == "write" and "/subnets/" in e["resource_id"]]
    assert len(subnet_writes) == 16, "each subnet sent once: nothing refused, nothing resent"
    assert not [e for e in log if e["event"] == "conflict"]
    fences = [e["fence"] for e in subnet_writes]
    assert fences == sorted(fences), "writes on the VNet's key went in ticket order"
    # Each subnet's keys include its VNet, so no two subnet writes overlapped: every write was
    # released (its operation followed to the end) before the next was claimed.
    order = [
        (e["event"], e["job_id"])
        for e in log
        if e["event"] in ("claimed", "released") and "/subnets/" in e["resource_id"]
    ]
    held: set[str] = set()
    for event, job in order:
        if event == "claimed":
            assert not held, f"{job} claimed while {held} still held the VNet"
            held.add(job)
        else:
            held.discard(job)
