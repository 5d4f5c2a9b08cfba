"""Installing and finding the Azure SDK for JavaScript for the tests that drive it.

The npm packages are installed once with ``npm ci`` from the committed lockfile into a cache
directory keyed by the lockfile's hash (``$ARMGUARD_JS_CACHE`` or ``~/.cache/armguard``); about
20 s the first time, nothing after. Without ``node`` or ``npm`` the tests skip, except under
``CI=true``, where a missing client is a failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def require_node() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    reason = "the JavaScript SDK tests need node and npm on PATH"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: a missing client is a failure, not a skip)")
    pytest.skip(reason)


def installed(npm: str, *scripts: str) -> Path:
    """The npm project, installed, with ``scripts`` copied next to its ``node_modules``."""
    lock = (JS_DIR / "package-lock.json").read_bytes()
    root = Path(os.environ.get("ARMGUARD_JS_CACHE") or Path.home() / ".cache" / "armguard")
    project = root / f"js-sdk-{hashlib.sha256(lock).hexdigest()[:16]}"
    done = project / ".installed"
    if not done.exists():
        project.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JS_DIR / name, project / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=project,
            check=True,
            capture_output=True,
            timeout=600,
        )
        done.write_text("ok\n")
    for script in scripts:
        shutil.copy(JS_DIR / script, project / script)
    return project


def run_node(node: str, project: Path, script: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``script`` in the installed project with ``env`` added; its one JSON line."""
    proc = subprocess.run(
        [node, script],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
