"""The compact block: readings with consecutive sequence numbers as one CBOR data item.

Shared by the gateway buffer on disk, the uplink batches on the wire and the hub decoder.
A block is columnar: a dictionary of the series it holds (sensor, quantity, unit, how the
value is kept), then one column per field, each a byte string of LEB128 varints (small
numbers cost one byte). Exact: integers stay integers; a float that is a short decimal
(35.12) is kept as an integer mantissa and a count of decimals and comes back as the very
same float; anything else (text, booleans, NaN, 0.1 + 0.2) is kept as a CBOR value.

The block is a CBOR array of 13 items (docs/buffer-format.md has the full description):

    0  version            1
    1  first_seq          sequence number of the first reading; the k-th has first_seq + k
    2  count              number of readings, 1 .. MAX_READINGS
    3  flags_default      flags of every reading not listed in 4
    4  flag_exceptions    [index, flags, index, flags, ...], indices increasing
    5  t_min              smallest timestamp (UTC ms)
    6  t_span             largest timestamp - t_min
    7  strings            [text, ...]: the sensor ids, quantities and units of the block
    8  series             [sensor, quantity, unit, kind, ...]: 4 integers per series
                          (indices into strings, unit may be null); kind 0 = raw value,
                          1 = integer, 2 + d = float with d decimals (d = 0 .. 22)
    9  series column      bstr: count unsigned varints, the series index of each reading
    10 time column        bstr: count signed varints, each timestamp minus the previous
                          one (the first minus t_min)
    11 value column       bstr: one signed varint per reading of an integer or float
                          series: mantissa minus the previous mantissa of that series (0
                          before its first); value = m (integer), float(m) / 10.0**d (float)
    12 raw values         [value, ...]: one per reading of a raw series, in reading order

Varints: unsigned LEB128 (7 bits per byte, low group first, high bit = more), at most 10
bytes, below 2**64; signed ones are zigzag-mapped first (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...).

`decode_block` trusts nothing: every index, length and count is checked, hard limits bound
time and memory, and anything wrong raises `RemoteProtocolError` (nothing else).
"""

import sys

from protocols import cbor
from protocols._typing import TYPE_CHECKING
from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import FLAG_ALARM, Reading

if TYPE_CHECKING:
    from typing import Any  # noqa: F401 (type comments)

VERSION = 1
MAX_READINGS = 65536  # readings per block
MAX_STRING = 256  # characters of a sensor id, quantity or unit
MAX_TEXT_VALUE = 4096  # characters of a text value
MAX_DECIMALS = 22  # 10.0**22 is the largest power of ten a double holds exactly
MAX_FLAGS = (1 << 31) - 1
# Integer values are signed 64-bit (what a database column holds): the encoder refuses, and
# the decoder rejects, anything wider, so both accept exactly the same readings.
MIN_INT = -(1 << 63)
MAX_INT = (1 << 63) - 1

KIND_RAW = 0
KIND_INT = 1
KIND_FLOAT0 = 2  # + decimals

_INT_LIMIT = 1 << 62  # integer mantissas: deltas stay inside 64-bit zigzag varints
_FLOAT_LIMIT = 1 << 53  # float mantissas: exact in a double, so float(m) is exact
_TS_LIMIT = 1 << 62
_SEQ_LIMIT = 1 << 63

_CPYTHON = sys.implementation.name == "cpython"
_TABLE_SIZE = 16384 if _CPYTHON else 128  # precomputed varints: 1- and 2-byte ones
_TABLE = []  # type: list[bytes]
_POW10 = [10.0**d for d in range(MAX_DECIMALS + 1)]
_HEAD_ARRAY13 = b"\x8d"
_VERSION_ITEM = b"\x01"


def _uvarint(z: "int") -> "bytes":
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _table() -> "list[bytes]":
    if not _TABLE:
        _TABLE.extend(_uvarint(z) for z in range(_TABLE_SIZE))
    return _TABLE


def pack_uvarints(values: "list[int]") -> "bytes":
    """Unsigned LEB128 varints, concatenated. Every value must be 0 <= v < 2**64."""
    table = _table()
    size = _TABLE_SIZE
    if _CPYTHON and values and max(values) < size:
        return b"".join(map(table.__getitem__, values))
    return b"".join([table[z] if z < size else _uvarint(z) for z in values])


