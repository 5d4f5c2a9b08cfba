"""A working subset of ARM templates: parameters, variables, expressions, resources, outputs.

:func:`plan_deployment` turns a template and its parameters into a :class:`DeploymentPlan`: every
resource with its ID, evaluated body and dependencies, in an order that respects ``dependsOn``.
Running the plan (PUTs, operations, failures) is the emulator core's job; this module only reads.

Expressions are parsed by a tokenizer and a recursive-descent parser, as ARM's own engine does,
so nesting, escaping (``''`` inside literals, ``[[`` for a literal bracket), property access and
indexing behave the same way. Functions that need live state (``reference``, ``list*``) are
rejected by name: a plan is computed before anything is deployed, and guessing their values
would hide the difference from ARM.

Known deviations from ARM, kept on purpose:

- A child resource (``vnet1/subnet1``) or an extension resource (``scope``) implicitly depends
  on its parent or scope when that is declared in the same template, as Bicep makes it. Plain
  ARM JSON would run them in parallel and fail the child with 404 now and then; an emulator
  that proves concurrency behaviour must not add nondeterminism of its own.
- ``copy`` loops are supported on resources, not on properties, variables or outputs; those
  forms are rejected with a message that names them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from armguard.arm.errors import ArmError
from armguard.arm.ids import InvalidResourceId, ProviderLevel, ResourceId, parse_resource_id
from armguard.arm.quoting import scan_quoted

__all__ = ["DeploymentPlan", "PlannedResource", "TemplateError", "plan_deployment"]

_HELP_SYNTAX = "Please see https://aka.ms/arm-syntax for usage details."
_HELP_FUNCTIONS = "Please see https://aka.ms/arm-functions for usage details."
_HELP_PARAMS = "Please see https://aka.ms/arm-create-parameter-file for usage details."

MAX_RESOURCES = 800
"""ARM's limit on the resources one template declares, copies included. It also bounds how
long a deployment's step starts hold its group's lock."""
MAX_EXPRESSION_DEPTH = 64
"""How deeply one expression may nest calls, property accesses and indexes."""
MAX_EVALUATION_DEPTH = 128
"""How deeply evaluation may nest, counting expressions reached through variables and
parameters and the objects and arrays they build. Both limits keep the recursive parser and
evaluator far from Python's recursion limit, so a hostile template gets a 400, not a crash."""


class TemplateError(ArmError):
    """A template or its parameters cannot be deployed: HTTP 400 ``InvalidTemplate``."""

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(400, "InvalidTemplate", message, target=target)


def _validation_failed(inner: str, *, target: str | None = None) -> TemplateError:
    return TemplateError(f"Deployment template validation failed: '{inner}'", target=target)


class _ExpressionError(Exception):
    """A failure inside one expression; the caller wraps it with where the expression was."""


@dataclass(frozen=True)
class PlannedResource:
    id: ResourceId
    api_version: str
    # The resource minus type/name/apiVersion/dependsOn/condition/copy/comments, evaluated.
    body: dict[str, Any]
    depends_on: frozenset[str]  # ResourceId.key of other planned resources
    symbolic_name: str  # "{type}/{name}", e.g. "Microsoft.Network/virtualNetworks/vnet1"


@dataclass(frozen=True)
class DeploymentPlan:
    # Ordered so that every resource comes after everything it depends on.
    resources: tuple[PlannedResource, ...]
    outputs: dict[str, Any]

    def ready(self, done: set[str]) -> list[PlannedResource]:
        """Resources not yet done whose dependencies are all done, in plan order."""
        return [r for r in self.resources if r.id.key not in done and r.depends_on <= done]


# -- tokens and syntax tree -----------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # ident | string | int | ( | ) | , | . | [ | ] | end
    value: Any
    pos: int


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Property:
    target: _Node
    name: str


@dataclass(frozen=True)
class _Index:
    target: _Node
    index: _Node


_Node = _Literal | _Call | _Property | _Index

_PUNCTUATION = frozenset("(),.[]")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch == "'":
            quoted = scan_quoted(text, i)
            if quoted is None:
                raise _ExpressionError(
                    f"The language expression '{text}' is not valid: the string literal "
                    f"starting at position '{i}' is not terminated."
                )
            tokens.append(_Token("string", quoted[0], i))
            i = quoted[1]
        elif ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < n and text[i].isdigit():
                i += 1
            if i < n and text[i] == "." and i + 1 < n and text[i + 1].isdigit():
                raise _ExpressionError(
                    f"The language expression '{text}' is not valid: only integer literals are "
                    f"supported, found a fraction at position '{start}'."
                )
            tokens.append(_Token("int", int(text[start:i]), start))
        elif ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            tokens.append(_Token("ident", text[start:i], start))
        else:
            raise _ExpressionError(
                f"The language expression '{text}' is not valid: the string character '{ch}' "
                f"at position '{i}' is not expected."
            )
    tokens.append(_Token("end", None, n))
    return tokens


