"""The wire schema between gateways and the hub: MQTT topics and CBOR messages, version 1.

Sans-IO and firmware-style like the rest of protocols/: bytes in, values out, standard
library only (zlib where the platform has it). Both sides use these functions and nothing
else, so the schema is defined once. docs/wire-format.md describes it with examples.

Every message is one CBOR array whose first two items are the schema version (1) and the
message type::

    data   [1, 1, session, batch, first_seq, last_seq, count, flags, backlog, codec, body]
    ack    [1, 2, session, batch, ranges, rejected]
    state  [1, 3, online, session, ts_ms, backlog, dropped, software, footprint?, sources?,
            restart_pending?]
    report [1, 4, body]     config [1, 5, body]     cmd [1, 6, body]

Decoders are schema-driven: each field is read with its expected type and bound, nothing is
allocated before its size is checked, and anything else raises `RemoteProtocolError` with a
reason (never another exception). Items after the known ones are skipped (bounded), so a
later minor version may append fields without breaking version 1 readers.
"""

from protocols import cbor
from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)

try:
    import zlib

    if not hasattr(zlib, "decompressobj"):  # MicroPython's partial zlib
        zlib = None  # type: ignore[assignment]
except ImportError:  # no zlib at all: codec 1 is then unsupported
    zlib = None  # type: ignore[assignment]

VERSION = 1

DATA = 1
ACK = 2
STATE = 3
REPORT = 4
CONFIG = 5
CMD = 6
TYPE_NAMES = {
    DATA: "data",
    ACK: "ack",
    STATE: "state",
    REPORT: "report",
    CONFIG: "config",
    CMD: "cmd",
}

# Data batch flags.
FLAG_HISTORICAL = 1  # the batch drains the backlog (0: live readings, sent as they come)

# Data batch body codecs.
CODEC_BLOCKS = 0  # body: array of byte strings, each one block (protocols.block form)
CODEC_DEFLATE = 1  # body: byte string, zlib (RFC 1950) of the CBOR array of CODEC_BLOCKS

# Hard decode limits (the hub applies them to anything a gateway sends).
MAX_PAYLOAD = 1 << 20  # bytes of one MQTT payload
MAX_PACKET = MAX_PAYLOAD + 1024  # bytes of one MQTT packet: a payload, its topic and headers
MAX_INFLATED = 8 << 20  # bytes of an inflated body
MAX_BLOCKS = 4096  # blocks per batch
MAX_BATCH_READINGS = 1 << 17  # readings per batch (131072)
MAX_RANGES = 4096  # ranges per ack
MAX_TEXT = 256  # bytes of a text field
MAX_ENVELOPE_BODY = 64 << 10  # bytes of a report/config/cmd body
MAX_DEPTH = 16  # nesting of skipped or enveloped items
MAX_SKIPPED = 64  # trailing items a reader skips
MAX_UINT = (1 << 63) - 1  # sessions, batches and sequence numbers fit a signed 64-bit column
MAX_FOOTPRINT = 32  # figures in a state's footprint map
MAX_FOOTPRINT_KEY = 32  # bytes of a footprint figure's name
MAX_SOURCES = 64  # sources in a state's health list
MAX_SOURCE_ERRORS = 16  # error reasons counted per source
MAX_RESTART_PENDING = 16  # names in a state's restart_pending list

# Source health (state messages).
SOURCE_OK = "ok"  # up, reading
SOURCE_DEGRADED = "degraded"  # up, but errors since its last reading (or nothing read yet)
SOURCE_DOWN = "down"  # not up: port missing, adapter lost, restarting
SOURCE_STATUSES = (SOURCE_OK, SOURCE_DEGRADED, SOURCE_DOWN)

# Topics.
TOPIC_ROOT = "estran/v1/gw/"
UPLINK_KINDS = ("data", "state", "report")
DOWNLINK_KINDS = ("ack", "config", "cmd")
KINDS = UPLINK_KINDS + DOWNLINK_KINDS
MAX_GATEWAY_ID = 64
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


# -- topics -----------------------------------------------------------------------------


def valid_gateway_id(gateway_id: "str") -> "bool":
    """1 to 64 characters among letters, digits, '-', '_' and '.' (never '/', '+', '#')."""
    if not 0 < len(gateway_id) <= MAX_GATEWAY_ID or gateway_id in (".", ".."):
        return False
    return all(c in _ID_CHARS for c in gateway_id)


def topic(gateway_id: "str", kind: "str") -> "str":
    """The topic of one gateway's `kind` ('data', 'state', 'report', 'ack', 'config', 'cmd')."""
    if kind not in KINDS:
        raise LocalProtocolError("unknown topic kind %r" % kind)
    if not valid_gateway_id(gateway_id):
        raise LocalProtocolError("invalid gateway id %r" % gateway_id)
    return TOPIC_ROOT + gateway_id + "/" + kind


