"""An ARM-speaking httpx client for the served emulator: adds the api-version and a bearer
token naming the caller, and keeps the paths short. Also an emulator with one deliberate bug,
for the paths that only an emulator failure reaches."""

from __future__ import annotations

from typing import Any

import httpx

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.catalog import supported_versions
from armguard.emulator.core import Emulator
from armguard.emulator.providers.base import Provider
from armguard.emulator.request import Call
from armguard.emulator.routing import CollectionRoute, ListRoute, ResourceRoute, route
from armguard.testing import make_token

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg1"
NET = f"{RG}/providers/Microsoft.Network"
VNET = f"{NET}/virtualNetworks/vnet1"
COMPUTE = f"{RG}/providers/Microsoft.Compute"
VM = f"{COMPUTE}/virtualMachines/vm1"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/store1"
API = "2024-01-01"
"""The version for types the emulator lists none for; typed ones get their newest real one."""


def api_version_for(path: str) -> str:
    """The newest api-version the addressed type's real API serves, as a client would send."""
    try:
        target = route(path.split("?", 1)[0])
    except ArmError:
        return API
    type_: str | None = None
    if isinstance(target, ResourceRoute):
        type_ = target.id.type
    elif isinstance(target, CollectionRoute):
        type_ = target.parent.type
    elif isinstance(target, ListRoute):
        if target.groups:
            type_ = "Microsoft.Resources/resourceGroups"
        elif target.namespace and target.type:
            type_ = f"{target.namespace}/{target.type}"
    versions = supported_versions(type_) if type_ else None
    return versions[-1] if versions else API


class Arm:
    def __init__(self, base_url: str, caller: str = "alice@example.com") -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {make_token(caller)}"},
            timeout=30,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    def close(self) -> None:
        self.http.close()

    def _url(self, path: str, params: dict[str, str] | None) -> tuple[str, dict[str, str]]:
        query = {"api-version": api_version_for(path), **(params or {})}
        return path, query

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url, query = self._url(path, params)
        if path.startswith("http"):
            return self.http.request(method, path, headers=headers)
        return self.http.request(method, url, params=query, json=body, headers=headers)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, body, **kw)


def vnet_body(*subnets: str) -> dict[str, Any]:
    return {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [
                {"name": s, "properties": {"addressPrefix": f"10.0.{i}.0/24"}}
                for i, s in enumerate(subnets)
            ],
        },
    }


def vm_body(size: str = "Standard_D2s_v5") -> dict[str, Any]:
    return {"location": "eastus", "properties": {"hardwareProfile": {"vmSize": size}}}


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


class _BrokenProvider(Provider):
    """A provider with a bug: its lifecycle check raises something that is not an ArmError."""

    def validate(self, core: Emulator, call: Call, **kwargs: Any) -> None:
        raise RuntimeError("provider bug")


class EmulatorWithABug(Emulator):
    """The real emulator, except that one resource type's provider is broken: the only way to
    reach the unexpected-failure paths once every known bad input is refused in ARM's shape."""

    BROKEN_TYPE = "Microsoft.Cache/redis"
    _broken = _BrokenProvider()

    def provider_for(self, rid: ResourceId) -> Provider:
        if rid.type.lower() == self.BROKEN_TYPE.lower():
            return self._broken
        return super().provider_for(rid)
