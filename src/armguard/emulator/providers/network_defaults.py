"""The defaults the network resource provider fills into what it returns, as the specs'
examples (2024-05-01) show them: a VNet's ``virtualNetworkPeerings``, an NSG's
``securityRules`` and its six ``defaultSecurityRules``, a public IP's ``sku``, version,
allocation method and idle timeout, a NIC's ``dnsSettings``, flags and per-ipConfiguration
address, a route table's ``routes``. A value the body sets is kept."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.ids import InvalidResourceId, ResourceId

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["DEFAULT_SECURITY_RULES", "apply_network_defaults"]

JSON = dict[str, Any]

# (name, description, source prefix, destination prefix, access, priority, direction)
DEFAULT_SECURITY_RULES: tuple[tuple[str, str, str, str, str, int, str], ...] = (
    (
        "AllowVnetInBound",
        "Allow inbound traffic from all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Inbound",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        "Allow inbound traffic from azure load balancer",
        "AzureLoadBalancer",
        "*",
        "Allow",
        65001,
        "Inbound",
    ),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    (
        "AllowVnetOutBound",
        "Allow outbound traffic from all VMs to all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Outbound",
    ),
    (
        "AllowInternetOutBound",
        "Allow outbound traffic from all VMs to Internet",
        "*",
        "Internet",
        "Allow",
        65001,
        "Outbound",
    ),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)


def _children(rid: ResourceId, kind: str, items: Any, type_: str) -> list[Any]:
    """Inline child resources (security rules, routes) with their ids, as NRP returns them."""
    out: list[Any] = []
    for item in items if isinstance(items, list) else []:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
            out.append(item)
            continue
        child = {**item, "id": f"{rid.format()}/{kind}/{item['name']}", "type": type_}
        props = item.get("properties")
        child["properties"] = {**props} if isinstance(props, dict) else {}
        child["properties"].setdefault("provisioningState", "Succeeded")
        out.append(child)
    return out


def _nsg(rid: ResourceId, props: JSON) -> None:
    props.setdefault("flushConnection", False)
    props["securityRules"] = _children(
        rid,
        "securityRules",
        props.get("securityRules") or [],
        "Microsoft.Network/networkSecurityGroups/securityRules",
    )
    props["defaultSecurityRules"] = [
        {
            "name": name,
            "id": f"{rid.format()}/defaultSecurityRules/{name}",
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": {
                "provisioningState": "Succeeded",
                "description": description,
                "protocol": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": destination,
                "access": access,
                "priority": priority,
                "direction": direction,
            },
        }
        for name, description, source, destination, access, priority, direction in (
            DEFAULT_SECURITY_RULES
        )
    ]


def _public_ip(body: JSON, props: JSON) -> None:
    sku = body.get("sku")
    if not isinstance(sku, dict) or not sku.get("name"):
        body["sku"] = sku = {"name": "Basic", "tier": "Regional"}
    sku.setdefault("tier", "Regional")
    standard = str(sku.get("name", "")).lower() == "standard"
    props.setdefault("publicIPAddressVersion", "IPv4")
    props.setdefault("publicIPAllocationMethod", "Static" if standard else "Dynamic")
    props.setdefault("idleTimeoutInMinutes", 4)
    props.setdefault("ipTags", [])


def _subnet_prefix(core: Emulator, ref: Any) -> str | None:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("id"), str):
        return None
    try:
        subnet = core.store.get(ResourceId.parse(ref["id"]))
    except InvalidResourceId:
        return None
    if subnet is None:
        return None
    prefix = subnet.properties.get("addressPrefix")
    prefixes = subnet.properties.get("addressPrefixes")
    if not isinstance(prefix, str) and isinstance(prefixes, list) and prefixes:
        prefix = prefixes[0]
    return prefix if isinstance(prefix, str) else None


def _taken(core: Emulator, nic: ResourceId) -> set[str]:
    """Private addresses other NICs already hold (a snapshot read, like the in-use checks)."""
    taken: set[str] = set()
    for bucket in core.store.buckets():
        for res in list(bucket.resources.values()):
            if res.id.type.lower() != "microsoft.network/networkinterfaces" or res.id == nic:
                continue
            for conf in res.properties.get("ipConfigurations") or []:
                address = (conf.get("properties") or {}).get("privateIPAddress")
                if isinstance(address, str):
                    taken.add(address)
    return taken


def _next_address(prefix: str, taken: set[str]) -> str | None:
    try:
        network = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None
    # Azure reserves the first four addresses of every subnet.
    for offset in range(4, min(network.num_addresses - 1, 4096)):
        candidate = str(network.network_address + offset)
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    return None


def _nic(core: Emulator, rid: ResourceId, props: JSON, existing: JSON | None) -> None:
    props.setdefault("dnsSettings", {})
    if isinstance(props["dnsSettings"], dict):
        props["dnsSettings"].setdefault("dnsServers", [])
        props["dnsSettings"].setdefault("appliedDnsServers", [])
    props.setdefault("enableIPForwarding", False)
    props.setdefault("enableAcceleratedNetworking", False)
    props.setdefault("vnetEncryptionSupported", False)
    before = {
        c.get("name"): (c.get("properties") or {}).get("privateIPAddress")
        for c in (existing or {}).get("ipConfigurations") or []
        if isinstance(c, dict)
    }
    taken = _taken(core, rid)
    configs = props.get("ipConfigurations") or []
    for n, conf in enumerate(configs):
        if not isinstance(conf.get("properties"), dict):
            conf["properties"] = {}
        cprops = conf["properties"]
        cprops.setdefault("provisioningState", "Succeeded")
        cprops.setdefault("privateIPAllocationMethod", "Dynamic")
        cprops.setdefault("privateIPAddressVersion", "IPv4")
        cprops.setdefault("primary", n == 0)
        if "privateIPAddress" not in cprops:
            kept = before.get(conf.get("name"))
            prefix = _subnet_prefix(core, cprops.get("subnet"))
            address = kept or (_next_address(prefix, taken) if prefix else None)
            if address is not None:
                cprops["privateIPAddress"] = address


def apply_network_defaults(
    core: Emulator, rid: ResourceId, body: JSON, existing: JSON | None
) -> None:
    """Fill the type's documented defaults into ``body`` (a stored body after PUT/PATCH)."""
    props = body["properties"]
    kind = rid.type.lower()
    if kind == "microsoft.network/virtualnetworks":
        props.setdefault("virtualNetworkPeerings", [])
        props.setdefault("enableDdosProtection", False)
    elif kind == "microsoft.network/networksecuritygroups":
        _nsg(rid, props)
    elif kind == "microsoft.network/publicipaddresses":
        _public_ip(body, props)
    elif kind == "microsoft.network/networkinterfaces":
        _nic(core, rid, props, existing)
    elif kind == "microsoft.network/routetables":
        props.setdefault("disableBgpRoutePropagation", False)
        props["routes"] = _children(
            rid, "routes", props.get("routes") or [], "Microsoft.Network/routeTables/routes"
        )