def subscription(kind: "str", share_group: "str | None" = None) -> "str":
    """The filter matching `kind` of every gateway; `$share/<group>/...` when shared."""
    if kind not in KINDS:
        raise LocalProtocolError("unknown topic kind %r" % kind)
    flt = TOPIC_ROOT + "+/" + kind
    if share_group is None:
        return flt
    return "$share/" + share_group + "/" + flt


def parse_topic(name: "str") -> "tuple[str, str]":
    """(gateway id, kind) of a topic under estran/v1/gw/, or RemoteProtocolError."""
    if not name.startswith(TOPIC_ROOT):
        raise RemoteProtocolError(MALFORMED, "topic outside %s: %r" % (TOPIC_ROOT, name[:100]))
    rest = name[len(TOPIC_ROOT) :]
    parts = rest.split("/")
    if len(parts) != 2:
        raise RemoteProtocolError(MALFORMED, "topic depth: %r" % name[:100])
    gateway_id, kind = parts
    if not valid_gateway_id(gateway_id):
        raise RemoteProtocolError(MALFORMED, "invalid gateway id in topic: %r" % name[:100])
    if kind not in KINDS:
        raise RemoteProtocolError(MALFORMED, "unknown topic kind: %r" % kind[:32])
    return gateway_id, kind


# -- CBOR writer (the subset the schema uses) --------------------------------------------


def _head(out: "bytearray", major: "int", value: "int") -> "None":
    out.extend(cbor.encode_head(major, value))


def _uint(out: "bytearray", value: "int") -> "None":
    if value < 0 or value > MAX_UINT:
        raise LocalProtocolError("value out of range: %d" % value)
    _head(out, 0, value)


def _bytes(out: "bytearray", data: "bytes") -> "None":
    _head(out, 2, len(data))
    out.extend(data)


def _text(out: "bytearray", text: "str") -> "None":
    raw = text.encode("utf-8")
    if len(raw) > MAX_TEXT:
        raise LocalProtocolError("text field longer than %d bytes" % MAX_TEXT)
    _head(out, 3, len(raw))
    out.extend(raw)


def _null(out: "bytearray") -> "None":
    out.append(0xF6)


def _bool(out: "bytearray", value: "bool") -> "None":
    out.append(0xF5 if value else 0xF4)


def _opt_uint(out: "bytearray", value: "int | None") -> "None":
    if value is None:
        _null(out)
    else:
        _uint(out, value)


def _opt_text(out: "bytearray", value: "str | None") -> "None":
    if value is None:
        _null(out)
    else:
        _text(out, value)


