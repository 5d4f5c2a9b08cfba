"""The cloud metadata document: what ``GET {arm}/metadata/endpoints`` answers.

``az cloud register --endpoint-resource-manager URL``, Terraform's ``metadata_host`` (the
go-azure-sdk ``environments`` package), azure-identity's broker code and the JS/.NET SDKs'
environment loaders read it to learn where to log in, which audience to ask a token for and
which DNS suffixes the cloud uses. Pure: no I/O, so the emulator (naming itself as both the
resource manager and the login endpoint) and the proxy (naming itself as the resource
manager, login at the real cloud) build it the same way.

ARM answers three shapes, by ``api-version``:

- ``2022-09-01`` (and any later date): one object, the current shape (``resourceManager``,
  ``authentication``, ``suffixes``, ``microsoftGraphResourceId``…). The go-azure-sdk behind
  Terraform's azurerm and azapi providers asks for this one.
- ``2019-05-01`` up to ``2022-08-31``: a JSON *list* of clouds in that shape, without the
  ``*ResourceId`` fields; a caller picks its cloud by ``name``. Older go-azure-sdk releases and
  azure-cli's ``ARM_CLOUD_METADATA_URL`` loader ask for this one.
- ``1.0``, ``2015-01-01`` up to ``2019-04-30``: the legacy object (``galleryEndpoint``,
  ``graphEndpoint``, ``portalEndpoint``, ``authentication``) that ``az cloud register
  --endpoint-resource-manager`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_SUFFIXES",
    "LIST_FORM_SINCE",
    "metadata_document",
    "metadata_response",
]

# The public cloud's DNS suffixes: services the emulator does not model keep their real names,
# so a client that builds a data-plane host from them gets a well-formed one.
DEFAULT_SUFFIXES: Mapping[str, str] = {
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

LIST_FORM_SINCE = "2019-05-01"
"""The first api-version answered with a list of clouds."""
_OBJECT_FORM_SINCE = "2022-09-01"
_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
# Fields the 2022-09-01 shape added; the list form predates them.
_RESOURCE_ID_FIELDS = (
    "microsoftGraphResourceId",
    "appInsightsResourceId",
    "appInsightsTelemetryChannelResourceId",
    "attestationResourceId",
    "synapseAnalyticsResourceId",
    "logAnalyticsResourceId",
    "ossrDbmsResourceId",
)


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
    """One cloud's metadata document, in ARM's current (``2022-09-01``) shape.

    - ``resourceManager``: the ARM base URL every management call goes to (``resource_manager``,
      with a trailing slash, as ARM writes it).
    - ``authentication.loginEndpoint``: the Entra ID authority host tokens come from (clients
      append ``/{tenant}/oauth2/v2.0/token``); ``authentication.audiences``: the token
      audiences the resource manager accepts, the first one being what ``az`` and MSAL ask
      for (``{audience}/.default``); ``authentication.tenant``: the tenant to log in to when
      the caller names none (``common``); ``authentication.identityProvider``: ``AAD`` (or
      ``ADFS`` for Azure Stack, which changes how clients build the authority).
    - ``name``: the cloud's name; Terraform matches it against its ``environment`` setting and
      ``az`` shows it.
    - ``portal``, ``gallery``, ``batch``, ``media``, ``sqlManagement``,
      ``activeDirectoryDataLake``, ``vmImageAliasDoc``: other services' endpoints; ``az`` keeps
      them in its cloud profile and ``az vm create --image ALIAS`` reads ``vmImageAliasDoc``.
    - ``graph`` and ``graphAudience``: the (AAD) Graph endpoint ``az ad`` commands use;
      ``microsoftGraphResourceId``: Microsoft Graph, which Terraform's go-azure-sdk requires
      to be present.
    - ``suffixes``: DNS suffixes of data-plane services (``storage``, ``keyVaultDns``…),
      overriding :data:`DEFAULT_SUFFIXES` key by key.
    - ``*ResourceId``: token audiences of other services (Log Analytics, Synapse…).
    """
    arm = _slash(resource_manager)
    login = login_endpoint.rstrip("/")
    return {
        "portal": "https://portal.azure.com",
        "authentication": {
            "loginEndpoint": login,
            "audiences": list(audiences),
            "tenant": tenant,
            "identityProvider": identity_provider,
        },
        "media": "https://rest.media.azure.net",
        "graphAudience": _slash(graph),
        "graph": _slash(graph),
        "name": name,
        "suffixes": {**DEFAULT_SUFFIXES, **(suffixes or {})},
        "batch": "https://batch.core.windows.net/",
        "resourceManager": arm,
        "vmImageAliasDoc": (
            "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/"
            "arm-compute/quickstart-templates/aliases.json"
        ),
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        "gallery": "https://gallery.azure.com/",
    }


def metadata_response(document: Mapping[str, Any], api_version: str) -> Any:
    """``document`` (from :func:`metadata_document`) in the shape ``api_version`` asks for:
    the object itself, a one-cloud list, or the legacy object (see the module docstring).
    An api-version that is not a date (``1.0``) gets the legacy object, as ARM does."""
    m = _DATE_RE.match(api_version.strip())
    version = m.group(1) if m else ""
    if version >= _OBJECT_FORM_SINCE:
        return dict(document)
    if version >= LIST_FORM_SINCE:
        return [{k: v for k, v in document.items() if k not in _RESOURCE_ID_FIELDS}]
    auth = document["authentication"]
    return {
        "galleryEndpoint": document["gallery"],
        "graphEndpoint": document["graph"],
        "portalEndpoint": _slash(document["portal"]),
        "authentication": {
            "loginEndpoint": _slash(auth["loginEndpoint"]),
            "audiences": list(auth["audiences"]),
        },
    }


def _slash(url: str) -> str:
    return url.rstrip("/") + "/"