def zigzag(values: "list[int]") -> "list[int]":
    return [(v << 1) if v >= 0 else ((-v << 1) - 1) for v in values]


def unpack_uvarints(data: "bytes", count: "int") -> "list[int]":
    """Exactly `count` unsigned varints filling `data`, or `RemoteProtocolError`."""
    out = []  # type: list[int]
    if len(data) == count and (not data or max(data) < 0x80):
        return list(data)  # all one-byte varints
    append = out.append
    x = 0
    shift = 0
    for b in data:
        if b < 0x80:
            append(x | (b << shift))
            x = 0
            shift = 0
        else:
            x |= (b & 0x7F) << shift
            shift += 7
            if shift > 63:
                raise RemoteProtocolError(OVERFLOW, "varint longer than 10 bytes")
    if shift:
        raise RemoteProtocolError(TRUNCATED, "column ends inside a varint")
    if len(out) != count:
        raise RemoteProtocolError(MALFORMED, "column holds %d values, not %d" % (len(out), count))
    return out


def unpack_svarints(data: "bytes", count: "int") -> "list[int]":
    return [(z >> 1) if not z & 1 else -((z + 1) >> 1) for z in unpack_uvarints(data, count)]


def _minus_zero(v: "float") -> "bool":
    """-0.0 (a mantissa cannot carry its sign: it is kept raw)."""
    return v == 0.0 and str(v)[0] == "-"


def _decimals(v: "float") -> "int":
    """Decimals of the shortest repr of `v`, or -1 when it has too many (or is not finite)."""
    s = repr(v)
    e = 0
    cut = s.find("e")
    if cut >= 0:
        try:
            e = int(s[cut + 1 :])
        except ValueError:
            return -1
        s = s[:cut]
    elif "n" in s:  # inf, nan
        return -1
    dot = s.find(".")
    frac = s[dot + 1 :] if dot >= 0 else ""
    if frac == "0":
        frac = ""
    d = len(frac) - e
    if d < 0:
        d = 0
    return d if d <= MAX_DECIMALS else -1


class BlockEncoder:
    """Encodes blocks; remembers how each series keeps its value (decimals) across blocks,
    so that a steady stream encodes in one pass. The bytes are exact either way."""

    __slots__ = ("_known", "_last")

    def __init__(self) -> "None":
        # (sensor, quantity, unit) -> decimals last used for its floats
        self._known = {}  # type: dict[tuple[str, str, str | None], int]
        self._last = None  # type: _BlockState | None

    def sensor_counts(self) -> "dict[str, int]":
        """Readings per sensor id in the block encoded last."""
        state = self._last
        if state is None:
            return {}
        per_series = [0] * len(state.classes)
        for s in state.ser:
            per_series[s] += 1
        counts = {}  # type: dict[str, int]
        names = state.names
        series = state.series
        for k in range(len(per_series)):
            sensor = names[series[4 * k]]
            counts[sensor] = counts.get(sensor, 0) + per_series[k]
        return counts

    def encode(self, first_seq: "int", readings: "list[Reading]") -> "bytes":
        n = len(readings)
        if not 0 < n <= MAX_READINGS:
            raise LocalProtocolError("a block holds 1 to %d readings, not %d" % (MAX_READINGS, n))
        if type(first_seq) is not int or not first_seq >= 0 or first_seq + n > _SEQ_LIMIT:
            raise LocalProtocolError("first_seq %r out of range" % (first_seq,))
        try:
            state = _BlockState(self._known)
            data = state.encode(first_seq, readings)
            if not data:  # some series needed more decimals: they are known now
                state = _BlockState(self._known, final=True)
                data = state.encode(first_seq, readings)
            self._last = state
            return data
        except (TypeError, AttributeError, ValueError, OverflowError) as e:
            raise LocalProtocolError("cannot encode these readings: %r" % (e,)) from e