def _footprint(out: "bytearray", figures: "dict[str, int | float]") -> "None":
    """A map of at most MAX_FOOTPRINT figures: short names to ints or finite floats."""
    if len(figures) > MAX_FOOTPRINT:
        raise LocalProtocolError("more than %d footprint figures" % MAX_FOOTPRINT)
    _head(out, 5, len(figures))
    for name in sorted(figures):
        value = figures[name]
        if not 0 < len(name.encode("utf-8")) <= MAX_FOOTPRINT_KEY:
            raise LocalProtocolError("footprint name of 1 to %d bytes" % MAX_FOOTPRINT_KEY)
        _text(out, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LocalProtocolError("footprint figure %s is not a number" % name)
        if isinstance(value, float):
            if value - value != 0.0:  # NaN or infinite
                raise LocalProtocolError("footprint figure %s is not finite" % name)
            out.extend(cbor.encode_float(value))
        elif value < 0:
            if value < -1 - MAX_UINT:
                raise LocalProtocolError("value out of range: %d" % value)
            _head(out, 1, -1 - value)
        else:
            _uint(out, value)


def _source(out: "bytearray", source: "SourceHealth") -> "None":
    """[name, status, last_ms, errors, detail]: see SourceHealth."""
    if source.status not in SOURCE_STATUSES:
        raise LocalProtocolError("source status %r" % source.status)
    if not source.name:
        raise LocalProtocolError("a source needs a name")
    if len(source.errors) > MAX_SOURCE_ERRORS:
        raise LocalProtocolError("more than %d error reasons" % MAX_SOURCE_ERRORS)
    _head(out, 4, 5)
    _text(out, source.name)
    _text(out, source.status)
    _opt_uint(out, source.last_ms)
    _head(out, 5, len(source.errors))
    for reason in sorted(source.errors):
        if not reason:
            raise LocalProtocolError("an error reason needs a name")
        _text(out, reason)
        _uint(out, source.errors[reason])
    _opt_text(out, source.detail)


def _start(out: "bytearray", items: "int", kind: "int") -> "None":
    _head(out, 4, items)
    _head(out, 0, VERSION)
    _head(out, 0, kind)


# -- CBOR reader (schema-driven, bounded) -------------------------------------------------


class _Reader:
    """Reads one CBOR array message field by field; every read checks type and bounds."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: "bytes") -> "None":
        self.data = data
        self.pos = 0
        self.end = len(data)

    def _need(self, n: "int") -> "None":
        if self.pos + n > self.end:
            raise RemoteProtocolError(TRUNCATED, "message ends inside an item")

    def head(self) -> "tuple[int, int, int]":
        """(major type, additional info, argument); indefinite lengths have argument -1."""
        self._need(1)
        ib = self.data[self.pos]
        self.pos += 1
        major = ib >> 5
        info = ib & 0x1F
        if info < 24:
            return major, info, info
        if info < 28:
            n = 1 << (info - 24)
            self._need(n)
            value = int.from_bytes(self.data[self.pos : self.pos + n], "big")
            self.pos += n
            return major, info, value
        if info == 31 and major in (2, 3, 4, 5, 7):
            return major, info, -1
        raise RemoteProtocolError(MALFORMED, "reserved additional information %d" % info)

    def uint(self, what: "str", limit: "int" = MAX_UINT) -> "int":
        major, _, value = self.head()
        if major != 0:
            raise RemoteProtocolError(MALFORMED, "%s: expected an unsigned integer" % what)
        if value > limit:
            raise RemoteProtocolError(OVERFLOW, "%s: %d exceeds %d" % (what, value, limit))
        return value

    def opt_uint(self, what: "str") -> "int | None":
        if self.pos < self.end and self.data[self.pos] == 0xF6:
            self.pos += 1
            return None
        return self.uint(what)

    def boolean(self, what: "str") -> "bool":
        self._need(1)
        b = self.data[self.pos]
        self.pos += 1
        if b == 0xF5:
            return True
        if b == 0xF4:
            return False
        raise RemoteProtocolError(MALFORMED, "%s: expected a boolean" % what)

    def byte_string(self, what: "str", limit: "int") -> "bytes":
        major, _, n = self.head()
        if major != 2:
            raise RemoteProtocolError(MALFORMED, "%s: expected a byte string" % what)
        if n < 0:
            raise RemoteProtocolError(UNSUPPORTED, "%s: indefinite-length byte string" % what)
        if n > limit:
            raise RemoteProtocolError(OVERFLOW, "%s: %d bytes exceeds %d" % (what, n, limit))
        self._need(n)
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(value)

    def opt_text(self, what: "str") -> "str | None":
        if self.pos < self.end and self.data[self.pos] == 0xF6:
            self.pos += 1
            return None
        return self.text(what)

    def text(self, what: "str", limit: "int" = MAX_TEXT) -> "str":
        major, _, n = self.head()
        if major != 3:
            raise RemoteProtocolError(MALFORMED, "%s: expected a text string" % what)
        if n < 0:
            raise RemoteProtocolError(UNSUPPORTED, "%s: indefinite-length text" % what)
        if n > limit:
            raise RemoteProtocolError(OVERFLOW, "%s: %d bytes exceeds %d" % (what, n, limit))
        self._need(n)
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeError as e:
            raise RemoteProtocolError(MALFORMED, "%s: invalid UTF-8" % what) from e

    def array(self, what: "str", limit: "int", major_type: "int" = 4) -> "int":
        major, _, n = self.head()
        if major != major_type:
            kind = "an array" if major_type == 4 else "a map"
            raise RemoteProtocolError(MALFORMED, "%s: expected %s" % (what, kind))
        if n < 0:
            raise RemoteProtocolError(UNSUPPORTED, "%s: indefinite-length item" % what)
        if n > limit:
            raise RemoteProtocolError(OVERFLOW, "%s: %d items exceeds %d" % (what, n, limit))
        return n

    def number(self, what: "str") -> "int | float":
        """An integer within signed 64 bits, or a finite half, single or double float."""
        start = self.pos
        major, info, value = self.head()
        if major in (0, 1):
            if value > MAX_UINT:
                raise RemoteProtocolError(OVERFLOW, "%s: beyond 64 signed bits" % what)
            return value if major == 0 else -1 - value
        if major != 7 or info not in (25, 26, 27):
            raise RemoteProtocolError(MALFORMED, "%s: expected a number" % what)
        number, _ = cbor.decode_item(self.data, start, self.pos)
        if not isinstance(number, float) or number - number != 0.0:  # NaN or infinite
            raise RemoteProtocolError(MALFORMED, "%s: not a finite number" % what)
        return number

    def opt_footprint(self) -> "dict[str, int | float] | None":
        if self.pos < self.end and self.data[self.pos] == 0xF6:
            self.pos += 1
            return None
        n = self.array("footprint", MAX_FOOTPRINT, 5)
        figures = {}  # type: dict[str, int | float]
        for _ in range(n):
            name = self.text("footprint name", MAX_FOOTPRINT_KEY)
            if not name or name in figures:
                raise RemoteProtocolError(MALFORMED, "footprint: empty or repeated name")
            figures[name] = self.number("footprint figure")
        return figures

    def opt_sources(self) -> "list[SourceHealth] | None":
        if self.pos < self.end and self.data[self.pos] == 0xF6:
            self.pos += 1
            return None
        n = self.array("sources", MAX_SOURCES)
        sources = []  # type: list[SourceHealth]
        names = set()  # type: set[str]
        for _ in range(n):
            items = self.array("source", MAX_SKIPPED)
            if items < 5:
                raise RemoteProtocolError(MALFORMED, "source of %d items, needs 5" % items)
            name = self.text("source name")
            status = self.text("source status")
            if not name or name in names:
                raise RemoteProtocolError(MALFORMED, "sources: empty or repeated name")
            if status not in SOURCE_STATUSES:
                raise RemoteProtocolError(MALFORMED, "source status %r" % status)
            names.add(name)
            last_ms = self.opt_uint("source last_ms")
            errors = {}  # type: dict[str, int]
            for _ in range(self.array("source errors", MAX_SOURCE_ERRORS, 5)):
                reason = self.text("error reason")
                if not reason or reason in errors:
                    raise RemoteProtocolError(MALFORMED, "source errors: empty or repeated reason")
                errors[reason] = self.uint("error count")
            detail = self.opt_text("source detail")
            for _ in range(items - 5):  # later fields of a source
                self.skip(2)
            sources.append(SourceHealth(name, status, last_ms, errors, detail))
        return sources

    def opt_names(self, what: "str", limit: "int") -> "list[str] | None":
        if self.pos < self.end and self.data[self.pos] == 0xF6:
            self.pos += 1
            return None
        return [self.text(what) for _ in range(self.array(what, limit))]

    def skip(self, depth: "int" = 0) -> "None":
        """Skip one well-formed item (definite lengths only), nesting at most MAX_DEPTH."""
        if depth > MAX_DEPTH:
            raise RemoteProtocolError(OVERFLOW, "nesting deeper than %d" % MAX_DEPTH)
        major, info, value = self.head()
        if value < 0:
            raise RemoteProtocolError(UNSUPPORTED, "indefinite-length item")
        if major in (2, 3):
            self._need(value)
            self.pos += value
        elif major == 4:
            if value > self.end - self.pos:  # each item takes at least one byte
                raise RemoteProtocolError(TRUNCATED, "array longer than the message")
            for _ in range(value):
                self.skip(depth + 1)
        elif major == 5:
            if 2 * value > self.end - self.pos:
                raise RemoteProtocolError(TRUNCATED, "map longer than the message")
            for _ in range(2 * value):
                self.skip(depth + 1)
        elif major == 6:
            self.skip(depth + 1)
        elif major == 7 and info == 24 and value < 32:
            raise RemoteProtocolError(MALFORMED, "two-byte simple value below 32")

    def finish(self, remaining: "int") -> "None":
        """Skip `remaining` trailing items of the message array, then expect its end."""
        if remaining > MAX_SKIPPED:
            raise RemoteProtocolError(OVERFLOW, "%d trailing items" % remaining)
        for _ in range(remaining):
            self.skip(1)
        if self.pos != self.end:
            raise RemoteProtocolError(
                MALFORMED, "%d bytes after the message" % (self.end - self.pos)
            )


def _open(payload: "bytes", expected: "int", min_items: "int") -> "tuple[_Reader, int]":
    """Check size, version and type; return the reader and the count of items left."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise LocalProtocolError("payload must be bytes")
    if len(payload) > MAX_PAYLOAD:
        raise RemoteProtocolError(
            OVERFLOW, "payload of %d bytes exceeds %d" % (len(payload), MAX_PAYLOAD)
        )
    r = _Reader(bytes(payload))
    items = r.array("message", 1 << 16)
    if items < 2:
        raise RemoteProtocolError(MALFORMED, "message array of %d items" % items)
    version = r.uint("version")
    if version != VERSION:
        raise RemoteProtocolError(
            UNSUPPORTED, "schema version %d (this side speaks %d)" % (version, VERSION)
        )
    kind = r.uint("type")
    if kind != expected:
        raise RemoteProtocolError(
            MALFORMED,
            "message type %d (%s) where %s was expected"
            % (kind, TYPE_NAMES.get(kind, "unknown"), TYPE_NAMES[expected]),
        )
    if items < min_items:
        raise RemoteProtocolError(
            MALFORMED, "%s message of %d items, needs %d" % (TYPE_NAMES[expected], items, min_items)
        )
    return r, items - 2


def message_type(payload: "bytes") -> "int":
    """The type of a version-1 message (DATA, ACK, ...), without decoding the rest."""
    if len(payload) > MAX_PAYLOAD:
        raise RemoteProtocolError(
            OVERFLOW, "payload of %d bytes exceeds %d" % (len(payload), MAX_PAYLOAD)
        )
    r = _Reader(bytes(payload[:32]))
    if r.array("message", 1 << 16) < 2:
        raise RemoteProtocolError(MALFORMED, "message array too short")
    version = r.uint("version")
    if version != VERSION:
        raise RemoteProtocolError(UNSUPPORTED, "schema version %d" % version)
    kind = r.uint("type")
    if kind not in TYPE_NAMES:
        raise RemoteProtocolError(UNSUPPORTED, "unknown message type %d" % kind)
    return kind


# -- data -------------------------------------------------------------------------------


class DataBatch:
    """A batch of readings from one gateway: whole blocks (protocols.block form), their
    overall sequence span and count, the uplink session and batch number (echoed in the
    ack), whether it drains the backlog, and the backlog left behind it."""

    __slots__ = ("backlog", "batch", "blocks", "count", "first_seq", "flags", "last_seq", "session")

    def __init__(
        self,
        session: "int",
        batch: "int",
        first_seq: "int",
        last_seq: "int",
        count: "int",
        blocks: "list[bytes]",
        flags: "int" = 0,
        backlog: "int | None" = None,
    ) -> "None":
        self.session = session
        self.batch = batch
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.count = count
        self.blocks = blocks
        self.flags = flags
        self.backlog = backlog

    @property
    def historical(self) -> "bool":
        return bool(self.flags & FLAG_HISTORICAL)

    def __repr__(self) -> "str":
        return "DataBatch(session=%d, batch=%d, seq=%d..%d, count=%d, blocks=%d, flags=%d)" % (
            self.session,
            self.batch,
            self.first_seq,
            self.last_seq,
            self.count,
            len(self.blocks),
            self.flags,
        )


def _blocks_array(blocks: "list[bytes]") -> "bytearray":
    out = bytearray()
    _head(out, 4, len(blocks))
    for b in blocks:
        _bytes(out, b)
    return out


def encode_data(batch: "DataBatch", compress: "int" = 6) -> "bytes":
    """The data message for `batch`. With `compress` (a zlib level, 0 = off) the body is
    deflated when that makes it smaller."""
    if not batch.blocks or len(batch.blocks) > MAX_BLOCKS:
        raise LocalProtocolError("a batch holds 1 to %d blocks" % MAX_BLOCKS)
    if not 0 < batch.count <= MAX_BATCH_READINGS:
        raise LocalProtocolError("a batch holds 1 to %d readings" % MAX_BATCH_READINGS)
    if batch.first_seq > batch.last_seq or batch.count > batch.last_seq - batch.first_seq + 1:
        raise LocalProtocolError("inconsistent sequence span")
    body = _blocks_array(batch.blocks)
    codec = CODEC_BLOCKS
    if compress and zlib is not None:
        packed = zlib.compress(bytes(body), compress)
        if len(packed) + 5 < len(body):
            codec = CODEC_DEFLATE
            body = bytearray()
            _bytes(body, packed)
    out = bytearray()
    _start(out, 11, DATA)
    _uint(out, batch.session)
    _uint(out, batch.batch)
    _uint(out, batch.first_seq)
    _uint(out, batch.last_seq)
    _uint(out, batch.count)
    _uint(out, batch.flags)
    _opt_uint(out, batch.backlog)
    _uint(out, codec)
    out.extend(body)
    if len(out) > MAX_PAYLOAD:
        raise LocalProtocolError("data message of %d bytes exceeds %d" % (len(out), MAX_PAYLOAD))
    return bytes(out)


def _inflate(packed: "bytes") -> "bytes":
    if zlib is None:
        raise RemoteProtocolError(UNSUPPORTED, "deflated body but no zlib on this platform")
    try:
        d = zlib.decompressobj()
        data = d.decompress(packed, MAX_INFLATED)
        if d.unconsumed_tail:
            raise RemoteProtocolError(OVERFLOW, "body inflates beyond %d bytes" % MAX_INFLATED)
        if not d.eof:
            raise RemoteProtocolError(TRUNCATED, "deflated body is cut short")
        if d.unused_data:
            raise RemoteProtocolError(MALFORMED, "bytes after the deflated body")
    except zlib.error as e:
        raise RemoteProtocolError(MALFORMED, "deflated body: %s" % e) from e
    return data


def _read_blocks(r: "_Reader") -> "list[bytes]":
    n = r.array("blocks", MAX_BLOCKS)
    if n == 0:
        raise RemoteProtocolError(MALFORMED, "a batch without blocks")
    blocks = []
    for _ in range(n):
        blocks.append(r.byte_string("block", MAX_INFLATED))
    return blocks


def decode_data(payload: "bytes") -> "DataBatch":
    """A data message; the blocks are returned as bytes, for protocols.block to decode."""
    r, rest = _open(payload, DATA, 11)
    session = r.uint("session")
    batch = r.uint("batch")
    first_seq = r.uint("first_seq")
    last_seq = r.uint("last_seq")
    count = r.uint("count", MAX_BATCH_READINGS)
    flags = r.uint("flags", 0xFFFF)
    backlog = r.opt_uint("backlog")
    codec = r.uint("codec", 0xFF)
    if first_seq > last_seq:
        raise RemoteProtocolError(MALFORMED, "first_seq %d > last_seq %d" % (first_seq, last_seq))
    if count == 0 or count > last_seq - first_seq + 1:
        raise RemoteProtocolError(
            MALFORMED, "count %d does not fit %d..%d" % (count, first_seq, last_seq)
        )
    if codec == CODEC_BLOCKS:
        blocks = _read_blocks(r)
    elif codec == CODEC_DEFLATE:
        inner = _Reader(_inflate(r.byte_string("body", MAX_PAYLOAD)))
        blocks = _read_blocks(inner)
        if inner.pos != inner.end:
            raise RemoteProtocolError(MALFORMED, "bytes after the inflated blocks")
    else:
        raise RemoteProtocolError(UNSUPPORTED, "body codec %d" % codec)
    r.finish(rest - 9)
    return DataBatch(session, batch, first_seq, last_seq, count, blocks, flags, backlog)


# -- ack --------------------------------------------------------------------------------


class Ack:
    """The hub's answer to one data batch: the inclusive sequence ranges it has committed
    to storage (alarms may have jumped ahead, so ranges, not a single high-water mark), or,
    when `rejected` holds a reason, the ranges it will never commit because the batch is
    garbage (the gateway isolates and drops those)."""

    __slots__ = ("batch", "ranges", "rejected", "session")

    def __init__(
        self,
        session: "int",
        batch: "int",
        ranges: "list[tuple[int, int]]",
        rejected: "str | None" = None,
    ) -> "None":
        self.session = session
        self.batch = batch
        self.ranges = ranges
        self.rejected = rejected

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Ack)
            and self.session == other.session
            and self.batch == other.batch
            and self.ranges == other.ranges
            and self.rejected == other.rejected
        )

    def __repr__(self) -> "str":
        return "Ack(%d, %d, %r, %r)" % (self.session, self.batch, self.ranges, self.rejected)


