"""``armguard explain`` on long CI logs: time and peak memory as the log grows.

Each run pipes a generated CI log (timestamped progress lines, one Terraform error in the
middle and one az error at the end) into a fresh ``armguard explain -o json -`` process and
reads that process's own peak RSS from ``wait4``. The sizes run side by side in one
invocation, so their ratios are comparable; the JSON also says whether both errors were found.

    python benchmarks/explain_scale.py                      # 0.1, 1, 10 MB
    python benchmarks/explain_scale.py --sizes-mb 1,10,100 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARMGUARD = str(Path(sys.executable).with_name("armguard"))
STEP = b"2026-12-05T10:00:00.0000000Z ##[section]Compiling module %06d: 0 warnings, 0 errors\n"
MIDDLE = (
    b"2026-12-05T10:00:01.0000000Z \xe2\x94\x82 Error: deleting Subnet: unexpected status 409 "
    b"(409 Conflict) with error: ScopeLocked: The scope '/subscriptions/0/resourceGroups/rg/"
    b"providers/Microsoft.Network/virtualNetworks/v/subnets/s' cannot perform delete operation "
    b"because following scope(s) are locked: '/subscriptions/0/resourceGroups/rg'. Please remove "
    b"the lock and try again.\n"
)
END = (
    b"2026-12-05T10:59:59.0000000Z ERROR: (AnotherOperationInProgress) Another operation on this "
    b"or dependent resource is in progress. To retrieve status of the operation use uri: "
    b"https://management.azure.com/subscriptions/0/providers/Microsoft.Network/locations/eastus/"
    b"operations/3f9b?api-version=2024-05-01.\n"
)


def make_log(path: Path, size: int) -> int:
    """A log of about ``size`` bytes; returns its exact size."""
    half = size // 2
    written = 0
    with path.open("wb") as f:
        i = 0
        while written < half:
            line = STEP % i
            f.write(line)
            written += len(line)
            i += 1
        f.write(MIDDLE)
        written += len(MIDDLE)
        while written < size - len(END):
            line = STEP % i
            f.write(line)
            written += len(line)
            i += 1
        f.write(END)
        written += len(END)
    return written


def explain_once(path: Path) -> dict[str, Any]:
    with path.open("rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [ARMGUARD, "explain", "-o", "json", "-"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    data = json.loads(out) if out else {}
    codes = set(data.get("codes", []))
    return {
        "exit": proc.returncode,
        "seconds": round(seconds, 3),
        # ru_maxrss is in kilobytes on Linux.
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "kind": data.get("kind"),
        # Both errors of the log reached the explanation: the one in the middle and the end.
        "found_middle_error": "ScopeLocked" in codes,
        "found_end_error": "AnotherOperationInProgress" in codes,
        "excerpted": data.get("input", {}).get("excerpted"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes-mb", default="0.1,1,10", help="comma-separated log sizes in MB")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the median is kept")
    args = ap.parse_args()
    sizes = [float(x) for x in args.sizes_mb.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes:
            path = Path(tmp) / f"ci-{mb}.log"
            actual = make_log(path, int(mb * 1_000_000))
            runs = [explain_once(path) for _ in range(args.repeat)]
            print(f"{mb} MB: {[r['seconds'] for r in runs]}", file=sys.stderr)
            runs.sort(key=lambda r: r["seconds"])
            median = runs[len(runs) // 2]
            results.append({"size_bytes": actual, **median})
    base = results[0]
    for r in results:
        r["time_ratio"] = round(r["seconds"] / base["seconds"], 2)
        r["rss_ratio"] = round(r["peak_rss_mb"] / base["peak_rss_mb"], 2)
    json.dump(
        {
            "benchmark": "explain_scale",
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "repeat": args.repeat,
            "results": results,
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
