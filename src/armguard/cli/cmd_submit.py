"""``armguard submit``: queue one intent on one resource and print the job id."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from armguard.arm.client import ArmTransportError
from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.cli.common import (
    add_endpoint_arguments,
    add_store_argument,
    client_factory,
    job_to_json,
    open_store_arg,
)
from armguard.cli.output import EXIT_FAILED, EXIT_OK, CliError, add_output_argument, print_json
from armguard.coordinator.intents import (
    ActionIntent,
    DeleteIntent,
    Intent,
    IntentError,
    MergeIntent,
    PutIntent,
    ResizeIntent,
    TagsIntent,
)
from armguard.coordinator.model import StalePolicy
from armguard.coordinator.plan import exceeds_depth, too_deep
from armguard.coordinator.resource_types import ApiVersionRequired, api_version_for
from armguard.coordinator.submit import submit

__all__ = ["register"]

_INTENT_FLAGS = ("merge", "tag", "untag", "put", "action", "resize", "delete")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit",
        help="queue one intent on one resource; prints the job id",
        description=(
            "Queue a write intent. A worker serialises it with every other write to the "
            "resource and the scopes it depends on, rebases it on the live state, and records "
            "one outcome. Give exactly one intent (--tag and --untag may be combined). Creates "
            "an SQLite store that does not exist yet. Prints the job id (-o json: the job). "
            "Exit 0 once queued; 2 on bad input; 1 if the store or, with --read-baseline, ARM "
            "cannot be reached."
        ),
    )
    add_store_argument(parser)
    parser.add_argument("--resource", required=False, metavar="ID", help="ARM resource ID")
    parser.add_argument("--writer", required=False, metavar="NAME", help="who is writing")
    intent = parser.add_argument_group("intent (exactly one)")
    intent.add_argument("--merge", metavar="JSON", help="RFC 7386 merge patch on the body")
    intent.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="set a tag (repeatable)"
    )
    intent.add_argument(
        "--untag", action="append", default=[], metavar="KEY", help="remove a tag (repeatable)"
    )
    intent.add_argument("--put", metavar="JSON", help="the full desired body")
    intent.add_argument(
        "--action", metavar="NAME", help="POST action: start, powerOff, deallocate, restart…"
    )
    intent.add_argument("--resize", metavar="SIZE", help="change a VM's size")
    intent.add_argument("--delete", action="store_true", help="delete the resource")
    based = parser.add_argument_group(
        "baseline (what the intent was built on)",
        "With the body it read, a job whose resource moved on is rebased three-way: its own "
        "changes on the live body, a field someone else changed too is a conflict. With only "
        "an ETag a moved resource is not rebased (nobody can tell which fields moved).",
    )
    based.add_argument("--baseline-etag", metavar="ETAG", help="the ETag the intent was based on")
    based.add_argument(
        "--baseline",
        metavar="FILE",
        help="the resource body the intent was built on, as read from ARM (JSON; - for stdin); "
        "its etag is the baseline ETag",
    )
    based.add_argument(
        "--read-baseline",
        action="store_true",
        help="read the live body and ETag now (--endpoint/--cloud) and submit against them",
    )
    based.add_argument(
        "--on-stale",
        choices=[p.value for p in StalePolicy],
        default=StalePolicy.REBASE.value,
        help="what to do if the live ETag moved past the baseline: rebase three-way (the "
        "default), drop, or fail",
    )
    parser.add_argument("--idempotency-key", metavar="KEY", help="submit at most once per key")
    parser.add_argument("--api-version", metavar="VERSION", help="override the type's api-version")
    add_endpoint_arguments(parser)
    add_output_argument(parser)
    parser.set_defaults(func=run)


def _json_arg(flag: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--{flag} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        # json.loads recurses per level and has no bound of its own below the interpreter's.
        raise CliError(f"--{flag} has {too_deep()}") from None
    if not isinstance(value, dict):
        raise CliError(f"--{flag} must be a JSON object")
    if exceeds_depth(value):
        # Validation, deep copies and the store's JSON encoding all recurse per level.
        raise CliError(f"--{flag} has {too_deep()}")
    return value


def _baseline_file(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--baseline: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"--baseline: {path} is not UTF-8 text") from None
    return _json_arg("baseline", text)


def _read_baseline(args: argparse.Namespace, intent: Intent) -> dict[str, Any] | None:
    """The live body now, or None when the resource does not exist (nothing to protect)."""
    try:
        rid = parse_resource_id(args.resource)
        api = api_version_for(rid, intent.api_version)
    except (InvalidResourceId, ApiVersionRequired) as exc:
        raise CliError(str(exc)) from None
    client = client_factory(args.endpoint, args.cloud)(args.writer)
    try:
        response = client.request("GET", rid.format(), api_version=api)
    except ArmTransportError as exc:
        raise CliError(f"--read-baseline: ARM gave no answer: {exc}", EXIT_FAILED) from None
    if response.status == 404:
        return None
    if not response.ok or not isinstance(response.body, dict):
        error = response.error()
        raise CliError(
            f"--read-baseline: GET answered {response.status} {error.code}: {error.message}",
            EXIT_FAILED,
        )
    body: dict[str, Any] = response.body
    if not body.get("etag") and response.etag:
        body["etag"] = response.etag
    return body


def _intent(args: argparse.Namespace) -> Intent:
    given = [f for f in _INTENT_FLAGS if getattr(args, f) not in (None, [], False)]
    if "tag" in given and "untag" in given:
        given.remove("untag")
    if not given:
        raise CliError(
            "give one intent: --merge, --tag/--untag, --put, --action, --resize or --delete"
        )
    if len(given) > 1:
        names = ", ".join(f"--{g}" for g in given)
        raise CliError(f"give exactly one intent, not {names}")
    kind = given[0]
    version = args.api_version
    if kind == "merge":
        return MergeIntent(_json_arg("merge", args.merge), version)
    if kind == "put":
        return PutIntent(_json_arg("put", args.put), version)
    if kind in ("tag", "untag"):
        tags: dict[str, str] = {}
        for pair in args.tag:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise CliError(f"--tag needs KEY=VALUE, not '{pair}'")
            tags[key] = value
        return TagsIntent(tags, tuple(args.untag), version)
    if kind == "action":
        return ActionIntent(args.action, None, version)
    if kind == "resize":
        return ResizeIntent(args.resize, version)
    return DeleteIntent(version)


def run(args: argparse.Namespace) -> int:
    if not args.resource:
        raise CliError("--resource is required (an ARM resource ID)")
    if not args.writer:
        raise CliError("--writer is required (the name this write is made under)")
    try:
        intent = _intent(args)
    except IntentError as exc:
        raise CliError(str(exc)) from None
    if args.baseline and args.read_baseline:
        raise CliError("give --baseline FILE or --read-baseline, not both")
    baseline = _baseline_file(args.baseline) if args.baseline else None
    if args.read_baseline:
        baseline = _read_baseline(args, intent)
    store = open_store_arg(args.store, create=True)
    try:
        job = submit(
            store,
            args.resource,
            intent,
            args.writer,
            baseline_etag=args.baseline_etag,
            on_stale=StalePolicy(args.on_stale),
            idempotency_key=args.idempotency_key,
            baseline=baseline,
        )
    except (InvalidResourceId, ApiVersionRequired, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    if args.output == "json":
        print_json(job_to_json(job))
    else:
        sys.stdout.write(job.id + "\n")
    return EXIT_OK
