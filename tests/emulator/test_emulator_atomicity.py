"""Atomicity under real concurrency: 64 HTTP clients racing conditional writes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from arm_helpers import NET, SUB, VNET, Arm, vnet_body

from armguard.clock import ManualClock
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
