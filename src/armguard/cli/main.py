"""``armguard`` entry point: one argparse sub-command per module in :data:`COMMANDS`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the handler. Failures the user can act on are :class:`CliError`s and
print as ``ERROR: …`` on stderr; usage errors exit 2 as argparse and az do.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from armguard import __version__
from armguard.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "emulator",
    "proxy",
    "apply",
    "submit",
    "worker",
    "jobs",
    "wait",
    "events",
    "scopes",
    "explain",
    "inspect",
    "timeline",
    "chaos",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="armguard",
        description="Conflict-safe concurrent writes to Azure Resource Manager.",
    )
    parser.add_argument("--version", action="version", version=f"armguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # A command whose module is absent is left out; tests/cli assert every one is present.
        if importlib.util.find_spec(f"armguard.cli.cmd_{name}") is None:
            continue
        module = importlib.import_module(f"armguard.cli.cmd_{name}")
        module.register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parse_args``, except that an unknown flag after a command is reported by that
    command's parser: its usage line names the flags it does take (argparse hands unknown
    arguments back to the top-level parser, whose usage only lists the commands)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(words)
    if extras:
        command = getattr(args, "command", None)
        sub = _subparsers(parser).get(command) if command else None
        # A flag before the command (`armguard --bogus jobs`) is the top level's to report.
        before = words[: words.index(command)] if command in words else words
        if sub is None or any(extra in before for extra in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse offers no public way to reach a parser's sub-command parsers.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
    except CliError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ERROR: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`armguard events | head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
