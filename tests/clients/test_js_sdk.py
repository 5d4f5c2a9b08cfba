"""The Azure SDK for JavaScript (``@azure/arm-*`` from npm, run by Node.js) against
``armguard emulator --tls``: long-running operations, a stale ETag's 412, a busy VM's 409,
paging, and the delete's 404.

The npm packages are installed once with ``npm ci`` from the committed lockfile into a cache
directory keyed by the lockfile's hash (``$ARMGUARD_JS_CACHE`` or ``~/.cache/armguard``); about
20 s the first time, nothing after. Without ``node`` or ``npm`` the tests skip, except under
``CI=true``, where a missing client is a failure."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armguard.testing import make_token

sys.path.insert(0, str(Path(__file__).resolve().parent))
from js_helpers import installed, require_node, run_node

SCRIPT = "sdk_checks.mjs"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node, npm = require_node()
    project = installed(npm, SCRIPT)
    certs = tmp_path_factory.mktemp("certs")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "emulator",
            "--port",
            "0",
            "--tls",
            "--cert-dir",
            str(certs),
            "--time-scale",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on https://" in line, line + (
            server.stderr.read() if server.stderr else ""
        )
        endpoint = line.rsplit(" ", 1)[1].strip()
        env = {
            "ARM_ENDPOINT": endpoint,
            "ARM_TOKEN": make_token("js-sdk@example.com"),
            "NODE_EXTRA_CA_CERTS": str(certs / "ca.pem"),
        }
        yield run_node(node, project, SCRIPT, env)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_long_running_creates_end_succeeded(results: dict[str, Any]) -> None:
    assert results["group"] == {"ok": True, "value": {"name": "js-sdk", "state": "Succeeded"}}
    vnet = results["vnet_lro"]
    assert vnet["ok"], vnet
    assert vnet["value"]["state"] == "Succeeded"
    assert vnet["value"]["etag"].startswith('W/"')
    assert vnet["value"]["subnets"] == 1
    assert results["nic_lro"]["ok"], results["nic_lro"]
    assert results["nic_lro"]["value"]["subnet"].endswith("/virtualNetworks/vnet1/subnets/s1")
    assert results["vm_lro"] == {
        "ok": True,
        "value": {"state": "Succeeded", "size": "Standard_B1s"},
    }


def test_a_stale_etag_is_refused_with_412(results: dict[str, Any]) -> None:
    stale = results["stale_etag_412"]
    assert (stale["ok"], stale["status"], stale["code"]) == (False, 412, "PreconditionFailed")


def test_a_power_action_on_a_busy_vm_is_refused_with_409(results: dict[str, Any]) -> None:
    busy = results["busy_vm_409"]
    assert (busy["ok"], busy["status"], busy["code"]) == (False, 409, "OperationNotAllowed")
    # The resize it collided with still ended, and the VM stayed deallocated.
    assert results["instance_view"] == {
        "ok": True,
        "value": ["ProvisioningState/succeeded", "PowerState/deallocated"],
    }


def test_a_deleted_resource_reads_404(results: dict[str, Any]) -> None:
    assert results["delete_lro"] == {"ok": True, "value": 404}


def test_lists_page_with_top(results: dict[str, Any]) -> None:
    paging = results["paging"]
    assert paging["ok"], paging
    # vnet1, nic1, vm1, vnet2, vnet3 with $top=2: three pages, every item once.
    assert paging["value"] == {"pages": 3, "items": 5}
