"""ARM's list contract on every list: ``$top`` pages, ``nextLink`` continues, ``$filter`` and
``$expand``; followed by the official SDK's ``ItemPaged`` as well as by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from arm_helpers import NET, RG, SUB, Arm

from armguard.testing import EmulatorHandle

VNETS = f"{NET}/virtualNetworks"


@pytest.fixture(autouse=True)
def instant(served: EmulatorHandle) -> None:
    """Writes end at once: these tests are about reading lists, not about operations."""
    served.core.time_scale = 0


def _vnet(arm: Arm, name: str, *, location: str = "eastus", tags: dict[str, str] | None = None):
    body: dict[str, Any] = {
        "location": location,
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
    }
    if tags is not None:
        body["tags"] = tags
    response = arm.put(f"{VNETS}/{name}", body)
    assert response.status_code in (200, 201), response.text
    return response


def _follow(arm: Arm, path: str, params: dict[str, str]) -> list[list[str]]:
    """Every page's names, following nextLink as a client does."""
    pages: list[list[str]] = []
    response = arm.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["name"] for item in body["value"]])
        link = body.get("nextLink")
        if link is None:
            assert "nextLink" not in body or body["nextLink"] is None
            return pages
        assert link.startswith(arm.base_url)
        response = arm.get(link)


def test_top_pages_a_group_list_in_creation_order(arm: Arm, group: str) -> None:
    for n in range(5):
        _vnet(arm, f"v{n}")
    pages = _follow(arm, f"{RG}/resources", {"$top": "2"})
    assert pages == [["v0", "v1"], ["v2", "v3"], ["v4"]]
    # The link keeps the request's own query (its $top), so the next page is as small.
    first = arm.get(f"{RG}/resources", params={"$top": "2"}).json()
    query = parse_qs(urlsplit(first["nextLink"]).query)
    assert query["$top"] == ["2"]
    assert "$skiptoken" in query


def test_page_size_option_pages_every_list(arm: Arm, served: EmulatorHandle, group: str) -> None:
    served.core.page_size = 2
    for n in range(3):
        _vnet(arm, f"v{n}")
    for subnet in ("a", "b", "c"):
        response = arm.put(
            f"{VNETS}/v0/subnets/{subnet}", {"properties": {"addressPrefix": "10.0.1.0/24"}}
        )
        assert response.status_code in (200, 201), response.text
    for n in range(2):
        assert arm.put(f"{SUB}/resourceGroups/rg-{n}", {"location": "westus"}).status_code == 201
    assert _follow(arm, VNETS, {}) == [["v0", "v1"], ["v2"]]
    assert _follow(arm, f"{SUB}/resources", {}) == [["v0", "v1"], ["v2"]]
    assert _follow(arm, f"{VNETS}/v0/subnets", {}) == [["a", "b"], ["c"]]
    assert _follow(arm, f"{SUB}/resourcegroups", {}) == [["rg-0", "rg-1"], ["rg1"]]
    # $top never asks for more than a page holds.
    assert _follow(arm, VNETS, {"$top": "50"}) == [["v0", "v1"], ["v2"]]


