"""Conditions on readings, neutral of the query language that produced them (SensorThings'
$filter today) and rendered to SQL by the storage.

Fields: `ts_ms` (the reading's time), `value` (number, text or null), `series_id`, and
`obs_id`, the reading's public id: `gateway_id << OBS_ID_BITS | seq`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

OBS_ID_BITS = 40  # 2^40 sequence numbers per gateway: 34,000 years at 1,000 readings/s
OBS_SEQ_MASK = (1 << OBS_ID_BITS) - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Field = Literal["ts_ms", "value", "series_id", "obs_id"]
Op = Literal["eq", "ne", "lt", "le", "gt", "ge"]
Literal_ = int | float | str | bool | None

_SQL_OP = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True, slots=True)
class Cmp:
    field: Field
    op: Op
    value: Literal_


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["and", "or"]
    left: Predicate
    right: Predicate


@dataclass(frozen=True, slots=True)
class Not:
    operand: Predicate


Predicate = Cmp | BoolOp | Not


def obs_id(gateway_id: int, seq: int) -> int:
    return (gateway_id << OBS_ID_BITS) | (seq & OBS_SEQ_MASK)


def split_obs_id(value: int) -> tuple[int, int]:
    return value >> OBS_ID_BITS, value & OBS_SEQ_MASK


def fit_int64(pred: Predicate) -> Predicate:
    """The same condition with every whole number within 64 bits, for a driver that cannot
    bind a larger one (sqlite3 raises OverflowError). Stored values are 64-bit integers or
    doubles, so a number beyond that range is replaced by the doubles around it (`value`)
    or by the range's end (integer columns), keeping the comparison's meaning exactly."""
    if isinstance(pred, BoolOp):
        return BoolOp(pred.op, fit_int64(pred.left), fit_int64(pred.right))
    if isinstance(pred, Not):
        return Not(fit_int64(pred.operand))
    v = pred.value
    if not isinstance(v, int) or isinstance(v, bool) or INT64_MIN <= v <= INT64_MAX:
        return pred
    if pred.field == "value":
        return _around(pred.op, v)
    if v > INT64_MAX:  # above every stored id or time: gt, ge, eq never hold; lt, le, ne do
        return Cmp(pred.field, "gt" if pred.op in ("gt", "ge", "eq") else "le", INT64_MAX)
    return Cmp(pred.field, "lt" if pred.op in ("lt", "le", "eq") else "ge", INT64_MIN)


def _around(op: Op, n: int) -> Predicate:
    """`value op n` for a whole number n beyond 64 bits, as comparisons with doubles."""
    try:
        f = float(n)
    except OverflowError:  # beyond the largest double
        f = math.inf if n > 0 else -math.inf
    if f == n:
        return Cmp("value", op, f)
    # no stored value (a 64-bit integer or a double) lies strictly between lo and hi
    lo, hi = (math.nextafter(f, -math.inf), f) if f > n else (f, math.nextafter(f, math.inf))
    if op in ("gt", "ge"):
        return Cmp("value", "ge", hi)
    if op in ("lt", "le"):
        return Cmp("value", "le", lo)
    if op == "eq":
        return BoolOp("and", Cmp("value", "gt", lo), Cmp("value", "lt", hi))
    return BoolOp("or", Cmp("value", "le", lo), Cmp("value", "ge", hi))


def render(pred: Predicate, p: str, alias: str = "r") -> tuple[str, list[object]]:
    """SQL text (parameters marked with `p`) and its parameters."""
    if isinstance(pred, BoolOp):
        left, lp = render(pred.left, p, alias)
        right, rp = render(pred.right, p, alias)
        return f"({left} {pred.op.upper()} {right})", lp + rp
    if isinstance(pred, Not):
        inner, params = render(pred.operand, p, alias)
        return f"(NOT COALESCE({inner}, FALSE))", params
    return _render_cmp(pred, p, alias)


def _render_cmp(c: Cmp, p: str, a: str) -> tuple[str, list[object]]:
    op = _SQL_OP[c.op]
    v = c.value
    if c.field == "value":
        if v is None:
            test = f"({a}.value IS NULL AND {a}.text IS NULL)"
            return (test, []) if c.op == "eq" else (f"(NOT {test})", [])
        if isinstance(v, str):
            return f"({a}.text {op} {p})", [v]
        return f"({a}.value {op} {p})", [int(v) if isinstance(v, bool) else v]
    if v is None or isinstance(v, str | bool) or not isinstance(v, int | float):
        return ("(1 = 0)", []) if c.op != "ne" else ("(1 = 1)", [])
    if c.field == "obs_id":
        if not isinstance(v, int):
            v = int(v)
        g, s = split_obs_id(v)
        if c.op == "eq":
            return f"({a}.gateway_id = {p} AND {a}.seq = {p})", [g, s]
        if c.op == "ne":
            return f"(NOT ({a}.gateway_id = {p} AND {a}.seq = {p}))", [g, s]
        return f"(({a}.gateway_id, {a}.seq) {op} ({p}, {p}))", [g, s]
    column = "ts_ms" if c.field == "ts_ms" else "series_id"
    return f"({a}.{column} {op} {p})", [v]


__all__ = [
    "OBS_ID_BITS",
    "BoolOp",
    "Cmp",
    "Field",
    "Not",
    "Op",
    "Predicate",
    "fit_int64",
    "obs_id",
    "render",
    "split_obs_id",
]