class _Parser:
    """``expr := primary ( '.' ident | '[' expr ']' )*``;
    ``primary := string | int | ident '(' [expr (',' expr)*] ')'``."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._i = 0
        self._depth = 0

    def parse(self) -> _Node:
        node = self._expression()
        self._expect("end")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _fail(self, token: _Token, wanted: str) -> _ExpressionError:
        found = "the end of the expression" if token.kind == "end" else f"'{token.value}'"
        return _ExpressionError(
            f"The language expression '{self._text}' is not valid: expected {wanted} but found "
            f"{found} at position '{token.pos}'."
        )

    def _expect(self, kind: str) -> _Token:
        token = self._peek()
        if token.kind != kind:
            wanted = {"end": "the end of the expression", "ident": "a name"}.get(kind, f"'{kind}'")
            raise self._fail(token, wanted)
        self._i += 1
        return token

    def _too_deep(self) -> _ExpressionError:
        return _ExpressionError(
            f"The language expression '{_shown(self._text)}' is not valid: it nests function "
            f"calls, property accesses and indexes deeper than the limit of "
            f"{MAX_EXPRESSION_DEPTH} levels."
        )

    def _expression(self) -> _Node:
        self._depth += 1
        if self._depth > MAX_EXPRESSION_DEPTH:
            raise self._too_deep()
        try:
            node = self._primary()
            chained = 0
            while True:
                token = self._peek()
                if token.kind in (".", "["):
                    # x.a[0].b nests as deeply as calls do when evaluated.
                    chained += 1
                    if self._depth + chained > MAX_EXPRESSION_DEPTH:
                        raise self._too_deep()
                if token.kind == ".":
                    self._i += 1
                    node = _Property(node, str(self._expect("ident").value))
                elif token.kind == "[":
                    self._i += 1
                    index = self._expression()
                    self._expect("]")
                    node = _Index(node, index)
                else:
                    return node
        finally:
            self._depth -= 1

    def _primary(self) -> _Node:
        token = self._peek()
        if token.kind in ("string", "int"):
            self._i += 1
            return _Literal(token.value)
        if token.kind != "ident":
            raise self._fail(token, "a function call or a literal")
        self._i += 1
        self._expect("(")
        args: list[_Node] = []
        if self._peek().kind != ")":
            args.append(self._expression())
            while self._peek().kind == ",":
                self._i += 1
                args.append(self._expression())
        self._expect(")")
        return _Call(str(token.value), tuple(args))


def _shown(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_expression(value: str) -> bool:
    return value.startswith("[") and value.endswith("]") and not value.startswith("[[")


# -- values -------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return type(value).__name__


def _to_text(value: Any) -> str:
    """ARM's ``string()``: booleans as ``True``/``False``, containers as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _murmur64(data: bytes) -> int:
    """The MurmurHash64 variant ARM's ``uniqueString`` uses (two 32-bit lanes, seed 0)."""
    c1, c2 = 597399067, 2869860233
    length = len(data)
    h1 = h2 = 0
    i = 0
    while i + 7 < length:
        k1 = int.from_bytes(data[i : i + 4], "little")
        k2 = int.from_bytes(data[i + 4 : i + 8], "little")
        h1 ^= _rotl((k1 * c1) & _M32, 15) * c2 & _M32
        h1 = (_rotl(h1, 19) + h2) & _M32
        h1 = (h1 * 5 + 1444728091) & _M32
        h2 ^= _rotl((k2 * c2) & _M32, 17) * c1 & _M32
        h2 = (_rotl(h2, 13) + h1) & _M32
        h2 = (h2 * 5 + 197830471) & _M32
        i += 8
    tail = length - i
    if tail > 0:
        k1 = int.from_bytes(data[i : i + min(tail, 4)], "little")
        h1 ^= _rotl((k1 * c1) & _M32, 15) * c2 & _M32
        if tail > 4:
            k2 = int.from_bytes(data[i + 4 : i + tail], "little")
            h2 ^= _rotl((k2 * c2) & _M32, 17) * c1 & _M32
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32

    def fmix(h: int) -> int:
        h ^= h >> 16
        h = (h * 2246822507) & _M32
        h ^= h >> 13
        h = (h * 3266489909) & _M32
        return h ^ (h >> 16)

    h1, h2 = fmix(h1), fmix(h2)
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    return (h2 << 32) | h1


def unique_string(*values: str) -> str:
    """ARM's ``uniqueString()``: 13 base-32 characters of a hash of the dash-joined values."""
    h = _murmur64("-".join(values).encode("utf-8"))
    out: list[str] = []
    # 13 five-bit groups from the top of the 64-bit hash; the last one runs past the end.
    for _ in range(13):
        out.append(_B32[(h >> 59) & 31])
        h = (h << 5) & 0xFFFFFFFFFFFFFFFF
    return "".join(out)


# ARM's guid() is a name-based (v5) UUID in this namespace over the dash-joined arguments.
_ARM_GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _arm_guid(*values: str) -> str:
    return str(uuid.uuid5(_ARM_GUID_NAMESPACE, "-".join(values)))


def _format_dotnet(fmt: str, args: Sequence[Any]) -> str:
    """.NET composite formatting: ``{0}``, ``{0,-8}`` alignment, ``{{``/``}}`` escapes."""
    out: list[str] = []
    i = 0
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch == "{":
            if fmt.startswith("{{", i):
                out.append("{")
                i += 2
                continue
            end = fmt.find("}", i)
            if end < 0:
                raise _ExpressionError(f"The format string '{fmt}' has an unclosed '{{'.")
            spec = fmt[i + 1 : end]
            index_text, _, rest = spec.partition(",")
            align_text, colon, number_format = rest.partition(":") if rest else ("", "", "")
            if ":" in index_text:
                index_text, _, number_format = index_text.partition(":")
                colon = ":"
            if colon and number_format:
                raise _ExpressionError(
                    f"The format item '{{{spec}}}' uses a format specifier, which is not supported."
                )
            if not index_text.strip().isdigit():
                raise _ExpressionError(f"The format item '{{{spec}}}' is not valid.")
            index = int(index_text)
            if index >= len(args):
                raise _ExpressionError(
                    f"The format item '{{{spec}}}' refers to argument {index}, but only "
                    f"{len(args)} were given."
                )
            text = _to_text(args[index])
            if align_text.strip():
                try:
                    width = int(align_text)
                except ValueError:
                    raise _ExpressionError(f"The format item '{{{spec}}}' is not valid.") from None
                text = text.rjust(width) if width > 0 else text.ljust(-width)
            out.append(text)
            i = end + 1
        elif ch == "}":
            if not fmt.startswith("}}", i):
                raise _ExpressionError(f"The format string '{fmt}' has an unmatched '}}'.")
            out.append("}")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# -- evaluation ---------------------------------------------------------------------------

