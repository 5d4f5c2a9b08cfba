"""azure-cli end to end against ``armguard emulator --tls``: register the cloud from its
metadata document, log in as a service principal at the emulator's own Entra ID, then the
group / network / VM / lock / tag / Activity Log commands people run. No hand-made files.

The steps share one emulator and one ``az`` login, in file order. Steps that need features
the emulator does not have yet are strict expected failures: they start failing when the
feature lands, so the marker is removed with it.
"""

from __future__ import annotations

import datetime
import json
import re
import ssl
from pathlib import Path

import httpx
import pytest
from az_helpers import Az, EmulatorProcess
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.az

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
NIC = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic1"


def test_register_the_cloud_and_log_in_as_a_service_principal(
    az: Az, tls_emulator: EmulatorProcess
) -> None:
    az.ok("cloud", "register", "-n", "Armguard", "--endpoint-resource-manager", tls_emulator.url)
    cloud = json.loads(az.ok("cloud", "show", "-n", "Armguard"))
    assert cloud["endpoints"]["resourceManager"].rstrip("/") == tls_emulator.url
    assert cloud["endpoints"]["activeDirectory"] == tls_emulator.url
    az.ok("cloud", "set", "-n", "Armguard")
    accounts = json.loads(
        az.ok(
            "login",
            "--service-principal",
            "-u",
            "deploy-pipeline",
            "-p",
            "not-checked",
            "--tenant",
            TENANT,
        )
    )
    assert [(a["id"], a["tenantId"], a["user"]["name"]) for a in accounts] == [
        (SUB, TENANT, "deploy-pipeline")
    ]
    assert json.loads(az.ok("account", "show"))["environmentName"] == "Armguard"


def test_group_network_and_nic(az: Az, tls_emulator: EmulatorProcess) -> None:
    assert json.loads(az.ok("group", "create", "-n", "rg1", "-l", "eastus"))["id"] == RG
    # The token az got from the emulator's Entra ID names the caller in the Activity Log.
    log = json.loads(
        az.ok(
            "rest",
            "--method",
            "get",
            "--uri",
            f"{tls_emulator.url}/subscriptions/{SUB}/providers/microsoft.insights/eventtypes/"
            "management/values?api-version=2015-04-01"
            "&$filter=eventTimestamp ge '2025-01-01T00:00:00Z' and resourceGroupName eq 'rg1'",
        )
    )
    assert {e["caller"] for e in log["value"]} == {"deploy-pipeline"}
    az.ok(
        "network", "vnet", "create", "-g", "rg1", "-n", "vnet1", "--address-prefixes", "10.0.0.0/16"
    )
    subnet = json.loads(
        az.ok(
            "network",
            "vnet",
            "subnet",
            "create",
            "-g",
            "rg1",
            "--vnet-name",
            "vnet1",
            "-n",
            "app",
            "--address-prefixes",
            "10.0.1.0/24",
        )
    )
    assert subnet["provisioningState"] == "Succeeded"
    nic = json.loads(
        az.ok(
            "network",
            "nic",
            "create",
            "-g",
            "rg1",
            "-n",
            "nic1",
            "--vnet-name",
            "vnet1",
            "--subnet",
            "app",
        )
    )
    assert nic["NewNIC"]["ipConfigurations"][0]["subnet"]["id"] == f"{VNET}/subnets/app"


def test_a_vm_from_a_full_body_then_deallocate_resize_start(az: Az) -> None:
    body = {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "networkProfile": {"networkInterfaces": [{"id": NIC}]},
        "storageProfile": {
            "imageReference": {
                "publisher": "Canonical",
                "offer": "0001-com-ubuntu-server-jammy",
                "sku": "22_04-lts-gen2",
                "version": "latest",
            }
        },
        "osProfile": {
            "computerName": "vm1",
            "adminUsername": "azureuser",
            "adminPassword": "P@ssw0rd1234!",
        },
    }
    # az resource picks its api-version from GET /subscriptions/{s}/providers/Microsoft.Compute.
    az.ok(
        "resource",
        "create",
        "-g",
        "rg1",
        "-n",
        "vm1",
        "-l",
        "eastus",
        "--resource-type",
        "Microsoft.Compute/virtualMachines",
        "--properties",
        json.dumps(body),
    )
    az.ok("vm", "deallocate", "-g", "rg1", "-n", "vm1")
    resized = json.loads(az.ok("vm", "resize", "-g", "rg1", "-n", "vm1", "--size", "Standard_B2s"))
    assert resized["hardwareProfile"]["vmSize"] == "Standard_B2s"
    az.ok("vm", "start", "-g", "rg1", "-n", "vm1")
    codes = json.loads(
        az.ok(
            "vm",
            "get-instance-view",
            "-g",
            "rg1",
            "-n",
            "vm1",
            "--query",
            "instanceView.statuses[].code",
        )
    )
    assert "PowerState/running" in codes


