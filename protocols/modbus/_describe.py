"""`describe(data, options)`: the technician's view of pasted Modbus RTU bytes.

A paste has no silences, so frame boundaries come from the function code (a request or
response length rule of the specification) confirmed by the CRC; a frame whose function has
no fixed rule is the rest of the input when its CRC matches. Each frame is a request, a
response or an exception response:

- 8-byte FC 01-04 frames are requests (a response needs an even byte count of registers or
  a byte count equal to its data), 8-byte FC 0F/10 frames are responses, longer ones
  requests; FC 05/06 requests and responses are identical: a frame right after the same
  request is its response, otherwise it is shown as a request.
- A response right after a request is checked against it (address, function, byte count,
  echo) and gets its start address from it.
- A read response alone does not say its start address: `options["start"]` gives it, else
  the start of the map's first poll request (`read_plan(map)[0]`).

`valid` is framing + CRC (+ consistency with the request before it); an exception response
is a valid frame whose fields carry `exception` and `exception_name`.
"""

from protocols.describe import result
from protocols.errors import (
    CHECKSUM,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.modbus._crc import crc_ok
from protocols.modbus._device_maps import get_map
from protocols.modbus._frames import (
    BROADCAST,
    FUNCTIONS,
    MAX_ADU,
    MAX_DEVICE_ADDRESS,
    MIN_ADU,
    READ_COILS,
    READ_DISCRETE_INPUTS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    ModbusException,
    Request,
    Response,
    function_name,
    parse_frame,
    parse_request,
    parse_response,
    rule_length,
)
from protocols.modbus._maps import RegisterMap, decode_registers, first_block_start

PROTOCOL = "modbus"
_ANSWERS = ("response", "exception", "other:response")
_READS = (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
# Resynchronisation after bytes without a valid frame: how far ahead a frame is looked
# for, and how many start offsets one describe() call may try in all (bounded time).
_RESYNC_WINDOW = MAX_ADU
_RESYNC_BUDGET = 2048


class _Frame:
    """One frame found in the input: its bytes, how it reads, and the error if any."""

    __slots__ = ("data", "error", "kind", "message")

    def __init__(
        self,
        data: "bytes",
        kind: "str",
        message: "Request | Response | ModbusException | None" = None,
        error: "RemoteProtocolError | None" = None,
    ) -> "None":
        self.data = data
        self.kind = kind  # request | response | exception | other
        self.message = message
        self.error = error


def _candidates(rest: "bytes") -> "list[tuple[int, str]]":
    """(length, kind) the function code's rules give for a frame at the start of `rest`."""
    if len(rest) < 2:
        return []
    function = rest[1]
    if function & 0x80:
        return [(5, "response")]
    entry = FUNCTIONS.get(function)
    if entry is None:
        return []
    out: "list[tuple[int, str]]" = []
    for rule, kind in ((entry[1], "request"), (entry[2], "response")):
        if rule is None:
            continue
        length = rule_length(rule, rest)
        if length is not None:
            out.append((length, kind))
    return out


def _interpret(frame: "bytes", kind: "str") -> "_Frame":
    """Read `frame` (CRC already checked) as a request or as a response."""
    try:
        if kind == "request":
            return _Frame(frame, "request", parse_request(frame))
        return _Frame(frame, "response", parse_response(frame))
    except ModbusException as e:
        return _Frame(frame, "exception", e)
    except RemoteProtocolError as e:
        if e.reason == UNSUPPORTED:
            return _Frame(frame, "other:" + kind)
        return _Frame(frame, kind, None, e)


def _next_frame(rest: "bytes", pending: "Request | None", last: "bool") -> "_Frame":
    """The frame at the start of `rest` (at most MAX_ADU bytes of the input; `last` when
    they are all the input has left)."""
    expect_response = (
        pending is not None
        and len(rest) >= 2
        and rest[0] == pending.address
        and rest[1] & 0x7F == pending.function
    )
    candidates = _candidates(rest)
    matched = [
        (n, kind) for n, kind in candidates if MIN_ADU <= n <= len(rest) and crc_ok(rest[:n])
    ]
    if not matched and last and len(rest) >= MIN_ADU and crc_ok(rest):
        if len(rest) >= 2 and rest[1] < 0x80 and rest[1] not in FUNCTIONS:
            return _Frame(rest, "other:unknown")
        matched = [(len(rest), "request"), (len(rest), "response")]
    if not matched:
        return _Frame(rest, "invalid", None, _framing_error(rest, candidates, last))
    frames = [_interpret(rest[:n], kind) for n, kind in matched]
    good = [f for f in frames if f.error is None]
    if good:
        if expect_response:
            for f in good:
                if f.kind in ("response", "exception", "other:response"):
                    return f
        for f in good:
            if f.kind in ("request", "other:request"):
                return f
        return good[0]
    if expect_response:
        for f in frames:
            if f.kind == "response":
                return f
    rule = FUNCTIONS.get(rest[1] & 0x7F)
    request_rule = rule[1] if rule else None
    for i, f in enumerate(frames):
        n, kind = matched[i]
        if kind == "request" and request_rule and rule_length(request_rule, rest) == n:
            return f
    for f in frames:
        if f.kind == "response":
            return f
    return frames[0]


def _resync(data: "bytes", pos: "int", budget: "list[int]") -> "int":
    """How many bytes after `pos` the next frame with a valid CRC starts (0: none within
    reach). Only frames the function code's length rules delimit count, so a CRC that
    matches by chance over arbitrary bytes cannot cut the input. `budget` (one-item list)
    caps the offsets tried over a whole describe() call."""
    end = min(len(data), pos + 1 + _RESYNC_WINDOW)
    for k in range(pos + 1, end):
        if budget[0] <= 0:
            return 0
        budget[0] -= 1
        rest = data[k : k + MAX_ADU]
        for n, _kind in _candidates(rest):
            if MIN_ADU <= n <= len(rest) and crc_ok(rest[:n]):
                return k - pos
    return 0


def _framing_error(
    rest: "bytes", candidates: "list[tuple[int, str]]", last: "bool"
) -> "RemoteProtocolError":
    lengths = sorted(set(n for n, _ in candidates))
    if len(rest) < MIN_ADU or (lengths and lengths[-1] > len(rest)):
        need = [n for n in lengths if n > len(rest)] or [MIN_ADU]
        return RemoteProtocolError(
            TRUNCATED,
            "%d bytes, the frame needs %s" % (len(rest), " or ".join(str(n) for n in need)),
        )
    if (last and not lengths) or len(rest) in lengths:
        try:
            parse_frame(rest)
        except RemoteProtocolError as e:
            return e
    if not lengths:
        return RemoteProtocolError(CHECKSUM, "no frame with a valid CRC")
    return RemoteProtocolError(
        CHECKSUM,
        "no frame with a valid CRC (tried lengths %s)" % ", ".join(str(n) for n in lengths),
    )


def _options(options: "dict[str, object]") -> "tuple[RegisterMap | None, int | None]":
    name = options.get("map")
    register_map = None
    if isinstance(name, RegisterMap):
        register_map = name
    elif name:
        register_map = get_map(str(name))
    start = options.get("start")
    if start is None or start == "":
        return register_map, None
    try:
        value = int(start, 0) if isinstance(start, str) else int(start)  # type: ignore[call-overload]
    except (TypeError, ValueError) as e:
        raise LocalProtocolError("start must be a register address, got %r" % (start,)) from e
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError("start must be 0..65535, got %r" % (start,))
    return register_map, value


def _fields(frame: "_Frame") -> "dict[str, object]":
    data = frame.data
    fields: "dict[str, object]" = {}
    if len(data) >= 1:
        fields["address"] = data[0]
    if len(data) >= 2:
        fields["function"] = data[1]
        fields["function_name"] = function_name(data[1])
    kind = frame.kind
    if kind.startswith("other:"):
        fields["kind"] = kind[6:]
        fields["data"] = " ".join("%02X" % b for b in data[2:-2])
        return fields
    fields["kind"] = kind
    message = frame.message
    address = data[0] if data else None
    if address is not None and kind != "invalid":
        if kind in ("response", "exception") and (
            address == BROADCAST or address > MAX_DEVICE_ADDRESS
        ):
            fields["note"] = "address %d should not answer (devices are 1..247)" % address
        elif kind == "request" and address > MAX_DEVICE_ADDRESS:
            fields["note"] = "address %d is reserved (devices are 1..247)" % address
        elif (
            kind == "request"
            and address == BROADCAST
            and isinstance(message, Request)
            and message.function in _READS
        ):
            fields["note"] = "a read sent to the broadcast address 0 gets no answer"
    if isinstance(message, ModbusException):
        fields["exception"] = message.code
        fields["exception_name"] = message.name
    elif message is not None:
        if isinstance(message, Request) and message.broadcast:
            fields["broadcast"] = True
        if message.start is not None:
            fields["start"] = message.start
        if message.count is not None:
            fields["count"] = message.count
        if message.registers is not None:
            fields["registers"] = list(message.registers)
        if message.bits is not None:
            fields["bits"] = [int(b) for b in message.bits]
    return fields


def _map_function(register_map: "RegisterMap", function: "int") -> "int | None":
    """`function` when the map has registers read with it; None (any) otherwise, for
    devices that answer FC03 and FC04 alike."""
    for r in register_map.registers:
        if r.function == function:
            return function
    return None


def _readings(
    response: "Response", register_map: "RegisterMap", start: "int"
) -> "list[dict[str, object]]":
    function = _map_function(register_map, response.function)
    measurements = decode_registers(register_map, start, response.registers or (), function)
    return [m.as_dict() for m in measurements]


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict per frame found in `data` (see the module docstring)."""
    register_map, start_option = _options(options or {})
    data = bytes(data)
    out: "list[dict[str, object]]" = []
    pending: "Request | None" = None
    pos = 0
    budget = [_RESYNC_BUDGET]
    while pos < len(data):
        last = len(data) - pos <= MAX_ADU
        frame = _next_frame(data[pos : pos + MAX_ADU], pending, last)
        if frame.kind == "invalid":
            # No CRC match here: the bad bytes reach to the next offset where a frame
            # with a valid CRC starts (a corrupted frame, then good ones), else to the end.
            skip = _resync(data, pos, budget)
            if skip:
                frame.data = data[pos : pos + skip]
                frame.error = _framing_error(frame.data, _candidates(frame.data), True)
                pos += skip
            else:
                frame.data = data[pos:]
                pos = len(data)
        else:
            pos += len(frame.data)
        before = pending
        pending = None
        message = frame.message
        start_from = None
        if frame.kind == "request" and isinstance(message, Request) and not message.broadcast:
            pending = message
        elif before is not None and frame.error is None and frame.kind in _ANSWERS:
            # A response right after a request must answer it.
            try:
                message = parse_response(frame.data, before)
                frame.message = message
                start_from = "request"
            except ModbusException:
                pass
            except RemoteProtocolError as e:
                if e.reason != UNSUPPORTED:
                    frame.error = e
        fields = _fields(frame)
        readings: "list[dict[str, object]]" = []
        if (
            isinstance(message, Response)
            and frame.error is None
            and message.registers is not None
            and message.function in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
        ):
            start = message.start if start_from == "request" else None
            if start_option is not None:
                start, start_from = start_option, "option"
            elif start is None and register_map is not None:
                function = _map_function(register_map, message.function)
                start, start_from = first_block_start(register_map, function), "map"
            if start is not None:
                fields["start"] = start
                fields["start_from"] = start_from
            if register_map is not None and start is not None:
                fields["map"] = register_map.name
                readings = _readings(message, register_map, start)
        error = frame.error
        out.append(
            result(PROTOCOL, error is None, None if error is None else str(error), fields, readings)
        )
    return out


__all__ = ["describe"]