class _BlockState:
    """One block being encoded: its dictionary and columns."""

    __slots__ = (
        "alt",
        "classes",
        "final",
        "index",
        "known",
        "names",
        "prev",
        "raw",
        "retry",
        "scales",
        "ser",
        "series",
        "strings",
        "vals",
    )

    def __init__(
        self, known: "dict[tuple[str, str, str | None], int]", final: "bool" = False
    ) -> "None":
        self.known = known
        self.final = final
        self.index = {}  # type: dict[tuple[str, str, str | None], int]
        self.alt = {}  # type: dict[tuple[object, ...], int]
        self.strings = {}  # type: dict[str, int]
        self.names = []  # type: list[str]
        # (MicroPython dicts keep no insertion order: the strings go out in this list's)
        self.series = []  # type: list[int]
        self.classes = []  # type: list[object]
        self.scales = []  # type: list[float | int | None]
        self.prev = []  # type: list[int]
        self.ser = []  # type: list[int]
        self.vals = []  # type: list[int]
        self.raw = []  # type: list[object]
        self.retry = False  # a series needs more decimals than it was given: encode again

    def _string(self, s: "str") -> "int":
        i = self.strings.get(s)
        if i is None:
            if type(s) is not str or not 0 < len(s) <= MAX_STRING:
                raise LocalProtocolError("names are 1 to %d characters: %r" % (MAX_STRING, s))
            i = self.strings[s] = len(self.names)
            self.names.append(s)
        return i

    def _new_series(self, key: "tuple[str, str, str | None]", cls: "object", kind: "int") -> "int":
        i = len(self.classes)
        unit = key[2]
        self.series.append(self._string(key[0]))
        self.series.append(self._string(key[1]))
        self.series.append(-1 if unit is None else self._string(unit))
        self.series.append(kind)
        self.classes.append(cls)
        self.scales.append(
            None if kind == KIND_RAW else (0 if kind == KIND_INT else _POW10[kind - KIND_FLOAT0])
        )
        self.prev.append(0)
        return i

    def _mantissa(self, v: "float", d: "int") -> "int | None":
        """m such that float(m) / 10.0**d == v exactly, |m| <= 2**53; None if there is none."""
        sc = _POW10[d]
        try:
            m = round(v * sc)
        except (OverflowError, ValueError):  # inf, nan
            return None
        if -_FLOAT_LIMIT <= m <= _FLOAT_LIMIT and m / sc == v and (m or not _minus_zero(v)):
            return m
        return None

    def _slow(self, key: "tuple[str, str, str | None]", v: "object") -> "tuple[int, int | None]":
        """Series index and mantissa (None: kept raw) for a value the fast path did not take."""
        cls = type(v)
        i = self.index.get(key)
        if i is None:  # the series' first reading in this block
            if cls is float:
                d = self.known.get(key, -1)
                m = None if d < 0 else self._mantissa(v, d)  # type: ignore[arg-type]
                if m is None:
                    d = _decimals(v)  # type: ignore[arg-type]
                    m = None if d < 0 else self._mantissa(v, d)  # type: ignore[arg-type]
                if m is not None:
                    self.known[key] = d
                    i = self.index[key] = self._new_series(key, float, KIND_FLOAT0 + d)
                    return i, m
            elif cls is int and -_INT_LIMIT < v < _INT_LIMIT:  # type: ignore[operator]
                i = self.index[key] = self._new_series(key, int, KIND_INT)
                return i, v  # type: ignore[return-value]
            self._check_raw(v)
            i = self.index[key] = self._new_series(key, cls, KIND_RAW)
            return i, None
        if cls is float and self.classes[i] is float:
            # more decimals than the series keeps: encode the block again with as many
            d = _decimals(v)  # type: ignore[arg-type]
            if d > self.known.get(key, -1) and self._mantissa(v, d) is not None:  # type: ignore[arg-type]
                self.known[key] = d
                self.retry = True
            return self._raw_series(key, cls), None
        # a value of another class than the series' first: a second series for the same key
        if cls is int and -_INT_LIMIT < v < _INT_LIMIT:  # type: ignore[operator]
            j = self.alt.get((key, int))
            if j is None:
                j = self.alt[(key, int)] = self._new_series(key, int, KIND_INT)
            return j, v  # type: ignore[return-value]
        if cls is float:
            j = self.alt.get((key, float))
            if j is None:
                d = _decimals(v)  # type: ignore[arg-type]
                if d >= 0 and self._mantissa(v, d) is not None:  # type: ignore[arg-type]
                    j = self.alt[(key, float)] = self._new_series(key, float, KIND_FLOAT0 + d)
            if j is not None:
                m = self._mantissa(v, self.series[4 * j + 3] - KIND_FLOAT0)  # type: ignore[arg-type]
                if m is not None:
                    return j, m
        self._check_raw(v)
        return self._raw_series(key, cls), None

    def _raw_series(self, key: "tuple[str, str, str | None]", cls: "object") -> "int":
        j = self.alt.get((key, "raw"))
        if j is None:
            j = self.alt[(key, "raw")] = self._new_series(key, cls, KIND_RAW)
        return j

    def _check_raw(self, v: "object") -> "None":
        _check_value(v)

    def encode(self, first_seq: "int", readings: "list[Reading]") -> "bytes":
        index = self.index
        classes = self.classes
        scales = self.scales
        prev = self.prev
        ser = self.ser
        vals = self.vals
        raw = self.raw
        ser_append = ser.append
        vals_append = vals.append
        raw_append = raw.append
        limit = _FLOAT_LIMIT
        for r in readings:
            v = r.value  # type: Any
            key = (r.sensor, r.quantity, r.unit)
            i = index.get(key)
            if i is None or type(v) is not classes[i]:
                i, m = self._slow(key, v)
                ser_append(i)
                if m is None:
                    raw_append(v)
                    continue
            else:
                sc = scales[i]
                if sc:  # float series
                    try:
                        m = round(v * sc)
                    except (OverflowError, ValueError):  # inf, nan
                        m = limit + 1
                    if m / sc != v or not -limit <= m <= limit or (not m and _minus_zero(v)):
                        i, m = self._slow(key, v)
                    ser_append(i)
                    if m is None:
                        raw_append(v)
                        continue
                elif sc is None:  # raw series
                    self._check_raw(v)
                    ser_append(i)
                    raw_append(v)
                    continue
                else:  # integer series
                    m = v
                    if not -_INT_LIMIT < m < _INT_LIMIT:
                        i, m = self._slow(key, v)
                    ser_append(i)
                    if m is None:
                        raw_append(v)
                        continue
            vals_append(m - prev[i])
            prev[i] = m
        if self.retry and not self.final:
            return b""
        return self._assemble(first_seq, readings)

    def _assemble(self, first_seq: "int", readings: "list[Reading]") -> "bytes":
        n = len(readings)
        tss = [r.ts_ms for r in readings]
        t_min = min(tss)
        t_max = max(tss)
        if type(t_min) is not int or type(t_max) is not int:
            for t in tss:
                if type(t) is not int:
                    raise LocalProtocolError("timestamp %r is not an integer" % (t,))
        if not -_TS_LIMIT < t_min <= t_max < _TS_LIMIT:
            raise LocalProtocolError("timestamps out of range")
        prev_ts = [t_min]
        prev_ts.extend(tss)
        tsd = [t - p for t, p in zip(tss, prev_ts)]  # noqa: B905 (MicroPython has no strict)
        flags = [r.flags for r in readings]
        kinds = set(flags)
        out = [_HEAD_ARRAY13, _VERSION_ITEM, cbor.encode_head(0, first_seq), cbor.encode_head(0, n)]
        if len(kinds) == 1:
            f0 = flags[0]
            if type(f0) is not int or not 0 <= f0 <= MAX_FLAGS:
                raise LocalProtocolError("flags %r out of range" % (f0,))
            out.append(cbor.encode_head(0, f0))
            out.append(b"\x80")
        else:
            out.append(b"\x00")
            exceptions = []
            for k in range(n):
                f = flags[k]
                if f:
                    if type(f) is not int or not 0 < f <= MAX_FLAGS:
                        raise LocalProtocolError("flags %r out of range" % (f,))
                    exceptions.append(k)
                    exceptions.append(f)
            out.append(cbor.encode_head(4, len(exceptions)))
            out.extend(cbor.encode_head(0, x) for x in exceptions)
        out.append(cbor.encode_int(t_min))
        out.append(cbor.encode_head(0, t_max - t_min))
        out.append(cbor.encode_head(4, len(self.names)))
        out.extend(cbor.encode_text(s) for s in self.names)
        out.append(cbor.encode_head(4, len(self.series)))
        out.extend(b"\xf6" if x < 0 else cbor.encode_head(0, x) for x in self.series)
        for column in (
            pack_uvarints(self.ser),
            pack_uvarints(zigzag(tsd)),
            pack_uvarints(zigzag(self.vals)),
        ):
            out.append(cbor.encode_head(2, len(column)))
            out.append(column)
        raw = self.raw
        out.append(cbor.encode_head(4, len(raw)))
        if raw:
            out.append(b"".join(cbor.dumps(v) for v in raw))
        return b"".join(out)