def test_a_lock_refuses_a_delete_until_it_is_removed(az: Az) -> None:
    az.ok("lock", "create", "-n", "keep", "-g", "rg1", "--lock-type", "CanNotDelete")
    refused = az("network", "vnet", "delete", "-g", "rg1", "-n", "vnet1")
    assert refused.returncode != 0
    assert "ScopeLocked" in refused.stderr
    az.ok("lock", "delete", "-n", "keep", "-g", "rg1")
    assert json.loads(az.ok("lock", "list", "-g", "rg1")) == []


def test_resource_tag_reads_the_api_version_from_the_provider(az: Az) -> None:
    az.ok("resource", "tag", "--ids", VNET, "--tags", "env=prod")
    tags = json.loads(
        az.ok("network", "vnet", "show", "-g", "rg1", "-n", "vnet1", "--query", "tags")
    )
    assert tags == {"env": "prod"}


def test_resource_list_by_group(az: Az) -> None:
    listed = json.loads(az.ok("resource", "list", "-g", "rg1"))
    assert VNET in {r["id"] for r in listed}


def test_activity_log_names_the_service_principal(az: Az) -> None:
    events = json.loads(az.ok("monitor", "activity-log", "list", "-g", "rg1", "--offset", "1h"))
    assert "deploy-pipeline" in {e["caller"] for e in events}


def test_vm_create_from_an_image_alias(az: Az) -> None:
    az.ok(
        "vm",
        "create",
        "-g",
        "rg1",
        "-n",
        "vm2",
        "--image",
        "Ubuntu2204",
        "--nics",
        "nic1",
        "--admin-username",
        "azureuser",
        "--admin-password",
        "P@ssw0rd1234!",
    )


def test_disk_create(az: Az) -> None:
    az.ok("disk", "create", "-g", "rg1", "-n", "disk1", "--size-gb", "4")


def test_a_user_logs_in_with_a_device_code(az: Az, tls_emulator: EmulatorProcess) -> None:
    login = az.start("login", "--use-device-code", "--tenant", TENANT)
    try:
        assert login.stderr is not None
        line = login.stderr.readline()
        code = re.search(r"user_code=(\w+)", line)
        assert code is not None, line
        approved = httpx.get(
            f"{tls_emulator.url}/devicelogin",
            params={"user_code": code.group(1), "username": "alice@contoso.test"},
            verify=ssl.create_default_context(cafile=str(tls_emulator.ca_file)),
        )
        assert approved.status_code == 200, approved.text
        out, err = login.communicate(timeout=120)
    finally:
        if login.poll() is None:
            login.kill()
            login.communicate()
    assert login.returncode == 0, err
    (account,) = json.loads(out)
    assert account["user"] == {"name": "alice@contoso.test", "type": "user"}
    assert (
        json.loads(az.ok("group", "create", "-n", "rg-user", "-l", "eastus"))["name"] == "rg-user"
    )


def test_a_service_principal_logs_in_with_a_certificate(az: Az, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagger")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "tagger.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    az.ok(
        "login",
        "--service-principal",
        "-u",
        "tagger",
        "--certificate",
        str(pem),
        "--tenant",
        TENANT,
    )
    assert json.loads(az.ok("account", "show"))["user"] == {
        "name": "tagger",
        "type": "servicePrincipal",
    }
    az.ok("group", "update", "-n", "rg1", "--tags", "owner=tagger")
