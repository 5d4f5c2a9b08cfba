"""Resource providers: one module per resource-type family, looked up by resource type.

Type settings can be overridden per exact type (``Microsoft.Network/virtualNetworks``) or per
namespace (``Microsoft.Network/*``); exact types win.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from armguard.arm.ids import ResourceId
from armguard.emulator.idmemo import type_key
from armguard.emulator.providers.base import Provider
from armguard.emulator.providers.compute import (
    DiskProvider,
    VirtualMachineProvider,
    VmScaleSetProvider,
)
from armguard.emulator.providers.deployments import DeploymentProvider
from armguard.emulator.providers.images import IMAGE_TYPES, ImageCatalogProvider
from armguard.emulator.providers.locks import LockProvider
from armguard.emulator.providers.network import (
    NetworkInterfaceProvider,
    NetworkProvider,
    SubnetProvider,
    VirtualNetworkProvider,
)
from armguard.emulator.providers.resource_groups import ResourceGroupProvider, SubscriptionProvider
from armguard.emulator.providers.statuses import STATUS_SETTINGS
from armguard.emulator.providers.storage import StorageAccountProvider
from armguard.emulator.providers.tags import TagsProvider

__all__ = ["Registry"]

_BY_TYPE: dict[str, Callable[[], Provider]] = {
    "microsoft.resources/resourcegroups": ResourceGroupProvider,
    "microsoft.resources/subscriptions": SubscriptionProvider,
    "microsoft.authorization/locks": LockProvider,
    "microsoft.resources/tags": TagsProvider,
    "microsoft.resources/deployments": DeploymentProvider,
    "microsoft.network/virtualnetworks": VirtualNetworkProvider,
    "microsoft.network/virtualnetworks/subnets": SubnetProvider,
    "microsoft.network/networkinterfaces": NetworkInterfaceProvider,
    "microsoft.compute/virtualmachines": VirtualMachineProvider,
    "microsoft.compute/virtualmachinescalesets": VmScaleSetProvider,
    "microsoft.storage/storageaccounts": StorageAccountProvider,
    "microsoft.compute/disks": DiskProvider,
    "microsoft.compute/snapshots": DiskProvider,
    **dict.fromkeys(IMAGE_TYPES, ImageCatalogProvider),
}
_BY_NAMESPACE: dict[str, Callable[[], Provider]] = {
    "microsoft.network": NetworkProvider,
}


class Registry:
    def __init__(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        self._overrides = {k.lower(): dict(v) for k, v in overrides.items()}
        self._cache: dict[str, Provider] = {}
        self._lock = threading.Lock()
        # Validate every override now, so a bad config fails at start-up, not mid-request.
        for pattern in self._overrides:
            self._settings_for(pattern.rstrip("*").rstrip("/") or pattern, Provider())

    def for_id(self, rid: ResourceId) -> Provider:
        found = self._cache.get(type_key(rid))
        return found if found is not None else self.for_type(rid.type)

    def for_type(self, type_: str) -> Provider:
        key = type_.lower()
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                factory = _BY_TYPE.get(key) or _BY_NAMESPACE.get(key.split("/", 1)[0], Provider)
                found = factory()
                if key in STATUS_SETTINGS:
                    found.settings = found.settings.merged(STATUS_SETTINGS[key])
                found.settings = self._settings_for(key, found)
                self._cache[key] = found
            return found

    def _settings_for(self, key: str, provider: Provider) -> Any:
        settings = provider.settings
        namespace = key.split("/", 1)[0]
        for pattern in (f"{namespace}/*", key):
            if pattern in self._overrides:
                settings = settings.merged(self._overrides[pattern])
        return settings
