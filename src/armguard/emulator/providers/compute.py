"""``Microsoft.Compute``: quoted-integer ETags, preemption of model writes, VM power states.

A newer model write (PUT/PATCH) cancels the running one, whose status ends ``Canceled`` with
``OperationPreempted``; power actions that collide, or that the current power state forbids,
are refused at once with ``OperationNotAllowed``. Power actions move through a transitional
state (``starting``, ``stopping``, ``deallocating``) for the operation's duration. A resize of an
allocated VM is refused with ARM's "please deallocate" text; a deallocated VM resizes freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.clock import isoformat
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource
from armguard.emulator.providers.base import ActionResult, Provider, reference_ids
from armguard.emulator.providers.network import missing_reference
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import ArmResponse, Call
from armguard.emulator.shapes import BOOL, ENVELOPE, STRING, Arr, Obj, Shape

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["DiskProvider", "VirtualMachineProvider", "VmScaleSetProvider", "instance_view"]

JSON = dict[str, Any]

# action → (transitional power state, final power state)
POWER_ACTIONS: dict[str, tuple[str, str]] = {
    "start": ("starting", "running"),
    "powerOff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
    "restart": ("starting", "running"),
}
STATELESS_ACTIONS = ("redeploy", "reapply", "performMaintenance")
_ALLOCATED = ("running", "starting", "stopping", "stopped")
_ACTIONS_BY_LOWER = {a.lower(): a for a in (*POWER_ACTIONS, *STATELESS_ACTIONS)}


def _closed(type_name: str, members: str, **fields: Shape) -> Obj:
    return Obj(fields, closed=type_name, members=tuple(members.split()))


# Compute deserialises request bodies into its models and refuses members they do not have
# (400 InvalidRequestContent "Could not find member ..."). The member lists are those of the
# models in azure-rest-api-specs (Microsoft.Compute, 2024-11-01), the top level is quoted as
# 'ResourceDefinition' as compute's errors do.
_ENVELOPE_MEMBERS = "id name type etag systemData managedBy resources placement"
_MANAGED_DISK = _closed(
    "ManagedDiskParameters",
    "additionalDiskProperties diskEncryptionSet id securityProfile storageAccountType",
)
_DISK_MEMBERS = (
    "caching createOption deleteOption diffDiskSettings diskSizeGB encryptionSettings image "
    "name vhd writeAcceleratorEnabled storageFaultDomainAlignment"
)
_VM_PROPERTIES = _closed(
    "VirtualMachineProperties",
    "additionalCapabilities applicationProfile availabilitySet billingProfile "
    "capacityReservation evictionPolicy extensionsTimeBudget host hostGroup instanceView "
    "licenseType platformFaultDomain priority provisioningState proximityPlacementGroup "
    "scheduledEventsPolicy scheduledEventsProfile securityProfile timeCreated userData "
    "virtualMachineScaleSet vmId flexProfile resiliencyProfile interconnectBlockProfile",
    hardwareProfile=_closed("HardwareProfile", "vmSizeProperties processorMode", vmSize=STRING),
    networkProfile=_closed(
        "NetworkProfile",
        "networkApiVersion networkInterfaceConfigurations interconnectGroupProfile",
        networkInterfaces=Arr(
            _closed(
                "NetworkInterfaceReference",
                "",
                id=STRING,
                properties=_closed(
                    "NetworkInterfaceReferenceProperties", "deleteOption", primary=BOOL
                ),
            )
        ),
    ),
    storageProfile=_closed(
        "StorageProfile",
        "alignRegionalDisksToVMZone diskApiVersion diskControllerType",
        imageReference=_closed(
            "ImageReference",
            "communityGalleryImageId exactVersion id offer publisher sharedGalleryImageId sku "
            "version",
        ),
        osDisk=_closed("OSDisk", f"{_DISK_MEMBERS} osType", managedDisk=_MANAGED_DISK),
        dataDisks=Arr(
            _closed(
                "DataDisk",
                f"{_DISK_MEMBERS} lun detachOption diskIOPSReadWrite diskMBpsReadWrite "
                "sourceResource toBeDetached",
                managedDisk=_MANAGED_DISK,
            )
        ),
    ),
    osProfile=_closed(
        "OSProfile",
        "adminPassword adminUsername allowExtensionOperations computerName customData "
        "linuxConfiguration requireGuestProvisionSignal secrets windowsConfiguration",
    ),
    diagnosticsProfile=_closed("DiagnosticsProfile", "bootDiagnostics"),
)

POWER_DOCS = (
    " Please refer to https://aka.ms/vmpowerstates  to learn about different VM power states."
)


def _not_allowed(message: str) -> ArmError:
    return ArmError(409, "OperationNotAllowed", message)


def _vm_size(body: Mapping[str, Any]) -> str | None:
    hw = (body.get("properties") or {}).get("hardwareProfile") or {}
    size = hw.get("vmSize") if isinstance(hw, Mapping) else None
    return str(size) if size is not None else None


def _is_windows(props: Mapping[str, Any]) -> bool:
    storage = props.get("storageProfile")
    image = storage.get("imageReference") if isinstance(storage, Mapping) else None
    offer = str(image.get("offer") or "") if isinstance(image, Mapping) else ""
    os_disk = storage.get("osDisk") if isinstance(storage, Mapping) else None
    os_type = str(os_disk.get("osType") or "") if isinstance(os_disk, Mapping) else ""
    return "windows" in offer.lower() or os_type.lower() == "windows"


def _vm_defaults(props: JSON) -> None:
    """What compute fills into a VM it returns; the admin password is never returned."""
    windows = _is_windows(props)
    os_profile = props.get("osProfile")
    if isinstance(os_profile, dict):
        os_profile.pop("adminPassword", None)
        os_profile.setdefault("secrets", [])
        if windows:
            config = os_profile.setdefault("windowsConfiguration", {})
            if isinstance(config, dict):
                config.setdefault("provisionVMAgent", True)
                config.setdefault("enableAutomaticUpdates", True)
        else:
            config = os_profile.setdefault("linuxConfiguration", {})
            if isinstance(config, dict):
                config.setdefault("disablePasswordAuthentication", False)
                config.setdefault("provisionVMAgent", True)
    storage = props.get("storageProfile")
    if isinstance(storage, dict):
        storage.setdefault("dataDisks", [])
        os_disk = storage.get("osDisk")
        if isinstance(os_disk, dict):
            os_disk.setdefault("osType", "Windows" if windows else "Linux")


def _os_of(res: Resource) -> tuple[str, str, str]:
    """(osName, osVersion, hyperVGeneration) as the guest agent reports them, from the image."""
    storage = res.properties.get("storageProfile") or {}
    image = storage.get("imageReference") if isinstance(storage, Mapping) else None
    image = image if isinstance(image, Mapping) else {}
    offer = str(image.get("offer") or "").lower()
    sku = str(image.get("sku") or "").lower()
    generation = "V2" if "gen2" in sku or sku.endswith("-g2") else "V1"
    if "windows" in offer:
        return "Windows Server 2022 Datacenter", "Microsoft Windows NT 10.0.20348.0", generation
    if "debian" in offer:
        return "debian", "11.0", generation
    return "ubuntu", "22.04", generation


def _disk_names(res: Resource) -> list[str]:
    storage = res.properties.get("storageProfile") or {}
    if not isinstance(storage, Mapping):
        return [f"{res.id.name}_OsDisk_1"]
    os_disk = storage.get("osDisk")
    named = os_disk.get("name") if isinstance(os_disk, Mapping) else None
    names = [str(named or f"{res.id.name}_OsDisk_1")]
    for n, disk in enumerate(storage.get("dataDisks") or []):
        if isinstance(disk, Mapping):
            names.append(str(disk.get("name") or f"{res.id.name}_DataDisk_{n}"))
    return names


def instance_view(res: Resource) -> JSON:
    state = str(res.properties.get("provisioningState") or "Succeeded")
    power = str(res.internal.get("power", "running"))
    when = isoformat(res.changed_at)
    provisioned = {
        "code": f"ProvisioningState/{state.lower()}",
        "level": "Info" if state.lower() != "failed" else "Error",
        "displayStatus": f"Provisioning {state.lower()}",
        "time": when,
    }
    os_name, os_version, generation = _os_of(res)
    running = power == "running"
    view: JSON = {
        "platformUpdateDomain": 0,
        "platformFaultDomain": 0,
        "computerName": res.id.name,
        "osName": os_name,
        "osVersion": os_version,
        "hyperVGeneration": generation,
        "vmAgent": {
            "vmAgentVersion": "2.7.41491.1102" if running else "Unknown",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "GuestAgent is running and processing the extensions.",
                    "time": when,
                }
                if running
                else {
                    "code": "ProvisioningState/Unavailable",
                    "level": "Warning",
                    "displayStatus": "Not Ready",
                    "message": "VM status blob is found but not yet populated.",
                    "time": when,
                }
            ],
            "extensionHandlers": [],
        },
        "disks": [
            {"name": name, "statuses": [{**provisioned, "displayStatus": "Provisioning succeeded"}]}
            for name in _disk_names(res)
        ],
        "isVMInStandbyPool": False,
        "statuses": [
            provisioned,
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ],
    }
    boot = (res.properties.get("diagnosticsProfile") or {}).get("bootDiagnostics")
    if isinstance(boot, Mapping) and boot.get("enabled"):
        # Managed boot diagnostics (no storageUri) live in a platform account.
        base = str(boot.get("storageUri") or "https://bootdiag.blob.core.windows.net/").rstrip("/")
        folder = f"{base}/bootdiagnostics-{res.id.name}"
        view["bootDiagnostics"] = {
            "consoleScreenshotBlobUri": f"{folder}/{res.id.name}.screenshot.bmp",
            "serialConsoleLogBlobUri": f"{folder}/{res.id.name}.serialconsole.log",
        }
    return view


class VirtualMachineProvider(Provider):
    settings = TypeSettings(
        etag="int",
        conflict="compute",
        preempt=True,
        durations={
            "create": 45.0,
            "update": 30.0,
            "delete": 40.0,
            "start": 30.0,
            "powerOff": 25.0,
            "deallocate": 35.0,
            "restart": 30.0,
            "default": 30.0,
        },
        op_namespace="Microsoft.Compute",
    )
    location_required = True
    shape = Obj(
        {**ENVELOPE, "properties": _VM_PROPERTIES},
        "ResourceDefinition",
        tuple(_ENVELOPE_MEMBERS.split()),
    )

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: JSON,
        method: str,
        prepared: object | None = None,
    ) -> JSON:
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        vm_id = existing.properties.get("vmId") if existing else None
        new["properties"]["vmId"] = vm_id or core.new_guid()
        _vm_defaults(new["properties"])
        return new

    def references(self, body: JSON) -> set[ResourceId]:
        profile = (body.get("properties") or {}).get("networkProfile") or {}
        nics = profile.get("networkInterfaces") if isinstance(profile, Mapping) else None
        return reference_ids(nics or [])

    def validate(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        new_body: JSON,
        method: str,
    ) -> None:
        missing = missing_reference(core, self.references(new_body))
        if missing is not None:
            raise ArmError(404, "NotFound", f"Resource {missing.format()} not found.")
        if existing is None:
            return
        old, new = _vm_size(existing.body), _vm_size(new_body)
        power = str(existing.internal.get("power", "running"))
        if new and old and new.lower() != old.lower() and power in _ALLOCATED:
            raise _not_allowed(
                f"Unable to resize the VM because the requested size {new} is not available in "
                "the cluster where the VM is currently allocated. To resize your VM to "
                f"{new} please deallocate (this is Stop operation in the Azure portal) and try "
                "the resize operation again. Read more on VM resizing strategy at "
                "https://aka.ms/azure-resizevm."
            )

    def refuse_during(
        self, core: Emulator, running: Operation, rid: ResourceId, what: str
    ) -> ArmError | None:
        vm = running.target.name
        if running.kind is OpKind.DELETE:
            return _not_allowed(
                f"Operation '{what}' is not allowed on VM '{vm}' since the VM is marked for "
                "deletion. You can only retry the Delete operation (or wait for an ongoing one "
                "to complete)."
            )
        if (
            running.kind is OpKind.ACTION
            and running.action == "deallocate"
            and what in ("powerOff", "restart", *STATELESS_ACTIONS)
        ):
            # A VM being deallocated is "marked to be deallocated": what needs it allocated is
            # refused as on a deallocated one, not as a collision (terraform-provider-azurerm
            # #28218 shows this text for a powerOff sent while a deallocate ran).
            return _not_allowed(
                f"Operation '{what}' is not allowed on VM '{vm}' since the VM is either "
                f"deallocated or marked to be deallocated.{POWER_DOCS}"
            )
        if (
            running.kind is OpKind.ACTION
            and running.action in POWER_ACTIONS
            and what in POWER_ACTIONS
        ):
            final = POWER_ACTIONS[running.action][1]
            return _not_allowed(
                f"An ongoing operation is changing power state of Virtual Machine {vm} to "
                f"{final}. Please perform operation {what} after some time."
            )
        return _not_allowed(
            f"Operation '{what}' is not allowed on VM '{vm}' since another operation is in "
            "progress."
        )

    def action(
        self, core: Emulator, call: Call, res: Resource, name: str, body: Any
    ) -> ActionResult:
        action = _ACTIONS_BY_LOWER.get(name.lower())
        if action is None:
            return super().action(core, call, res, name, body)
        power = str(res.internal.get("power", "running"))
        vm = res.id.name
        if action == "powerOff" and power in ("deallocated", "deallocating"):
            raise _not_allowed(
                f"Operation 'powerOff' is not allowed on VM '{vm}' since the VM is either "
                f"deallocated or marked to be deallocated.{POWER_DOCS}"
            )
        if action == "restart":
            if power in ("deallocated", "deallocating"):
                raise _not_allowed(
                    f"Operation 'restart' is not allowed on VM '{vm}' since the VM is either "
                    f"deallocated or marked to be deallocated.{POWER_DOCS}"
                )
            if power in ("stopped", "stopping"):
                raise _not_allowed("The operation requires the VM to be running (or set to run).")
        if action in STATELESS_ACTIONS and power not in _ALLOCATED:
            raise _not_allowed(
                f"Operation '{action}' is not allowed on VM '{vm}' since the VM is either "
                f"deallocated or marked to be deallocated.{POWER_DOCS}"
            )
        return ActionResult(status=202, duration_key=action)

    def on_started(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        if res is None:
            return
        op.extra["from_power"] = res.internal.get("power", "running")
        if op.kind is OpKind.CREATE:
            res.internal["power"] = "starting"
        elif op.kind is OpKind.ACTION and op.action in POWER_ACTIONS:
            res.internal["power"] = POWER_ACTIONS[op.action][0]
            res.properties["provisioningState"] = "Updating"

    def on_completed(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        if res is None:
            return
        if op.status is OpStatus.SUCCEEDED:
            if op.kind is OpKind.CREATE:
                res.internal["power"] = "running"
            elif op.kind is OpKind.ACTION and op.action in POWER_ACTIONS:
                res.internal["power"] = POWER_ACTIONS[op.action][1]
                res.properties["provisioningState"] = "Succeeded"
        elif op.kind is OpKind.ACTION:
            res.internal["power"] = op.extra.get("from_power", "running")
            if op.status is OpStatus.CANCELED:
                res.properties["provisioningState"] = "Succeeded"
        res.changed_at = op.ended_at or res.changed_at

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        out = res.snapshot()
        if query.get("$expand", "").lower() == "instanceview":
            out["properties"]["instanceView"] = instance_view(res)
        return out

    def collection(
        self, core: Emulator, call: Call, res: Resource, name: str, query: Mapping[str, str]
    ) -> ArmResponse | None:
        if name.lower() == "instanceview":
            return ArmResponse(200, instance_view(res))
        return None


class VmScaleSetProvider(Provider):
    settings = TypeSettings(
        etag="int",
        conflict="compute",
        preempt=True,
        durations={"create": 180.0, "update": 120.0, "delete": 150.0, "default": 120.0},
        op_namespace="Microsoft.Compute",
    )
    location_required = True
    shape = Obj(
        {
            **ENVELOPE,
            "properties": _closed(
                "VirtualMachineScaleSetProperties",
                "additionalCapabilities automaticRepairsPolicy constrainedMaximumCapacity "
                "doNotRunExtensionsOnOverprovisionedVMs externalHealthPolicy "
                "highSpeedInterconnectPlacement hostGroup lifecycleHooksProfile "
                "orchestrationMode overprovision platformFaultDomainCount priorityMixPolicy "
                "provisioningState proximityPlacementGroup resiliencyPolicy scaleInPolicy "
                "scheduledEventsPolicy singlePlacementGroup skuProfile spotRestorePolicy "
                "timeCreated uniqueId zonalPlatformFaultDomainAlignMode zoneBalance",
                virtualMachineProfile=Obj(),
                upgradePolicy=Obj(),
            ),
        },
        "ResourceDefinition",
        tuple(_ENVELOPE_MEMBERS.split()),
    )

    def action(
        self, core: Emulator, call: Call, res: Resource, name: str, body: Any
    ) -> ActionResult:
        return ActionResult(status=202, duration_key=name)


class DiskProvider(Provider):
    """Managed disks (and snapshots): no ETag; the disk API answers a PUT with 200 or 202,
    never 201 (the SDKs refuse any other status), and refuses unknown top-level members."""

    settings = TypeSettings(
        put_create_status=202,
        put_update_status=202,
        durations={"create": 10.0, "update": 10.0, "delete": 10.0, "default": 10.0},
        op_namespace="Microsoft.Compute",
    )
    location_required = True
    shape = Obj(
        {**ENVELOPE, "properties": Obj()},
        "ResourceDefinition",
        ("id", "name", "type", "systemData", "managedByExtended"),
    )
