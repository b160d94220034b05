"""SensorThings query options ($top, $skip, $count, $orderby, $select, $expand, $filter),
parsed into typed values. A bad option raises QueryError naming it; nothing here touches a
database.

$filter grammar (the part of OData the endpoint serves):

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | compare
    compare := operand op operand          op: eq ne gt ge lt le
    operand := path | literal
    path    := name ("/" name)*            e.g. phenomenonTime, result, @iot.id, id,
                                           Datastream/@iot.id, properties/kind
    literal := number | 'text' | true | false | null | date-time (ISO 8601, unquoted
               or quoted)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub._http import echo

MAX_TOP = 1000  # entities in one page (a larger $top is served in pages: @iot.nextLink)
DEFAULT_TOP = 100
MAX_SKIP = 10_000_000
MAX_FILTER = 2000  # characters of $filter
MAX_DEPTH = 32  # nesting of $filter


class QueryError(Exception):
    """A query option the endpoint cannot serve: `option` names it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


# -- $filter --------------------------------------------------------------------------------

Literal = int | float | str | bool | None


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True, slots=True)
class Value:
    value: Literal
    is_time: bool = False  # a date-time literal, as epoch ms in `value`


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # eq ne gt ge lt le
    left: Path | Value
    right: Path | Value


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # and | or
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Negation:
    operand: Expr


Expr = Compare | Logical | Negation

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})")
_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<paren>[()])"
    r"|(?P<name>[A-Za-z@_][A-Za-z0-9@_.]*(?:/[A-Za-z@_][A-Za-z0-9@_.]*)*)"
    r")"
)


