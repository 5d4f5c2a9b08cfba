"""The CLI bad-input table of docs/reliability.md, row by row: malformed plans, corrupt and
missing SQLite files, an unreachable PostgreSQL. Each ends with ``ERROR:`` on stderr and the
exit code az would give (2: the input, 1: the store), never a traceback. Ctrl-C during
``apply``/``worker`` is covered by tests/cli/test_ctrl_c.py and test_worker_sigterm.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from armguard.cli.main import main

R = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/g/providers/"
    "Microsoft.Network/virtualNetworks/v"
)
DEAD_PG = "postgresql://postgres@127.0.0.1:1/x"
FILES = {
    "bad.yaml": b"jobs: [\n  - {writer: a\n",
    "list.yaml": b"- 1\n- 2\n",
    "subscription.yaml": b"jobs:\n  - writer: a\n    resource: /subscriptions/x\n    tags: {a: b}\n",
    "empty.yaml": b"world: {}\njobs: []\n",
    "binary.yaml": b"\xff\xfe\x00jobs",
    "corrupt.db": os.urandom(4096),
    "truncated.db": b"SQLite format 3\x00garbage",
}
TABLE = [
    ("apply bad.yaml --emulator", 2, "not valid YAML"),
    ("apply list.yaml --emulator", 2, "expected a mapping"),
    ("apply subscription.yaml --emulator", 2, "is a subscription"),
    ("apply empty.yaml --emulator", 2, "no jobs"),
    ("apply binary.yaml --emulator", 2, "binary.yaml"),
    ("apply missing.yaml --emulator", 2, "no such file"),
    ("jobs --store corrupt.db", 1, "not a database"),
    ("jobs --store truncated.db", 1, "not a database"),
    (f"submit --store corrupt.db --resource {R} --writer a --tag a=b", 1, "not a database"),
    ("worker --store corrupt.db --endpoint http://127.0.0.1:9 --until-idle", 1, "not a database"),
    ("events --store corrupt.db", 1, "not a database"),
    ("jobs --store missing.db", 2, "no store at missing.db"),
    (f"jobs --store {DEAD_PG}", 1, "cannot connect to PostgreSQL"),
    (f"submit --store {DEAD_PG} --resource {R} --writer a --tag a=b", 1, "cannot connect"),
    ("chaos --workers 0", 2, "--workers"),
    ("chaos --duration -5", 2, "--duration"),
]


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("command", "code", "says"), TABLE, ids=[t[0][:40] for t in TABLE])
def test_bad_input_ends_with_an_error_line_and_an_exit_code(
    command: str, code: int, says: str, inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command.split()) == code
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ")
    assert says in err
    assert "Traceback" not in err
    assert (inputs / "corrupt.db").read_bytes() == FILES["corrupt.db"]  # never "repaired"
