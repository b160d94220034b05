"""From MQTT messages to storage batches: the hub's decoder, with every check a hostile
gateway could need. Pure functions; they raise `RemoteProtocolError` with a reason and
nothing else (a hypothesis test holds them to it).
"""

from __future__ import annotations

from hub.storage import GatewayState, IngestBatch, SeriesKey, SourceStatus, Value
from protocols import wire
from protocols.block import MAX_STRING, MAX_TEXT_VALUE, decode_block
from protocols.errors import MALFORMED, OVERFLOW, RemoteProtocolError
from protocols.reading import FLAG_HISTORICAL

MAX_NAME = MAX_STRING  # characters of a sensor id, quantity or unit
MAX_TEXT = MAX_TEXT_VALUE  # characters of a string value
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
FLAGS_MAX = 2**31 - 1


def _check_name(value: object, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise RemoteProtocolError(MALFORMED, f"{what}: not a name of 1 to {MAX_NAME} characters")


def _clean(key: SeriesKey) -> SeriesKey:
    """NUL cannot be stored in a PostgreSQL text: it becomes U+FFFD."""
    sensor, quantity, unit = key
    if "\x00" in sensor + quantity + (unit or ""):
        return (
            sensor.replace("\x00", "\ufffd"),
            quantity.replace("\x00", "\ufffd"),
            None if unit is None else unit.replace("\x00", "\ufffd"),
        )
    return key


def _check_value(value: object) -> bool:
    """Validate one value; return whether it is text."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise RemoteProtocolError(OVERFLOW, "integer value outside 64 bits")
        return False
    if isinstance(value, float):
        return False
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise RemoteProtocolError(OVERFLOW, "text value too long")
        return True
    raise RemoteProtocolError(MALFORMED, f"value of type {type(value).__name__}")


def decode_data(gateway: str, payload: bytes) -> IngestBatch:
    """A data message of `gateway` as a columnar batch, every block decoded and checked:
    block spans inside the message span, no two blocks overlapping, the reading count as
    announced, names and values storable."""
    msg = wire.decode_data(payload)
    extra_flags = FLAG_HISTORICAL if msg.historical else 0
    series: list[SeriesKey] = []
    index: dict[SeriesKey, int] = {}
    series_index: list[int] = []
    seqs: list[int] = []
    ts_ms: list[int] = []
    values: list[Value] = []
    flags: list[int] = []
    ranges: list[tuple[int, int]] = []
    has_text = False
    total = 0
    for payload_block in msg.blocks:
        first, readings = decode_block(payload_block)
        n = len(readings)
        if n == 0:
            raise RemoteProtocolError(MALFORMED, "empty block")
        total += n
        if total > msg.count:
            raise RemoteProtocolError(MALFORMED, f"more readings than the {msg.count} announced")
        last = first + n - 1
        if first < msg.first_seq or last > msg.last_seq:
            raise RemoteProtocolError(
                MALFORMED, f"block {first}..{last} outside {msg.first_seq}..{msg.last_seq}"
            )
        ranges.append((first, last))
        seqs.extend(range(first, last + 1))
        for r in readings:
            key = (r.sensor, r.quantity, r.unit)
            i = index.get(key)
            if i is None:
                _check_name(r.sensor, "sensor")
                _check_name(r.quantity, "quantity")
                _check_name(r.unit, "unit", optional=True)
                i = index[key] = len(series)
                series.append(_clean(key))
            series_index.append(i)
            ts = r.ts_ms
            if type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
                raise RemoteProtocolError(MALFORMED, "timestamp is not a 64-bit integer")
            ts_ms.append(ts)
            v = r.value
            if type(v) is not float and _check_value(v):
                has_text = True
                if "\x00" in v:  # type: ignore[operator]
                    v = v.replace("\x00", "\ufffd")  # type: ignore[attr-defined]
            values.append(v)  # type: ignore[arg-type]
            fl = r.flags
            if type(fl) is not int or not 0 <= fl <= FLAGS_MAX:
                raise RemoteProtocolError(MALFORMED, "flags out of range")
            flags.append(fl | extra_flags)
    if total != msg.count:
        raise RemoteProtocolError(MALFORMED, f"{total} readings where {msg.count} were announced")
    merged = wire.merge_ranges(ranges)
    if sum(b - a + 1 for a, b in merged) != total:
        raise RemoteProtocolError(MALFORMED, "blocks overlap")
    return IngestBatch(
        gateway=gateway,
        session=msg.session,
        batch_no=msg.batch,
        historical=msg.historical,
        backlog=msg.backlog,
        ranges=merged,
        series=series,
        series_index=series_index,
        seqs=seqs,
        ts_ms=ts_ms,
        values=values,
        flags=flags,
        has_text=has_text,
    )


def decode_state(payload: bytes) -> GatewayState:
    s = wire.decode_state(payload)
    info: dict[str, object] = {}
    if s.dropped is not None:
        info["dropped"] = s.dropped
    if s.software is not None:
        info["software"] = s.software
    sources = None
    if s.sources is not None:
        sources = tuple(
            SourceStatus(h.name, h.status, h.last_ms, dict(h.errors), h.detail) for h in s.sources
        )
    return GatewayState(
        online=s.online,
        session=s.session,
        ts_ms=s.ts_ms,
        backlog=s.backlog,
        info=info,
        footprint=s.footprint,
        sources=sources,
        restart_pending=None if s.restart_pending is None else tuple(s.restart_pending),
    )


def peek_batch(payload: bytes) -> tuple[int, int, int, int] | None:
    """(session, batch, first_seq, last_seq) of a data message whose envelope decodes even
    though its blocks do not, so that the hub can tell the gateway what it rejected."""
    try:
        msg = wire.decode_data(payload)
    except RemoteProtocolError:
        return None
    return msg.session, msg.batch, msg.first_seq, msg.last_seq


__all__ = ["decode_data", "decode_state", "peek_batch"]
