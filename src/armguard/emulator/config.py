"""The ``--config FILE`` document (YAML or JSON)::

timeScale: 0.01            # optional; the command line wins
seed: 7                    # optional; the command line wins
pageSize: 1000             # optional; most items per list page (the command line wins)
operationRetention: 86400  # optional; seconds a settled operation's status URLs answer
maxSettledOperations: 50000  # optional; settled operations kept at most
activityRetention: 100000  # optional; Activity Log events kept at most (the command line wins)
activityMemoryMb: 64       # optional; estimated MB of Activity Log events kept at most (ditto)
types:                     # per-type setting overrides (exact type or "Namespace/*")
  Microsoft.Network/*:
    conflict: retryable    # another_operation | retryable | storage | tags | compute
    durations: {create: 3, update: 2}
  Microsoft.Storage/storageAccounts:
    etag: weak-guid
faults:                    # fault rules, as POST /_armguard/faults takes them
  - match: {method: PUT, resourceType: Microsoft.Network/virtualNetworks/subnets}
    effect: {status: 429, code: RetryableError, retryAfter: 1}
    schedule: {firstN: 1}
resources:                 # seed data, created already Succeeded, in order
  - id: /subscriptions/s/resourceGroups/rg
    body: {location: eastus}
  - id: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm
    body: {location: eastus, properties: {hardwareProfile: {vmSize: Standard_D2s_v5}}}
    powerState: deallocated
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from armguard.arm.ids import InvalidResourceId, ResourceId
from armguard.emulator.catalog import newest_version
from armguard.emulator.model import OpStatus
from armguard.emulator.request import ArmRequest, Call

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["ConfigError", "EmulatorConfig", "apply_seed_data", "load_config"]

_KEYS = {
    "timeScale",
    "seed",
    "pageSize",
    "operationRetention",
    "maxSettledOperations",
    "activityRetention",
    "activityMemoryMb",
    "types",
    "faults",
    "resources",
}
POWER_STATES = ("running", "stopped", "deallocated")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the field."""


@dataclass
class EmulatorConfig:
    time_scale: float | None = None
    seed: int | None = None
    page_size: int | None = None
    operation_retention: float | None = None
    max_settled_operations: int | None = None
    activity_retention: int | None = None
    activity_memory_mb: float | None = None
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)


def load_config(path: str | Path) -> EmulatorConfig:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file '{source}': {err.strerror or err}") from None
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file '{source}' is not valid YAML/JSON: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file '{source}' must hold a mapping at the top level")
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(
            f"config file '{source}': unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(_KEYS))}"
        )
    cfg = EmulatorConfig()
    scale = data.get("timeScale")
    if scale is not None:
        if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 0:
            raise ConfigError(f"config file '{source}': timeScale must be a number >= 0")
        cfg.time_scale = float(scale)
    seed = data.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"config file '{source}': seed must be an integer")
        cfg.seed = seed
    for key, attr in (
        ("pageSize", "page_size"),
        ("maxSettledOperations", "max_settled_operations"),
        ("activityRetention", "activity_retention"),
    ):
        value = data.get(key)
        if value is not None:
            least = 0 if key == "maxSettledOperations" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"config file '{source}': {key} must be an integer >= {least}")
            setattr(cfg, attr, value)
    retention = data.get("operationRetention")
    if retention is not None:
        if not isinstance(retention, int | float) or isinstance(retention, bool) or retention < 0:
            raise ConfigError(f"config file '{source}': operationRetention must be a number >= 0")
        cfg.operation_retention = float(retention)
    memory = data.get("activityMemoryMb")
    if memory is not None:
        if not isinstance(memory, int | float) or isinstance(memory, bool) or not memory > 0:
            raise ConfigError(f"config file '{source}': activityMemoryMb must be a number > 0")
        cfg.activity_memory_mb = float(memory)
    types = data.get("types") or {}
    if not isinstance(types, Mapping) or not all(isinstance(v, Mapping) for v in types.values()):
        raise ConfigError(f"config file '{source}': types must map a type to its settings")
    cfg.types = {str(k): dict(v) for k, v in types.items()}
    faults = data.get("faults") or []
    if not isinstance(faults, list):
        raise ConfigError(f"config file '{source}': faults must be a list of rules")
    cfg.faults = faults
    resources = data.get("resources") or []
    if not isinstance(resources, list):
        raise ConfigError(f"config file '{source}': resources must be a list")
    for n, item in enumerate(resources):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise ConfigError(f"config file '{source}': resources[{n}] needs an 'id'")
        try:
            ResourceId.parse(item["id"])
        except InvalidResourceId as err:
            raise ConfigError(f"config file '{source}': resources[{n}]: {err}") from None
        if not isinstance(item.get("body", {}), Mapping):
            raise ConfigError(f"config file '{source}': resources[{n}].body must be a mapping")
        power = item.get("powerState")
        if power is not None and power not in POWER_STATES:
            raise ConfigError(
                f"config file '{source}': resources[{n}].powerState must be one of "
                f"{', '.join(POWER_STATES)}"
            )
    cfg.resources = [dict(r) for r in resources]
    return cfg


def apply_seed_data(core: Emulator, resources: list[dict[str, Any]], source: str = "seed") -> None:
    """Create each resource through the normal write path, then end its operation at once."""
    for n, item in enumerate(resources):
        rid = ResourceId.parse(item["id"])
        version = newest_version(rid.type)
        call = Call(base_url="http://seed.invalid", api_version=version, caller="armguard-seed")
        response = core.dispatch(
            ArmRequest(
                "PUT",
                rid.format(),
                {"api-version": version},
                {},
                dict(item.get("body") or {}),
                call,
            )
        )
        if response.status >= 400:
            err = (response.body or {}).get("error", {})
            raise ConfigError(
                f"{source}: resources[{n}] ({rid.format()}) was refused: "
                f"{err.get('code')}: {err.get('message')}"
            )
        now = core.now()
        for op in core.store.operations():
            if op.status is OpStatus.IN_PROGRESS:
                core.operations.end(op, now, OpStatus.SUCCEEDED, None)
        power = item.get("powerState")
        if power is not None:
            res = core.store.get(rid)
            if res is not None:
                res.internal["power"] = power