def encode_ack(ack: "Ack") -> "bytes":
    if len(ack.ranges) > MAX_RANGES:
        raise LocalProtocolError("more than %d ranges" % MAX_RANGES)
    out = bytearray()
    _start(out, 6, ACK)
    _uint(out, ack.session)
    _uint(out, ack.batch)
    _head(out, 4, 2 * len(ack.ranges))
    for first, last in ack.ranges:
        if first > last:
            raise LocalProtocolError("range %d..%d is reversed" % (first, last))
        _uint(out, first)
        _uint(out, last)
    _opt_text(out, ack.rejected)
    return bytes(out)


def decode_ack(payload: "bytes") -> "Ack":
    r, rest = _open(payload, ACK, 6)
    session = r.uint("session")
    batch = r.uint("batch")
    n = r.array("ranges", 2 * MAX_RANGES)
    if n % 2:
        raise RemoteProtocolError(MALFORMED, "odd number of range bounds")
    ranges = []
    for _ in range(n // 2):
        first = r.uint("range")
        last = r.uint("range")
        if first > last:
            raise RemoteProtocolError(MALFORMED, "range %d..%d is reversed" % (first, last))
        ranges.append((first, last))
    rejected = r.opt_text("rejected")
    r.finish(rest - 4)
    return Ack(session, batch, ranges, rejected)


# -- state ------------------------------------------------------------------------------


class SourceHealth:
    """One source's health in a state message: `status` is SOURCE_OK, SOURCE_DEGRADED or
    SOURCE_DOWN; `last_ms` the time of its last reading (None: none yet); `errors` counts by
    reason since the daemon started; `detail` a short text (why it is down), or None."""

    __slots__ = ("detail", "errors", "last_ms", "name", "status")

    def __init__(
        self,
        name: "str",
        status: "str",
        last_ms: "int | None" = None,
        errors: "dict[str, int] | None" = None,
        detail: "str | None" = None,
    ) -> "None":
        self.name = name
        self.status = status
        self.last_ms = last_ms
        self.errors = errors if errors is not None else {}
        self.detail = detail

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, SourceHealth) and all(
            getattr(self, k) == getattr(other, k) for k in SourceHealth.__slots__
        )

    def __repr__(self) -> "str":
        return "SourceHealth(%r, %r, last_ms=%r, errors=%r, detail=%r)" % (
            self.name,
            self.status,
            self.last_ms,
            self.errors,
            self.detail,
        )


