"""The --config document: validation and the shipped demo seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from arm_helpers import api_version_for

from armguard.clock import ManualClock
from armguard.emulator.config import ConfigError, apply_seed_data, load_config
from armguard.emulator.core import Emulator
from armguard.emulator.request import ArmRequest, Call

DEMO = Path(__file__).resolve().parents[2] / "examples" / "emulator-seed.yaml"
DEMO_RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo"


def _call(core: Emulator, method: str, path: str) -> tuple[int, object]:
    call = Call(base_url="http://test", api_version="2024-01-01", caller="t")
    response = core.dispatch(
        ArmRequest(method, path, {"api-version": api_version_for(path)}, {}, None, call)
    )
    return response.status, response.body


def test_demo_seed_builds_the_incident_starting_points() -> None:
    cfg = load_config(DEMO)
    core = Emulator(
        ManualClock(), time_scale=cfg.time_scale or 1.0, seed=cfg.seed or 0, type_settings=cfg.types
    )
    core.faults.load_config({"faults": cfg.faults})
    apply_seed_data(core, cfg.resources, str(DEMO))
    status, body = _call(
        core, "GET", f"{DEMO_RG}/providers/Microsoft.Compute/virtualMachines/vm1/instanceView"
    )
    assert status == 200
    assert body["statuses"][1]["code"] == "PowerState/running"  # type: ignore[index]
    status, body = _call(
        core, "POST", f"{DEMO_RG}/providers/Microsoft.Storage/storageAccounts/demostore1/listKeys"
    )
    assert status == 409
    assert body["error"]["code"] == "ScopeLocked"  # type: ignore[index]
    status, body = _call(
        core, "DELETE", f"{DEMO_RG}/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/app"
    )
    assert status == 400
    assert body["error"]["code"] == "InUseSubnetCannotBeDeleted"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "must hold a mapping"),
        ("colour: blue\n", "unknown key(s) colour"),
        ("timeScale: -2\n", "timeScale must be a number >= 0"),
        ("resources: [{body: {}}]\n", "resources[0] needs an 'id'"),
        ("resources: [{id: not-an-id}]\n", "resources[0]"),
        (
            "resources: [{id: /subscriptions/s/resourceGroups/g, powerState: asleep}]\n",
            "powerState",
        ),
        ("{unclosed\n", "not valid YAML/JSON"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_refused_seed_resources_are_config_errors() -> None:
    core = Emulator(ManualClock())
    with pytest.raises(ConfigError) as info:
        apply_seed_data(core, [{"id": f"{DEMO_RG}/providers/Microsoft.Web/sites/s", "body": {}}])
    assert "ResourceGroupNotFound" in str(info.value)


def test_bad_type_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown type setting"):
        Emulator(type_settings={"Microsoft.Network/*": {"colour": "blue"}})
