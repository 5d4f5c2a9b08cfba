"""The proxy, side by side with the same clients talking to the emulator directly.

The emulator and the proxy each run in their own process (``armguard emulator``, ``armguard
proxy --upstream``), as users run them. Each workload runs twice per round — direct (the SDK's default retry policy, which retries
429 and 5xx but not 409) and through ``armguard proxy`` — each on a fresh emulator with the
same world, ``--rounds`` times alternately (load from elsewhere on a shared machine falls on
both alike). Reported per workload: conflicts surfaced to clients, updates lost, makespan, and
their ratio; for pass-through reads, the median and p95 latency added per GET.

* ``subnets``: 16 clients create subnets on one VNet at once (the seed's 409 storm);
* ``independent``: 16 clients each update the tags of their own VNet (nothing to order: the
  proxy's cost when it has nothing to do);
* ``blind-put``: a pipeline's full-body PUT without If-Match lands after a tag normalizer's
  write it never read, ``--races`` times (direct: the tag is lost; proxy ``merge``: kept);
* ``get``: ``--gets`` sequential GETs of one resource.

    python benchmarks/proxy.py [--rounds 3] [--time-scale 0.02] [--races 8] [--gets 400]

Prints one JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from armguard.testing import make_token, sdk_client

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg1"
CLIENTS = 16


def _net(url: str, caller: str) -> NetworkManagementClient:
    return sdk_client(
        NetworkManagementClient, url, subscription_id=SUB, caller=caller, polling_interval=0.05
    )


def _world(url: str, vnets: int) -> None:
    sdk_client(ResourceManagementClient, url, subscription_id=SUB).resource_groups.create_or_update(
        RG, {"location": "eastus"}
    )
    net = _net(url, "setup@example.com")
    for i in range(vnets):
        net.virtual_networks.begin_create_or_update(
            RG,
            f"vnet{i}",
            {"location": "eastus", "address_space": {"address_prefixes": ["10.0.0.0/16"]}},
        ).result()


def _parallel(fn: Callable[[int], str]) -> tuple[list[str], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(fn, range(CLIENTS)))
    return outcomes, time.perf_counter() - started


def subnets(url: str) -> dict[str, Any]:
    _world(url, 1)

    def one(i: int) -> str:
        try:
            _net(url, f"team{i}@example.com").subnets.begin_create_or_update(
                RG, "vnet0", f"s{i}", {"address_prefix": f"10.0.{i}.0/24"}
            ).result()
        except HttpResponseError as err:
            return str(err.status_code)
        return "ok"

    outcomes, took = _parallel(one)
    created = len(list(_net(url, "check@example.com").subnets.list(RG, "vnet0")))
    return {
        "makespan_s": round(took, 3),
        "conflicts_surfaced": sum(o != "ok" for o in outcomes),
        "lost": CLIENTS - created - sum(o != "ok" for o in outcomes),
        "created": created,
    }


def independent(url: str) -> dict[str, Any]:
    _world(url, CLIENTS)

    def one(i: int) -> str:
        net = _net(url, f"team{i}@example.com")
        try:
            vnet = net.virtual_networks.get(RG, f"vnet{i}")
            vnet.tags = {"team": str(i)}
            net.virtual_networks.begin_create_or_update(RG, f"vnet{i}", vnet).result()
        except HttpResponseError as err:
            return str(err.status_code)
        return "ok"

    outcomes, took = _parallel(one)
    net = _net(url, "check@example.com")
    kept = sum(
        (net.virtual_networks.get(RG, f"vnet{i}").tags or {}).get("team") == str(i)
        for i in range(CLIENTS)
    )
    return {
        "makespan_s": round(took, 3),
        "conflicts_surfaced": sum(o != "ok" for o in outcomes),
        "lost": CLIENTS - kept,
    }


def blind_put(url: str, races: int) -> dict[str, Any]:
    _world(url, 1)
    pipeline = _net(url, "pipeline@example.com")
    normalizer = _net(url, "normalizer@example.com")
    refused = lost = 0
    started = time.perf_counter()
    for n in range(races):
        stale = pipeline.virtual_networks.get(RG, "vnet0")
        fresh = normalizer.virtual_networks.get(RG, "vnet0")
        fresh.tags = {**(fresh.tags or {}), f"owner{n}": "platform"}
        normalizer.virtual_networks.begin_create_or_update(RG, "vnet0", fresh).result()
        stale.tags = {**(stale.tags or {}), f"run{n}": "1"}
        try:
            pipeline.virtual_networks.begin_create_or_update(RG, "vnet0", stale).result()
        except HttpResponseError:
            refused += 1
        tags = pipeline.virtual_networks.get(RG, "vnet0").tags or {}
        lost += f"owner{n}" not in tags
    return {
        "makespan_s": round(time.perf_counter() - started, 3),
        "conflicts_surfaced": refused,
        "lost": lost,
    }


def gets(url: str, count: int) -> dict[str, Any]:
    _world(url, 1)
    path = (
        f"{url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
        "virtualNetworks/vnet0?api-version=2024-05-01"
    )
    headers = {"Authorization": f"Bearer {make_token('reader@example.com')}"}
    samples: list[float] = []
    with httpx.Client(headers=headers) as client:
        for _ in range(20):
            client.get(path)
        for _ in range(count):
            t = time.perf_counter()
            r = client.get(path)
            samples.append(time.perf_counter() - t)
            assert r.status_code == 200
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[int(len(samples) * 0.95)] * 1000, 3),
    }


class Served:
    """An ``armguard`` server in its own process (as users run it), stopped with SIGTERM."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armguard.cli.main", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = line.split(" listening on ")[1].split()[0]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_side(workload: str, through_proxy: bool, args: argparse.Namespace) -> dict[str, Any]:
    servers = [Served("emulator", "--time-scale", str(args.time_scale))]
    url = servers[0].url
    if through_proxy:
        mode = "merge" if workload == "blind-put" else "warn"
        servers.append(Served("proxy", "--upstream", url, "--lost-updates", mode))
        url = servers[1].url
    try:
        if workload == "subnets":
            return subnets(url)
        if workload == "independent":
            return independent(url)
        if workload == "blind-put":
            return blind_put(url, args.races)
        return gets(url, args.gets)
    finally:
        for server in reversed(servers):
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--races", type=int, default=8)
    parser.add_argument("--gets", type=int, default=400)
    parser.add_argument("--workloads", default="subnets,independent,blind-put,get")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {"direct": [], "proxy": []} for w in workloads
    }
    for r in range(args.rounds):
        for w in workloads:
            for side in ("direct", "proxy"):
                print(f"round {r + 1}/{args.rounds}: {w} {side}", file=sys.stderr)
                runs[w][side].append(run_side(w, side == "proxy", args))
    summary: dict[str, Any] = {}
    for w, sides in runs.items():
        if w == "get":
            d = statistics.median(x["median_ms"] for x in sides["direct"])
            p = statistics.median(x["median_ms"] for x in sides["proxy"])
            summary[w] = {
                "direct_median_ms": d,
                "proxy_median_ms": p,
                "added_median_ms": round(p - d, 3),
            }
            continue
        d_span = statistics.median(x["makespan_s"] for x in sides["direct"])
        p_span = statistics.median(x["makespan_s"] for x in sides["proxy"])
        summary[w] = {
            "direct": {
                "conflicts_surfaced": sum(x["conflicts_surfaced"] for x in sides["direct"]),
                "lost": sum(x["lost"] for x in sides["direct"]),
                "makespan_s_median": d_span,
            },
            "proxy": {
                "conflicts_surfaced": sum(x["conflicts_surfaced"] for x in sides["proxy"]),
                "lost": sum(x["lost"] for x in sides["proxy"]),
                "makespan_s_median": p_span,
            },
            "makespan_ratio": round(p_span / d_span, 3) if d_span else None,
        }
    print(
        json.dumps(
            {
                "benchmark": "proxy",
                "config": {
                    **vars(args),
                    "clients": CLIENTS,
                    "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()[0],
                },
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
