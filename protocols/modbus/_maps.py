"""Register maps as data: what a device's registers mean, how to poll them, and how to
turn the registers read into Measurements.

    plan = read_plan(SDM120)                       # few requests, <= max_count registers each
    for request in plan:
        response = ...                             # the Master's Response to `request`
        measurements = decode_registers(SDM120, request.start, response.registers,
                                        request.function)

A map is plain data; `RegisterMap.from_dict` builds one from configuration (the register
order and scale of soil probes differ by vendor), `as_dict` gives it back.
"""

from protocols.errors import LocalProtocolError
from protocols.modbus._frames import (
    MAX_READ_REGISTERS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    Request,
    read_holding_registers,
    read_input_registers,
)
from protocols.modbus._values import (
    ORDERS,
    TYPES,
    decode_value,
    is_finite,
    number_decimal,
    scale_value,
    type_width,
)
from protocols.reading import Measurement

_READ_FUNCTIONS = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)


class Register:
    """One quantity: `name`, 0-based wire `address`, `count` registers of `type`, times
    `scale`, in SenML `unit`, read with `function` (3 holding, 4 input; None: the map's)
    in byte/word `order` (None: the map's)."""

    __slots__ = ("address", "count", "function", "name", "order", "scale", "type", "unit")

    def __init__(
        self,
        name: "str",
        address: "int",
        type: "str" = "u16",
        scale: "int | float" = 1,
        unit: "str | None" = None,
        function: "int | None" = None,
        count: "int | None" = None,
        order: "str | None" = None,
    ) -> "None":
        width = type_width(type)
        if count is None:
            count = width
        if not isinstance(name, str) or not name:
            raise LocalProtocolError("a register needs a name")
        if not isinstance(address, int) or not 0 <= address <= 0xFFFF:
            raise LocalProtocolError("%s: address must be 0..65535, got %r" % (name, address))
        if not isinstance(count, int) or count < 1 or (width and count != width):
            raise LocalProtocolError(
                "%s: %s takes %d registers, not %r" % (name, type, width, count)
            )
        if address + count > 0x10000:
            raise LocalProtocolError("%s: passes address 65535" % name)
        if function is not None and function not in _READ_FUNCTIONS:
            raise LocalProtocolError("%s: function must be 3 or 4, got %r" % (name, function))
        if order is not None and order not in ORDERS:
            raise LocalProtocolError("%s: unknown order %r" % (name, order))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale == 0:
            raise LocalProtocolError("%s: scale must be a non-zero number" % name)
        if type == "str" and scale != 1:
            raise LocalProtocolError("%s: a str register cannot be scaled" % name)
        self.name = name
        self.address = address
        self.count = count
        self.type = type
        self.scale = scale
        self.unit = unit
        self.function = function
        self.order = order

    def as_dict(self) -> "dict[str, object]":
        return {
            "name": self.name,
            "address": self.address,
            "count": self.count,
            "type": self.type,
            "scale": self.scale,
            "unit": self.unit,
            "function": self.function,
            "order": self.order,
        }

    def __repr__(self) -> "str":
        return "Register(%r, 0x%04X, %r, scale=%r, unit=%r, function=%r)" % (
            self.name,
            self.address,
            self.type,
            self.scale,
            self.unit,
            self.function,
        )


