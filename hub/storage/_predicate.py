"""Conditions on readings, neutral of the query language that produced them (SensorThings'
$filter today) and rendered to SQL by the storage.

Fields: `ts_ms` (the reading's time), `value` (number, text or null), `series_id`, and
`obs_id`, the reading's public id: `gateway_id << OBS_ID_BITS | seq`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OBS_ID_BITS = 40  # 2^40 sequence numbers per gateway: 34,000 years at 1,000 readings/s
OBS_SEQ_MASK = (1 << OBS_ID_BITS) - 1

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
    "obs_id",
    "render",
    "split_obs_id",
]
