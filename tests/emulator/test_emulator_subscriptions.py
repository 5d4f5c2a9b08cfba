"""The subscription-level API, through the official SDKs: the subscriptions, tenants and
locations a login lists, and the providers tools read api-versions from and register."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from armguard.emulator.identity import DEFAULT_TENANT
from armguard.emulator.subscriptions import DEFAULT_SUBSCRIPTION
from armguard.testing import EmulatorHandle, emulator

OTHER = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with emulator(time_scale=0) as handle:
        yield handle


def _subscriptions(arm: EmulatorHandle, **claims: Any) -> Any:
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    from armguard.testing import AllowHttp, StaticCredential

    # Built by hand rather than by arm.client(): the token carries the claims under test.
    return SubscriptionClient(
        StaticCredential("a@b.c", **claims),
        base_url=arm.base_url,
        per_call_policies=[AllowHttp()],
    )


def _resources(arm: EmulatorHandle, subscription: str = DEFAULT_SUBSCRIPTION) -> Any:
    from azure.mgmt.resource.resources import ResourceManagementClient

    return arm.client(ResourceManagementClient, subscription_id=subscription)


def test_a_fresh_emulator_lists_one_subscription_in_the_callers_tenant(
    arm: EmulatorHandle,
) -> None:
    with _subscriptions(arm, tid=TENANT) as client:
        (sub,) = list(client.subscriptions.list())
        assert sub.subscription_id == DEFAULT_SUBSCRIPTION
        assert sub.tenant_id == TENANT
        assert sub.state == "Enabled"
        assert sub.display_name
        (tenant,) = list(client.tenants.list())
        assert tenant.tenant_id == TENANT
        got = client.subscriptions.get(DEFAULT_SUBSCRIPTION)
        assert got.id == f"/subscriptions/{DEFAULT_SUBSCRIPTION}"
        assert got.tenant_id == TENANT


def test_a_token_without_a_tenant_sees_the_default_one(arm: EmulatorHandle) -> None:
    with _subscriptions(arm) as client:
        assert [t.tenant_id for t in client.tenants.list()] == [DEFAULT_TENANT]


def test_a_subscription_that_holds_resources_is_listed(arm: EmulatorHandle) -> None:
    with _resources(arm, OTHER) as resources:
        resources.resource_groups.create_or_update("rg1", {"location": "eastus"})
    with _subscriptions(arm) as client:
        ids = [s.subscription_id for s in client.subscriptions.list()]
    assert ids == sorted([DEFAULT_SUBSCRIPTION, OTHER])


def test_locations_name_the_emulated_regions(arm: EmulatorHandle) -> None:
    with _subscriptions(arm) as client:
        regions = {r.name: r for r in client.subscriptions.list_locations(DEFAULT_SUBSCRIPTION)}
    assert {"eastus", "westeurope", "westus2"} <= regions.keys()
    assert regions["eastus"].display_name == "East US"
    assert regions["eastus"].metadata.paired_region[0].name == "westus"


def test_a_provider_lists_its_types_with_api_versions_newest_first(arm: EmulatorHandle) -> None:
    with _resources(arm) as client:
        network = client.providers.get("microsoft.network")
        assert network.namespace == "Microsoft.Network"
        assert network.registration_state == "Registered"
        types = {t.resource_type: t for t in network.resource_types}
        versions = types["virtualNetworks/subnets"].api_versions
        assert versions == sorted(versions, reverse=True)
        assert "East US" in types["virtualNetworks"].locations
        listed = {p.namespace for p in client.providers.list()}
        assert {
            "Microsoft.Compute",
            "Microsoft.Network",
            "Microsoft.Storage",
            "Microsoft.Resources",
            "Microsoft.Authorization",
            "Microsoft.Insights",
        } <= listed
        listed_types = client.provider_resource_types.list("Microsoft.Compute").value
        names = [t.resource_type for t in listed_types]
        assert "virtualMachines" in names


def test_a_stored_type_the_catalog_lacks_is_listed_with_its_provider(
    arm: EmulatorHandle,
) -> None:
    with _resources(arm) as client:
        before = client.providers.get("Microsoft.Network")
        assert "natGateways" not in {t.resource_type for t in before.resource_types}
        client.resource_groups.create_or_update("rg1", {"location": "eastus"})
        client.resources.begin_create_or_update_by_id(
            f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Network/natGateways/nat1",
            {"location": "eastus"},
            api_version="2024-05-01",
        ).result()
        after = client.providers.get("Microsoft.Network")
    types = {t.resource_type: t for t in after.resource_types}
    assert types["natGateways"].api_versions


def test_register_and_unregister_change_the_state_per_subscription(arm: EmulatorHandle) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with _resources(arm) as client:
        assert client.providers.unregister("Microsoft.Compute").registration_state == (
            "Unregistered"
        )
        assert client.providers.get("Microsoft.Compute").registration_state == "Unregistered"
        assert client.providers.register("Microsoft.Compute").registration_state == "Registered"
        assert client.providers.get("Microsoft.Compute").registration_state == "Registered"
        with pytest.raises(ResourceNotFoundError) as raised:
            client.providers.get("Microsoft.Nowhere")
    assert raised.value.error is not None
    assert raised.value.error.code == "InvalidResourceNamespace"


def test_the_subscription_api_needs_a_token_and_an_api_version(arm: EmulatorHandle) -> None:
    import httpx

    from armguard.testing import make_token

    with httpx.Client(base_url=arm.base_url) as http:
        assert http.get("/subscriptions?api-version=2022-12-01").status_code == 401
        missing = http.get("/subscriptions", headers={"Authorization": f"Bearer {make_token('a')}"})
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
        wrong = http.delete(
            "/subscriptions/x/providers?api-version=2022-12-01",
            headers={"Authorization": f"Bearer {make_token('a')}"},
        )
        assert wrong.status_code == 405
