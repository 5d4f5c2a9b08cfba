"""docs/testing.md's Python blocks are pytest modules: run them all, as a reader would."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def test_every_python_block_of_the_testing_doc_passes(tmp_path: Path) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 4
    expected = 0
    for number, block in enumerate(blocks):
        names = [
            node.name
            for node in ast.parse(block).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
        assert names, f"block {number} defines no test"
        expected += len(names)
        (tmp_path / f"test_doc_block_{number}.py").write_text(block)
    # An empty ini file pins pytest's rootdir and config to tmp_path, away from the project's.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{expected} passed" in run.stdout, run.stdout
