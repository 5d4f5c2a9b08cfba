"""az-style output: ``--output json|table``, errors on stderr, exit 0 / 1 / 2.

Exit codes follow az: 0 success, 1 the operation failed (a job failed or was blocked, ARM said
no), 2 bad input (usage, unreadable file, malformed ID); 130 (128 + SIGINT) stopped by Ctrl-C,
as shells report it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "add_output_argument",
    "die",
    "print_json",
    "print_table",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as ``ERROR: message`` on stderr with an exit code, not a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def die(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, exit_code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        # Cells hold text from logs and ARM; never let it be read as Rich markup.
        table.add_row(*("" if row.get(c) is None else escape(str(row.get(c))) for c in columns))
    # Piped output is read by people in CI logs: do not squeeze it to 80 columns.
    width = None if sys.stdout.isatty() else 160
    Console(soft_wrap=True, width=width).print(table)


def add_output_argument(parser: Any, default: str = "table") -> None:
    parser.add_argument(
        "--output", "-o", choices=("json", "table"), default=default, help="output format"
    )