def check_reading(r: "object") -> "None":
    """Raise `LocalProtocolError` unless a block can hold `r` (what encode_block requires)."""
    if type(r) is not Reading:
        raise LocalProtocolError("not a Reading: %r" % (r,))
    for name in (r.sensor, r.quantity):
        if type(name) is not str or not 0 < len(name) <= MAX_STRING:
            raise LocalProtocolError("names are 1 to %d characters: %r" % (MAX_STRING, name))
    u = r.unit
    if u is not None and (type(u) is not str or not 0 < len(u) <= MAX_STRING):
        raise LocalProtocolError("a unit is None or 1 to %d characters: %r" % (MAX_STRING, u))
    t = r.ts_ms
    if type(t) is not int or not -_TS_LIMIT < t < _TS_LIMIT:
        raise LocalProtocolError("timestamp %r is not an integer in range" % (t,))
    f = r.flags
    if type(f) is not int or not 0 <= f <= MAX_FLAGS:
        raise LocalProtocolError("flags %r out of range" % (f,))
    _check_value(r.value)


def _check_value(v: "object") -> "None":
    t = type(v)
    if t is str:
        if len(v) > MAX_TEXT_VALUE:  # type: ignore[arg-type]
            raise LocalProtocolError("text value longer than %d" % MAX_TEXT_VALUE)
    elif t is int:
        if not MIN_INT <= v <= MAX_INT:  # type: ignore[operator]
            raise LocalProtocolError("integer value %r outside 64 bits" % (v,))
    elif not (t is float or t is bool or v is None):
        raise LocalProtocolError("cannot keep a value of type %s" % t.__name__)