def test_a_page_starts_after_the_last_item_even_if_the_list_changed(arm: Arm, group: str) -> None:
    for n in range(4):
        _vnet(arm, f"v{n}")
    first = arm.get(f"{RG}/resources", params={"$top": "2"}).json()
    assert arm.delete(f"{VNETS}/v0").status_code in (200, 202)
    _vnet(arm, "v9")
    rest = arm.get(first["nextLink"]).json()
    assert [item["name"] for item in rest["value"]] == ["v2", "v3"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"$top": "0"}, "InvalidTopInQueryString"),
        ({"$top": "ten"}, "InvalidTopInQueryString"),
        ({"$skiptoken": "not-ours"}, "InvalidSkipToken"),
        ({"$filter": "name eq"}, "InvalidFilterInQueryString"),
        ({"$filter": "colour eq 'red'"}, "InvalidFilterInQueryString"),
        ({"$filter": "name eq 'a' nor name eq 'b'"}, "InvalidFilterInQueryString"),
        ({"$filter": "substringof('a', tagName)"}, "InvalidFilterInQueryString"),
        ({"$filter": "(name eq 'a'"}, "InvalidFilterInQueryString"),
    ],
)
def test_bad_list_queries_are_arm_400s(
    arm: Arm, group: str, params: dict[str, str], code: str
) -> None:
    response = arm.get(f"{RG}/resources", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_filters_that_az_powershell_and_the_sdks_send(arm: Arm, group: str) -> None:
    _vnet(arm, "web-1", tags={"env": "prod", "team": "a"})
    _vnet(arm, "web-2", location="West US", tags={"env": "dev", "owner": "prod"})
    _vnet(arm, "api-1", tags={"Env": "prod"})
    other = f"{SUB}/resourceGroups/rg2"
    assert arm.put(other, {"location": "eastus"}).status_code == 201
    response = arm.put(
        f"{other}/providers/Microsoft.Storage/storageAccounts/web3",
        {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    )
    assert response.status_code in (200, 201, 202), response.text

    def names(scope: str, text: str) -> set[str]:
        [page] = _follow(arm, scope, {"$filter": text})
        return set(page)

    sub = f"{SUB}/resources"
    assert names(sub, "resourceGroup eq 'RG1'") == {"web-1", "web-2", "api-1"}
    assert names(sub, "resourceType eq 'microsoft.storage/storageaccounts'") == {"web3"}
    assert names(sub, "name eq 'WEB-1'") == {"web-1"}
    assert names(sub, "location eq 'westus'") == {"web-2"}
    assert names(sub, "tagName eq 'env'") == {"web-1", "web-2", "api-1"}
    # One tag so named holding that value: web-2's 'prod' is another tag's value.
    assert names(sub, "tagName eq 'env' and tagValue eq 'prod'") == {"web-1", "api-1"}
    assert names(sub, "tagValue eq 'prod'") == {"web-1", "web-2", "api-1"}
    assert names(sub, "substringof('web', name)") == {"web-1", "web-2", "web3"}
    assert names(sub, "startswith(name, 'api')") == {"api-1"}
    assert names(
        sub,
        "(resourceType eq 'Microsoft.Network/virtualNetworks' or name eq 'web3') "
        "and substringof('2', name)",
    ) == {"web-2"}
    assert names(RG + "/resources", "resourceGroup eq 'rg2'") == set()
    assert names(f"{SUB}/resourcegroups", "name eq 'rg2'") == {"rg2"}


def test_expand_adds_created_changed_and_provisioning_state(arm: Arm, group: str) -> None:
    _vnet(arm, "v0")
    [plain] = arm.get(f"{RG}/resources").json()["value"]
    assert "createdTime" not in plain
    assert "changedTime" not in plain
    [item] = arm.get(
        f"{RG}/resources", params={"$expand": "createdTime,changedTime,provisioningState"}
    ).json()["value"]
    assert item["createdTime"].endswith("Z")
    assert item["changedTime"] >= item["createdTime"]
    assert item["provisioningState"] in ("Updating", "Succeeded")


def test_sdk_item_paged_follows_next_links(arm: Arm, served: EmulatorHandle, group: str) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = served.client(ResourceManagementClient, subscription_id=SUB.rsplit("/", 1)[1])
    for n in range(5):
        _vnet(arm, f"v{n}")
    paged = client.resources.list_by_resource_group("rg1", top=2)
    pages = [[r.name for r in page] for page in paged.by_page()]
    assert pages == [["v0", "v1"], ["v2", "v3"], ["v4"]]
    tagged = client.resources.list(filter="substringof('v3', name)", top=1)
    assert [r.name for r in tagged] == ["v3"]


LOG = f"{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
SINCE = "eventTimestamp ge '2020-01-01T00:00:00Z'"


def _all_events(served: EmulatorHandle) -> list[str]:
    """Every event id of the subscription, newest first, read from the core in one piece."""
    served.core.operations.settle_all()
    return [e["eventDataId"] for e in served.core.audit.log.query(SUB.rsplit("/", 1)[1], SINCE)]


def _events(arm: Arm, params: dict[str, str]) -> list[list[str]]:
    """Every Activity Log page's event ids, following nextLink."""
    pages: list[list[str]] = []
    response = arm.get(LOG, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([e["eventDataId"] for e in body["value"]])
        if body.get("nextLink") is None:
            return pages
        response = arm.get(body["nextLink"])


def test_activity_log_pages_newest_first_without_gaps(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    for n in range(4):
        _vnet(arm, f"v{n}")
        served.advance(1)
    everything = _all_events(served)
    assert len(everything) >= 10
    served.core.page_size = 3
    pages = _events(arm, {"$filter": SINCE})
    assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1)
    assert [e for page in pages for e in page] == everything
    # A filtered query pages over its matches only: one group's, by the group's own index.
    other = f"{SUB}/resourceGroups/rg2"
    assert arm.put(other, {"location": "eastus"}).status_code == 201
    mine = _events(arm, {"$filter": f"{SINCE} and resourceGroupName eq 'RG1'"})
    assert [e for page in mine for e in page] == everything
    [theirs] = _events(arm, {"$filter": f"{SINCE} and resourceGroupName eq 'rg2'"})
    assert len(theirs) == 2
    by_uri = _events(arm, {"$filter": f"{SINCE} and resourceUri eq '{VNETS}/v1'"})
    events = {
        e["eventDataId"]: e for e in served.core.audit.log.query(SUB.rsplit("/", 1)[1], SINCE)
    }
    found = [events[e] for page in by_uri for e in page]
    # Its request's start and acceptance, and its operation's end.
    assert [e["status"]["value"] for e in found] == ["Succeeded", "Accepted", "Started"]
    assert {e["resourceId"] for e in found} == {f"{VNETS}/v1"}


@pytest.mark.parametrize(
    "time_filter",
    [
        # az monitor activity-log list: unquoted, no zone (datetime.isoformat()).
        "eventTimestamp ge 2020-01-01T00:00:00.123456 and eventTimestamp le 2099-01-01T00:00:00",
        # Older az and scripts: unquoted with Z, the time clause after another one.
        "resourceProvider eq Microsoft.Network and eventTimestamp ge 2020-01-01T00:00:00Z",
        # str(datetime) in a script: a space for the T.
        "eventTimestamp ge 2020-01-01 00:00:00.5 and eventTimestamp le 2099-01-01 00:00:00",
        # PowerShell (Get-AzActivityLog): quoted round-trip format with 7 digits and an offset.
        "eventTimestamp ge '2020-01-01T00:00:00.0000000+00:00' and "
        "eventTimestamp le '2099-01-01T00:00:00.0000000Z' and resourceGroupName eq 'rg1'",
        # A date alone.
        "eventTimestamp ge 2020-01-01 and resourceUri eq '" + VNETS + "/v0'",
    ],
)
def test_activity_log_filters_as_clients_build_them(
    arm: Arm, served: EmulatorHandle, group: str, time_filter: str
) -> None:
    _vnet(arm, "v0")
    [page] = _events(arm, {"$filter": time_filter})
    assert len(page) >= 2


def test_activity_log_through_the_sdk_item_paged(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    from azure.mgmt.monitor import MonitorManagementClient

    for n in range(3):
        _vnet(arm, f"v{n}")
    sub = SUB.rsplit("/", 1)[1]
    everything = _all_events(served)
    served.core.page_size = 2
    client = served.client(MonitorManagementClient, subscription_id=sub)
    paged = client.activity_logs.list(filter=f"{SINCE} and resourceGroupName eq 'rg1'")
    pages = [[e.event_data_id for e in page] for page in paged.by_page()]
    assert len(pages) == (len(everything) + 1) // 2
    assert [e for page in pages for e in page] == everything
    selected = client.activity_logs.list(filter=SINCE, select="eventDataId,status")
    assert [e.event_data_id for e in selected] == everything


def test_the_command_line_and_config_set_page_size_and_retention(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text(
        "timeScale: 0\npageSize: 5\noperationRetention: 0\nresources:\n"
        + "".join(
            f"  - {{id: {SUB}/resourceGroups/g{n}, body: {{location: eastus}}}}\n" for n in range(3)
        )
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "emulator",
            "--port",
            "0",
            "--config",
            str(config),
            "--page-size",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        arm = Arm(url)
        try:
            # --page-size wins over the config's pageSize.
            assert _follow(arm, f"{SUB}/resourcegroups", {}) == [["g0", "g1"], ["g2"]]
            # With no retention, a settled operation's status URL is gone at once.
            accepted = arm.delete(f"{SUB}/resourceGroups/g2")
            assert accepted.status_code == 202, accepted.text
            assert arm.get(f"{SUB}/resourceGroups/g2").status_code == 404
            gone = arm.get(accepted.headers["Location"])
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "OperationNotFound"
        finally:
            arm.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        ((), "pageSize: 0\n", "pageSize must be an integer >= 1"),
        ((), "operationRetention: -1\n", "operationRetention must be a number >= 0"),
        ((), "maxSettledOperations: many\n", "maxSettledOperations must be an integer >= 0"),
        (("--page-size", "0"), "", "--page-size must be >= 1"),
        (("--operation-retention", "-5"), "", "--operation-retention must be >= 0"),
    ],
)
def test_bad_page_size_and_retention_are_refused(
    tmp_path: Path, args: tuple[str, ...], text: str, message: str
) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text(text or "{}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "emulator",
            "--port",
            "0",
            "--config",
            str(config),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_skip_token_from_another_list_is_a_400(arm: Arm, group: str) -> None:
    for n in range(3):
        _vnet(arm, f"v{n}")
    lock = {"properties": {"level": "CanNotDelete"}}
    for name in ("a", "b"):
        path = f"{RG}/providers/Microsoft.Authorization/locks/{name}"
        assert arm.put(path, lock).status_code in (200, 201)
    locks = arm.get(f"{RG}/providers/Microsoft.Authorization/locks", params={"$top": "1"})
    token = parse_qs(urlsplit(locks.json()["nextLink"]).query)["$skiptoken"][0]
    response = arm.get(f"{RG}/resources", params={"$skiptoken": token})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidSkipToken"