class State:
    """Birth (online, published on connect) or death (offline, registered as the MQTT Will,
    retained). `session` counts the gateway's uplink connections and only grows, so the hub
    can tell a late Will of an old connection from the death of the current one. Also
    republished while online to report the backlog (readings not yet acknowledged), the
    readings the buffer had to drop and, optionally, the gateway's footprint: a small map of
    figures (bytes sent, bytes written to flash, CPU seconds, memory...) by name, the health
    of each of its sources (`sources`, a list of SourceHealth) and the settings changed that
    wait for a daemon restart (`restart_pending`, names such as "buffer")."""

    __slots__ = (
        "backlog",
        "dropped",
        "footprint",
        "online",
        "restart_pending",
        "session",
        "software",
        "sources",
        "ts_ms",
    )

    def __init__(
        self,
        online: "bool",
        session: "int",
        ts_ms: "int",
        backlog: "int | None" = None,
        dropped: "int | None" = None,
        software: "str | None" = None,
        footprint: "dict[str, int | float] | None" = None,
        sources: "list[SourceHealth] | None" = None,
        restart_pending: "list[str] | None" = None,
    ) -> "None":
        self.online = online
        self.session = session
        self.ts_ms = ts_ms
        self.backlog = backlog
        self.dropped = dropped
        self.software = software
        self.footprint = footprint
        self.sources = sources
        self.restart_pending = restart_pending

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, State) and all(
            getattr(self, k) == getattr(other, k) for k in State.__slots__
        )

    def __repr__(self) -> "str":
        return (
            "State(online=%r, session=%d, ts_ms=%d, backlog=%r, dropped=%r, software=%r,"
            " footprint=%r, sources=%r, restart_pending=%r)"
            % (
                self.online,
                self.session,
                self.ts_ms,
                self.backlog,
                self.dropped,
                self.software,
                self.footprint,
                self.sources,
                self.restart_pending,
            )
        )


