"""Clients, names and readers shared by the proxy tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from armguard.proxy.server import RunningProxy
from armguard.testing import sdk_client

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg1"
VNET_TYPE = "Microsoft.Network/virtualNetworks"

ProxyFactory = Callable[..., RunningProxy]
"""``make_proxy(mode=…, store=…, upstream=…, **settings)``: a served proxy, stopped after."""


def network(url: str, caller: str = "user@example.com", **kw: Any) -> NetworkManagementClient:
    kw.setdefault("polling_interval", 0.05)
    return sdk_client(NetworkManagementClient, url, subscription_id=SUB, caller=caller, **kw)


def resources(url: str, caller: str = "user@example.com") -> ResourceManagementClient:
    return sdk_client(ResourceManagementClient, url, subscription_id=SUB, caller=caller)


def a_group_and_vnet(url: str, name: str = "vnet") -> None:
    resources(url).resource_groups.create_or_update(RG, {"location": "eastus"})
    network(url).virtual_networks.begin_create_or_update(
        RG,
        name,
        {"location": "eastus", "address_space": {"address_prefixes": ["10.0.0.0/16"]}},
    ).result()


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
