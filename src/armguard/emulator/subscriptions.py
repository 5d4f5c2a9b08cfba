"""The subscription-level API tools call before anything else.

``az login`` lists ``/subscriptions`` (and ``/tenants``) to pick an account; ``az resource``
reads ``/subscriptions/{s}/providers/{ns}`` to choose an api-version; Terraform's azurerm
lists ``/subscriptions/{s}/providers`` and registers what is missing; portals and SDKs list
``/subscriptions/{s}/locations``. This module answers them from what the emulator models:

- subscriptions: :data:`DEFAULT_SUBSCRIPTION`, plus every subscription that holds a
  resource (the emulator creates any subscription on first use); their ``tenantId`` is the
  caller's (the token's ``tid``), so a login to any tenant sees its subscriptions;
- providers: the namespaces and types the emulator types (:data:`CATALOG`), plus any other
  type it stores (generic tracked resources), each with ``apiVersions`` newest first and
  every emulated region; every namespace starts ``Registered``, and ``register`` /
  ``unregister`` change that per subscription (nothing else depends on it: writes are never
  refused for registration);
- locations: :data:`LOCATIONS`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.identity import DEFAULT_TENANT
from armguard.emulator.refusals import method_not_allowed
from armguard.emulator.request import ArmRequest, ArmResponse
from armguard.emulator.versions import check_api_version

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = [
    "CATALOG",
    "DEFAULT_SUBSCRIPTION",
    "LOCATIONS",
    "SubscriptionApi",
    "is_subscription_api_path",
]

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
"""Listed even before anything is created in it, so a fresh login finds a subscription."""

# (name, display name, geography group, latitude, longitude, physical location, pair)
_REGIONS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("eastus", "East US", "US", "37.3719", "-79.8164", "Virginia", "westus"),
    ("eastus2", "East US 2", "US", "36.6681", "-78.3889", "Virginia", "centralus"),
    ("westus", "West US", "US", "37.783", "-122.417", "California", "eastus"),
    ("westus2", "West US 2", "US", "47.233", "-119.852", "Washington", "westcentralus"),
    ("westus3", "West US 3", "US", "33.448376", "-112.074036", "Phoenix", "eastus"),
    ("centralus", "Central US", "US", "41.5908", "-93.6208", "Iowa", "eastus2"),
    ("westcentralus", "West Central US", "US", "40.890", "-110.234", "Wyoming", "westus2"),
    ("northeurope", "North Europe", "Europe", "53.3478", "-6.2597", "Ireland", "westeurope"),
    ("westeurope", "West Europe", "Europe", "52.3667", "4.9", "Netherlands", "northeurope"),
    ("uksouth", "UK South", "UK", "50.941", "-0.799", "London", "ukwest"),
    ("ukwest", "UK West", "UK", "53.427", "-3.084", "Cardiff", "uksouth"),
    ("swedencentral", "Sweden Central", "Europe", "60.67488", "17.14127", "Gävle", ""),
    ("southeastasia", "Southeast Asia", "Asia Pacific", "1.283", "103.833", "Singapore", ""),
    ("japaneast", "Japan East", "Asia Pacific", "35.68", "139.77", "Tokyo, Saitama", ""),
    (
        "australiaeast",
        "Australia East",
        "Asia Pacific",
        "-33.86",
        "151.2094",
        "New South Wales",
        "",
    ),
)
LOCATIONS: tuple[str, ...] = tuple(r[0] for r in _REGIONS)
_DISPLAY = {r[0]: r[1] for r in _REGIONS}

_RESOURCES_VERSIONS = ("2026-06-01", "2025-04-01", "2024-11-01", "2024-03-01", "2022-09-01")
_NETWORK_VERSIONS = ("2026-03-01", "2025-05-01", "2024-07-01", "2024-05-01", "2023-11-01")
_COMPUTE_VERSIONS = ("2026-04-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01")
_DISK_VERSIONS = ("2025-01-02", "2024-03-02", "2023-10-02", "2023-04-02")
_STORAGE_VERSIONS = ("2026-09-01", "2025-06-01", "2025-01-01", "2024-01-01", "2023-05-01")
_LOCK_VERSIONS = ("2020-05-01", "2017-04-01", "2016-09-01")
_INSIGHTS_VERSIONS = ("2017-03-01-preview", "2015-04-01")
_GENERIC_VERSIONS = ("2024-01-01", "2023-01-01", "2022-01-01")


@dataclass(frozen=True)
class TypeEntry:
    name: str
    """The type below the namespace: ``virtualNetworks/subnets``."""
    api_versions: Sequence[str]
    """Newest first, as ARM lists them (``az`` takes the first one that is not a preview)."""
    regional: bool = True
    """Whether the type lives in a region (global ones list no locations)."""


CATALOG: Mapping[str, Sequence[TypeEntry]] = {
    "Microsoft.Resources": (
        TypeEntry("deployments", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("deployments/operations", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("resourceGroups", _RESOURCES_VERSIONS),
        TypeEntry("subscriptions", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("tags", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("providers", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("tenants", _RESOURCES_VERSIONS, regional=False),
        TypeEntry("locations", _RESOURCES_VERSIONS, regional=False),
    ),
    "Microsoft.Authorization": (TypeEntry("locks", _LOCK_VERSIONS, regional=False),),
    "Microsoft.Network": (
        TypeEntry("virtualNetworks", _NETWORK_VERSIONS),
        TypeEntry("virtualNetworks/subnets", _NETWORK_VERSIONS),
        TypeEntry("networkInterfaces", _NETWORK_VERSIONS),
        TypeEntry("networkSecurityGroups", _NETWORK_VERSIONS),
        TypeEntry("publicIPAddresses", _NETWORK_VERSIONS),
        TypeEntry("routeTables", _NETWORK_VERSIONS),
        TypeEntry("loadBalancers", _NETWORK_VERSIONS),
        TypeEntry("locations", _NETWORK_VERSIONS, regional=False),
        TypeEntry("locations/operations", _NETWORK_VERSIONS, regional=False),
        TypeEntry("locations/operationResults", _NETWORK_VERSIONS, regional=False),
    ),
    "Microsoft.Compute": (
        TypeEntry("virtualMachines", _COMPUTE_VERSIONS),
        TypeEntry("virtualMachineScaleSets", _COMPUTE_VERSIONS),
        TypeEntry("availabilitySets", _COMPUTE_VERSIONS),
        TypeEntry("disks", _DISK_VERSIONS),
        TypeEntry("locations", _COMPUTE_VERSIONS, regional=False),
        TypeEntry("locations/operations", _COMPUTE_VERSIONS, regional=False),
    ),
    "Microsoft.Storage": (
        TypeEntry("storageAccounts", _STORAGE_VERSIONS),
        TypeEntry("locations", _STORAGE_VERSIONS, regional=False),
        TypeEntry("locations/asyncoperations", _STORAGE_VERSIONS, regional=False),
    ),
    "Microsoft.Insights": (TypeEntry("eventtypes", _INSIGHTS_VERSIONS, regional=False),),
}

_NS = r"(?P<ns>[A-Za-z][A-Za-z0-9.]*)"
_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_LIST_SUBSCRIPTIONS_RE = re.compile(r"^/subscriptions/?$", re.I)
_TENANTS_RE = re.compile(r"^/tenants/?$", re.I)
_SUBSCRIPTION_RE = re.compile(rf"^{_SUB}/?$", re.I)
_LOCATIONS_RE = re.compile(rf"^{_SUB}/locations/?$", re.I)
_PROVIDERS_RE = re.compile(rf"^(?:{_SUB})?/providers/?$", re.I)
_PROVIDER_RE = re.compile(rf"^(?:{_SUB})?/providers/{_NS}/?$", re.I)
_TYPES_RE = re.compile(rf"^{_SUB}/providers/{_NS}/resourceTypes/?$", re.I)
_REGISTER_RE = re.compile(rf"^{_SUB}/providers/{_NS}/(?P<action>register|unregister)$", re.I)
_ROUTES = (
    _LIST_SUBSCRIPTIONS_RE,
    _TENANTS_RE,
    _SUBSCRIPTION_RE,
    _LOCATIONS_RE,
    _PROVIDERS_RE,
    _PROVIDER_RE,
    _TYPES_RE,
    _REGISTER_RE,
)


def is_subscription_api_path(method: str, path: str) -> bool:
    """Whether this module serves the request. Only reads of ``/subscriptions/{s}`` itself:
    the core keeps serving anything else addressed to a subscription."""
    if _SUBSCRIPTION_RE.match(path):
        return method.upper() in ("GET", "HEAD")
    return any(r.match(path) for r in _ROUTES)


class SubscriptionApi:
    """Serves :func:`is_subscription_api_path` paths for one emulator."""

    def __init__(self, core: Emulator) -> None:
        self.core = core
        self._registration: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def serve(self, req: ArmRequest) -> ArmResponse:
        method = req.method.upper()
        path = req.path
        check_api_version(req.query.get("api-version"))
        tenant = str(req.call.claims.get("tid") or DEFAULT_TENANT)
        if m := _REGISTER_RE.match(path):
            if method != "POST":
                raise method_not_allowed(method, path)
            return self._register(m.group("sub"), m.group("ns"), m.group("action").lower())
        if method not in ("GET", "HEAD"):
            raise method_not_allowed(method, path)
        if _LIST_SUBSCRIPTIONS_RE.match(path):
            return ArmResponse(
                200, {"value": [self._subscription(s, tenant) for s in self._subscriptions()]}
            )
        if _TENANTS_RE.match(path):
            return ArmResponse(200, {"value": [_tenant(tenant)]})
        if m := _SUBSCRIPTION_RE.match(path):
            return ArmResponse(200, self._subscription(m.group("sub"), tenant))
        if m := _LOCATIONS_RE.match(path):
            return ArmResponse(200, {"value": [_location(m.group("sub"), r) for r in _REGIONS]})
        if m := _PROVIDERS_RE.match(path):
            sub = m.group("sub")
            catalog = self._catalog()
            return ArmResponse(
                200, {"value": [self._provider(sub, ns, types) for ns, types in catalog.items()]}
            )
        if m := _TYPES_RE.match(path):
            provider = self._provider_named(m.group("sub"), m.group("ns"))
            return ArmResponse(200, {"value": provider["resourceTypes"]})
        m = _PROVIDER_RE.match(path)
        assert m is not None, path
        return ArmResponse(200, self._provider_named(m.group("sub"), m.group("ns")))

    # -- subscriptions and tenants ------------------------------------------------------

    def _subscriptions(self) -> list[str]:
        seen = {DEFAULT_SUBSCRIPTION.lower(): DEFAULT_SUBSCRIPTION}
        for res in self.core.store.all_resources():
            seen.setdefault(res.id.subscription.lower(), res.id.subscription)
        return sorted(seen.values(), key=str.lower)

    def _subscription(self, sub: str, tenant: str) -> dict[str, Any]:
        # The core keeps a subscription's own fields (display name, state, tags).
        stored = self.core.read(ResourceId.subscription_id(sub), {}).body
        own = stored if isinstance(stored, dict) else {}
        return {
            "id": f"/subscriptions/{sub}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "tags": own.get("tags") or {},
            "subscriptionId": sub,
            "tenantId": tenant,
            "displayName": own.get("displayName") or f"Emulated subscription {sub}",
            "state": own.get("state") or "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    # -- providers ----------------------------------------------------------------------

    def _catalog(self) -> dict[str, list[TypeEntry]]:
        """:data:`CATALOG` plus every other type the store holds, by namespace."""
        out = {ns: list(types) for ns, types in CATALOG.items()}
        known = {ns.lower(): ns for ns in out}
        listed = {(ns.lower(), t.name.lower()) for ns, types in out.items() for t in types}
        for res in self.core.store.all_resources():
            rid = res.id
            if not rid.levels:
                continue
            namespace, _, type_name = rid.type.partition("/")
            key = (namespace.lower(), type_name.lower())
            if key in listed:
                continue
            listed.add(key)
            ns = known.setdefault(namespace.lower(), namespace)
            out.setdefault(ns, []).append(TypeEntry(type_name, _GENERIC_VERSIONS))
        return out

    def _provider_named(self, sub: str | None, namespace: str) -> dict[str, Any]:
        for ns, types in self._catalog().items():
            if ns.lower() == namespace.lower():
                return self._provider(sub, ns, types)
        raise ArmError(
            404,
            "InvalidResourceNamespace",
            f"The resource namespace '{namespace}' is invalid.",
        )

    def _provider(self, sub: str | None, ns: str, types: Sequence[TypeEntry]) -> dict[str, Any]:
        regions = [_DISPLAY[name] for name in LOCATIONS]
        body: dict[str, Any] = {
            "id": f"/subscriptions/{sub}/providers/{ns}" if sub else f"/providers/{ns}",
            "namespace": ns,
            "resourceTypes": [
                {
                    "resourceType": t.name,
                    "locations": regions if t.regional else [],
                    "apiVersions": list(t.api_versions),
                    "defaultApiVersion": _default_version(t.api_versions),
                    "capabilities": "None",
                }
                for t in types
            ],
        }
        if sub is not None:
            body["registrationPolicy"] = "RegistrationRequired"
            body["registrationState"] = self._state(sub, ns)
        return body

    def _state(self, sub: str, ns: str) -> str:
        with self._lock:
            return self._registration.get((sub.lower(), ns.lower()), "Registered")

    def _register(self, sub: str, namespace: str, action: str) -> ArmResponse:
        body = self._provider_named(sub, namespace)
        state = "Registered" if action == "register" else "Unregistered"
        with self._lock:
            self._registration[(sub.lower(), namespace.lower())] = state
        body["registrationState"] = state
        return ArmResponse(200, body)


def _default_version(versions: Sequence[str]) -> str:
    return next((v for v in versions if "preview" not in v), versions[0])


def _tenant(tenant: str) -> dict[str, Any]:
    return {
        "id": f"/tenants/{tenant}",
        "tenantId": tenant,
        "countryCode": "US",
        "displayName": "armguard emulator",
        "domains": ["emulator.local"],
        "tenantCategory": "Home",
        "defaultDomain": "emulator.local",
        "tenantType": "AAD",
    }


def _location(sub: str, region: tuple[str, str, str, str, str, str, str]) -> dict[str, Any]:
    name, display, geography, lat, lon, place, pair = region
    metadata: dict[str, Any] = {
        "regionType": "Physical",
        "regionCategory": "Recommended",
        "geographyGroup": geography,
        "longitude": lon,
        "latitude": lat,
        "physicalLocation": place,
        "pairedRegion": [{"name": pair, "id": f"/subscriptions/{sub}/locations/{pair}"}]
        if pair
        else [],
    }
    return {
        "id": f"/subscriptions/{sub}/locations/{name}",
        "name": name,
        "type": "Region",
        "displayName": display,
        "regionalDisplayName": f"({geography}) {display}",
        "metadata": metadata,
    }
