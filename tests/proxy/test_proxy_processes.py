"""``armguard proxy`` as users run it: one line once it listens, a clean exit on SIGTERM,
clear errors for bad flags; two proxy processes sharing turns through one PostgreSQL store;
a proxy killed with -9 holding a key frees it when its lease ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_helpers import RG, a_group_and_vnet, events, network

from armguard.clock import SystemClock
from armguard.testing import emulator

LINE = "armguard proxy listening on "


class ProxyProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armguard.cli.main", "proxy", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(LINE), line + (self.proc.stderr.read() if self.proc.stderr else "")
        self.url = line[len(LINE) :].split()[0]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.close()
        return code

    def close(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def processes() -> Iterator[list[ProxyProcess]]:
    started: list[ProxyProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(timeout=10)
        p.close()


def test_embedded_emulator_serves_sdk_clients_and_stops_cleanly(
    processes: list[ProxyProcess], tmp_path: Path
) -> None:
    p = ProxyProcess("--emulator", "--time-scale", "0.01", "--events", str(tmp_path / "e.jsonl"))
    processes.append(p)
    a_group_and_vnet(p.url)
    network(p.url).subnets.begin_create_or_update(
        RG, "vnet", "s1", {"address_prefix": "10.0.1.0/24"}
    ).result()
    assert p.stop() == 0
    assert any(e["event"] == "applied" for e in events(tmp_path / "e.jsonl"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "70000"], "--port must be between"),
        (["--tls"], "--tls needs --cert-dir"),
        (["--upstream", "ftp://example"], "--upstream must be an http(s) URL"),
        (["--wait-max", "-1"], "--wait-max must be >= 0"),
        (["--lost-updates", "always"], "invalid choice"),
        (["--time-scale", "0.1"], "--time-scale is only used with --emulator"),
    ],
)
def test_bad_flags_exit_2_with_a_message(args: list[str], says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "proxy", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert says in r.stderr
    assert "Traceback" not in r.stderr


def test_a_store_that_cannot_be_opened_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "proxy",
            "--upstream",
            "http://127.0.0.1:9",
            "--store",
            str(blocker / "turns.db"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert "cannot open the store" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.postgres
def test_two_proxies_on_one_postgres_store_take_turns_together(
    processes: list[ProxyProcess], pg_schema_url: str
) -> None:
    with emulator(clock=SystemClock(), time_scale=0.02, retry_after_max=1) as arm:
        a_group_and_vnet(arm.base_url)
        for _ in range(2):
            processes.append(ProxyProcess("--upstream", arm.base_url, "--store", pg_schema_url))

        def one(i: int) -> str:
            client = network(processes[i % 2].url, caller=f"runner{i}@example.com", retry_total=0)
            try:
                client.subnets.begin_create_or_update(
                    RG, "vnet", f"s{i}", {"address_prefix": f"10.0.{i}.0/24"}
                ).result()
            except HttpResponseError as err:
                return f"{err.status_code}"
            return "ok"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(8)))
        assert outcomes == ["ok"] * 8
        assert len(list(network(arm.base_url).subnets.list(RG, "vnet"))) == 8


@pytest.mark.postgres
def test_a_proxy_killed_holding_a_key_frees_it_at_its_lease(
    processes: list[ProxyProcess], pg_schema_url: str, tmp_path: Path
) -> None:
    slow_vnet = {"Microsoft.Network/virtualNetworks": {"durations": {"update": 100}}}
    with emulator(
        clock=SystemClock(), time_scale=0.02, retry_after_max=1, type_settings=slow_vnet
    ) as arm:
        a_group_and_vnet(arm.base_url)
        a = ProxyProcess("--upstream", arm.base_url, "--store", pg_schema_url, "--turn-lease", "1")
        b = ProxyProcess(
            "--upstream",
            arm.base_url,
            "--store",
            pg_schema_url,
            "--turn-lease",
            "1",
            "--events",
            str(tmp_path / "b.jsonl"),
        )
        processes.extend([a, b])
        held = network(a.url, caller="a@example.com")
        vnet = held.virtual_networks.get(RG, "vnet")
        vnet.tags = {"a": "1"}
        poller = held.virtual_networks.begin_create_or_update(RG, "vnet", vnet)  # acknowledged
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=10)
        started = time.monotonic()
        # B's subnet write needs the VNet's key, which dead A still holds on the store until its
        # lease (1 s) runs out; then B sends it, and ARM itself answers for the running update.
        client = network(b.url, caller="b@example.com", retry_total=0)
        try:
            client.subnets.begin_create_or_update(
                RG, "vnet", "s1", {"address_prefix": "10.0.1.0/24"}
            ).result()
        except HttpResponseError as err:
            pytest.fail(f"B's write was not absorbed: {err.status_code} {err.message}")
        assert time.monotonic() - started >= 0.9
        claimed = [e for e in events(tmp_path / "b.jsonl") if e["event"] == "claimed"]
        assert len(claimed) == 1
        assert claimed[0]["delay"] >= 0.5, "B's turn came only when dead A's lease ran out"
        assert poller is not None
        assert network(arm.base_url).virtual_networks.get(RG, "vnet").tags == {"a": "1"}, (
            "A's acknowledged write was not lost"
        )
