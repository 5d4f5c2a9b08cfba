"""What ARM knows before any resource provider runs: the registered namespaces, and the
api-versions of the resource types the emulator models.

Real ARM refuses a request to a namespace no provider registered (``InvalidResourceNamespace``)
and an api-version the type's provider never shipped (``InvalidApiVersionParameter`` for the
types ARM owns itself, ``NoRegisteredProviderFound`` for a provider's types), naming the
versions it does accept. The version lists are the ``stable`` (and listed preview) folders of
azure-rest-api-specs for each type. SDKs ship new defaults faster than any list here can
follow, so a version later than the newest one listed is accepted as a release this catalog
has not caught up with; an unlisted version inside the listed range is refused.
"""

from __future__ import annotations

import re

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId

__all__ = [
    "LOCATIONS",
    "NAMESPACES",
    "check_api_version_for",
    "check_location",
    "check_namespace",
    "known_namespace",
    "newest_version",
    "supported_versions",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Provider namespaces registered in public Azure (``az provider list``), lower-cased.
NAMESPACES: frozenset[str] = frozenset(
    n.lower()
    for n in _words(
        "Microsoft.AAD Microsoft.AadCustomSecurityAttributesDiagnosticSettings Microsoft.Addons "
        "Microsoft.AlertsManagement Microsoft.AnalysisServices Microsoft.ApiCenter "
        "Microsoft.ApiManagement Microsoft.App Microsoft.AppConfiguration Microsoft.AppPlatform "
        "Microsoft.Attestation Microsoft.Authorization Microsoft.Automation Microsoft.AVS "
        "Microsoft.AzureActiveDirectory Microsoft.AzureArcData Microsoft.AzureStackHCI "
        "Microsoft.Batch Microsoft.Billing Microsoft.Blueprint Microsoft.BotService "
        "Microsoft.Cache Microsoft.Capacity Microsoft.Cdn Microsoft.CertificateRegistration "
        "Microsoft.ChangeAnalysis Microsoft.Chaos Microsoft.ClassicCompute "
        "Microsoft.ClassicNetwork Microsoft.ClassicStorage Microsoft.CognitiveServices "
        "Microsoft.Commerce Microsoft.Communication Microsoft.Compute Microsoft.Confluent "
        "Microsoft.ConnectedVMwarevSphere Microsoft.Consumption Microsoft.ContainerInstance "
        "Microsoft.ContainerRegistry Microsoft.ContainerService Microsoft.CostManagement "
        "Microsoft.CustomProviders Microsoft.CustomerLockbox Microsoft.DataBox "
        "Microsoft.DataBoxEdge Microsoft.Databricks Microsoft.DataFactory "
        "Microsoft.DataLakeAnalytics Microsoft.DataLakeStore Microsoft.DataMigration "
        "Microsoft.DataProtection Microsoft.DataShare Microsoft.DBforMariaDB "
        "Microsoft.DBforMySQL Microsoft.DBforPostgreSQL Microsoft.DesktopVirtualization "
        "Microsoft.DevCenter Microsoft.Devices Microsoft.DeviceUpdate Microsoft.DevTestLab "
        "Microsoft.DigitalTwins Microsoft.DocumentDB Microsoft.DomainRegistration "
        "Microsoft.Elastic Microsoft.EventGrid Microsoft.EventHub Microsoft.ExtendedLocation "
        "Microsoft.Features Microsoft.GuestConfiguration Microsoft.HDInsight "
        "Microsoft.HealthcareApis Microsoft.HybridCompute Microsoft.HybridConnectivity "
        "Microsoft.HybridNetwork Microsoft.ImportExport Microsoft.Insights Microsoft.IoTCentral "
        "Microsoft.KeyVault Microsoft.Kubernetes Microsoft.KubernetesConfiguration "
        "Microsoft.Kusto Microsoft.LabServices Microsoft.LoadTestService Microsoft.Logic "
        "Microsoft.MachineLearningServices Microsoft.Maintenance Microsoft.ManagedIdentity "
        "Microsoft.ManagedServices Microsoft.Management Microsoft.Maps Microsoft.Marketplace "
        "Microsoft.MarketplaceOrdering Microsoft.Media Microsoft.Migrate Microsoft.Monitor "
        "Microsoft.NetApp Microsoft.Network Microsoft.NetworkCloud Microsoft.NetworkFunction "
        "Microsoft.NotificationHubs Microsoft.OperationalInsights "
        "Microsoft.OperationsManagement Microsoft.Peering Microsoft.PolicyInsights "
        "Microsoft.Portal Microsoft.PowerBI Microsoft.PowerBIDedicated Microsoft.Purview "
        "Microsoft.Quota Microsoft.RecoveryServices Microsoft.Relay Microsoft.ResourceGraph "
        "Microsoft.ResourceHealth Microsoft.Resources Microsoft.SaaS Microsoft.Scheduler "
        "Microsoft.Search Microsoft.Security Microsoft.SecurityInsights Microsoft.SerialConsole "
        "Microsoft.ServiceBus Microsoft.ServiceFabric Microsoft.ServiceLinker "
        "Microsoft.SignalRService Microsoft.Solutions Microsoft.Sql Microsoft.SqlVirtualMachine "
        "Microsoft.Storage Microsoft.StorageCache Microsoft.StorageMover Microsoft.StorageSync "
        "Microsoft.StreamAnalytics Microsoft.Subscription Microsoft.Support Microsoft.Synapse "
        "Microsoft.TimeSeriesInsights Microsoft.VirtualMachineImages Microsoft.VSOnline "
        "Microsoft.Web Microsoft.WorkloadMonitor Microsoft.Workloads microsoft.aadiam "
        "Dynatrace.Observability NewRelic.Observability Datadog.Monitoring"
    )
)

LOCATIONS: tuple[str, ...] = (
    "eastus",
    "eastus2",
    "westus",
    "westus2",
    "westus3",
    "centralus",
    "northcentralus",
    "southcentralus",
    "westcentralus",
    "canadacentral",
    "brazilsouth",
    "northeurope",
    "westeurope",
    "uksouth",
    "ukwest",
    "francecentral",
    "germanywestcentral",
    "swedencentral",
    "switzerlandnorth",
    "norwayeast",
    "eastasia",
    "southeastasia",
    "japaneast",
    "japanwest",
    "koreacentral",
    "centralindia",
    "australiaeast",
    "southafricanorth",
    "uaenorth",
)
"""The regions the emulator names in its refusals. It accepts any location shaped like a region
name, as tests name regions it does not list; see :func:`check_location`."""

# A region's name (``eastus``) or display name (``East US 2``): letters, digits and single
# spaces, the longest real one under 30 characters.
_REGION_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_REGION_NAME_MAX = 64


def check_location(rid: ResourceId, location: str) -> None:
    """Refuse a location no region could have (400), as ARM refuses any region it does not
    know: the operation URLs of a write carry its location, and a control character or 100 KB
    of text there is nothing a client could poll."""
    if len(location) <= _REGION_NAME_MAX and _REGION_NAME.fullmatch(location):
        return
    regions = ",".join(LOCATIONS)
    if rid.is_resource_group:
        raise ArmError(
            400,
            "LocationNotAvailableForResourceGroup",
            f"The provided location '{location}' is not available for resource group. List of "
            f"available regions is '{regions}'.",
        )
    raise ArmError(
        400,
        "LocationNotAvailableForResourceType",
        f"The provided location '{location}' is not available for resource type "
        f"'{rid.type}'. List of available regions for the resource type is '{regions}'.",
    )


_RESOURCES = (
    "2015-11-01 2016-02-01 2016-07-01 2016-09-01 2017-05-10 2018-02-01 2018-05-01 2019-03-01 "
    "2019-05-01 2019-05-10 2019-07-01 2019-08-01 2019-10-01 2020-06-01 2020-08-01 2020-10-01 "
    "2021-01-01 2021-04-01 2022-09-01 2023-07-01 2024-03-01 2024-07-01 2024-11-01 2025-01-01 "
    "2025-03-01 2025-04-01"
)
_NETWORK = (
    "2015-06-15 2016-03-30 2016-06-01 2016-09-01 2016-12-01 2017-03-01 2017-06-01 2017-08-01 "
    "2017-09-01 2017-10-01 2017-11-01 2018-01-01 2018-02-01 2018-04-01 2018-06-01 2018-07-01 "
    "2018-08-01 2018-10-01 2018-11-01 2018-12-01 2019-02-01 2019-04-01 2019-06-01 2019-07-01 "
    "2019-08-01 2019-09-01 2019-11-01 2019-12-01 2020-03-01 2020-04-01 2020-05-01 2020-06-01 "
    "2020-07-01 2020-08-01 2020-11-01 2021-02-01 2021-03-01 2021-05-01 2021-08-01 2022-01-01 "
    "2022-05-01 2022-07-01 2022-09-01 2022-11-01 2023-02-01 2023-04-01 2023-05-01 2023-06-01 "
    "2023-09-01 2023-11-01 2024-01-01 2024-03-01 2024-05-01 2024-07-01 2024-10-01 2025-01-01 "
    "2025-03-01 2025-05-01"
)
_COMPUTE = (
    "2015-06-15 2016-03-30 2016-04-30-preview 2017-03-30 2017-12-01 2018-04-01 2018-06-01 "
    "2018-10-01 2019-03-01 2019-07-01 2019-12-01 2020-06-01 2020-12-01 2021-03-01 2021-04-01 "
    "2021-07-01 2021-11-01 2022-03-01 2022-08-01 2022-11-01 2023-03-01 2023-07-01 2023-09-01 "
    "2024-03-01 2024-07-01 2024-11-01 2025-04-01"
)
_DISKS = (
    "2016-04-30-preview 2017-03-30 2018-04-01 2018-06-01 2018-09-30 2019-03-01 2019-07-01 "
    "2019-11-01 2020-05-01 2020-06-30 2020-09-30 2020-12-01 2021-04-01 2021-08-01 2021-12-01 "
    "2022-03-02 2022-07-02 2023-01-02 2023-04-02 2023-10-02 2024-03-02 2025-01-02"
)
_STORAGE = (
    "2015-06-15 2016-01-01 2016-05-01 2016-12-01 2017-06-01 2017-10-01 2018-02-01 2018-07-01 "
    "2018-11-01 2019-04-01 2019-06-01 2020-08-01-preview 2021-01-01 2021-02-01 2021-04-01 "
    "2021-06-01 2021-08-01 2021-09-01 2022-05-01 2022-09-01 2023-01-01 2023-04-01 2023-05-01 "
    "2024-01-01 2025-01-01 2025-06-01"
)
_LOCKS = "2015-01-01 2016-09-01 2020-05-01"

_VERSIONS: dict[str, tuple[str, ...]] = {
    "microsoft.resources/resourcegroups": _words(_RESOURCES),
    "microsoft.resources/deployments": _words(_RESOURCES),
    "microsoft.resources/tags": tuple(v for v in _words(_RESOURCES) if v >= "2019-10-01"),
    "microsoft.authorization/locks": _words(_LOCKS),
    "microsoft.compute/virtualmachines": _words(_COMPUTE),
    "microsoft.compute/virtualmachinescalesets": _words(_COMPUTE),
    "microsoft.compute/disks": _words(_DISKS),
    "microsoft.storage/storageaccounts": _words(_STORAGE),
}
for _type in (
    "virtualnetworks",
    "virtualnetworks/subnets",
    "networkinterfaces",
    "networksecuritygroups",
    "networksecuritygroups/securityrules",
    "publicipaddresses",
    "routetables",
    "routetables/routes",
):
    _VERSIONS[f"microsoft.network/{_type}"] = _words(_NETWORK)

# Types whose api-version ARM itself checks (it serves them); the rest are a provider's.
_ARM_OWNED = ("microsoft.resources/", "microsoft.authorization/locks")


def known_namespace(namespace: str) -> bool:
    return namespace.lower() in NAMESPACES


def check_namespace(namespace: str) -> None:
    """400 ``InvalidResourceNamespace`` for a provider namespace ARM has never registered."""
    if not known_namespace(namespace):
        raise ArmError(
            400, "InvalidResourceNamespace", f"The resource namespace '{namespace}' is invalid."
        )


def supported_versions(type_: str) -> tuple[str, ...] | None:
    """The type's api-versions, oldest first, or None when the emulator does not list them."""
    return _VERSIONS.get(type_.lower())


def newest_version(type_: str, default: str = "2024-01-01") -> str:
    """The version a client built today would send for the type (``default`` if unlisted)."""
    versions = supported_versions(type_)
    return versions[-1] if versions else default


def check_api_version_for(type_: str, version: str, location: str | None = None) -> None:
    """Refuse a (well-formed) api-version the type's real API does not serve."""
    versions = supported_versions(type_)
    if versions is None:
        return
    wanted = version.lower()
    if wanted in versions or wanted[:10] > versions[-1][:10]:
        return
    listed = ", ".join(reversed(versions))
    if type_.lower().startswith(_ARM_OWNED):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{listed}'.",
        )
    short_type = type_.split("/", 1)[1] if "/" in type_ else type_
    raise ArmError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{(location or '').lower()}' and "
        f"API version '{version}' for type '{short_type}'. The supported api-versions are "
        f"'{listed}'. The supported locations are '{', '.join(LOCATIONS)}'.",
    )
