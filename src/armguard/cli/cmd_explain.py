"""``armguard explain [TEXT | -]``: a pasted ARM error → kind, meaning, recovery, wrong fix."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from armguard.cli.output import EXIT_OK, CliError, add_output_argument, print_json
from armguard.diagnose.explain import Explanation, NoArmError, explain_text
from armguard.diagnose.parse import MAX_INPUT_BYTES

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain a pasted ARM error: kind, meaning, safe recovery, wrong fix",
        description=(
            "Read an ARM error as az, Terraform, an Azure SDK, PowerShell, a JSON body or an "
            "Activity Log event printed it, and say what it means and how to recover safely: "
            "its class, the meaning, the safe recovery and the wrong fix to avoid, as a table "
            "or -o json. Works offline. Exit 0; 2 when no ARM error is found in the input."
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
    text = _read_input(args.text)
    try:
        result = explain_text(text)
    except NoArmError as exc:
        if exc.source is not None:
            raise CliError(
                f"no ARM error found in the input: this is {exc.source} error, not an Azure "
                "Resource Manager one; armguard explains ARM errors only"
            ) from None
        raise CliError(
            "no ARM error found in the input: expected an error code, an HTTP failure status or "
            "an ARM error message (paste the whole error as printed)"
        ) from None
    if args.output == "json":
        print_json(result.to_json())
    else:
        _print_table(result)
    return EXIT_OK


def _read_input(arg: str | None) -> str:
    if arg is not None and arg != "-":
        data = arg.encode("utf-8", "surrogateescape")
    else:
        if arg is None and sys.stdin.isatty():
            raise CliError("give the error text as an argument, or pipe it in ('-' reads stdin)")
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise CliError(
            f"input is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB; paste only the error "
            "(the parser reads at most that much)"
        )
    if b"\x00" in data:
        raise CliError("input is binary, not text: paste the error message itself")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        if text.count("\ufffd") > max(8, len(text) // 20):
            raise CliError("input is not UTF-8 text: paste the error message itself") from None
    if not text.strip():
        raise CliError("input is empty: paste the error text")
    return text


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


def _print_table(result: Explanation) -> None:
    console = Console(soft_wrap=True, highlight=False)
    if len(result.errors) > 1:
        _print_errors(console, result)
    data = result.to_json()
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold", no_wrap=True)
    # IDs and URLs must stay whole to be copied.
    facts.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("Kind", f"{data['kind']} ({'retryable' if data['retryable'] else 'not retryable'})"),
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