def encode_block(first_seq: "int", readings: "list[Reading]") -> "bytes":
    """One block for `readings`, numbered first_seq, first_seq + 1, ... in order.

    Raises `LocalProtocolError` for readings that cannot be kept (no readings, more than
    MAX_READINGS, a name longer than MAX_STRING, a value of an unknown type)."""
    return BlockEncoder().encode(first_seq, readings)


# ---------------------------------------------------------------------------- decoding


class BlockHeader:
    """What the first items of a block tell without decoding its columns."""

    __slots__ = ("count", "first_seq", "flags", "t_max", "t_min")

    def __init__(
        self, first_seq: "int", count: "int", flags: "int", t_min: "int", t_max: "int"
    ) -> "None":
        self.first_seq = first_seq
        self.count = count
        self.flags = flags  # the flags of all readings, or-ed
        self.t_min = t_min
        self.t_max = t_max

    @property
    def last_seq(self) -> "int":
        return self.first_seq + self.count - 1

    @property
    def has_alarm(self) -> "bool":
        return bool(self.flags & FLAG_ALARM)

    def __repr__(self) -> "str":
        return "BlockHeader(first_seq=%d, count=%d, flags=%d, t_min=%d, t_max=%d)" % (
            self.first_seq,
            self.count,
            self.flags,
            self.t_min,
            self.t_max,
        )


def _uint(value: "object", limit: "int", what: "str") -> "int":
    if type(value) is not int or not 0 <= value < limit:
        raise RemoteProtocolError(
            MALFORMED, "%s: %r is not an integer below %d" % (what, value, limit)
        )
    return value