_PARAM_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("String", lambda v: isinstance(v, str)),
    "securestring": ("SecureString", lambda v: isinstance(v, str)),
    "int": ("Int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("Bool", lambda v: isinstance(v, bool)),
    "object": ("Object", lambda v: isinstance(v, dict)),
    "secureobject": ("SecureObject", lambda v: isinstance(v, dict)),
    "array": ("Array", lambda v: isinstance(v, list)),
}


@dataclass(frozen=True)
class _Context:
    subscription: str
    resource_group: str
    location: str
    deployment_name: str


@dataclass
class _Loop:
    name: str
    index: int


@dataclass
class _Evaluator:
    ctx: _Context
    param_decls: dict[str, tuple[str, Mapping[str, Any]]]
    supplied: dict[str, Any]
    variable_decls: dict[str, tuple[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    resolving: list[str] = field(default_factory=list)
    loop: _Loop | None = None
    depth: int = 0

    # - values -

    def value(self, raw: Any) -> Any:
        if isinstance(raw, str):
            if _is_expression(raw):
                return self.expression(raw[1:-1])
            if raw.startswith("[[") and raw.endswith("]"):
                return raw[1:]
            return raw
        if isinstance(raw, Mapping | list):
            with self._deeper():
                if isinstance(raw, Mapping):
                    return {str(k): self.value(v) for k, v in raw.items()}
                return [self.value(v) for v in raw]
        return raw

    def expression(self, text: str) -> Any:
        return self.node(_Parser(text).parse())

    @contextmanager
    def _deeper(self) -> Iterator[None]:
        self.depth += 1
        try:
            if self.depth > MAX_EVALUATION_DEPTH:
                raise _ExpressionError(
                    f"The template nests expressions, variables, parameters and the values "
                    f"they build deeper than the limit of {MAX_EVALUATION_DEPTH} levels."
                )
            yield
        finally:
            self.depth -= 1

    def node(self, node: _Node) -> Any:
        with self._deeper():
            return self._node(node)

    def _node(self, node: _Node) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Property):
            return _member(self.node(node.target), node.name)
        if isinstance(node, _Index):
            target = self.node(node.target)
            index = self.node(node.index)
            if isinstance(target, list):
                if not isinstance(index, int) or isinstance(index, bool):
                    raise _ExpressionError(
                        f"The language expression array index must be an Integer, not "
                        f"'{_type_name(index)}'."
                    )
                if not 0 <= index < len(target):
                    raise _ExpressionError(
                        f"The language expression property array index '{index}' is out of bounds."
                    )
                return target[index]
            if isinstance(index, str):
                return _member(target, index)
            raise _ExpressionError(
                f"The language expression cannot index a value of type '{_type_name(target)}' "
                f"with a value of type '{_type_name(index)}'."
            )
        name = node.name.lower()
        if name == "if":
            # Only the taken branch is evaluated, so a guard can protect the other one.
            _arity("if", node.args, 3, 3)
            cond = self.node(node.args[0])
            if not isinstance(cond, bool):
                raise _type_error("if", "Boolean", cond)
            return self.node(node.args[1] if cond else node.args[2])
        handler = _FUNCTIONS.get(name)
        if handler is None:
            if name == "reference" or name.startswith("list"):
                raise _ExpressionError(
                    f"The template function '{node.name}' is not supported: it reads live "
                    "resource state, which a deployment plan cannot know in advance. "
                    f"{_HELP_FUNCTIONS}"
                )
            raise _ExpressionError(
                f"The template function '{node.name}' is not valid. {_HELP_FUNCTIONS}"
            )
        return handler(self, node.name, [self.node(a) for a in node.args])

    # - parameters and variables -

    def parameter(self, name: str) -> Any:
        key = name.lower()
        if key in self.params:
            return self.params[key]
        decl = self.param_decls.get(key)
        if decl is None:
            raise _ExpressionError(f"The template parameter '{name}' is not found.")
        if key in self.resolving:
            raise _ExpressionError(
                f"The template parameter '{name}' refers to itself through its default value."
            )
        self.resolving.append(key)
        try:
            value = self._resolve_parameter(*decl)
        finally:
            self.resolving.pop()
        self.params[key] = value
        return value

    def _resolve_parameter(self, name: str, decl: Mapping[str, Any]) -> Any:
        type_key = str(decl.get("type", "")).lower()
        arm_type, check = _PARAM_TYPES[type_key]
        if name.lower() in self.supplied:
            value = self.supplied[name.lower()]
        elif "defaultValue" in decl:
            value = self.value(decl["defaultValue"])
        else:
            raise _ExpressionError(
                f"Deployment template validation failed: 'The value for the template parameter "
                f"'{name}' is not provided. {_HELP_PARAMS}'"
            )
        if not check(value):
            raise _ExpressionError(
                f"The provided value for the template parameter '{name}' is not valid. Expected "
                f"a value of type '{arm_type}', but received a value of type "
                f"'{_type_name(value)}'. {_HELP_PARAMS}"
            )
        allowed = decl.get("allowedValues")
        if allowed is not None and not _allowed(value, allowed):
            listed = ",".join(_to_text(a) for a in allowed)
            raise _ExpressionError(
                f"Deployment template validation failed: 'The provided value '{_to_text(value)}' "
                f"for the template parameter '{name}' is not valid. The parameter value is not "
                f"part of the allowed value(s): '{listed}'.'"
            )
        _check_bounds(name, decl, value)
        return value

    def variable(self, name: str) -> Any:
        key = name.lower()
        if key in self.variables:
            return self.variables[key]
        decl = self.variable_decls.get(key)
        if decl is None:
            raise _ExpressionError(f"The template variable '{name}' is not found.")
        marker = "var:" + key
        if marker in self.resolving:
            raise _ExpressionError(f"The template variable '{name}' refers to itself.")
        self.resolving.append(marker)
        try:
            value = self.value(decl[1])
        finally:
            self.resolving.pop()
        self.variables[key] = value
        return value

    # - scope objects -

    def rg_id(self, subscription: str | None = None, group: str | None = None) -> str:
        return (
            f"/subscriptions/{subscription or self.ctx.subscription}"
            f"/resourceGroups/{group or self.ctx.resource_group}"
        )


def _allowed(value: Any, allowed: Any) -> bool:
    if not isinstance(allowed, list):
        return True
    if isinstance(value, list):
        # ARM checks each element of an array parameter against the list.
        return all(v in allowed for v in value)
    return any(value == a and type(value) is type(a) for a in allowed)


def _check_bounds(name: str, decl: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = decl.get("minValue"), decl.get("maxValue")
        if isinstance(low, int) and value < low:
            raise _ExpressionError(
                f"The provided value '{value}' for the template parameter '{name}' is not valid. "
                f"The value must be greater than or equal to '{low}'."
            )
        if isinstance(high, int) and value > high:
            raise _ExpressionError(
                f"The provided value '{value}' for the template parameter '{name}' is not valid. "
                f"The value must be less than or equal to '{high}'."
            )
    if isinstance(value, str | list):
        shortest, longest = decl.get("minLength"), decl.get("maxLength")
        if isinstance(shortest, int) and len(value) < shortest:
            raise _ExpressionError(
                f"The provided value for the template parameter '{name}' is not valid. Its "
                f"length must be at least '{shortest}'."
            )
        if isinstance(longest, int) and len(value) > longest:
            raise _ExpressionError(
                f"The provided value for the template parameter '{name}' is not valid. Its "
                f"length must be at most '{longest}'."
            )


def _member(target: Any, name: str) -> Any:
    if not isinstance(target, dict):
        raise _ExpressionError(
            f"The language expression property '{name}' can't be evaluated on a value of type "
            f"'{_type_name(target)}'."
        )
    for key, value in target.items():
        if key.lower() == name.lower():
            return value
    available = ", ".join(target)
    raise _ExpressionError(
        f"The language expression property '{name}' doesn't exist, available properties are "
        f"'{available}'."
    )


def _arity(name: str, args: Sequence[Any], low: int, high: int | None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        if high == low:
            want = f"exactly '{low}'"
        elif high is None:
            want = f"at least '{low}'"
        else:
            want = f"between '{low}' and '{high}'"
        raise _ExpressionError(
            f"The template language function '{name}' expects {want} parameter(s), but "
            f"'{len(args)}' were provided. {_HELP_FUNCTIONS}"
        )


def _type_error(name: str, expected: str, value: Any) -> _ExpressionError:
    return _ExpressionError(
        f"The template language function '{name}' expects its parameter to be of type "
        f"'{expected}'. The provided value is of type '{_type_name(value)}'. {_HELP_FUNCTIONS}"
    )


def _strings(name: str, args: Sequence[Any]) -> list[str]:
    for a in args:
        if not isinstance(a, str):
            raise _type_error(name, "String", a)
    return list(args)


def _fn_parameters(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    return ev.parameter(_strings(name, args)[0])


def _fn_variables(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    return ev.variable(_strings(name, args)[0])


def _fn_resource_id(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 2, None)
    parts = _strings(name, args)
    # The resource type is the first argument with a '/'; up to two scope arguments precede it.
    type_at = next((i for i, p in enumerate(parts) if "/" in p), None)
    if type_at is None or type_at > 2:
        raise _ExpressionError(
            f"The template language function 'resourceId' expects a fully qualified resource "
            f"type such as 'Microsoft.Network/virtualNetworks' among its first three "
            f"parameters. {_HELP_FUNCTIONS}"
        )
    subscription, group = ev.ctx.subscription, ev.ctx.resource_group
    if type_at == 2:
        subscription, group = parts[0], parts[1]
    elif type_at == 1:
        group = parts[0]
    type_segments = parts[type_at].strip("/").split("/")
    names = [seg for p in parts[type_at + 1 :] for seg in p.split("/")]
    if len(type_segments) < 2 or len(names) != len(type_segments) - 1:
        raise _ExpressionError(
            f"Unable to evaluate template language function 'resourceId': the type "
            f"'{parts[type_at]}' requires {max(len(type_segments) - 1, 1)} resource name "
            f"argument(s), but {len(names)} were given. {_HELP_FUNCTIONS}"
        )
    path = "".join(f"/{t}/{n}" for t, n in zip(type_segments[1:], names, strict=True))
    return f"{ev.rg_id(subscription, group)}/providers/{type_segments[0]}{path}"


def _fn_concat(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, None)
    if all(isinstance(a, list) for a in args):
        return [item for a in args for item in a]
    for a in args:
        if isinstance(a, list | dict):
            raise _ExpressionError(
                f"The template language function 'concat' expects its parameters to be all "
                f"arrays or all strings; found a value of type '{_type_name(a)}'. "
                f"{_HELP_FUNCTIONS}"
            )
    return "".join(_to_text(a) for a in args)


def _fn_format(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, None)
    return _format_dotnet(_strings(name, args[:1])[0], args[1:])


def _fn_resource_group(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 0, 0)
    return {
        "id": ev.rg_id(),
        "name": ev.ctx.resource_group,
        "type": "Microsoft.Resources/resourceGroups",
        "location": ev.ctx.location,
        "properties": {"provisioningState": "Succeeded"},
    }


def _fn_subscription(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 0, 0)
    sub = ev.ctx.subscription
    return {"id": f"/subscriptions/{sub}", "subscriptionId": sub}


def _fn_deployment(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 0, 0)
    return {"name": ev.ctx.deployment_name, "properties": {}}


def _fn_to_lower(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    return _strings(name, args)[0].lower()


def _fn_to_upper(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    return _strings(name, args)[0].upper()


def _fn_string(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    return _to_text(args[0])


def _fn_unique_string(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, None)
    return unique_string(*_strings(name, args))


def _fn_guid(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, None)
    return _arm_guid(*_strings(name, args))


def _fn_equals(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 2, 2)
    a, b = args
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return bool(a == b and type(a) is type(b))


def _fn_not(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    if not isinstance(args[0], bool):
        raise _type_error(name, "Boolean", args[0])
    return not args[0]


def _fn_and(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 2, None)
    for a in args:
        if not isinstance(a, bool):
            raise _type_error(name, "Boolean", a)
    return all(args) if name.lower() == "and" else any(args)


def _fn_bool(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    value = args[0]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return value != 0
    raise _type_error(name, "String, Integer or Boolean", value)


def _fn_int(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    value = args[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _ExpressionError(
        f"The template language function 'int' cannot convert '{_to_text(value)}' to an integer."
    )


def _fn_length(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    value = args[0]
    if not isinstance(value, str | list | dict):
        raise _type_error(name, "String, Array or Object", value)
    return len(value)


def _fn_empty(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 1, 1)
    value = args[0]
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _fn_constant(value: Any) -> Callable[[_Evaluator, str, list[Any]], Any]:
    def handler(ev: _Evaluator, name: str, args: list[Any]) -> Any:
        _arity(name, args, 0, 0)
        return value

    return handler


def _fn_copy_index(ev: _Evaluator, name: str, args: list[Any]) -> Any:
    _arity(name, args, 0, 2)
    loop_name: str | None = None
    offset = 0
    for a in args:
        if isinstance(a, str):
            loop_name = a
        elif isinstance(a, int) and not isinstance(a, bool):
            offset = a
        else:
            raise _type_error(name, "Integer or String", a)
    if ev.loop is None or (loop_name is not None and loop_name.lower() != ev.loop.name.lower()):
        where = f"loop '{loop_name}'" if loop_name else "a copy loop"
        raise _ExpressionError(
            f"The template function 'copyIndex' is not expected at this location: it is only "
            f"valid inside {where}. {_HELP_FUNCTIONS}"
        )
    return ev.loop.index + offset


_FUNCTIONS: dict[str, Callable[[_Evaluator, str, list[Any]], Any]] = {
    "parameters": _fn_parameters,
    "variables": _fn_variables,
    "resourceid": _fn_resource_id,
    "concat": _fn_concat,
    "format": _fn_format,
    "resourcegroup": _fn_resource_group,
    "subscription": _fn_subscription,
    "deployment": _fn_deployment,
    "tolower": _fn_to_lower,
    "toupper": _fn_to_upper,
    "string": _fn_string,
    "uniquestring": _fn_unique_string,
    "guid": _fn_guid,
    "equals": _fn_equals,
    "not": _fn_not,
    "and": _fn_and,
    "or": _fn_and,
    "bool": _fn_bool,
    "int": _fn_int,
    "length": _fn_length,
    "empty": _fn_empty,
    "true": _fn_constant(True),
    "false": _fn_constant(False),
    "null": _fn_constant(None),
    "copyindex": _fn_copy_index,
}


# -- template structure -------------------------------------------------------------------

_TEMPLATE_KEYS = frozenset(
    {
        "$schema",
        "contentversion",
        "apiprofile",
        "metadata",
        "parameters",
        "variables",
        "resources",
        "outputs",
        "functions",
    }
)
# Properties that steer planning rather than describe the resource.
_CONTROL_KEYS = frozenset(
    {"type", "name", "apiversion", "dependson", "condition", "copy", "comments", "resources"}
)


@dataclass
class _Declared:
    """One resource instance as declared, before dependencies are resolved."""

    id: ResourceId
    api_version: str
    body: dict[str, Any]
    symbolic_name: str
    name: str
    raw_depends_on: list[str]
    loop_name: str | None
    enabled: bool
    implicit_parent: ResourceId | None


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    """ARM reads template properties case-insensitively."""
    for k, v in mapping.items():
        if k.lower() == key.lower():
            return v
    return None


def _unwrap_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    # A whole parameters file ({"$schema", "contentVersion", "parameters"}) is accepted too.
    inner = parameters.get("parameters")
    if isinstance(inner, Mapping) and ("$schema" in parameters or "contentVersion" in parameters):
        parameters = inner
    out: dict[str, Any] = {}
    for name, supplied in parameters.items():
        if isinstance(supplied, Mapping) and "reference" in supplied and "value" not in supplied:
            raise _validation_failed(
                f"The template parameter '{name}' uses a Key Vault reference, which is not "
                f"supported. Pass the value directly. {_HELP_PARAMS}"
            )
        if (
            isinstance(supplied, Mapping)
            and "value" in supplied
            and set(supplied)
            <= {
                "value",
                "metadata",
            }
        ):
            out[name.lower()] = supplied["value"]
        else:
            out[name.lower()] = supplied
    return out


def _check_template_shape(template: Mapping[str, Any]) -> None:
    if not isinstance(template, Mapping):
        raise TemplateError("The template must be a JSON object.")
    unknown = [k for k in template if k.lower() not in _TEMPLATE_KEYS]
    if unknown:
        raise _validation_failed(
            f"The template has unsupported top-level properties: '{', '.join(unknown)}'. "
            f"{_HELP_SYNTAX}"
        )
    if template.get("functions"):
        raise _validation_failed(
            f"User-defined template functions are not supported. {_HELP_SYNTAX}"
        )
    for section in ("parameters", "variables", "outputs"):
        value = _get(template, section)
        if value is not None and not isinstance(value, Mapping):
            raise _validation_failed(f"The template '{section}' property must be an object.")
    resources = _get(template, "resources")
    if resources is not None and not isinstance(resources, list):
        raise _validation_failed(
            f"The template 'resources' property must be an array; symbolic-name resources "
            f"(languageVersion 2.0) are not supported. {_HELP_SYNTAX}"
        )


def _param_decls(template: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    decls: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name, decl in (_get(template, "parameters") or {}).items():
        if not isinstance(decl, Mapping):
            raise _validation_failed(f"The template parameter '{name}' must be an object.")
        type_key = str(decl.get("type", "")).lower()
        if type_key not in _PARAM_TYPES:
            raise _validation_failed(
                f"The template parameter '{name}' has type '{decl.get('type')}', which is not "
                f"one of 'string, securestring, int, bool, object, secureobject, array'. "
                f"{_HELP_SYNTAX}"
            )
        decls[name.lower()] = (name, decl)
    return decls


def plan_deployment(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    subscription: str,
    resource_group: str,
    resource_group_location: str,
    deployment_name: str,
) -> DeploymentPlan:
    """Validate a template with its parameters and plan the resources it deploys.

    Raises :class:`TemplateError` (400 ``InvalidTemplate``) for anything ARM would reject at
    validation time, with ARM's wording where ARM has one.
    """
    try:
        return _plan(
            template,
            parameters,
            _Context(subscription, resource_group, resource_group_location, deployment_name),
        )
    except RecursionError:
        # The depth limits should make this unreachable; a template that still gets here is
        # refused like one that hits them.
        raise _validation_failed(
            f"The template nests deeper than the limit of {MAX_EVALUATION_DEPTH} levels."
        ) from None


def _plan(
    template: Mapping[str, Any], parameters: Mapping[str, Any], ctx: _Context
) -> DeploymentPlan:
    _check_template_shape(template)
    if not isinstance(parameters, Mapping):
        raise _validation_failed("The deployment parameters must be a JSON object.")
    decls = _param_decls(template)
    supplied = _unwrap_parameters(parameters)
    extra = [n for n in supplied if n not in decls]
    if extra:
        names = ", ".join(name for name, _ in decls.values())
        raise _validation_failed(
            f"The template parameters '{', '.join(extra)}' in the parameters file are not "
            f"valid; they are not present in the original template and can therefore not be "
            f"provided at deployment time. The only supported parameters for this template are "
            f"'{names}'. {_HELP_PARAMS}"
        )
    variables = _get(template, "variables") or {}
    if any(k.lower() == "copy" for k in variables):
        raise _validation_failed(f"Variable 'copy' loops are not supported. {_HELP_SYNTAX}")
    ev = _Evaluator(
        ctx=ctx,
        param_decls=decls,
        supplied=supplied,
        variable_decls={k.lower(): (k, v) for k, v in variables.items()},
    )
    # Every parameter is validated even if nothing uses it, as ARM does.
    for name, _ in decls.values():
        _in_context(partial(ev.parameter, name), None)
    declared: list[_Declared] = []
    for raw in _get(template, "resources") or []:
        declared.extend(_declare(ev, raw, parent=None))
        if len(declared) > MAX_RESOURCES:
            # Checked as copies expand, so a template of many large loops stops early.
            raise _validation_failed(
                f"The template resource count exceeds the limit of {MAX_RESOURCES} resources "
                f"(copy loops included). {_HELP_SYNTAX}"
            )
    resources = _resolve_dependencies(declared)
    outputs = _outputs(ev, _get(template, "outputs") or {})
    return DeploymentPlan(resources=resources, outputs=outputs)


def _in_context(thunk: Callable[[], Any], where: str | None) -> Any:
    try:
        return thunk()
    except _ExpressionError as exc:
        text = str(exc)
        if where is None:
            if text.startswith("Deployment template validation failed"):
                raise TemplateError(text) from None
            raise _validation_failed(text) from None
        raise TemplateError(
            f"Unable to process template language expressions for {where}. '{text}'"
        ) from None


def _declare(ev: _Evaluator, raw: Any, parent: _Declared | None) -> list[_Declared]:
    if not isinstance(raw, Mapping):
        raise _validation_failed(f"Each template resource must be an object. {_HELP_SYNTAX}")
    raw_type, raw_name = _get(raw, "type"), _get(raw, "name")
    if not isinstance(raw_type, str) or not raw_type or raw_name is None:
        raise _validation_failed(
            f"A template resource must have string 'type' and 'name' properties. {_HELP_SYNTAX}"
        )
    label = f"resource '{raw_type}/{_shown(str(raw_name))}'"
    copy = _get(raw, "copy")
    if copy is None:
        return _declare_instance(ev, raw, parent, None, label)
    if parent is not None:
        raise _validation_failed(
            f"The template {label} uses 'copy' inside a parent's 'resources' array; declare it "
            f"at the top level instead. {_HELP_SYNTAX}"
        )
    if not isinstance(copy, Mapping) or not isinstance(copy.get("name"), str):
        raise _validation_failed(f"The 'copy' property of {label} must have a 'name'.")
    count = _in_context(lambda: ev.value(copy.get("count")), label)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 800:
        raise _validation_failed(
            f"The 'copy' count of {label} must be an integer from 0 to 800, not "
            f"'{_to_text(count)}'."
        )
    mode = str(copy.get("mode", "parallel")).lower()
    batch = copy.get("batchSize", 1) if mode == "serial" else None
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise _validation_failed(f"The 'copy' batchSize of {label} must be a positive integer.")
    out: list[_Declared] = []
    for index in range(count):
        ev.loop = _Loop(copy["name"], index)
        try:
            [instance, *children] = _declare_instance(ev, raw, None, copy["name"], label)
        finally:
            ev.loop = None
        if batch is not None and index >= batch:
            # Serial copy: each batch waits for the whole previous batch.
            start = (index // batch - 1) * batch
            instance.raw_depends_on.extend(
                out_item.id.format() for out_item in out[start : start + batch]
            )
        out.append(instance)
        out.extend(children)
    return out


def _declare_instance(
    ev: _Evaluator,
    raw: Mapping[str, Any],
    parent: _Declared | None,
    loop_name: str | None,
    label: str,
) -> list[_Declared]:
    def evaluate() -> tuple[str, str, Any, Any, dict[str, Any], Any]:
        type_ = ev.value(_get(raw, "type"))
        name = ev.value(_get(raw, "name"))
        condition = ev.value(_get(raw, "condition")) if _get(raw, "condition") is not None else True
        depends = ev.value(_get(raw, "dependsOn") or [])
        body = {k: ev.value(v) for k, v in raw.items() if k.lower() not in _CONTROL_KEYS}
        api = ev.value(_get(raw, "apiVersion"))
        return type_, name, condition, depends, body, api

    if _has_property_loop(_get(raw, "properties")):
        raise _validation_failed(
            f"The template {label} uses a 'copy' loop inside its properties, which is not "
            f"supported; declare the array elements explicitly. {_HELP_SYNTAX}"
        )
    type_, name, condition, depends, body, api = _in_context(evaluate, label)
    if not isinstance(type_, str) or not isinstance(name, str) or not name:
        raise _validation_failed(f"The template {label} must have a non-empty string name.")
    label = f"resource '{type_}/{name}'"
    if not isinstance(api, str) or not api:
        raise _validation_failed(
            f"The template {label} is not valid: required property 'apiVersion' not found. "
            f"{_HELP_SYNTAX}"
        )
    if not isinstance(condition, bool):
        raise _validation_failed(
            f"The template {label} has a 'condition' of type '{_type_name(condition)}'; it "
            f"must be a Boolean."
        )
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise _validation_failed(
            f"The 'dependsOn' property of {label} must be an array of strings."
        )
    if parent is not None:
        # An inline child may give its short type and name or the full ones.
        if "/" not in type_:
            type_ = f"{parent.id.type}/{type_}"
        if name.count("/") < type_.count("/") - 1:
            name = f"{parent.name}/{name}"
    rid, implicit = _resource_id(ev, type_, name, body, label)
    declared = _Declared(
        id=rid,
        api_version=api,
        body=body,
        symbolic_name=f"{type_}/{name}",
        name=name,
        raw_depends_on=list(depends),
        loop_name=loop_name,
        enabled=condition and (parent is None or parent.enabled),
        implicit_parent=implicit,
    )
    out = [declared]
    children = _get(raw, "resources")
    if children is not None:
        if not isinstance(children, list):
            raise _validation_failed(f"The 'resources' property of {label} must be an array.")
        for child in children:
            out.extend(_declare(ev, child, parent=declared))
    return out


def _has_property_loop(value: Any) -> bool:
    """ARM's property loop: ``"copy": [{"name", "count", "input"}]`` anywhere in properties."""
    if isinstance(value, Mapping):
        loop = _get(value, "copy")
        if isinstance(loop, list) and any(
            isinstance(item, Mapping) and _get(item, "input") is not None for item in loop
        ):
            return True
        return any(_has_property_loop(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_property_loop(v) for v in value)
    return False


def _resource_id(
    ev: _Evaluator, type_: str, name: str, body: dict[str, Any], label: str
) -> tuple[ResourceId, ResourceId | None]:
    type_segments = type_.strip("/").split("/")
    name_segments = name.split("/")
    if len(type_segments) < 2 or len(name_segments) != len(type_segments) - 1:
        raise _validation_failed(
            f"The template {label} has incorrect segment lengths. A nested resource type must "
            f"have identical number of segments as its resource name. A root resource type must "
            f"have segment length one greater than its resource name. {_HELP_SYNTAX}"
        )
    pairs = tuple(zip(type_segments[1:], name_segments, strict=True))
    scope_text = body.pop("scope", None)
    if scope_text is None:
        base = ResourceId(ev.ctx.subscription, ev.ctx.resource_group)
        implicit = None
    else:
        if not isinstance(scope_text, str):
            raise _validation_failed(f"The 'scope' property of {label} must be a string.")
        try:
            base = parse_resource_id(scope_text)
        except InvalidResourceId as exc:
            raise _validation_failed(
                f"The 'scope' property of {label} is not a resource ID: {exc.reason}."
            ) from None
        implicit = base if base.is_resource else None
    rid = ResourceId(
        base.subscription,
        base.resource_group,
        (*base.levels, ProviderLevel(type_segments[0], pairs)),
    )
    try:
        rid = parse_resource_id(rid.format())
    except InvalidResourceId as exc:
        raise _validation_failed(f"The template {label} is not valid: {exc.reason}.") from None
    if implicit is None and rid.is_child:
        implicit = rid.parent
    return rid, implicit


def _resolve_dependencies(declared: list[_Declared]) -> tuple[PlannedResource, ...]:
    by_key: dict[str, _Declared] = {}
    for d in declared:
        if d.id.key in by_key:
            raise _validation_failed(
                f"The resource '{d.id}' is defined multiple times in a template. "
                f"Please see https://aka.ms/arm-template/#resources for usage details."
            )
        by_key[d.id.key] = d
    by_symbol: dict[str, list[_Declared]] = {}
    by_name: dict[str, list[_Declared]] = {}
    by_loop: dict[str, list[_Declared]] = {}
    for d in declared:
        by_symbol.setdefault(d.symbolic_name.lower(), []).append(d)
        by_name.setdefault(d.name.lower(), []).append(d)
        if d.loop_name is not None:
            by_loop.setdefault(d.loop_name.lower(), []).append(d)

    def targets(owner: _Declared, ref: str) -> list[_Declared]:
        text = ref.strip()
        if text.lower().startswith("/subscriptions/"):
            try:
                found = by_key.get(parse_resource_id(text).key)
            except InvalidResourceId:
                found = None
            hits = [found] if found else []
        else:
            hits = by_loop.get(text.lower()) or by_symbol.get(text.lower()) or []
            if not hits:
                hits = by_name.get(text.lower(), [])
                if len(hits) > 1:
                    raise _validation_failed(
                        f"The template resource '{owner.symbolic_name}' reference to '{ref}' is "
                        f"ambiguous: several resources are named '{ref}'. Use the resource's "
                        f"type and name or its resourceId(). {_HELP_SYNTAX}"
                    )
        if not hits:
            raise _validation_failed(
                f"The template resource '{owner.symbolic_name}' reference to '{ref}' is not "
                f"valid: no resource with that resource ID, name or type and name is defined in "
                f"the template. {_HELP_SYNTAX}"
            )
        return hits

    edges: dict[str, set[str]] = {}
    for d in declared:
        deps: set[str] = set()
        for ref in d.raw_depends_on:
            deps.update(t.id.key for t in targets(d, ref))
        if d.implicit_parent is not None and d.implicit_parent.key in by_key:
            deps.add(d.implicit_parent.key)
        edges[d.id.key] = deps
    _check_acyclic(declared, edges, by_key)
    # A resource whose condition is false is left out; depending on it is satisfied at once.
    enabled = {d.id.key for d in declared if d.enabled}
    order = _topological(declared, edges)
    return tuple(
        PlannedResource(
            id=d.id,
            api_version=d.api_version,
            body=d.body,
            depends_on=frozenset(_enabled_closure(d.id.key, edges, enabled)),
            symbolic_name=d.symbolic_name,
        )
        for d in order
        if d.id.key in enabled
    )


def _enabled_closure(key: str, edges: dict[str, set[str]], enabled: set[str]) -> set[str]:
    """Direct dependencies, looking through disabled resources to what they depend on, so that
    ordering promised through a skipped resource still holds."""
    out: set[str] = set()
    stack = list(edges[key])
    seen: set[str] = set()
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        if dep in enabled:
            out.add(dep)
        else:
            stack.extend(edges[dep])
    return out


def _check_acyclic(
    declared: list[_Declared], edges: dict[str, set[str]], by_key: dict[str, _Declared]
) -> None:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in declared:
        if colour[start.id.key] != white:
            continue
        # Iterative DFS: templates may be deep enough to trouble recursion limits.
        path: list[str] = [start.id.key]
        iters = [iter(sorted(edges[start.id.key]))]
        colour[start.id.key] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
                continue
            if colour[nxt] == grey:
                cycle = [*path[path.index(nxt) :], nxt]
                shown = " -> ".join(str(by_key[k].id) for k in cycle)
                raise _validation_failed(
                    f"Circular dependency detected on resource: '{by_key[nxt].id}'. The cycle is "
                    f"{shown}. Please see https://aka.ms/arm-template/#resources for usage "
                    f"details."
                )
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(sorted(edges[nxt])))


def _topological(declared: list[_Declared], edges: dict[str, set[str]]) -> list[_Declared]:
    # Kahn's algorithm, taking ready resources in template order so the plan reads like the file.
    remaining = {d.id.key: set(edges[d.id.key]) for d in declared}
    order: list[_Declared] = []
    placed: set[str] = set()
    while len(order) < len(declared):
        for d in declared:
            if d.id.key not in placed and remaining[d.id.key] <= placed:
                order.append(d)
                placed.add(d.id.key)
                break
    return order


def _outputs(ev: _Evaluator, outputs: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, decl in outputs.items():
        where = f"template output '{name}'"
        if not isinstance(decl, Mapping):
            raise _validation_failed(f"The {where} must be an object.")
        if _get(decl, "copy") is not None:
            raise _validation_failed(f"The {where} uses 'copy', which is not supported.")
        type_key = str(_get(decl, "type") or "").lower()
        if type_key not in _PARAM_TYPES:
            raise _validation_failed(
                f"The {where} has type '{_get(decl, 'type')}', which is not one of 'string, "
                f"securestring, int, bool, object, secureobject, array'."
            )
        condition = _get(decl, "condition")
        if condition is not None:
            enabled = _in_context(partial(ev.value, condition), where)
            if not isinstance(enabled, bool):
                raise _validation_failed(f"The 'condition' of the {where} must be a Boolean.")
            if not enabled:
                continue
        value = _in_context(partial(ev.value, _get(decl, "value")), where)
        arm_type, check = _PARAM_TYPES[type_key]
        if not check(value):
            raise TemplateError(
                f"Unable to evaluate template outputs: '{name}'. The value is of type "
                f"'{_type_name(value)}', but the output is declared as '{arm_type}'."
            )
        result[name] = {"type": arm_type, "value": value}
    return result
