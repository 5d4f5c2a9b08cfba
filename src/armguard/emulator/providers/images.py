"""``Microsoft.Compute/locations/{l}/publishers/...``: the read-only VM image catalog
(:mod:`armguard.emulator.images`) that ``az vm create --image`` and ``az vm image list``
read. Lists answer a bare JSON array, as the real API does; nothing here can be written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import ResourceId
from armguard.emulator.images import IMAGES, find_sku, image_body, image_id, sort_versions
from armguard.emulator.model import Resource
from armguard.emulator.providers.base import Provider
from armguard.emulator.refusals import method_not_allowed
from armguard.emulator.request import ArmResponse, Call

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["IMAGE_TYPES", "ImageCatalogProvider"]

JSON = dict[str, Any]
IMAGE_TYPES = tuple(
    "microsoft.compute/" + "/".join(("locations", *rest))
    for rest in (
        (),
        ("publishers",),
        ("publishers", "artifacttypes"),
        ("publishers", "artifacttypes", "offers"),
        ("publishers", "artifacttypes", "offers", "skus"),
        ("publishers", "artifacttypes", "offers", "skus", "versions"),
    )
)


def _not_found() -> ArmError:
    return ArmError(404, "NotFound", "Artifact: VMImage was not found.")


def _names(rid: ResourceId) -> dict[str, str]:
    return {kind.lower(): name for kind, name in rid.levels[-1].pairs}


def _entry(location: str, name: str, id_: str) -> JSON:
    return {"location": location, "name": name, "id": id_}


class ImageCatalogProvider(Provider):
    lockable = False
    holdable = False
    has_provisioning_state = False

    def check_write(self, rid: ResourceId, body: JSON, method: str) -> None:
        raise method_not_allowed(method, rid.format())

    def validate_delete(self, core: Emulator, call: Call, res: Resource) -> None:
        raise method_not_allowed("DELETE", res.id.format())

    def lookup(self, core: Emulator, rid: ResourceId) -> Resource | None:
        names = _names(rid)
        location = names["locations"]
        if "publishers" not in names:
            return Resource(rid, {"id": rid.format(), "name": location})
        if names.get("artifacttypes", "vmimage").lower() != "vmimage":
            raise _not_found()
        skus = find_sku(names["publishers"], names.get("offers"), names.get("skus"))
        if not skus:
            raise _not_found()
        version = names.get("versions")
        if version is None:
            return Resource(rid, {"id": rid.format(), "name": rid.name})
        image = skus[0]
        if version.lower() == "latest":
            version = sort_versions(image.versions)[-1]
        if version not in image.versions:
            raise _not_found()
        return Resource(rid, image_body(rid.subscription or "", location, image, version))

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        return dict(res.body)

    def collection(
        self, core: Emulator, call: Call, res: Resource, name: str, query: Mapping[str, str]
    ) -> ArmResponse | None:
        names = _names(res.id)
        sub, location = res.id.subscription or "", names["locations"]
        kind = name.lower()
        base = f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}"
        if kind == "publishers" and "publishers" not in names:
            publishers = sorted({i.publisher for i in IMAGES}, key=str.lower)
            return ArmResponse(
                200, [_entry(location, p, f"{base}/Publishers/{p}") for p in publishers]
            )
        if kind == "offers" and "offers" not in names and "artifacttypes" in names:
            offers = sorted({i.offer for i in find_sku(names["publishers"])}, key=str.lower)
            publisher = f"{base}/Publishers/{names['publishers']}/ArtifactTypes/VMImage"
            return ArmResponse(
                200, [_entry(location, o, f"{publisher}/Offers/{o}") for o in offers]
            )
        if kind == "skus" and "offers" in names and "skus" not in names:
            skus = find_sku(names["publishers"], names["offers"])
            return ArmResponse(
                200, [_entry(location, i.sku, image_id(sub, location, i, None)) for i in skus]
            )
        if kind == "versions" and "skus" in names and "versions" not in names:
            image = find_sku(names["publishers"], names["offers"], names["skus"])[0]
            descending = "desc" in query.get("$orderby", "").lower()
            versions = sort_versions(image.versions, descending=descending)
            top = query.get("$top")
            if top is not None:
                if not top.isdigit():
                    raise ArmError(
                        400, "InvalidParameter", f"The value '{top}' of $top is not valid."
                    )
                versions = versions[: int(top)]
            return ArmResponse(
                200,
                [_entry(location, v, image_id(sub, location, image, v)) for v in versions],
            )
        return None