def _read_header(data: "bytes") -> "tuple[BlockHeader, int, int, list[int]]":
    """The header, the offset of item 7, the default flags and the flag exceptions."""
    if not data or data[0] != 0x8D:
        raise RemoteProtocolError(MALFORMED, "a block is a CBOR array of 13 items")
    pos = 1
    end = len(data)
    version, pos = cbor.decode_item(data, pos, end)
    if version != VERSION or type(version) is not int:
        raise RemoteProtocolError(UNSUPPORTED, "block version %r" % (version,))
    first_seq, pos = cbor.decode_item(data, pos, end)
    count, pos = cbor.decode_item(data, pos, end)
    flags_default, pos = cbor.decode_item(data, pos, end)
    exceptions, pos = cbor.decode_item(data, pos, end)
    t_min, pos = cbor.decode_item(data, pos, end)
    t_span, pos = cbor.decode_item(data, pos, end)
    first = _uint(first_seq, _SEQ_LIMIT, "first_seq")
    n = _uint(count, MAX_READINGS + 1, "count")
    if n == 0:
        raise RemoteProtocolError(MALFORMED, "empty block")
    if first + n > _SEQ_LIMIT:
        raise RemoteProtocolError(OVERFLOW, "sequence numbers past 2**63")
    default = flags = _uint(flags_default, MAX_FLAGS + 1, "flags_default")
    if type(exceptions) is not list or len(exceptions) % 2 or len(exceptions) > 2 * n:
        raise RemoteProtocolError(MALFORMED, "flag exceptions")
    last = -1
    for k in range(0, len(exceptions), 2):
        idx = _uint(exceptions[k], n, "flag exception index")
        if idx <= last:
            raise RemoteProtocolError(MALFORMED, "flag exception indices not increasing")
        last = idx
        flags |= _uint(exceptions[k + 1], MAX_FLAGS + 1, "flags")
    if type(t_min) is not int or not -_TS_LIMIT < t_min < _TS_LIMIT:
        raise RemoteProtocolError(MALFORMED, "t_min %r" % (t_min,))
    span = _uint(t_span, _TS_LIMIT, "t_span")
    if t_min + span >= _TS_LIMIT:
        raise RemoteProtocolError(MALFORMED, "t_span too large")
    header = BlockHeader(first, n, flags, t_min, t_min + span)
    return header, pos, default, exceptions


def read_block_header(data: "bytes") -> "BlockHeader":
    """The block's first_seq, count, or-ed flags and time range, without the columns."""
    try:
        return _read_header(data)[0]
    except RemoteProtocolError:
        raise
    except Exception as e:  # defensive: only the protocol error may escape
        raise RemoteProtocolError(MALFORMED, "undecodable block header: %r" % (e,)) from e


def decode_block(data: "bytes") -> "tuple[int, list[Reading]]":
    """(first_seq, readings) of a block, or `RemoteProtocolError` for anything malformed."""
    try:
        return _decode_block(data)
    except RemoteProtocolError:
        raise
    except Exception as e:  # defensive: only the protocol error may escape
        raise RemoteProtocolError(MALFORMED, "undecodable block: %r" % (e,)) from e


def count_sensors(data: "bytes") -> "dict[str, int]":
    """Readings per sensor id of a block, reading only its dictionary and series column."""
    try:
        header, pos, _flags, _exceptions = _read_header(data)
        end = len(data)
        strings, pos = cbor.decode_item(data, pos, end)
        series, pos = cbor.decode_item(data, pos, end)
        ser_col, pos = cbor.decode_item(data, pos, end)
        if type(strings) is not list or type(series) is not list or type(ser_col) is not bytes:
            raise RemoteProtocolError(MALFORMED, "block dictionary")
        n_series = len(series) // 4
        if len(series) % 4 or n_series > header.count:
            raise RemoteProtocolError(MALFORMED, "series dictionary")
        ser = unpack_uvarints(ser_col, header.count)
        if max(ser) >= n_series:
            raise RemoteProtocolError(MALFORMED, "series index out of range")
        per_series = [0] * n_series
        for s in ser:
            per_series[s] += 1
        counts = {}  # type: dict[str, int]
        for k in range(n_series):
            sensor = strings[_uint(series[4 * k], len(strings), "sensor index")]
            if type(sensor) is not str:
                raise RemoteProtocolError(MALFORMED, "sensor id is not text")
            counts[sensor] = counts.get(sensor, 0) + per_series[k]
        return counts
    except RemoteProtocolError:
        raise
    except Exception as e:  # defensive: only the protocol error may escape
        raise RemoteProtocolError(MALFORMED, "undecodable block: %r" % (e,)) from e


