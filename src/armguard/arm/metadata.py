"""The cloud metadata document (``GET /metadata/endpoints``) that ``az cloud register
--endpoint-resource-manager`` and Terraform's ``metadata_host`` read to learn a cloud's
endpoints. A pure builder, so the emulator and the proxy can each name themselves as the
resource manager while pointing login where tokens really come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PUBLIC_SUFFIXES", "metadata_document"]

PUBLIC_SUFFIXES: Mapping[str, str] = {
    "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
    "acrLoginServer": "azurecr.io",
    "sqlServerHostname": "database.windows.net",
    "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
    "keyVaultDns": "vault.azure.net",
    "storage": "core.windows.net",
    "azureFrontDoorEndpointSuffix": "azurefd.net",
    "storageSyncEndpointSuffix": "afs.azure.net",
    "mhsmDns": "managedhsm.azure.net",
    "mysqlServerEndpoint": "mysql.database.azure.com",
    "postgresqlServerEndpoint": "postgres.database.azure.com",
    "mariadbServerEndpoint": "mariadb.database.azure.com",
    "synapseAnalytics": "dev.azuresynapse.net",
    "attestationEndpoint": "attest.azure.net",
}


def metadata_document(
    resource_manager: str,
    *,
    login_endpoint: str,
    audiences: Sequence[str],
    tenant: str = "common",
    identity_provider: str = "AAD",
    name: str = "AzureCloud",
    graph: str = "https://graph.windows.net/",
    suffixes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One cloud's entry. ``resourceManager`` is where clients send ARM calls;
    ``authentication`` is where they get tokens (``loginEndpoint``, the ``audiences`` a token
    for ARM may carry, the default ``tenant``); ``suffixes`` are data-plane DNS suffixes."""
    rm = resource_manager.rstrip("/") + "/"
    return {
        "portal": "https://portal.azure.com",
        "authentication": {
            "loginEndpoint": login_endpoint.rstrip("/") + "/",
            "audiences": list(audiences),
            "tenant": tenant,
            "identityProvider": identity_provider,
        },
        "media": "https://rest.media.azure.net",
        "graphAudience": graph,
        "graph": graph,
        "name": name,
        "suffixes": dict(suffixes if suffixes is not None else PUBLIC_SUFFIXES),
        "batch": "https://batch.core.windows.net/",
        "resourceManager": rm,
        "vmImageAliasDoc": (
            "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/"
            "quickstart-templates/aliases.json"
        ),
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "gallery": "https://gallery.azure.com/",
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
    }
