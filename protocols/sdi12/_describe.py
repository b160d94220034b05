"""SDI-12 readings (`names` mapping) and `describe`, the `estran decode sdi12` face.

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._typing import TYPE_CHECKING
from protocols.describe import result
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.reading import Measurement
from protocols.sdi12._commands import (
    CHANGE_ADDRESS,
    CONCURRENT,
    CONTINUOUS,
    DATA,
    MEASURE,
    VERIFY,
    Command,
    parse_command,
)
from protocols.sdi12._responses import (
    Acknowledge,
    DataValues,
    MeasurementStart,
    parse_response_text,
)
from protocols.sdi12._sequence import LineReader

if TYPE_CHECKING:
    from protocols.sdi12._responses import Value


# -- readings -----------------------------------------------------------------------------


def parse_names(names: "object") -> "list[tuple[str, str | None]]":
    """`"moisture:%,temperature:Cel,ec"` -> [("moisture", "%"), ("temperature", "Cel"),
    ("ec", None)]. A list of such strings is accepted too. Empty entries keep the generic name."""
    if names is None:
        return []
    if isinstance(names, str):
        items = names.split(",")
    elif isinstance(names, (list, tuple)):
        items = [str(n) for n in names]
    else:
        raise LocalProtocolError("names: a comma-separated string or a list")
    out: "list[tuple[str, str | None]]" = []
    for item in items:
        item = item.strip()
        if ":" in item:
            name, unit = item.split(":", 1)
            out.append((name.strip(), unit.strip() or None))
        else:
            out.append((item, None))
    return out


def readings(
    values: "list[Value]", names: "object" = None, start: "int" = 0
) -> "list[Measurement]":
    """Measurements from values: `value1`..`valueN` (unit None), or the names (and units)
    given in `names` by position; `start` is the position of values[0] in the measurement
    (values from aD1! follow those of aD0!)."""
    mapping = parse_names(names)
    out = []
    for i, value in enumerate(values):
        pos = start + i
        name, unit = mapping[pos] if pos < len(mapping) else ("", None)
        out.append(Measurement(name or "value%d" % (pos + 1), value, unit))
    return out


# -- describe (estran decode sdi12) --------------------------------------------------------


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """Responses (and optionally the commands before them) as contract dicts.

    `data` is what was on the line: response lines `a...<CR><LF>`, each optionally preceded
    by the command it answers (`0D0!0+3.14<CR><LF>`). A command tells what the next response
    is; a measurement command (MC, CC) tells that its data responses must carry a CRC, and
    values of aD1!.. continue the numbering of aD0!'s. Without commands, responses are
    recognised by their shape. A command with no response after it is described alone.
    `options["names"]`: reading names (and units), see `parse_names`. Garbage never raises;
    an unusable `names` option raises LocalProtocolError."""
    names = options.get("names") if isinstance(options, dict) else None
    parse_names(names)  # a bad mapping is the caller's error: LocalProtocolError
    out: "list[dict[str, object]]" = []
    reader = LineReader()
    reader.receive_data(bytes(data))
    reader.receive_data(b"")
    pending: "Command | None" = None
    crc_of: "dict[str, bool]" = {}  # per address: CRC requested by its last M/C/V command?
    position: "dict[str, int]" = {}  # per address: values already read in this measurement
    service: "dict[str, bool]" = {}  # per address: a service request may come (after M, V)
    while True:
        try:
            line = reader.next_line()
        except RemoteProtocolError as e:
            out.append(result("sdi12", False, str(e), {}, []))
            continue
        if line is None:
            break
        if line[-1:] == b"!":
            try:
                command = parse_command(line)
            except RemoteProtocolError as e:
                out.append(result("sdi12", False, str(e), {"command": _show(line)}, []))
                continue
            if pending is not None:
                out.append(result("sdi12", True, None, _command_fields(pending), []))
            pending = command
            service.pop(command.address, None)
            if command.kind in (MEASURE, CONCURRENT, VERIFY):
                crc_of[command.address] = command.crc
            if command.kind in (MEASURE, CONCURRENT, VERIFY, CONTINUOUS) or (
                command.kind == DATA and command.index == 0
            ):
                position[command.address] = 0
            continue
        cmd, pending = pending, None
        fields: "dict[str, object]" = {}
        if cmd is not None:
            fields["command"] = cmd.encode().decode()
        # CRC requested: it must be there; otherwise one present is still checked
        crc = True if cmd is not None and cmd.kind == DATA and crc_of.get(cmd.address) else None
        terminated = line[-2:] == b"\r\n"
        try:
            response = parse_response_text(line[:-2] if terminated else line, cmd, crc)
        except RemoteProtocolError as e:
            fields["raw"] = _show(line)
            out.append(result("sdi12", False, str(e), fields, []))
            continue
        fields.update(response.fields())
        if isinstance(response, MeasurementStart):
            if response.seconds and not response.concurrent:
                service[response.address] = True
        elif isinstance(response, Acknowledge) and cmd is None:
            if service.pop(response.address, False):
                fields["kind"] = "service_request"
        elif isinstance(response, DataValues) and not response.values:
            fields["aborted"] = True  # a valid answer without values: no measurement to give
        if not terminated:
            out.append(result("sdi12", False, "truncated: no CR LF at the end", fields, []))
            continue
        found: "list[dict[str, object]]" = []
        if isinstance(response, DataValues):
            start = 0
            if cmd is not None and cmd.kind == DATA and cmd.index > 0:
                start = position.get(cmd.address, 0)
            found = [m.as_dict() for m in readings(response.values, names, start)]
            if cmd is not None:
                position[cmd.address] = start + len(response.values)
        out.append(result("sdi12", True, None, fields, found))
    if pending is not None:
        out.append(result("sdi12", True, None, _command_fields(pending), []))
    return out


def _command_fields(cmd: "Command") -> "dict[str, object]":
    fields: "dict[str, object]" = {
        "command": cmd.encode().decode(),
        "address": cmd.address,
        "kind": cmd.kind,
    }
    if cmd.kind in (MEASURE, CONCURRENT, DATA, CONTINUOUS):
        fields["index"] = cmd.index
    if cmd.kind in (MEASURE, CONCURRENT, CONTINUOUS):
        fields["crc"] = cmd.crc
    if cmd.kind == CHANGE_ADDRESS:
        fields["new_address"] = cmd.new_address
    return fields


def _show(line: "bytes") -> "str":
    """Printable rendering of a raw line for error reports."""
    out = []
    for b in line[:80]:
        if b == 13:
            out.append("<CR>")
        elif b == 10:
            out.append("<LF>")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


__all__ = ["describe", "parse_names", "readings"]