def encode_state(state: "State") -> "bytes":
    """Eight items, then the optional ones up to the last one given (null before it): nine
    with a footprint, ten with sources, eleven with restart_pending. Older readers skip
    trailing items, so each addition stays readable by them."""
    if state.restart_pending is not None:
        items = 11
    elif state.sources is not None:
        items = 10
    elif state.footprint is not None:
        items = 9
    else:
        items = 8
    out = bytearray()
    _start(out, items, STATE)
    _bool(out, state.online)
    _uint(out, state.session)
    _uint(out, state.ts_ms)
    _opt_uint(out, state.backlog)
    _opt_uint(out, state.dropped)
    _opt_text(out, state.software)
    if items > 8:
        if state.footprint is None:
            _null(out)
        else:
            _footprint(out, state.footprint)
    if items > 9:
        if state.sources is None:
            _null(out)
        else:
            if len(state.sources) > MAX_SOURCES:
                raise LocalProtocolError("more than %d sources" % MAX_SOURCES)
            _head(out, 4, len(state.sources))
            for source in state.sources:
                _source(out, source)
    if items > 10:
        pending = state.restart_pending or []
        if len(pending) > MAX_RESTART_PENDING:
            raise LocalProtocolError("more than %d restart_pending names" % MAX_RESTART_PENDING)
        _head(out, 4, len(pending))
        for name in pending:
            _text(out, name)
    return bytes(out)


