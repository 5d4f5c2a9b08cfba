"""``armguard explain [TEXT | -]``: a pasted ARM error → kind, meaning, recovery, wrong fix."""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from armguard.cli.output import EXIT_OK, CliError, add_output_argument, print_json
from armguard.diagnose.excerpt import Excerpt, excerpt
from armguard.diagnose.explain import Explanation, NoArmError, explain_text

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain a pasted ARM error: kind, meaning, safe recovery, wrong fix",
        description=(
            "Read an Azure error as az, Terraform, an Azure SDK, PowerShell, a JSON or XML body, "
            "an Activity Log event or a whole CI log printed it, and say what it means and how "
            "to recover safely: its kind, how sure that is and the words that decided it, the "
            "meaning, the safe recovery and the wrong fix to avoid, as a table or -o json. A long "
            "log is read as a stream: its start, its end and the error lines between. Works "
            "offline. Exit 0 for any text with an error in it (kind 'unknown' when nothing "
            "matches); 2 when the input has no error at all, or is empty or binary."
        ),
    )
    parser.add_argument(
        "text",
        nargs="?",
        metavar="TEXT",
        help="the error text as one argument; '-' or nothing reads standard input",
    )
    add_output_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text, read = _read_input(args.text)
    try:
        result = explain_text(text)
    except NoArmError:
        raise CliError(
            "no error found in the input: expected an error code, an HTTP failure status, an "
            "exception or an error message (paste the whole error as printed)"
        ) from None
    if args.output == "json":
        data = result.to_json()
        data["input"] = {"bytes": read.total_bytes, "excerpted": read.cut}
        print_json(data)
    else:
        _print_table(result, read)
    return EXIT_OK


def _read_input(arg: str | None) -> tuple[str, Excerpt]:
    """The text to explain, and how much of the input it is. Standard input is read as a
    stream: a log of any size costs the same memory (its start, its end, its error lines)."""
    if arg is not None and arg != "-":
        read = excerpt(io.BytesIO(arg.encode("utf-8", "surrogateescape")))
    else:
        if arg is None and sys.stdin.isatty():
            raise CliError("give the error text as an argument, or pipe it in ('-' reads stdin)")
        read = excerpt(sys.stdin.buffer)
    if read.binary:
        raise CliError("input is binary, not text: paste the error message itself")
    try:
        text = read.data.decode("utf-8")
    except UnicodeDecodeError:
        text = read.data.decode("utf-8", "replace")
        if text.count("\ufffd") > max(8, len(text) // 20):
            raise CliError("input is not UTF-8 text: paste the error message itself") from None
    if not text.strip():
        raise CliError("input is empty: paste the error text")
    return text, read


def _print_errors(console: Console, result: Explanation) -> None:
    """A paste with several distinct errors says so first, and lists them."""
    total = sum(e.count for e in result.errors)
    console.print(
        f"[bold]{len(result.errors)} distinct errors[/bold] in {total} error bodies; the most "
        "severe is explained below (--output json explains each one under 'errors'):"
    )
    for entry in result.errors:
        one = entry.explanation
        status = f"{one.facts.status} " if one.facts.status is not None else ""
        console.print(
            f"  {entry.count} × {escape(one.kind.value)}: {status}{escape(one.facts.code or '-')}"
            f" — {escape(_short(one.facts.message, 120))}"
        )
    console.print()


def _print_table(result: Explanation, read: Excerpt) -> None:
    console = Console(soft_wrap=True, highlight=False)
    if read.cut:
        console.print(
            f"Read {_size(read.total_bytes)}: explained its start, its end and "
            f"{read.kept_middle_lines} error lines between them.\n"
        )
    if result.foreign_source:
        console.print(
            f"[bold]Note:[/bold] this looks like {escape(result.foreign_source)} error, not an "
            "Azure one; the kind below is Azure's reading of its words (low confidence).\n"
        )
    if len(result.errors) > 1:
        _print_errors(console, result)
    data = result.to_json()
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold", no_wrap=True)
    # IDs and URLs must stay whole to be copied.
    facts.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("Kind", f"{data['kind']} ({'retryable' if data['retryable'] else 'not retryable'})"),
        ("Confidence", f"{data['confidence']}" + _decided_by(data["decidedBy"])),
        ("Status", "" if data["status"] is None else str(data["status"])),
        ("Code", " > ".join(data["codes"]) or data["code"]),
        ("Message", _short(data["message"])),
        ("Resources", "\n".join(data["resourceIds"])),
        ("Operation URL", data["operationUrl"] or ""),
        ("ETag submitted", data["etags"]["submitted"] or ""),
        ("ETag live", data["etags"]["live"] or ""),
        ("Retry-After", "" if data["retryAfter"] is None else f"{data['retryAfter']:g} s"),
        ("Locked scopes", "\n".join(data["lockedScopes"])),
        ("Prerequisite", data["prerequisite"] or ""),
        ("Deployment", data["deploymentName"] or ""),
        ("VM size", data["vmSize"] or ""),
        ("Correlation ID", ", ".join(data["correlationIds"])),
    ]
    for label, value in rows:
        if value:
            facts.add_row(label, escape(value))
    console.print(facts)
    console.print()
    console.print("[bold]What it means[/bold]")
    console.print(escape(result.meaning))
    console.print()
    console.print("[bold]Safe recovery[/bold]")
    for i, step in enumerate(result.recovery, 1):
        console.print(f"  {i}. {escape(step)}")
    console.print()
    console.print("[bold]Wrong fix to avoid[/bold]")
    for wrong in result.wrong_fix:
        console.print(f"  - {escape(wrong)}")
    console.print()
    console.print("[bold]Next commands[/bold]")
    for cmd in result.next_commands:
        console.print(f"  # {escape(cmd.purpose)}")
        console.print(f"  {escape(cmd.command)}")


def _short(message: str, limit: int = 600) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _decided_by(evidence: list[str]) -> str:
    return f" — decided by {', '.join(evidence)}" if evidence else ""


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"