def parse_time(text: str) -> int | None:
    """Epoch ms of an ISO 8601 date-time with a zone, or None."""
    if not _TIME.fullmatch(text):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(dt.astimezone(UTC).timestamp() * 1000)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryError("$filter", f"cannot read {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("$filter", "unexpected end")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "name" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.expr()
        if self.peek() is not None:
            raise QueryError("$filter", f"unexpected {echo(self.peek()[1])}")  # type: ignore[index]
        return expr

    def expr(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError("$filter", "nested too deep")
        left = self.conjunction()
        while self.keyword("or"):
            left = Logical("or", left, self.conjunction())
        self.depth -= 1
        return left

    def conjunction(self) -> Expr:
        left = self.unary()
        while self.keyword("and"):
            left = Logical("and", left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.keyword("not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError("$filter", "nested too deep")
            return Negation(self.unary())
        token = self.peek()
        if token == ("paren", "("):
            self.pos += 1
            inner = self.expr()
            if self.take() != ("paren", ")"):
                raise QueryError("$filter", "missing )")
            return inner
        left = self.operand()
        op = self.take()
        if op[0] != "name" or op[1].lower() not in COMPARISONS:
            raise QueryError(
                "$filter", f"expected a comparison (eq, ne, gt, ge, lt, le), got {echo(op[1])}"
            )
        right = self.operand()
        if isinstance(left, Value) and isinstance(right, Value):
            raise QueryError("$filter", "a comparison needs a property")
        return Compare(op[1].lower(), left, right)

    def operand(self) -> Path | Value:
        kind, text = self.take()
        if kind == "time":
            ms = parse_time(text)
            if ms is None:
                raise QueryError("$filter", f"bad date-time {echo(text)}")
            return Value(ms, is_time=True)
        if kind == "number":
            try:
                return Value(int(text)) if re.fullmatch(r"-?\d+", text) else Value(float(text))
            except ValueError:
                raise QueryError("$filter", f"bad number {echo(text)}") from None
        if kind == "string":
            inner = text[1:-1].replace("''", "'")
            ms = parse_time(inner)
            return Value(ms, is_time=True) if ms is not None else Value(inner)
        if kind == "name":
            low = text.lower()
            if low in ("true", "false"):
                return Value(low == "true")
            if low == "null":
                return Value(None)
            if low in COMPARISONS or low in ("and", "or", "not"):
                raise QueryError("$filter", f"unexpected {echo(text)}")
            if "(" in text:
                raise QueryError("$filter", "functions are not supported")
            return Path(tuple(text.split("/")))
        raise QueryError("$filter", f"unexpected {echo(text)}")


def parse_filter(text: str) -> Expr:
    if len(text) > MAX_FILTER:
        raise QueryError("$filter", f"longer than {MAX_FILTER} characters")
    if not text.strip():
        raise QueryError("$filter", "empty")
    return _Parser(text).parse()


# -- the options ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    path: Path
    desc: bool


@dataclass(slots=True)
class Options:
    top: int = DEFAULT_TOP
    top_given: bool = False
    skip: int = 0
    count: bool = False
    orderby: list[Order] = field(default_factory=list)
    select: list[str] | None = None
    expand: dict[str, Options] = field(default_factory=dict)
    filter: Expr | None = None
    raw: dict[str, str] = field(default_factory=dict)  # as given (for @iot.nextLink)


KNOWN = ("$top", "$skip", "$count", "$orderby", "$select", "$expand", "$filter", "$resultFormat")


def _int(option: str, text: str, limit: int) -> int:
    if not re.fullmatch(r"\d{1,12}", text.strip()):
        raise QueryError(option, f"expected a whole number >= 0, got {echo(text)}")
    value = int(text)
    if value > limit:
        raise QueryError(option, f"at most {limit}")
    return value


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
        elif not quoted and depth == 0 and c == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_options(params: dict[str, str], nested: bool = False) -> Options:
    """Options from the query parameters (or the inside of an $expand's parentheses)."""
    out = Options(raw=dict(params))
    for key, text in params.items():
        if key.startswith("$") and key not in KNOWN:
            raise QueryError(key, "unknown query option")
        if key == "$top":
            out.top = min(_int(key, text, 10**12), MAX_TOP)
            out.top_given = True
        elif key == "$skip":
            out.skip = _int(key, text, MAX_SKIP)
        elif key == "$count":
            if text not in ("true", "false"):
                raise QueryError(key, "expected true or false")
            out.count = text == "true"
        elif key == "$orderby":
            for item in _split(text, ","):
                words = item.split()
                if (
                    not words
                    or len(words) > 2
                    or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
                ):
                    raise QueryError(key, f"expected 'property [asc|desc]', got {echo(item)}")
                if not re.fullmatch(r"[A-Za-z@_][A-Za-z0-9@_./]*", words[0]):
                    raise QueryError(key, f"bad property {echo(words[0])}")
                out.orderby.append(
                    Order(
                        Path(tuple(words[0].split("/"))),
                        len(words) == 2 and words[1].lower() == "desc",
                    )
                )
        elif key == "$select":
            names = _split(text, ",")
            if not all(re.fullmatch(r"[A-Za-z@_][A-Za-z0-9@_.]*", n) for n in names):
                raise QueryError(key, f"expected property names, got {echo(text)}")
            out.select = names
        elif key == "$expand":
            if nested:
                raise QueryError(key, "one level of $expand only")
            for item in _split(text, ","):
                name, _, rest = item.partition("(")
                name = name.strip()
                if "/" in name:
                    raise QueryError(key, f"one level of $expand only ({echo(name)})")
                if not re.fullmatch(r"[A-Za-z]+", name):
                    raise QueryError(key, f"bad navigation property {echo(name)}")
                inner: dict[str, str] = {}
                if rest:
                    if not rest.endswith(")"):
                        raise QueryError(key, f"missing ) after {echo(name)}")
                    for part in _split(rest[:-1], ";"):
                        if not part:
                            continue
                        k, eq, v = part.partition("=")
                        if not eq:
                            raise QueryError(key, f"expected option=value in {echo(name)}(...)")
                        inner[k.strip()] = v.strip()
                out.expand[name] = parse_options(inner, nested=True)
        elif key == "$filter":
            out.filter = parse_filter(text)
        elif key == "$resultFormat" and text != "default":
            raise QueryError(key, "only the default result format is served")
    return out


__all__ = [
    "DEFAULT_TOP",
    "MAX_TOP",
    "Compare",
    "Expr",
    "Logical",
    "Negation",
    "Options",
    "Order",
    "Path",
    "QueryError",
    "Value",
    "parse_filter",
    "parse_options",
    "parse_time",
]
