"""The VM image catalog: the marketplace images ``az vm create --image ALIAS`` resolves.

The aliases are the Azure CLI's (``az vm image list --all`` shows them): each names a
publisher, offer and SKU, and ``latest`` is resolved by listing the SKU's versions
(``$top=1&$orderby=name desc``) and reading that version. Version numbers are the emulator's
own (two per SKU, the newer one ``latest``); the images' other facts (OS, Hyper-V generation,
trusted-launch support) are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALIASES", "IMAGES", "ImageSku", "find_sku", "image_body", "image_id", "sort_versions"]


@dataclass(frozen=True)
class ImageSku:
    publisher: str
    offer: str
    sku: str
    os: str  # Linux | Windows
    generation: str  # V1 | V2
    versions: tuple[str, ...]  # oldest first
    disk_gb: int = 30


def _linux(publisher: str, offer: str, sku: str, generation: str, *versions: str) -> ImageSku:
    return ImageSku(publisher, offer, sku, "Linux", generation, versions)


def _windows(sku: str, generation: str, *versions: str) -> ImageSku:
    return ImageSku(
        "MicrosoftWindowsServer", "WindowsServer", sku, "Windows", generation, versions, 127
    )


IMAGES: tuple[ImageSku, ...] = (
    _linux(
        "Canonical",
        "0001-com-ubuntu-server-jammy",
        "22_04-lts-gen2",
        "V2",
        "22.04.202410020",
        "22.04.202411190",
    ),
    _linux(
        "Canonical",
        "0001-com-ubuntu-server-jammy",
        "22_04-lts",
        "V1",
        "22.04.202410020",
        "22.04.202411190",
    ),
    _linux("Canonical", "ubuntu-24_04-lts", "server", "V2", "24.04.202410090", "24.04.202411180"),
    _linux("Debian", "debian-11", "11-backports-gen2", "V2", "0.20241004.1890", "0.20241111.1923"),
    _linux("Debian", "debian-12", "12-gen2", "V2", "0.20241004.1890", "0.20241111.1923"),
    _linux("RedHat", "RHEL", "8-lvm-gen2", "V2", "8.10.2024090413", "8.10.2024110614"),
    _linux("RedHat", "RHEL", "9-lvm-gen2", "V2", "9.4.2024090413", "9.4.2024110614"),
    _linux("SUSE", "sles-15-sp5", "gen2", "V2", "2024.09.12", "2024.11.08"),
    _linux("OpenLogic", "CentOS", "8_5-gen2", "V2", "8.5.2022012100", "8.5.2022101800"),
    _linux(
        "kinvolk",
        "flatcar-container-linux-free",
        "stable-gen2",
        "V2",
        "3975.2.1",
        "4081.2.0",
    ),
    _windows("2022-datacenter-g2", "V2", "20348.2700.240905", "20348.2849.241106"),
    _windows("2022-datacenter-azure-edition", "V2", "20348.2700.240905", "20348.2849.241106"),
    _windows("2022-datacenter-azure-edition-core", "V2", "20348.2700.240905", "20348.2849.241106"),
    _windows("2019-datacenter-gensecond", "V2", "17763.6293.240905", "17763.6532.241101"),
    _windows("2016-datacenter-gensecond", "V2", "14393.7336.240830", "14393.7515.241101"),
    _windows("2016-Datacenter", "V1", "14393.7336.240830", "14393.7515.241101"),
)

ALIASES: dict[str, tuple[str, str, str]] = {
    "Ubuntu2204": ("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
    "Ubuntu2404": ("Canonical", "ubuntu-24_04-lts", "server"),
    "Debian11": ("Debian", "debian-11", "11-backports-gen2"),
    "Debian12": ("Debian", "debian-12", "12-gen2"),
    "RHELRaw8LVMGen2": ("RedHat", "RHEL", "8-lvm-gen2"),
    "SuseSles15SP5": ("SUSE", "sles-15-sp5", "gen2"),
    "CentOS85Gen2": ("OpenLogic", "CentOS", "8_5-gen2"),
    "FlatcarLinuxFreeGen2": ("kinvolk", "flatcar-container-linux-free", "stable-gen2"),
    "Win2022Datacenter": ("MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-g2"),
    "Win2022AzureEdition": (
        "MicrosoftWindowsServer",
        "WindowsServer",
        "2022-datacenter-azure-edition",
    ),
    "Win2022AzureEditionCore": (
        "MicrosoftWindowsServer",
        "WindowsServer",
        "2022-datacenter-azure-edition-core",
    ),
    "Win2019Datacenter": ("MicrosoftWindowsServer", "WindowsServer", "2019-datacenter-gensecond"),
    "Win2016Datacenter": ("MicrosoftWindowsServer", "WindowsServer", "2016-datacenter-gensecond"),
}
"""The Azure CLI's image aliases → (publisher, offer, sku); every one is in :data:`IMAGES`."""


def find_sku(publisher: str, offer: str | None = None, sku: str | None = None) -> list[ImageSku]:
    """The catalog's SKUs matching the given names (case-insensitive; None matches any)."""

    def same(a: str, b: str | None) -> bool:
        return b is None or a.lower() == b.lower()

    return [
        i
        for i in IMAGES
        if same(i.publisher, publisher) and same(i.offer, offer) and same(i.sku, sku)
    ]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def sort_versions(versions: tuple[str, ...] | list[str], descending: bool = False) -> list[str]:
    return sorted(versions, key=_version_key, reverse=descending)


def image_id(subscription: str, location: str, image: ImageSku, version: str | None) -> str:
    out = (
        f"/Subscriptions/{subscription}/Providers/Microsoft.Compute/Locations/{location}"
        f"/Publishers/{image.publisher}/ArtifactTypes/VMImage/Offers/{image.offer}"
        f"/Skus/{image.sku}"
    )
    return f"{out}/Versions/{version}" if version else out


def image_body(
    subscription: str, location: str, image: ImageSku, version: str
) -> dict[str, object]:
    """A ``VirtualMachineImage`` as ``GET .../versions/{version}`` returns it."""
    features = [{"name": "IsAcceleratedNetworkSupported", "value": "True"}]
    if image.generation == "V2":
        features.insert(0, {"name": "SecurityType", "value": "TrustedLaunchSupported"})
        features.append({"name": "DiskControllerTypes", "value": "SCSI, NVMe"})
    return {
        "id": image_id(subscription, location, image, version),
        "name": version,
        "location": location,
        "properties": {
            "hyperVGeneration": image.generation,
            "architecture": "x64",
            "replicaType": "Unmanaged",
            "disallowed": {"vmDiskType": "Unmanaged"},
            "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
            "imageDeprecationStatus": {"imageState": "Active"},
            "features": features,
            "osDiskImage": {"operatingSystem": image.os, "sizeInGb": image.disk_gb},
            "dataDiskImages": [],
        },
    }
