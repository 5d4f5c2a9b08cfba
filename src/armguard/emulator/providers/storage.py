"""``Microsoft.Storage/storageAccounts``: no ETag, create answers 202 and runs ~15 s,
synchronous PATCH and DELETE, and ``listKeys`` / ``regenerateKey`` actions, which count as
writes (a ReadOnly lock blocks ``listKeys``)."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.clock import isoformat
from armguard.emulator.model import Resource
from armguard.emulator.providers.base import ActionResult, Provider
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import Call

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["StorageAccountProvider"]

_NAME_RE = re.compile(r"^[a-z0-9]{3,24}$")
KEY_NAMES = ("key1", "key2")
PAIRED_REGIONS = {
    "eastus": "westus",
    "westus": "eastus",
    "eastus2": "centralus",
    "centralus": "eastus2",
    "westus2": "westcentralus",
    "westus3": "eastus",
    "northeurope": "westeurope",
    "westeurope": "northeurope",
    "uksouth": "ukwest",
    "ukwest": "uksouth",
    "eastasia": "southeastasia",
    "southeastasia": "eastasia",
    "japaneast": "japanwest",
    "japanwest": "japaneast",
    "australiaeast": "australiasoutheast",
}
"""Azure's documented region pairs (the secondary of a geo-redundant account)."""


def _endpoints(name: str, routing: Any) -> dict[str, Any]:
    """The account's endpoints; with a routing preference that publishes them, the
    Microsoft- and internet-routing endpoints too."""
    services = ("web", "dfs", "blob", "file", "queue", "table")
    out: dict[str, Any] = {s: f"https://{name}.{s}.core.windows.net/" for s in services}
    if isinstance(routing, dict):
        if routing.get("publishMicrosoftEndpoints"):
            out["microsoftEndpoints"] = {
                s: f"https://{name}-microsoftrouting.{s}.core.windows.net/" for s in services
            }
        if routing.get("publishInternetEndpoints"):
            out["internetEndpoints"] = {
                s: f"https://{name}-internetrouting.{s}.core.windows.net/"
                for s in ("web", "dfs", "blob", "file")
            }
    return out


class StorageAccountProvider(Provider):
    settings = TypeSettings(
        conflict="storage",
        async_patch=False,
        async_delete=False,
        put_create_status=202,
        durations={"create": 15.0, "update": 10.0, "default": 10.0},
        op_namespace="Microsoft.Storage",
    )
    location_required = True

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: dict[str, Any],
        method: str,
        prepared: object | None = None,
    ) -> dict[str, Any]:
        if not _NAME_RE.match(rid.name):
            raise ArmError(
                400,
                "AccountNameInvalid",
                f"{rid.name} is not a valid storage account name. Storage account name must be "
                "between 3 and 24 characters in length and use numbers and lower-case letters "
                "only.",
            )
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        props = new["properties"]
        props.setdefault("primaryEndpoints", _endpoints(rid.name, props.get("routingPreference")))
        sku = new.get("sku")
        if isinstance(sku, dict) and isinstance(sku.get("name"), str):
            sku.setdefault("tier", "Premium" if sku["name"].startswith("Premium") else "Standard")
        location = str(new.get("location") or "")
        props.setdefault("primaryLocation", location)
        props.setdefault("statusOfPrimary", "available")
        created = existing.properties.get("creationTime") if existing else None
        props["creationTime"] = created or isoformat(core.now())
        props.setdefault(
            "keyCreationTime", {"key1": props["creationTime"], "key2": props["creationTime"]}
        )
        props.setdefault("supportsHttpsTrafficOnly", True)
        props.setdefault("minimumTlsVersion", "TLS1_2")
        props.setdefault("allowBlobPublicAccess", False)
        props.setdefault(
            "encryption",
            {
                "keySource": "Microsoft.Storage",
                "services": {
                    "blob": {"enabled": True, "keyType": "Account"},
                    "file": {"enabled": True, "keyType": "Account"},
                },
            },
        )
        if str(new.get("kind", "StorageV2")) in ("StorageV2", "BlobStorage"):
            props.setdefault("accessTier", "Hot")
        if isinstance(sku, dict) and "grs" in str(sku.get("name", "")).lower():
            # Geo-redundant accounts replicate to the region's pair.
            props.setdefault("secondaryLocation", PAIRED_REGIONS.get(location.lower(), "westus"))
            props.setdefault("statusOfSecondary", "available")
        return new

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        for name in KEY_NAMES:
            res.internal.setdefault(name, self._new_key(core))

    @staticmethod
    def _new_key(core: Emulator) -> str:
        return base64.b64encode(core.random_bytes(64)).decode()

    def _keys(self, res: Resource) -> dict[str, Any]:
        return {
            "keys": [
                {"keyName": name, "value": res.internal.get(name, ""), "permissions": "FULL"}
                for name in KEY_NAMES
            ]
        }

    def action(
        self, core: Emulator, call: Call, res: Resource, name: str, body: Any
    ) -> ActionResult:
        action = name.lower()
        if action == "listkeys":
            return ActionResult(body=self._keys(res))
        if action == "regeneratekey":
            key = body.get("keyName") if isinstance(body, dict) else None
            if key not in KEY_NAMES:
                raise ArmError(
                    400,
                    "InvalidRequestContent",
                    'regenerateKey needs {"keyName": "key1"} or {"keyName": "key2"}.',
                )
            res.internal[str(key)] = self._new_key(core)
            return ActionResult(body=self._keys(res))
        return super().action(core, call, res, name, body)
