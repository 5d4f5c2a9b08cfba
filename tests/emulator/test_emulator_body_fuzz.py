"""Property: no request body, however wrong, breaks the core. Any JSON value put anywhere in a
VNet, NIC, VM, storage, tags, lock or deployment body is either accepted or refused with an
ARM-shaped 4xx, and afterwards the emulator still serves every read (nothing accepted before
is lost)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from arm_helpers import API, NET, RG, STORAGE, SUB, VM, VNET, api_version_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armguard.clock import ManualClock
from armguard.emulator.core import Emulator
from armguard.emulator.request import ArmRequest, ArmResponse, Call

NSG = f"{NET}/networkSecurityGroups/nsg1"
NIC = f"{NET}/networkInterfaces/nic1"
LOCK = f"{RG}/providers/Microsoft.Authorization/locks/l1"
RG_TAGS = f"{RG}/providers/Microsoft.Resources/tags/default"
VNET_TAGS = f"{VNET}/providers/Microsoft.Resources/tags/default"
LOG = f"{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
SUBNET_ID = f"{VNET}/subnets/a"

VNET_BODY = {
    "location": "eastus",
    "tags": {"env": "test"},
    "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [
            {"name": "a", "properties": {"addressPrefix": "10.0.0.0/24"}},
            {
                "name": "b",
                "properties": {"addressPrefix": "10.0.1.0/24", "networkSecurityGroup": {"id": NSG}},
            },
        ],
    },
}
NIC_BODY = {
    "location": "eastus",
    "properties": {
        "ipConfigurations": [
            {"name": "c1", "properties": {"subnet": {"id": SUBNET_ID}, "primary": True}}
        ],
        "networkSecurityGroup": {"id": NSG},
    },
}
VM_BODY = {
    "location": "eastus",
    "zones": ["1"],
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "networkProfile": {"networkInterfaces": [{"id": NIC, "properties": {"primary": True}}]},
    },
}
STORAGE_BODY = {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}
TAGS_BODY = {"properties": {"tags": {"owner": "alice", "team": "a"}}}
TAGS_PATCH = {"operation": "Merge", "properties": {"tags": {"cost": "b"}}}
LOCK_BODY = {
    "properties": {"level": "CanNotDelete", "notes": "keep", "owners": [{"applicationId": "x"}]}
}

DEPLOYMENT_BODY = {
    "properties": {
        "mode": "Incremental",
        "parameters": {"prefix": {"value": "web"}},
        "template": {
            "contentVersion": "1.0.0.0",
            "parameters": {"prefix": {"type": "string", "defaultValue": "app"}},
            "variables": {"site": "[concat(parameters('prefix'), '-site')]"},
            "resources": [
                {
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "apiVersion": "2024-05-01",
                    "name": "vnet1/d",
                    "properties": {"addressPrefix": "10.0.3.0/24"},
                },
                {
                    "type": "Microsoft.Web/sites",
                    "apiVersion": "2022-03-01",
                    "name": "[format('{0}{1}', variables('site'), copyIndex())]",
                    "copy": {"name": "sites", "count": 2},
                    "location": "[resourceGroup().location]",
                    "dependsOn": [
                        "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet1', 'd')]"
                    ],
                },
            ],
            "outputs": {"site": {"type": "string", "value": "[variables('site')]"}},
        },
    }
}

TARGETS: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", VNET, VNET_BODY),
    ("PATCH", VNET, {"tags": {"a": "1"}, "properties": VNET_BODY["properties"]}),
    ("PUT", f"{VNET}/subnets/c", {"properties": {"addressPrefix": "10.0.2.0/24"}}),
    ("PUT", NIC, NIC_BODY),
    ("PUT", VM, VM_BODY),
    ("PATCH", VM, {"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}}),
    ("PUT", STORAGE, STORAGE_BODY),
    ("PUT", RG_TAGS, TAGS_BODY),
    ("PATCH", VNET_TAGS, TAGS_PATCH),
    ("PUT", LOCK, LOCK_BODY),
    ("PUT", RG, {"location": "eastus", "tags": {"a": "b"}}),
    ("PUT", f"{RG}/providers/Microsoft.Resources/deployments/d1", DEPLOYMENT_BODY),
]

FIELD_NAMES = st.sampled_from(
    [
        "name",
        "id",
        "properties",
        "tags",
        "subnets",
        "ipConfigurations",
        "location",
        "owners",
        "copy",
        "count",
        "dependsOn",
        "resources",
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(
        ["a/b", "A", "", "*", "CanNotDelete", "Merge", NSG, SUBNET_ID, "[concat(", "[int('x')]"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(FIELD_NAMES | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _positions(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place a value can go: each existing member and element, and a new key in every
    object (``...``)."""
    out = [path]
    if isinstance(value, dict):
        out.append((*path, ...))
        for key, item in value.items():
            out.extend(_positions(item, (*path, key)))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            out.extend(_positions(item, (*path, n)))
    return out


def _place(body: Any, path: tuple[Any, ...], value: Any, new_key: str) -> Any:
    if not path:
        return value
    out = copy.deepcopy(body)
    node = out
    for step in path[:-1]:
        node = node[step]
    last = path[-1]
    node[new_key if last is ... else last] = value
    return out


def _request(core: Emulator, method: str, path: str, body: Any = None, **query: str) -> ArmResponse:
    call = Call(base_url="http://fuzz.invalid", api_version=API, caller="fuzz@example.com")
    req = ArmRequest(method, path, {"api-version": api_version_for(path), **query}, {}, body, call)
    return core.dispatch(req)


def _accepted_world() -> Emulator:
    core = Emulator(ManualClock(), time_scale=0, seed=1)
    for method, path, body in [
        ("PUT", RG, {"location": "eastus"}),
        ("PUT", NSG, {"location": "eastus"}),
        ("PUT", VNET, VNET_BODY),
        ("PUT", NIC, NIC_BODY),
    ]:
        assert _request(core, method, path, body).status in (200, 201)
    return core


def _assert_arm_answer(response: ArmResponse) -> None:
    assert response.status < 500, response.body
    if response.status >= 400:
        error = response.body["error"]
        assert isinstance(error["code"], str)
        assert error["code"]
        assert isinstance(error["message"], str)
        assert error["message"]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t[0]} {t[1].rsplit('/', 2)[-2]}")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=json_values, new_key=FIELD_NAMES | FIELD_NAMES | st.text(max_size=4))
def test_any_value_anywhere_gets_an_arm_answer(
    target: tuple[str, str, dict[str, Any]], data: st.DataObject, value: Any, new_key: str
) -> None:
    method, path, base = target
    where = data.draw(st.sampled_from(_positions(base)), label="position")
    body = _place(base, where, value, new_key)
    core = _accepted_world()
    _assert_arm_answer(_request(core, method, path, body))
    # Whatever happened, every read still answers, and what was accepted before is there.
    scope = path.split("/providers/Microsoft.Resources/tags/")[0]
    reads = (path, f"{scope}/providers/Microsoft.Resources/tags/default", VNET, NIC, RG_TAGS)
    for read in (*reads, VNET_TAGS, f"{RG}/resources", f"{VNET}/subnets"):
        answer = _request(core, "GET", read)
        _assert_arm_answer(answer)
    for kept in (VNET, NIC, NSG, SUBNET_ID):
        assert _request(core, "GET", kept).status == 200
    log = _request(core, "GET", LOG, **{"$filter": "eventTimestamp ge '2020-01-01'"})
    assert log.status == 200
    assert core.dump()["format"]
