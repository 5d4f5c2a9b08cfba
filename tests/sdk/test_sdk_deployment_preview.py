"""Deployment ``validate`` and ``whatIf`` through the official deployments SDK: a template
judged without running it, and its changes predicted against what exists now."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient
from sdk_helpers import RG, SUB

from armguard.testing import EmulatorHandle

NET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"


def _template(prefix: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2024-05-01",
                "name": "vnet1",
                "location": "[resourceGroup().location]",
                "properties": {"addressSpace": {"addressPrefixes": [prefix]}},
            },
            *extra,
        ],
    }


def _deployment(template: dict[str, Any], mode: str = "Incremental") -> dict[str, Any]:
    return {"properties": {"mode": mode, "template": template}}


def test_validate_accepts_a_good_template_and_lists_what_it_checked(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    deployments = arm.client(DeploymentsMgmtClient, subscription_id=SUB)
    result = deployments.deployments.begin_validate(
        RG, "preview", _deployment(_template("10.0.0.0/16"))
    ).result()
    assert result.properties is not None
    assert result.properties.provisioning_state == "Succeeded"
    assert [r.id for r in result.properties.validated_resources or []] == [
        f"{NET}/virtualNetworks/vnet1"
    ]
    # Nothing was deployed.
    with pytest.raises(HttpResponseError):
        deployments.deployments.get(RG, "preview")


def test_validate_refuses_what_a_put_would_be_refused_for(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    deployments = arm.client(DeploymentsMgmtClient, subscription_id=SUB)
    no_location = {
        "type": "Microsoft.Network/networkSecurityGroups",
        "apiVersion": "2024-05-01",
        "name": "nsg1",
    }
    old_version = {
        "type": "Microsoft.Network/routeTables",
        "apiVersion": "2024-02-01",
        "name": "rt1",
        "location": "eastus",
    }
    body = _deployment(_template("10.0.0.0/16", no_location, old_version))
    with pytest.raises(HttpResponseError) as refused:
        deployments.deployments.begin_validate(RG, "preview", body).result()
    assert refused.value.status_code == 400
    error = refused.value.error
    assert error is not None
    assert error.code == "InvalidTemplateDeployment"
    assert [(d.code, d.target) for d in error.details or []] == [
        ("LocationRequired", f"{NET}/networkSecurityGroups/nsg1"),
        ("NoRegisteredProviderFound", f"{NET}/routeTables/rt1"),
    ]


def test_what_if_predicts_create_modify_no_change_and_ignore(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    deployments = arm.client(DeploymentsMgmtClient, subscription_id=SUB)
    network = arm.client(NetworkManagementClient, subscription_id=SUB)
    network.virtual_networks.begin_create_or_update(
        RG,
        "vnet1",
        {
            "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        },
    ).result()
    network.network_security_groups.begin_create_or_update(
        RG, "unrelated", {"location": "eastus"}
    ).result()
    table = {
        "type": "Microsoft.Network/routeTables",
        "apiVersion": "2024-05-01",
        "name": "rt1",
        "location": "eastus",
    }

    same = deployments.deployments.begin_what_if(
        RG, "preview", _deployment(_template("10.0.0.0/16"))
    ).result()
    by_id = {c.resource_id: c for c in same.changes or []}
    assert by_id[f"{NET}/virtualNetworks/vnet1"].change_type == "NoChange"
    assert by_id[f"{NET}/networkSecurityGroups/unrelated"].change_type == "Ignore"

    changed = deployments.deployments.begin_what_if(
        RG, "preview", _deployment(_template("10.1.0.0/16", table))
    ).result()
    by_id = {c.resource_id: c for c in changed.changes or []}
    vnet = by_id[f"{NET}/virtualNetworks/vnet1"]
    assert vnet.change_type == "Modify"
    assert [(d.path, d.property_change_type, d.before, d.after) for d in vnet.delta or []] == [
        ("properties.addressSpace.addressPrefixes", "Array", ["10.0.0.0/16"], ["10.1.0.0/16"])
    ]
    assert by_id[f"{NET}/routeTables/rt1"].change_type == "Create"

    complete = deployments.deployments.begin_what_if(
        RG, "preview", _deployment(_template("10.0.0.0/16"), mode="Complete")
    ).result()
    by_id = {c.resource_id: c for c in complete.changes or []}
    assert by_id[f"{NET}/networkSecurityGroups/unrelated"].change_type == "Delete"
    # The preview changed nothing.
    assert network.virtual_networks.get(RG, "vnet1").address_space.address_prefixes == [
        "10.0.0.0/16"
    ]


def test_a_deployment_is_refused_before_it_starts_as_validate_would(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    deployments = arm.client(DeploymentsMgmtClient, subscription_id=SUB)
    no_location = {
        "type": "Microsoft.Network/networkSecurityGroups",
        "apiVersion": "2024-05-01",
        "name": "nsg1",
    }
    with pytest.raises(HttpResponseError) as refused:
        deployments.deployments.begin_create_or_update(
            RG, "release", _deployment(_template("10.0.0.0/16", no_location))
        )
    assert refused.value.status_code == 400
    assert refused.value.error is not None
    assert refused.value.error.code == "InvalidTemplateDeployment"
    # Nothing started: neither the deployment nor the VNet it would have created exists.
    with pytest.raises(HttpResponseError):
        deployments.deployments.get(RG, "release")
    network = arm.client(NetworkManagementClient, subscription_id=SUB)
    with pytest.raises(HttpResponseError):
        network.virtual_networks.get(RG, "vnet1")
