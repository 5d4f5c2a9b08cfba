"""The proxy on the wire: absolute URLs point back at it, the cloud metadata names it,
reads pass through untouched and are never queued, tokens go only to the upstream."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_helpers import RG, SUB, ProxyFactory, a_group_and_vnet, network

from armguard.proxy.rewrite import Origins
from armguard.proxy.upstream import Upstream
from armguard.testing import EmulatorHandle, make_token

VNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet"
AUTH = {"Authorization": f"Bearer {make_token('user@example.com')}"}


def test_operation_urls_point_at_the_proxy(arm: EmulatorHandle, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy()
    network(proxy.base_url)  # warm nothing; the group comes next
    httpx.put(
        f"{proxy.base_url}/subscriptions/{SUB}/resourcegroups/{RG}?api-version=2024-03-01",
        json={"location": "eastus"},
        headers=AUTH,
    )
    r = httpx.put(
        f"{proxy.base_url}{VNET}?api-version=2024-05-01",
        json={
            "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        },
        headers=AUTH,
    )
    assert r.status_code == 201
    status_url = r.headers["azure-asyncoperation"]
    assert status_url.startswith(proxy.base_url + "/"), status_url
    assert arm.base_url not in r.text
    polled = httpx.get(status_url, headers=AUTH)
    assert polled.status_code == 200
    assert polled.json()["status"] in ("InProgress", "Succeeded")


def test_paging_links_are_rewritten_and_other_values_kept() -> None:
    o = Origins("https://management.azure.com", "http://127.0.0.1:9000")
    body = (
        b'{"value":[{"properties":{"audience":"https://management.azure.com/"}}],'
        b'"nextLink":"https://management.azure.com/subscriptions/s/resources?$skiptoken=x"}'
    )
    out = o.body_to_public(body)
    assert b'"nextLink":"http://127.0.0.1:9000/subscriptions/s/resources?$skiptoken=x"' in out
    assert b'"audience":"https://management.azure.com/"' in out
    assert o.to_public("https://management.azure.com:443/x") == "http://127.0.0.1:9000/x"
    assert (
        o.to_public("https://login.microsoftonline.com/x") == "https://login.microsoftonline.com/x"
    )


def test_the_proxy_never_sends_a_token_off_the_upstream() -> None:
    up = Upstream("https://management.azure.com")
    assert up.url("/subscriptions") == "https://management.azure.com/subscriptions"
    with pytest.raises(ValueError, match="not on the upstream"):
        up.url("https://attacker.example/steal")


@pytest.mark.parametrize(("version", "listed"), [("2022-09-01", False), ("2019-05-01", True)])
def test_the_metadata_document_names_the_proxy_and_keeps_the_upstreams_login(
    arm: EmulatorHandle, make_proxy: ProxyFactory, version: str, listed: bool
) -> None:
    proxy = make_proxy()
    r = httpx.get(f"{proxy.base_url}/metadata/endpoints?api-version={version}")
    assert r.status_code == 200
    doc = r.json()
    assert isinstance(doc, list) is listed
    entry = doc[0] if listed else doc
    assert entry["resourceManager"] == proxy.base_url + "/"
    upstream = httpx.get(f"{arm.base_url}/metadata/endpoints?api-version={version}").json()
    upstream_entry = upstream[0] if listed else upstream
    assert entry["authentication"] == upstream_entry["authentication"], (
        "tokens still come from where the upstream says"
    )


def test_without_an_upstream_document_the_clouds_login_is_named(
    make_proxy: ProxyFactory,
) -> None:
    proxy = make_proxy(upstream="http://127.0.0.1:9")
    doc = httpx.get(f"{proxy.base_url}/metadata/endpoints?api-version=2022-09-01").json()
    assert doc["resourceManager"] == proxy.base_url + "/"
    assert doc["authentication"]["loginEndpoint"].rstrip("/") == "https://login.microsoftonline.com"
    assert "https://management.azure.com/" in doc["authentication"]["audiences"]


def test_reads_are_not_queued_behind_a_held_write(
    arm: EmulatorHandle, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy()
    a_group_and_vnet(proxy.base_url)
    put = httpx.put(
        f"{proxy.base_url}{VNET}?api-version=2024-05-01",
        json={
            "location": "eastus",
            "tags": {"a": "1"},
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        },
        headers=AUTH,
    )
    assert put.status_code in (200, 201)
    # The write's operation still runs and its key is held; a read goes straight through.
    assert proxy.proxy.turns.waiting() == 0
    got = httpx.get(f"{proxy.base_url}{VNET}?api-version=2024-05-01", headers=AUTH, timeout=2)
    assert got.status_code == 200
    assert got.json()["tags"] == {"a": "1"}
    assert got.json()["etag"]
    assert got.headers.get_list("date") == [got.headers["date"]], "one Date: ARM's own"


def test_a_body_over_the_limit_is_refused_before_anything_is_sent(
    make_proxy: ProxyFactory,
) -> None:
    proxy = make_proxy(max_body_bytes=1024)
    r = httpx.put(
        f"{proxy.base_url}{VNET}?api-version=2024-05-01",
        content=b'{"location":"' + b"x" * 4096 + b'"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "RequestEntityTooLarge"


def test_malformed_bodies_are_for_arm_to_judge(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy()
    httpx.put(
        f"{proxy.base_url}/subscriptions/{SUB}/resourcegroups/{RG}?api-version=2024-03-01",
        json={"location": "eastus"},
        headers=AUTH,
    )
    r = httpx.put(
        f"{proxy.base_url}{VNET}?api-version=2024-05-01",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] != "InternalServerError"
