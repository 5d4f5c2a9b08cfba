"""The VM image catalog through the compute SDK, the calls ``az vm create --image ALIAS`` and
``az vm image list-*`` make: every CLI alias resolves to a publisher/offer/SKU whose newest
version can be listed and read."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from sdk_helpers import SUB

from armguard.emulator.images import ALIASES
from armguard.testing import EmulatorHandle


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_cli_alias_resolves_to_its_latest_version(arm: EmulatorHandle, alias: str) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    publisher, offer, sku = ALIASES[alias]
    # What the CLI does for version 'latest': the newest version by name, then that version.
    newest = compute.virtual_machine_images.list(
        "westus", publisher, offer, sku, top=1, orderby="name desc"
    )
    assert len(newest) == 1
    image = compute.virtual_machine_images.get("westus", publisher, offer, sku, newest[0].name)
    assert image.name == newest[0].name
    assert image.os_disk_image is not None
    expected_os = "Windows" if alias.startswith("Win") else "Linux"
    assert image.os_disk_image.operating_system == expected_os
    assert image.hyper_v_generation == "V2"


def test_publishers_offers_skus_and_versions_list(arm: EmulatorHandle) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    images = compute.virtual_machine_images
    assert "Canonical" in [p.name for p in images.list_publishers("eastus")]
    assert "0001-com-ubuntu-server-jammy" in [
        o.name for o in images.list_offers("eastus", "Canonical")
    ]
    skus = [s.name for s in images.list_skus("eastus", "Canonical", "0001-com-ubuntu-server-jammy")]
    assert skus == ["22_04-lts-gen2", "22_04-lts"]
    versions = [
        v.name
        for v in images.list("eastus", "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts")
    ]
    assert versions == ["22.04.202410020", "22.04.202411190"]


def test_an_unknown_image_is_not_found_and_the_catalog_is_read_only(arm: EmulatorHandle) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    with pytest.raises(HttpResponseError) as missing:
        compute.virtual_machine_images.get("eastus", "Canonical", "no-such-offer", "x", "1.0")
    assert missing.value.status_code == 404
    assert missing.value.error is not None
    assert missing.value.error.message == "Artifact: VMImage was not found."