def _decode_block(data: "bytes") -> "tuple[int, list[Reading]]":
    header, pos, base_flags, exceptions = _read_header(data)
    n = header.count
    end = len(data)
    items = []
    for _ in range(6):
        item, pos = cbor.decode_item(data, pos, end)
        items.append(item)
    if pos != end:
        raise RemoteProtocolError(MALFORMED, "%d bytes after the block" % (end - pos))
    strings, series, ser_col, ts_col, val_col, raw = items
    if type(strings) is not list or type(series) is not list or type(raw) is not list:
        raise RemoteProtocolError(MALFORMED, "strings, series and raw values are arrays")
    if type(ser_col) is not bytes or type(ts_col) is not bytes or type(val_col) is not bytes:
        raise RemoteProtocolError(MALFORMED, "columns are byte strings")
    for s in strings:
        if type(s) is not str or not 0 < len(s) <= MAX_STRING:
            raise RemoteProtocolError(MALFORMED, "a name of 1 to %d characters" % MAX_STRING)
    n_series = len(series) // 4
    if len(series) % 4 or n_series > n or len(strings) > 3 * n_series:
        raise RemoteProtocolError(MALFORMED, "series dictionary")
    n_strings = len(strings)
    names = []  # (sensor, quantity, unit)
    kinds = []
    scales = []  # type: list[float]
    for k in range(n_series):
        si, qi, ui, kind = series[4 * k : 4 * k + 4]
        sensor = strings[_uint(si, n_strings, "sensor index")]
        quantity = strings[_uint(qi, n_strings, "quantity index")]
        unit = None if ui is None else strings[_uint(ui, n_strings, "unit index")]
        kind = _uint(kind, KIND_FLOAT0 + MAX_DECIMALS + 1, "kind")
        names.append((sensor, quantity, unit))
        kinds.append(kind)
        scales.append(_POW10[kind - KIND_FLOAT0] if kind >= KIND_FLOAT0 else 1.0)
    ser = unpack_uvarints(ser_col, n)
    if n_series == 0 or max(ser) >= n_series:
        raise RemoteProtocolError(MALFORMED, "series index out of range")
    tsd = unpack_svarints(ts_col, n)
    numeric = 0
    counts = [0] * n_series
    for s in ser:
        counts[s] += 1
    for k in range(n_series):
        if kinds[k] != KIND_RAW:
            numeric += counts[k]
    n_raw = n - numeric
    if len(raw) != n_raw:
        raise RemoteProtocolError(MALFORMED, "%d raw values, not %d" % (len(raw), n_raw))
    for v in raw:
        t = type(v)
        if t is str:
            if len(v) > MAX_TEXT_VALUE:
                raise RemoteProtocolError(OVERFLOW, "text value too long")
        elif t is int:
            if not MIN_INT <= v <= MAX_INT:
                raise RemoteProtocolError(OVERFLOW, "integer value outside 64 bits")
        elif not (v is None or t is bool or t is float):
            raise RemoteProtocolError(MALFORMED, "raw value of type %s" % t.__name__)
    vals = unpack_svarints(val_col, numeric)
    readings = []  # type: list[Reading]
    append = readings.append
    mant = [0] * n_series
    ts = header.t_min
    t_lo = header.t_min
    t_hi = header.t_max
    vi = 0
    ri = 0
    next_exc = exceptions[0] if exceptions else n
    ei = 0
    for k in range(n):
        s = ser[k]
        ts += tsd[k]
        kind = kinds[s]
        if kind >= KIND_FLOAT0:
            m = mant[s] + vals[vi]
            vi += 1
            mant[s] = m
            if not -_FLOAT_LIMIT <= m <= _FLOAT_LIMIT:
                raise RemoteProtocolError(OVERFLOW, "float mantissa out of range")
            value = m / scales[s]  # type: object
        elif kind == KIND_INT:
            m = mant[s] + vals[vi]
            vi += 1
            mant[s] = m
            if not -_INT_LIMIT < m < _INT_LIMIT:
                raise RemoteProtocolError(OVERFLOW, "integer out of range")
            value = m
        else:
            value = raw[ri]
            ri += 1
        if k == next_exc:
            fl = exceptions[ei + 1]
            ei += 2
            next_exc = exceptions[ei] if ei < len(exceptions) else n
        else:
            fl = base_flags
        sensor, quantity, unit = names[s]
        append(Reading(sensor, quantity, unit, value, ts, fl))
        if not t_lo <= ts <= t_hi:
            raise RemoteProtocolError(MALFORMED, "timestamp outside the block's range")
    return header.first_seq, readings


__all__ = [
    "MAX_FLAGS",
    "MAX_INT",
    "MAX_READINGS",
    "MAX_STRING",
    "MAX_TEXT_VALUE",
    "MIN_INT",
    "VERSION",
    "BlockEncoder",
    "BlockHeader",
    "check_reading",
    "count_sensors",
    "decode_block",
    "encode_block",
    "pack_uvarints",
    "read_block_header",
    "unpack_svarints",
    "unpack_uvarints",
    "zigzag",
]
