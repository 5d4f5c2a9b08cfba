"""Atomicity under real concurrency: 64 HTTP clients racing conditional writes, and threads
racing the core's dispatch directly (where the bucket locks are all that keeps a check and
its write together)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from arm_helpers import API, NET, RG, SUB, VNET, Arm, api_version_for, vnet_body

from armguard.clock import ManualClock
from armguard.emulator.core import Emulator
from armguard.emulator.model import OpKind
from armguard.emulator.request import ArmRequest, ArmResponse, Call
from armguard.testing import emulator

CLIENTS = 64
ROUNDS = 4
RESOURCES = [f"{NET}/networkSecurityGroups/nsg{i}" for i in range(3)]


def test_conditional_writes_lose_no_update() -> None:
    with emulator(time_scale=0, seed=3) as served:
        setup = Arm(served.base_url)
        setup.put(f"{SUB}/resourceGroups/rg1", {"location": "eastus"})
        first_etags = {}
        for rid in RESOURCES:
            setup.put(rid, {"location": "eastus", "tags": {"n": "0"}})
            first_etags[rid] = setup.get(rid).json()["etag"]
        successes: list[tuple[str, str, str, int]] = []
        lock = threading.Lock()

        # One client shared by every thread (httpx clients are thread-safe; building 64 of
        # them costs more than the requests).
        arm = Arm(served.base_url)

        def writer(index: int) -> None:
            rid = RESOURCES[index % len(RESOURCES)]
            for _ in range(ROUNDS):
                current = arm.get(rid).json()
                n = int(current["tags"]["n"])
                sent = current["etag"]
                response = arm.put(
                    rid,
                    {"location": "eastus", "tags": {"n": str(n + 1)}},
                    headers={"If-Match": sent},
                )
                if response.status_code in (200, 201):
                    with lock:
                        successes.append((rid, sent, response.json()["etag"], n + 1))
                else:
                    assert response.status_code in (409, 412), response.text

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(writer, range(CLIENTS)))

        for rid in RESOURCES:
            mine = [s for s in successes if s[0] == rid]
            final = setup.get(rid).json()
            # No lost update: the counter equals the number of successful writes.
            assert int(final["tags"]["n"]) == len(mine)
            # Each success was based on the ETag the previous success produced: one chain.
            chain = {sent: (new, n) for _, sent, new, n in mine}
            assert len(chain) == len(mine), "two writes succeeded with the same If-Match"
            etag, expected = first_etags[rid], 1
            while etag in chain:
                etag, n = chain[etag]
                assert n == expected
                expected += 1
            assert expected - 1 == len(mine)
            assert etag == final["etag"]
        assert successes, "some writes must win"
        arm.close()
        setup.close()


def test_no_write_slips_past_a_held_resource() -> None:
    with emulator(clock=ManualClock(), seed=4) as served:
        setup = Arm(served.base_url)
        setup.put(f"{SUB}/resourceGroups/rg1", {"location": "eastus"})
        setup.put(VNET, vnet_body("a"))
        statuses: list[int] = []
        lock = threading.Lock()

        def writer(index: int) -> None:
            response = setup.put(
                f"{VNET}/subnets/s{index}", {"properties": {"addressPrefix": "10.0.0.0/24"}}
            )
            with lock:
                statuses.append(response.status_code)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(writer, range(CLIENTS)))
        assert statuses == [409] * CLIENTS
        served.advance(10)
        # Once free, exactly one of many racing subnet writes gets the VNet.
        statuses.clear()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(writer, range(CLIENTS)))
        assert sorted(statuses) == [201] + [409] * (CLIENTS - 1)
        setup.close()


# -- the core under threads, no HTTP ---------------------------------------------------------
#
# Served requests for one resource run inline on the event loop, one at a time, so they never
# contend for a bucket lock. These tests call the core's dispatch from many threads at once,
# with the interpreter switching threads every microsecond, so a check and the write it
# guards interleave with other writers unless the bucket lock keeps them together.

THREADS = 16
ROUNDS = 8


@pytest.fixture
def eager_switching() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _call(caller: str) -> Call:
    return Call(base_url="http://threads.invalid", api_version=API, caller=caller)


def _send(core: Emulator, method: str, path: str, body: Any = None, **headers: str) -> ArmResponse:
    request = ArmRequest(
        method,
        path,
        {"api-version": api_version_for(path)},
        {k.lower(): v for k, v in headers.items()},
        body,
        _call(path),
    )
    return core.dispatch(request)


def _race(worker: Callable[[int], None]) -> None:
    barrier = threading.Barrier(THREADS)

    def run(index: int) -> None:
        barrier.wait()
        worker(index)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, range(THREADS)))


def test_threads_racing_conditional_writes_form_one_chain(eager_switching: None) -> None:
    core = Emulator(ManualClock(), time_scale=0, seed=11)
    nsg = f"{NET}/networkSecurityGroups/hot"
    _send(core, "PUT", RG, {"location": "eastus"})
    first = _send(core, "PUT", nsg, {"location": "eastus", "tags": {"n": "0"}}).body["etag"]
    wins: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        for _ in range(40):
            current = _send(core, "GET", nsg).body
            n = int(current["tags"]["n"]) + 1
            answer = _send(
                core,
                "PUT",
                nsg,
                {"location": "eastus", "tags": {"n": str(n)}},
                **{"If-Match": current["etag"]},
            )
            if answer.status in (200, 201):
                with lock:
                    wins.append((current["etag"], answer.body["etag"], n))
            else:
                assert answer.status == 412, answer.body

    _race(writer)
    chain = {sent: (new, n) for sent, new, n in wins}
    assert len(chain) == len(wins), "two writes won with the same If-Match"
    etag, expected = first, 1
    while etag in chain:
        etag, n = chain[etag]
        assert n == expected, "a write was based on a state another write had replaced"
        expected += 1
    final = _send(core, "GET", nsg).body
    assert expected - 1 == len(wins) == int(final["tags"]["n"])
    assert etag == final["etag"]


def _holders(core: Emulator, top: str) -> list[str]:
    """Operations (other than deployments) that hold ``top`` or anything below it now."""
    now = core.now()
    key = top.lower()
    return [
        op.target.format()
        for op in core.store.operations()
        if op.kind is not OpKind.DEPLOY
        and op.running_at(now)
        and (op.target.key == key or op.target.key.startswith(key + "/"))
    ]


def test_threads_racing_for_a_held_vnet_start_one_operation(eager_switching: None) -> None:
    core = Emulator(ManualClock(), seed=12)
    _send(core, "PUT", RG, {"location": "eastus"})
    for round_ in range(ROUNDS):
        vnet = f"{NET}/virtualNetworks/v{round_}"
        statuses: list[int] = []

        def writer(index: int, vnet: str = vnet, statuses: list[int] = statuses) -> None:
            if index % 4 == 0:
                answer = _send(core, "PUT", vnet, vnet_body(f"s{index}"))
            else:
                body = {"properties": {"addressPrefix": f"10.0.{index}.0/24"}}
                answer = _send(core, "PUT", f"{vnet}/subnets/s{index}", body)
            statuses.append(answer.status)

        _send(core, "PUT", vnet, {"location": "eastus", "properties": {}})
        core.clock.advance(10)  # type: ignore[attr-defined]
        _race(writer)
        # Exactly one writer got the VNet; every other one was refused while it held it.
        assert len(_holders(core, vnet)) == 1, _holders(core, vnet)
        assert sorted(statuses) == [200 if statuses.count(200) else 201] + [409] * (THREADS - 1)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_a_deployment_and_client_writes_never_hold_one_vnet_together(
    eager_switching: None, seed: int
) -> None:
    core = Emulator(ManualClock(), seed=seed)
    _send(core, "PUT", RG, {"location": "eastus"})
    vnet = f"{NET}/virtualNetworks/vnet1"
    template = {
        "resources": [
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2024-05-01",
                "name": "vnet1",
                "location": "eastus",
                "properties": {"subnets": [{"name": "a"}]},
            },
            *[
                {
                    "type": "Microsoft.Network/networkSecurityGroups",
                    "apiVersion": "2024-05-01",
                    "name": f"nsg{n}",
                    "location": "eastus",
                }
                for n in range(20)
            ],
        ]
    }
    deployment = f"{RG}/providers/Microsoft.Resources/deployments/d1"
    statuses: list[int] = []

    def worker(index: int) -> None:
        if index == 0:
            body = {"properties": {"mode": "Incremental", "template": template}}
            statuses.append(_send(core, "PUT", deployment, body).status)
            # The deployment's steps start on the next request touching the group.
            _send(core, "GET", deployment)
            return
        for _ in range(5):
            if index % 2:
                answer = _send(core, "PUT", vnet, vnet_body("a", f"c{index}"))
            else:
                body = {"properties": {"addressPrefix": "10.0.9.0/24"}}
                answer = _send(core, "PUT", f"{vnet}/subnets/c{index}", body)
            statuses.append(answer.status)

    _race(worker)
    holders = _holders(core, vnet)
    assert len(holders) == 1, holders
    # A writer repeating its identical PUT joins its own operation (ARM's idempotent retry),
    # and a subnet written before its VNet exists is a 404: the answers are 201, 404 or 409;
    # the operations started are what must be unique.
    assert set(statuses) <= {201, 404, 409}, statuses
    steps = _send(core, "GET", f"{deployment}/operations").body["value"]
    vnet_step = next(
        s for s in steps if s["properties"]["targetResource"]["resourceName"] == "vnet1"
    )
    # Either the deployment's step holds the VNet, or it lost to a client and says so.
    expected = "Running" if holders == [vnet] and _deployment_won(core, vnet) else "Failed"
    assert vnet_step["properties"]["provisioningState"] == expected


def _deployment_won(core: Emulator, vnet: str) -> bool:
    return any(
        op.target.key == vnet.lower() and "deployment_op" in op.extra
        for op in core.store.operations()
    )