def decode_state(payload: "bytes") -> "State":
    r, rest = _open(payload, STATE, 8)
    online = r.boolean("online")
    session = r.uint("session")
    ts_ms = r.uint("ts_ms")
    backlog = r.opt_uint("backlog")
    dropped = r.opt_uint("dropped")
    software = r.opt_text("software")
    footprint = r.opt_footprint() if rest > 6 else None
    sources = r.opt_sources() if rest > 7 else None
    pending = r.opt_names("restart_pending", MAX_RESTART_PENDING) if rest > 8 else None
    r.finish(rest - min(rest, 9))
    return State(online, session, ts_ms, backlog, dropped, software, footprint, sources, pending)


# -- reserved envelopes: report, config, cmd ---------------------------------------------


class Envelope:
    """A report, config or cmd message: `body` is one CBOR item, kept as its encoded
    bytes. The fleet issue defines the bodies; version 1 only frames and bounds them."""

    __slots__ = ("body", "kind")

    def __init__(self, kind: "int", body: "bytes") -> "None":
        self.kind = kind
        self.body = body

    @classmethod
    def of(cls, kind: "int", value: "object") -> "Envelope":
        """An envelope whose body is `value` encoded by protocols.cbor."""
        return cls(kind, cbor.dumps(value))

    def value(self) -> "object":
        """The body decoded by protocols.cbor (bounded; RemoteProtocolError on garbage)."""
        return cbor.loads(self.body)

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Envelope) and self.kind == other.kind and self.body == other.body

    def __repr__(self) -> "str":
        return "Envelope(%s, %r)" % (TYPE_NAMES.get(self.kind, "?"), self.body)