class RegisterMap:
    """A device's registers. `function` and `order` are the defaults of its registers,
    `address` the device's default bus address; a poll request reads at most `max_count`
    registers and bridges gaps of at most `max_gap` unmapped registers (0: only contiguous
    registers share a request; some devices refuse to read unmapped registers)."""

    __slots__ = (
        "address",
        "description",
        "function",
        "max_count",
        "max_gap",
        "name",
        "order",
        "registers",
    )

    def __init__(
        self,
        name: "str",
        registers: "list[Register] | tuple[Register, ...]",
        function: "int" = READ_HOLDING_REGISTERS,
        order: "str" = "ABCD",
        address: "int" = 1,
        max_count: "int" = MAX_READ_REGISTERS,
        max_gap: "int" = 0,
        description: "str" = "",
    ) -> "None":
        if function not in _READ_FUNCTIONS:
            raise LocalProtocolError("%s: function must be 3 or 4, got %r" % (name, function))
        if order not in ORDERS:
            raise LocalProtocolError("%s: unknown order %r" % (name, order))
        if not isinstance(address, int) or not 1 <= address <= 247:
            raise LocalProtocolError("%s: device address must be 1..247" % name)
        if not isinstance(max_count, int) or not 1 <= max_count <= MAX_READ_REGISTERS:
            raise LocalProtocolError("%s: max_count must be 1..125" % name)
        if not isinstance(max_gap, int) or max_gap < 0:
            raise LocalProtocolError("%s: max_gap must be >= 0" % name)
        if not registers:
            raise LocalProtocolError("%s: no registers" % name)
        resolved = []
        names = set()
        for r in registers:
            if r.name in names:
                raise LocalProtocolError("%s: register name %r twice" % (name, r.name))
            names.add(r.name)
            if r.count > max_count:
                raise LocalProtocolError("%s: %s is wider than max_count" % (name, r.name))
            resolved.append(
                Register(
                    r.name,
                    r.address,
                    r.type,
                    r.scale,
                    r.unit,
                    r.function if r.function is not None else function,
                    r.count,
                    r.order if r.order is not None else order,
                )
            )
        self.name = name
        self.registers = tuple(resolved)
        self.function = function
        self.order = order
        self.address = address
        self.max_count = max_count
        self.max_gap = max_gap
        self.description = description

    @classmethod
    def from_dict(cls, data: "dict[str, object]") -> "RegisterMap":
        """Build a map from configuration data (the shape `as_dict` gives)."""
        try:
            registers = [
                Register(
                    r["name"],
                    _int(r["address"]),
                    r.get("type", "u16"),
                    r.get("scale", 1),
                    r.get("unit"),
                    r.get("function"),
                    r.get("count"),
                    r.get("order"),
                )
                for r in data["registers"]  # type: ignore[attr-defined]
            ]
            return cls(
                data["name"],  # type: ignore[arg-type]
                registers,
                data.get("function", READ_HOLDING_REGISTERS),  # type: ignore[arg-type]
                data.get("order", "ABCD"),  # type: ignore[arg-type]
                data.get("address", 1),  # type: ignore[arg-type]
                data.get("max_count", MAX_READ_REGISTERS),  # type: ignore[arg-type]
                data.get("max_gap", 0),  # type: ignore[arg-type]
                data.get("description", ""),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LocalProtocolError("bad register map: %r" % (e,)) from e

    def as_dict(self) -> "dict[str, object]":
        return {
            "name": self.name,
            "description": self.description,
            "function": self.function,
            "order": self.order,
            "address": self.address,
            "max_count": self.max_count,
            "max_gap": self.max_gap,
            "registers": [r.as_dict() for r in self.registers],
        }

    def __repr__(self) -> "str":
        return "RegisterMap(%r, %d registers)" % (self.name, len(self.registers))


def _int(value: "object") -> "int":
    """Register addresses in configuration may be ints or "0x0034" strings."""
    if isinstance(value, str):
        return int(value, 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise LocalProtocolError("not an address: %r" % (value,))


def read_plan(
    register_map: "RegisterMap",
    address: "int | None" = None,
    max_gap: "int | None" = None,
    max_count: "int | None" = None,
) -> "list[Request]":
    """The requests that read every register of the map: registers grouped per function,
    in address order, as few requests as contiguity (or `max_gap`) and `max_count` allow.

    `address` is the device's bus address (default: the map's).
    """
    device = register_map.address if address is None else address
    gap = register_map.max_gap if max_gap is None else max_gap
    limit = register_map.max_count if max_count is None else max_count
    if not 1 <= limit <= MAX_READ_REGISTERS:
        raise LocalProtocolError("max_count must be 1..125")
    plan: "list[Request]" = []
    functions: "list[int]" = []
    for r in register_map.registers:
        if r.function is not None and r.function not in functions:
            functions.append(r.function)
    for function in functions:
        spans = sorted(
            (r.address, r.address + r.count)
            for r in register_map.registers
            if r.function == function
        )
        blocks: "list[list[int]]" = []
        for first, end in spans:
            if blocks:
                block = blocks[-1]
                if first - block[1] <= gap and max(end, block[1]) - block[0] <= limit:
                    block[1] = max(end, block[1])
                    continue
            blocks.append([first, end])
        build = read_input_registers if function == READ_INPUT_REGISTERS else read_holding_registers
        for first, end in blocks:
            plan.append(build(device, first, end - first))
    return plan


def first_block_start(register_map: "RegisterMap", function: "int | None" = None) -> "int":
    """The start of the map's first poll request (for `function`, when it has registers)."""
    plan = read_plan(register_map)
    for request in plan:
        if function is None or request.function == function:
            return request.start or 0
    return plan[0].start or 0


def decode_registers(
    register_map: "RegisterMap",
    start: "int",
    registers: "list[int] | tuple[int, ...]",
    function: "int | None" = None,
) -> "list[Measurement]":
    """Measurements of the map's registers lying wholly within `registers`, read from
    `start` (with `function`, when given), in map order.

    Values are scaled without float noise; a float that is NaN or infinite (a device's
    "no value") gives no measurement.
    """
    out: "list[Measurement]" = []
    end = start + len(registers)
    for r in register_map.registers:
        if function is not None and r.function != function:
            continue
        if r.address < start or r.address + r.count > end:
            continue
        offset = r.address - start
        raw = decode_value(registers[offset : offset + r.count], r.type, r.order or "ABCD")
        if isinstance(raw, float) and not is_finite(raw):
            continue
        value = scale_value(raw, number_decimal(r.scale))
        out.append(Measurement(r.name, value, r.unit))
    return out


__all__ = [
    "TYPES",
    "Register",
    "RegisterMap",
    "decode_registers",
    "first_block_start",
    "read_plan",
]
