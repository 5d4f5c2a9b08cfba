"""`submit --baseline FILE` and `--read-baseline`: the seeds' stale writer, through the CLI.

A writer reads the NSG, a portal hotfix changes it without a guard, then the writer's intent
is queued with what it read and a worker runs it: its own changes land, the hotfix stays, a
field both changed is refused with both values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.cli.main import main
from armguard.clock import SystemClock
from armguard.testing import emulator

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/media1"
FAST = {
    t: {"durations": {"create": 0.0, "update": 0.0, "delete": 0.0, "default": 0.0}}
    for t in ("Microsoft.Network/networkSecurityGroups", "Microsoft.Storage/storageAccounts")
}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def get(client: ArmClient, rid: str, api: str = "2024-05-01") -> dict[str, Any]:
    response = client.request("GET", rid, api_version=api)
    assert response.ok, response.text
    body: dict[str, Any] = response.body
    return body


def portal(client: ArmClient, rid: str, api: str = "2024-05-01", **tags: str) -> None:
    live = get(client, rid, api)
    body = {k: v for k, v in live.items() if k != "etag"}
    body["tags"] = {**live.get("tags", {}), **tags}
    assert client.request("PUT", rid, api_version=api, body=body).ok


def test_a_stale_writer_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "jobs.db")
    with emulator(clock=SystemClock(), type_settings=FAST) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        nsg = {"location": "eastus", "tags": {"env": "prod", "owner": "team1"}}
        assert setup.request("PUT", NSG, api_version="2024-05-01", body=nsg).ok
        read = tmp_path / "read.json"
        read.write_text(json.dumps(get(setup, NSG)))
        # The writer reads now, too: --read-baseline captures body and ETag at submission.
        code, out, err = cli(
            capsys,
            "submit",
            "--store",
            store,
            "--resource",
            NSG,
            "--writer",
            "releaser",
            "--tag",
            "release=r7",
            "--read-baseline",
            "--endpoint",
            arm.base_url,
            "--output",
            "json",
        )
        assert code == 0, err
        captured = json.loads(out)
        portal(setup, NSG, owner="team2", hotfix="INC-1")  # unguarded, after both reads

        ids = {}
        for name, intent in (
            ("put_old", ["--put", json.dumps(nsg)]),
            ("tag_owner", ["--tag", "owner=team3"]),
        ):
            code, out, err = cli(
                capsys,
                "submit",
                "--store",
                store,
                "--resource",
                NSG,
                "--writer",
                "queue-worker",
                "--baseline",
                str(read),
                *intent,
            )
            assert code == 0, err
            ids[name] = out.strip()
        code, out, err = cli(
            capsys,
            "submit",
            "--store",
            store,
            "--resource",
            NSG,
            "--writer",
            "queue-worker",
            "--baseline-etag",
            json.loads(read.read_text())["etag"],
            "--tag",
            "owner=team4",
        )
        assert code == 0, err
        ids["etag_only"] = out.strip()

        code, _, err = cli(
            capsys, "worker", "--store", store, "--endpoint", arm.base_url, "--until-idle"
        )
        assert code == 0, err
        code, out, _ = cli(capsys, "jobs", "--store", store, "--output", "json")
        jobs = {j["id"]: j for j in json.loads(out)}
        assert jobs[captured["id"]]["outcome"] == "applied"
        assert jobs[ids["put_old"]]["outcome"] == "already_satisfied"
        assert (jobs[ids["tag_owner"]]["outcome"], jobs[ids["tag_owner"]]["kind"]) == (
            "failed",
            "stale_version",
        )
        assert "team2" in jobs[ids["tag_owner"]]["reason"]
        assert jobs[ids["etag_only"]]["outcome"] == "failed"
        assert "no baseline body" in jobs[ids["etag_only"]]["reason"]
        assert get(setup, NSG)["tags"] == {
            "env": "prod",
            "owner": "team2",
            "hotfix": "INC-1",
            "release": "r7",
        }


def test_a_type_without_etags_compares_the_body_it_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "jobs.db")
    api = "2023-05-01"
    with emulator(clock=SystemClock(), type_settings=FAST) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        body = {
            "location": "eastus",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "tags": {"owner": "team1"},
        }
        assert setup.request("PUT", STORAGE, api_version=api, body=body).ok
        read = get(setup, STORAGE, api)
        assert "etag" not in read  # storage accounts carry none
        (tmp_path / "read.json").write_text(json.dumps(read))
        portal(setup, STORAGE, api, owner="team2")
        code, out, err = cli(
            capsys,
            "submit",
            "--store",
            store,
            "--resource",
            STORAGE,
            "--writer",
            "w",
            "--baseline",
            str(tmp_path / "read.json"),
            "--tag",
            "owner=team3",
        )
        assert code == 0, err
        job = out.strip()
        code, _, err = cli(
            capsys, "worker", "--store", store, "--endpoint", arm.base_url, "--until-idle"
        )
        assert code == 0, err
        code, out, _ = cli(capsys, "jobs", "--store", store, "--output", "json")
        (done,) = [j for j in json.loads(out) if j["id"] == job]
        assert (done["outcome"], done["kind"]) == ("failed", "stale_version")
        assert get(setup, STORAGE, api)["tags"] == {"owner": "team2"}


@pytest.mark.parametrize(
    ("extra", "content", "message"),
    [
        (["--baseline", "/nonexistent/read.json"], None, "cannot read"),
        (["--baseline", "-", "--read-baseline"], None, "not both"),
        (["--baseline", "{file}"], "[1, 2]", "--baseline must be a JSON object"),
        (["--baseline", "{file}"], "{", "--baseline is not valid JSON"),
    ],
)
def test_bad_baselines_are_an_error_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "read.json"
    if content is not None:
        path.write_text(content)
    code, _, err = cli(
        capsys,
        "submit",
        "--store",
        str(tmp_path / "s.db"),
        "--resource",
        NSG,
        "--writer",
        "w",
        "--tag",
        "a=1",
        *(arg.format(file=path) for arg in extra),
    )
    assert code == 2, err
    assert err.startswith("ERROR: ")
    assert message in err
