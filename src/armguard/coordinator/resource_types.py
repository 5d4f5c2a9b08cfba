"""Per-type knowledge armguard needs to write a resource type safely on real ARM.

For each type: a recent GA api-version (a job may override it), whether the type carries an
ETag (so writes can be conditional), whether PATCH exists, and how tags are written. The live
body is the final word on ETags: if a read returns one, the write uses it, whatever this table
says. Unknown types need an explicit ``api_version``: guessing one risks
``NoRegisteredProviderFound`` or, worse, a version with different semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from armguard.arm.ids import ResourceId

__all__ = [
    "TAGS_API_VERSION",
    "ApiVersionRequired",
    "TagsVia",
    "TypeInfo",
    "api_version_for",
    "type_info",
]

TAGS_API_VERSION = "2024-03-01"
"""Microsoft.Resources/tags at scope (``{scope}/providers/Microsoft.Resources/tags/default``)."""


class TagsVia(StrEnum):
    BODY = "body"  # in the resource body, guarded by If-Match
    TAGS_API = "tags_api"  # PATCH tags/default Merge/Delete: only the named keys change


@dataclass(frozen=True)
class TypeInfo:
    type: str
    api_version: str | None
    has_etag: bool
    has_patch: bool
    needs_instance_view: bool = False
    """Power state lives in the instance view, which a plain GET leaves out."""

    @property
    def tags_via(self) -> TagsVia:
        return TagsVia.BODY if self.has_etag else TagsVia.TAGS_API


class ApiVersionRequired(ValueError):
    def __init__(self, type_: str) -> None:
        super().__init__(
            f"armguard has no default api-version for '{type_}'; pass one with --api-version "
            "(or 'api_version' in the intent)"
        )
        self.type = type_


_NETWORK = "2024-05-01"
_COMPUTE = "2024-07-01"

_TYPES: dict[str, TypeInfo] = {
    t.type.lower(): t
    for t in (
        TypeInfo("Microsoft.Network/virtualNetworks", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/virtualNetworks/subnets", _NETWORK, True, False),
        TypeInfo("Microsoft.Network/virtualNetworks/virtualNetworkPeerings", _NETWORK, True, False),
        TypeInfo("Microsoft.Network/networkSecurityGroups", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/networkSecurityGroups/securityRules", _NETWORK, True, False),
        TypeInfo("Microsoft.Network/networkInterfaces", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/publicIPAddresses", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/routeTables", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/routeTables/routes", _NETWORK, True, False),
        TypeInfo("Microsoft.Network/loadBalancers", _NETWORK, True, True),
        TypeInfo("Microsoft.Network/natGateways", _NETWORK, True, True),
        TypeInfo("Microsoft.Compute/virtualMachines", _COMPUTE, True, True, True),
        TypeInfo("Microsoft.Compute/virtualMachineScaleSets", _COMPUTE, True, True),
        TypeInfo("Microsoft.Compute/disks", "2024-03-02", False, True),
        TypeInfo("Microsoft.Storage/storageAccounts", "2023-05-01", False, True),
        TypeInfo("Microsoft.KeyVault/vaults", "2023-07-01", False, True),
        TypeInfo("Microsoft.Web/sites", "2023-12-01", False, True),
        TypeInfo("Microsoft.Web/serverfarms", "2023-12-01", False, True),
        TypeInfo("Microsoft.ContainerService/managedClusters", "2024-09-01", True, True),
        TypeInfo("Microsoft.Resources/resourceGroups", "2024-03-01", False, True),
        TypeInfo("Microsoft.Resources/tags", TAGS_API_VERSION, False, True),
        TypeInfo("Microsoft.Resources/deployments", "2024-03-01", False, False),
        TypeInfo("Microsoft.Authorization/locks", "2020-05-01", False, False),
    )
}


def type_info(rid: ResourceId) -> TypeInfo:
    """What armguard knows about the type, or a conservative default (no ETag, no PATCH)."""
    found = _TYPES.get(rid.type.lower())
    if found is not None:
        return found
    return TypeInfo(rid.type, None, False, False)


def api_version_for(rid: ResourceId, override: str | None = None) -> str:
    """The api-version to use for ``rid``; raises :class:`ApiVersionRequired` for unknown types."""
    if override:
        return override
    version = type_info(rid).api_version
    if version is None:
        raise ApiVersionRequired(rid.type)
    return version
