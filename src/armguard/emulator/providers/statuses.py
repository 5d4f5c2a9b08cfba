"""How the real APIs of types the emulator does not model answer a PUT, where that differs
from the generic answer (long-running, 201 on create, 200 on update).

The SDKs refuse any status their operation does not list (``Operation returned an invalid
status 'Created'``), so a generic type must answer with its own API's codes. Each entry comes
from the PUT operation's accepted status codes in the specs (as the generated Python SDKs list
them: azure-mgmt-compute 39, azure-mgmt-network 33, azure-mgmt-storage 25); a type the SDK
calls without a poller is synchronous here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STATUS_SETTINGS"]

_SYNC_200 = {"async_put": False, "put_create_status": 200, "put_update_status": 200}
_SYNC = {"async_put": False}
_ASYNC_202 = {"put_create_status": 202, "put_update_status": 202}
_ASYNC_200 = {"put_create_status": 200, "put_update_status": 200}
_ASYNC_201 = {"put_create_status": 201, "put_update_status": 201}


def _table(settings: Mapping[str, Any], types: str) -> dict[str, Mapping[str, Any]]:
    return {t.lower(): settings for t in types.split()}


STATUS_SETTINGS: dict[str, Mapping[str, Any]] = {
    # PUT answers 200 only, synchronously.
    **_table(
        _SYNC_200,
        "Microsoft.Compute/availabilitySets "
        "Microsoft.Storage/storageAccounts/managementPolicies "
        "Microsoft.Storage/storageAccounts/inventoryPolicies "
        "Microsoft.Storage/storageAccounts/objectReplicationPolicies "
        "Microsoft.Storage/storageAccounts/localUsers "
        "Microsoft.Storage/storageAccounts/queueServices/queues "
        "Microsoft.Storage/storageAccounts/tableServices/tables",
    ),
    # PUT answers 200 or 201, synchronously (no poller).
    **_table(
        _SYNC,
        "Microsoft.Compute/proximityPlacementGroups Microsoft.Compute/hostGroups "
        "Microsoft.Compute/restorePointCollections Microsoft.Compute/capacityReservationGroups "
        "Microsoft.Compute/sshPublicKeys "
        "Microsoft.Network/networkManagers Microsoft.Network/networkProfiles "
        "Microsoft.Network/networkWatchers Microsoft.Network/networkSecurityPerimeters "
        "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies "
        "Microsoft.Network/interconnectGroups "
        "Microsoft.Storage/storageAccounts/blobServices/containers "
        "Microsoft.Storage/storageAccounts/fileServices/shares",
    ),
    # Long-running, 200 or 202 (never 201).
    **_table(_ASYNC_202, "Microsoft.Compute/diskAccesses Microsoft.Compute/diskEncryptionSets"),
    # Long-running, 200 only.
    **_table(_ASYNC_200, "Microsoft.Network/expressRouteCrossConnections"),
    # Long-running, 201 only.
    **_table(
        _ASYNC_201,
        "Microsoft.Compute/restorePointCollections/restorePoints "
        "Microsoft.Network/networkWatchers/packetCaptures",
    ),
}
