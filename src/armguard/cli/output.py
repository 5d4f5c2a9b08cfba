"""az-style output: ``--output json|table``, errors on stderr, exit 0 / 1 / 2.

Exit codes follow az: 0 success, 1 the operation failed (a job failed or was blocked, ARM said
no), 2 bad input (usage, unreadable file, malformed ID); 130 (128 + SIGINT) stopped by Ctrl-C,
as shells report it.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from armguard.text import clip

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Reporter",
    "add_output_argument",
    "clip",
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
        # Fold, never cut: Rich's default ellipsis would end a resource ID mid-way, and an
        # ID in a log must be copyable whole (commands shorten long prose themselves: clip).
        table.add_column(col, overflow="fold")
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


class Reporter:
    """The one thread that prints to a Rich console while a worker's loops run.

    Worker callbacks (``on_batch``, ``on_arm``) run on the loops' threads. Rich loads parts of
    itself on first use (its Unicode width tables among them); several threads printing at
    once have met a half-imported module, then a hang. So the console is exercised here, on
    the main thread, before any loop starts, and afterwards every line and every update of a
    live display is queued to one printing thread. The queue is a ``SimpleQueue``, whose
    ``put`` may be called from a signal handler that interrupted another ``put``.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        warm_up(console)
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Reporter:
        self._thread = threading.Thread(target=self._drain, name="armguard-printer", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def say(self, text: str) -> None:
        """Print one line (never read as markup: it carries text from ARM and the store)."""
        self.call(lambda: self.console.print(text, highlight=False, markup=False, soft_wrap=True))

    def call(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a Rich call) on the printing thread; at once when none runs."""
        if self._thread is None:
            action()
        else:
            self._queue.put(action)

    def close(self) -> None:
        """Print what is queued, then stop the printing thread; later calls print at once."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _drain(self) -> None:
        while True:
            action = self._queue.get()
            if action is None:
                return
            try:
                action()
            except Exception as exc:  # a line that fails must not stop the ones after it
                sys.stderr.write(f"WARNING: could not print progress: {exc}\n")


def warm_up(console: Console) -> None:
    """Load what Rich loads lazily (Unicode width tables, the renderers) on this thread."""
    cell_len("jobs · → … ━ ✓ é 中")
    console.render_str("[bold]armguard[/bold] · …")
