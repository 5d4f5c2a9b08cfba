"""The ``$filter`` of ARM's resource and resource group lists, as ``az``, PowerShell and the
SDKs send it::

    resourceType eq 'Microsoft.Network/virtualNetworks'
    resourceGroup eq 'rg1' and location eq 'eastus'
    tagName eq 'env' and tagValue eq 'prod'
    substringof('web', name) or startswith(name, 'api')
    (resourceType eq 'A/b' or resourceType eq 'C/d') and location eq 'westus'

Names, types, groups and locations compare without case, as ARM's do; tag values keep it. A
``tagName``/``tagValue`` pair in one conjunction means one tag with that value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from armguard.arm.errors import ArmError
from armguard.arm.quoting import scan_quoted
from armguard.emulator.model import Resource

__all__ = ["Predicate", "parse_resource_filter"]

Predicate = Callable[[Resource], bool]

_HELP = (
    "Use clauses such as resourceType eq '...', resourceGroup eq '...', name eq '...', "
    "location eq '...', tagName eq '...' [and tagValue eq '...'], substringof('...', name) "
    "or startswith(name, '...'), joined with 'and' / 'or' and parentheses."
)


def _bad(message: str) -> ArmError:
    return ArmError(400, "InvalidFilterInQueryString", f"{message} {_HELP}")


def _tags(res: Resource) -> dict[str, object]:
    tags = res.body.get("tags")
    return tags if isinstance(tags, dict) else {}


def _location(res: Resource) -> str:
    value = res.body.get("location")
    return value.replace(" ", "").lower() if isinstance(value, str) else ""


# A field's value on a resource, lower-cased where ARM compares without case.
_FIELDS: dict[str, Callable[[Resource], str]] = {
    "resourcegroup": lambda r: (r.id.resource_group or "").lower(),
    "resourcetype": lambda r: r.id.type.lower(),
    "name": lambda r: r.id.name.lower(),
    "location": _location,
}


@dataclass(frozen=True)
class _Token:
    kind: str  # word | string | ( | ) | , | end
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            quoted = scan_quoted(text, i)
            if quoted is None:
                raise _bad(f"The $filter has an unterminated quoted value at position {i}.")
            out.append(_Token("string", quoted[0], i))
            i = quoted[1]
        elif ch in "(),":
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch.isalnum() or ch in "_/":
            start = i
            while i < n and (text[i].isalnum() or text[i] in "_/."):
                i += 1
            out.append(_Token("word", text[start:i], start))
        else:
            raise _bad(f"The $filter has an unexpected character '{ch}' at position {i}.")
    out.append(_Token("end", "", n))
    return out


@dataclass(frozen=True)
class _Compare:
    field: str  # lower-cased
    value: str


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, kind: str, what: str) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != kind:
            found = "the end" if tok.kind == "end" else f"'{tok.text}'"
            raise _bad(f"The $filter expected {what} at position {tok.pos} but found {found}.")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda r: any(t(r) for t in terms)

    def conjunction(self) -> Predicate:
        factors: list[Predicate | _Compare] = [self.factor()]
        while self.keyword("and"):
            factors.append(self.factor())
        return _all(factors)

    def factor(self) -> Predicate | _Compare:
        tok = self.peek()
        if tok.kind == "(":
            self.i += 1
            inner = self.expression()
            self.take(")", "')'")
            return inner
        name = self.take("word", "a field or function name").text
        low = name.lower()
        if low in ("substringof", "startswith") and self.peek().kind == "(":
            return self.function(low)
        if self.peek().kind != "word" or self.peek().text.lower() != "eq":
            raise _bad(f"The $filter clause on '{name}' needs 'eq' at position {self.peek().pos}.")
        self.i += 1
        value = self.take("string", "a quoted value").text
        if low in _FIELDS or low in ("tagname", "tagvalue"):
            return _Compare(low, value)
        raise _bad(f"The $filter field '{name}' is not supported.")

    def function(self, name: str) -> Predicate:
        self.take("(", "'('")
        if name == "substringof":
            needle = self.take("string", "a quoted value").text.lower()
            self.take(",", "','")
            field = self.field()
        else:
            field = self.field()
            self.take(",", "','")
            needle = self.take("string", "a quoted value").text.lower()
        self.take(")", "')'")
        read = _FIELDS[field]
        if name == "substringof":
            return lambda r: needle in read(r)
        return lambda r: read(r).startswith(needle)

    def field(self) -> str:
        tok = self.take("word", "a field name")
        if tok.text.lower() not in _FIELDS:
            raise _bad(f"The $filter cannot apply a function to the field '{tok.text}'.")
        return tok.text.lower()


def _all(factors: list[Predicate | _Compare]) -> Predicate:
    names = [f for f in factors if isinstance(f, _Compare) and f.field == "tagname"]
    values = [f for f in factors if isinstance(f, _Compare) and f.field == "tagvalue"]
    checks: list[Predicate] = []
    if len(names) == 1 and len(values) == 1:
        # One tag named so, holding that value (not one tag named so and another so valued).
        tag, wanted = names[0].value.lower(), values[0].value
        checks.append(lambda r: any(k.lower() == tag and v == wanted for k, v in _tags(r).items()))
        factors = [f for f in factors if f is not names[0] and f is not values[0]]
    for f in factors:
        checks.append(_compare(f) if isinstance(f, _Compare) else f)
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(c(r) for c in checks)


def _compare(c: _Compare) -> Predicate:
    if c.field == "tagname":
        tag = c.value.lower()
        return lambda r: any(k.lower() == tag for k in _tags(r))
    if c.field == "tagvalue":
        wanted = c.value
        return lambda r: any(v == wanted for v in _tags(r).values())
    read, value = (
        _FIELDS[c.field],
        c.value.replace(" ", "").lower() if c.field == "location" else c.value.lower(),
    )
    return lambda r: read(r) == value


def parse_resource_filter(text: str | None) -> Predicate | None:
    """The predicate a resource list's ``$filter`` asks for; None without one. A filter ARM
    would refuse is a 400 naming what is wrong with it."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    predicate = parser.expression()
    tok = parser.peek()
    if tok.kind != "end":
        raise _bad(f"The $filter expected 'and', 'or' or the end at position {tok.pos}.")
    return predicate