def _check_item(body: "bytes") -> "None":
    r = _Reader(body)
    r.skip(1)
    if r.pos != r.end:
        raise RemoteProtocolError(MALFORMED, "envelope body is more than one item")


def encode_envelope(envelope: "Envelope") -> "bytes":
    if envelope.kind not in (REPORT, CONFIG, CMD):
        raise LocalProtocolError("envelopes are report, config or cmd")
    if len(envelope.body) > MAX_ENVELOPE_BODY:
        raise LocalProtocolError("envelope body exceeds %d bytes" % MAX_ENVELOPE_BODY)
    try:
        _check_item(envelope.body)
    except RemoteProtocolError as e:
        raise LocalProtocolError("envelope body is not one CBOR item: %s" % e.message) from e
    out = bytearray()
    _start(out, 3, envelope.kind)
    out.extend(envelope.body)
    return bytes(out)


def decode_envelope(payload: "bytes", kind: "int") -> "Envelope":
    if kind not in (REPORT, CONFIG, CMD):
        raise LocalProtocolError("envelopes are report, config or cmd")
    r, rest = _open(payload, kind, 3)
    start = r.pos
    r.skip(1)
    body = r.data[start : r.pos]
    if len(body) > MAX_ENVELOPE_BODY:
        raise RemoteProtocolError(OVERFLOW, "envelope body exceeds %d bytes" % MAX_ENVELOPE_BODY)
    r.finish(rest - 1)
    return Envelope(kind, bytes(body))


# -- ranges -----------------------------------------------------------------------------


def merge_ranges(ranges: "list[tuple[int, int]]") -> "list[tuple[int, int]]":
    """Sorted, coalesced inclusive ranges: [(1, 5), (6, 9), (20, 20)] -> [(1, 9), (20, 20)]."""
    out: "list[tuple[int, int]]" = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


__all__ = [
    "ACK",
    "CMD",
    "CODEC_BLOCKS",
    "CODEC_DEFLATE",
    "CONFIG",
    "DATA",
    "DOWNLINK_KINDS",
    "FLAG_HISTORICAL",
    "KINDS",
    "MAX_BATCH_READINGS",
    "MAX_BLOCKS",
    "MAX_DEPTH",
    "MAX_FOOTPRINT",
    "MAX_FOOTPRINT_KEY",
    "MAX_INFLATED",
    "MAX_PACKET",
    "MAX_PAYLOAD",
    "MAX_RANGES",
    "MAX_RESTART_PENDING",
    "MAX_SOURCES",
    "MAX_SOURCE_ERRORS",
    "REPORT",
    "SOURCE_DEGRADED",
    "SOURCE_DOWN",
    "SOURCE_OK",
    "SOURCE_STATUSES",
    "STATE",
    "TOPIC_ROOT",
    "UPLINK_KINDS",
    "VERSION",
    "Ack",
    "DataBatch",
    "Envelope",
    "SourceHealth",
    "State",
    "decode_ack",
    "decode_data",
    "decode_envelope",
    "decode_state",
    "encode_ack",
    "encode_data",
    "encode_envelope",
    "encode_state",
    "merge_ranges",
    "message_type",
    "parse_topic",
    "subscription",
    "topic",
    "valid_gateway_id",
]
