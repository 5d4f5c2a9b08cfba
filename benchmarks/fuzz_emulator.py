"""Emulator fuzz: a bounded stream of malformed ARM requests over HTTP; count the answers.

Starts ``armguard emulator --port 0 --time-scale 0`` on 127.0.0.1 (stopped with SIGTERM at the
end), creates a resource group, a VNet, a storage account and a VM, then sends ``--requests``
seeded malformed requests from ``--connections`` keep-alive connections: bodies that are not
JSON, not UTF-8, the wrong type anywhere, nested too deep or too large; resource IDs with
missing, doubled or odd segments; missing, empty and unknown api-versions; bad ``If-Match``,
``Content-Type`` and ``Authorization`` headers; unknown verbs and actions; admin API abuse. A
request that is valid HTTP but wrong ARM must get an ARM-shaped 4xx; the fuzz passes with 0 ×
5xx. The server's RSS is sampled as it goes: bounded means the last sample is within
``--rss-slack-mb`` of the one after warm-up.

Prints one JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from armguard.testing import make_token

SUB = "/subscriptions/00000000-0000-0000-0000-0000000000f2"
RG = f"{SUB}/resourceGroups/fuzz"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/store1"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
TARGETS = {
    RG: "2024-03-01",
    VNET: "2024-05-01",
    STORAGE: "2023-05-01",
    VM: "2024-07-01",
    f"{VNET}/providers/Microsoft.Resources/tags/default": "2021-04-01",
    f"{RG}/providers/Microsoft.Authorization/locks/l1": "2020-05-01",
    f"{RG}/providers/Microsoft.Resources/deployments/d1": "2024-03-01",
}
GOOD = {
    VNET: {
        "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
    },
    STORAGE: {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    VM: {"location": "eastus", "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}}},
}


TOKEN = make_token("fuzzer@example.com")
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**70, 1.5e308, "", "x" * 5000, [], [None], {}, {"": ""},
    "\u0000", "\ud7ff", "../../etc", {"$ref": "#"}, [[[[[]]]]], "2024-13-45",
]  # fmt: skip
PATH_MUTATIONS = (
    lambda p: p.replace("/resourceGroups/", "/resourceGroups//"),
    lambda p: p + "/",
    lambda p: p + "/extra/segments/here",
    lambda p: p.replace("Microsoft.", "Micro$oft."),
    lambda p: p.replace("/providers/", "/"),
    lambda p: p.rsplit("/", 1)[0],
    lambda p: p + "%00",
    lambda p: p + "/%2e%2e/%2e%2e",
    lambda p: p.replace("subscriptions", "SUBSCRIPTIONS"),
    lambda p: "/subscriptions/not-a-guid/resourceGroups/x",
    lambda p: p + "/" + "a" * 3000,
    lambda p: p + "/start",
    lambda p: p + "/restart/again",
    lambda p: "/_armguard/" + random.choice(["faults", "state", "clock/advance", "seed", "nope"]),
)


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and depth < 6:
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.4:
            out[key] = _mutate(rng, out[key], depth + 1)
        elif roll < 0.6:
            out[key] = rng.choice(ODD_VALUES)
        elif roll < 0.8:
            out.pop(key)
        else:
            out[rng.choice(["properties", "tags", "location", "etag", "id", "sku", "x"])] = (
                rng.choice(ODD_VALUES)
            )
        return out
    if isinstance(value, list) and value:
        return [_mutate(rng, v, depth + 1) for v in value] + [rng.choice(ODD_VALUES)]
    return rng.choice(ODD_VALUES)


def _body(rng: random.Random, path: str) -> bytes | None:
    base = GOOD.get(path, {"location": "eastus", "properties": {}})
    roll = rng.random()
    if roll < 0.45:
        return json.dumps(_mutate(rng, base)).encode()
    if roll < 0.55:
        return json.dumps(rng.choice(ODD_VALUES)).encode()
    if roll < 0.65:
        return json.dumps(base).encode()[: rng.randrange(1, 40)]  # truncated JSON
    if roll < 0.72:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))  # not UTF-8
    if roll < 0.78:
        depth = rng.choice((50, 500, 5000, 50_000))
        return b"[" * depth + b"]" * depth
    if roll < 0.82:
        return b'{"a":' * 2000 + b"1" + b"}" * 2000
    if roll < 0.86:
        return b'{"tags": {"k": "' + b"v" * rng.choice((10_000, 5_000_000)) + b'"}}'
    if roll < 0.9:
        return b'{"a": NaN, "b": Infinity, "c": 1e999999}'
    if roll < 0.94:
        return b'{"a": 1, "a": 2, "location": "eastus"}'
    return None


def make_request(rng: random.Random, n: int) -> bytes:
    target = rng.choice(list(TARGETS))
    api = TARGETS[target]
    path = rng.choice(PATH_MUTATIONS)(target) if rng.random() < 0.35 else target
    method = rng.choice(
        ["PUT", "PUT", "PATCH", "PATCH", "POST", "DELETE", "GET", "HEAD", "OPTIONS", "BREW"]
    )
    roll = rng.random()
    if roll < 0.1:
        query = ""
    elif roll < 0.2:
        query = "?api-version=" + rng.choice(
            ["", "1999-01-01", "latest", "2024-05-01-preview", "%ff%fe"]
        )
    elif roll < 0.25:
        query = f"?api-version={api}&api-version={api}&$filter=" + rng.choice(["eq", "'", "(((("])
    else:
        query = f"?api-version={api}"
    headers = {"Host": "127.0.0.1", "x-ms-client-request-id": f"fuzz-{n}"}
    roll = rng.random()
    if roll < 0.9:
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif roll < 0.95:
        headers["Authorization"] = rng.choice(
            ["Bearer", "Bearer a.b.c", "Basic eA==", "Bearer " + "x" * 6000]
        )
    if rng.random() < 0.2:
        headers["If-Match"] = rng.choice(['"nope"', "*", "", "W/", '"' * 50, "\t"])
    if rng.random() < 0.1:
        headers["If-None-Match"] = rng.choice(["*", '"x"', ""])
    body = _body(rng, target) if method in ("PUT", "PATCH", "POST") or rng.random() < 0.1 else None
    if body is not None:
        headers["Content-Type"] = rng.choice(
            ["application/json"] * 6
            + ["text/plain", "application/xml", "", "application/json; charset=latin-1"]
        )
        headers["Content-Length"] = str(len(body))
    head = f"{method} {path}{query} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode("latin-1", "replace") + b"\r\n" + (body or b"")


_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


async def _read_response(reader: asyncio.StreamReader, head_only: bool) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    match = _STATUS.match(head)
    if match is None:
        raise ConnectionError(f"not an HTTP response: {head[:80]!r}")
    status = int(match.group(1))
    length = 0
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            close = True
    # A HEAD answer names the length of a body it does not send.
    body = await reader.readexactly(length) if length and not head_only else b""
    return status, body, close


async def _client(
    port: int, requests: list[bytes], statuses: Counter[int], fives: list[str], progress: list[int]
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for raw in requests:
        for _attempt in range(2):
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(raw)
                await writer.drain()
                status, body, close = await asyncio.wait_for(
                    _read_response(reader, raw.startswith(b"HEAD ")), 30
                )
                statuses[status] += 1
                if status >= 500 and len(fives) < 20:
                    fives.append(f"{status} {raw[:400]!r} -> {body[:200]!r}")
                if close:
                    writer.close()
                    reader = writer = None
                break
            except (
                ConnectionError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                OSError,
            ):
                # The server may close after a request it could not parse; count it once.
                if writer is not None:
                    writer.close()
                reader = writer = None
                statuses[0] += 1 if _attempt else 0
        progress[0] += 1


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _fuzz(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    statuses: Counter[int] = Counter()
    fives: list[str] = []
    progress = [0]
    samples: list[tuple[int, int]] = []
    chunk = 5_000
    started = time.monotonic()
    sent = 0
    while sent < args.requests:
        count = min(chunk, args.requests - sent)
        reqs = [make_request(rng, sent + i) for i in range(count)]
        per = [reqs[i :: args.connections] for i in range(args.connections)]
        await asyncio.gather(*(_client(port, p, statuses, fives, progress) for p in per))
        sent += count
        samples.append((sent, _rss_kb(pid)))
        sys.stderr.write(
            f"{sent} requests, {dict(sorted(statuses.items()))}, rss {samples[-1][1]} kB\n"
        )
    elapsed = time.monotonic() - started
    warm = next((kb for n, kb in samples if n >= args.requests // 10), samples[0][1])
    last = samples[-1][1]
    five_xx = sum(v for k, v in statuses.items() if k >= 500)
    return {
        "requests": args.requests,
        "seed": args.seed,
        "connections": args.connections,
        "activityMemoryMb": args.activity_memory,
        "seconds": round(elapsed, 1),
        "requestsPerSecond": round(args.requests / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "fiveXX": five_xx,
        "fiveXXSamples": fives,
        "rssKbAfterWarmup": warm,
        "rssKbMax": max(kb for _, kb in samples),
        "rssKbLast": last,
        "rssBounded": last - warm <= args.rss_slack_mb * 1024,
        "rssSamples": samples,
    }


def _start_emulator(
    log: str | None, extra: list[str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    with open(log or "/dev/null", "ab") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "armguard.cli.main",
                "emulator",
                "--port",
                "0",
                "--time-scale",
                "0",
                *(extra or []),
            ],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r":(\d+)\s*$", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, int(match.group(1))


def _seed_world(port: int) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30) as client:
        client.put(
            RG, params={"api-version": TARGETS[RG]}, json={"location": "eastus"}
        ).raise_for_status()
        for rid, body in GOOD.items():
            client.put(rid, params={"api-version": TARGETS[rid]}, json=body).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-slack-mb", type=float, default=64.0)
    parser.add_argument("--server-log", help="write the emulator's stderr (tracebacks) here")
    parser.add_argument(
        "--activity-memory",
        type=float,
        help="the emulator's --activity-memory MB (default: the emulator's own default)",
    )
    args = parser.parse_args()
    if not 1 <= args.requests <= 10_000_000 or not 1 <= args.connections <= 256:
        parser.error("--requests must be 1..10,000,000 and --connections 1..256")
    extra = [] if args.activity_memory is None else ["--activity-memory", str(args.activity_memory)]
    proc, port = _start_emulator(args.server_log, extra)
    try:
        _seed_world(port)
        result = asyncio.run(_fuzz(port, proc.pid, args))
        result["emulatorAliveAfter"] = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
