"""Modbus RTU: CRC-16, frames, request builders and parsers, a sans-IO master, register
decoding in every byte/word order, and register maps as data.

    from protocols import modbus
    master = modbus.Master()
    wire = master.send(modbus.read_input_registers(1, 0x0000, 2))
    master.receive_data(bytes.fromhex("010404436633341B38"))
    response = master.next_event()                       # Response(registers=(17254, 13108))
    modbus.decode_registers(modbus.SDM120, 0, response.registers, 4)
    # [Measurement('voltage', 230.2, 'V')]

Firmware-style: standard library only, MicroPython-compatible. See docs/protocols/modbus.md.
"""

from protocols.modbus._crc import crc16, crc_bytes, crc_ok
from protocols.modbus._describe import describe
from protocols.modbus._device_maps import (
    LEVEL,
    LEVEL_SEN0310,
    MAPS,
    SDM120,
    SDM630,
    SOIL,
    SOIL_ES103,
    get_map,
)
from protocols.modbus._frames import (
    BROADCAST,
    EXCEPTIONS,
    FUNCTIONS,
    MAX_ADU,
    READ_COILS,
    READ_DISCRETE_INPUTS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    WRITE_MULTIPLE_COILS,
    WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_COIL,
    WRITE_SINGLE_REGISTER,
    ModbusException,
    Request,
    Response,
    encode_frame,
    exception_name,
    function_name,
    parse_frame,
    parse_request,
    parse_response,
    read_coils,
    read_discrete_inputs,
    read_holding_registers,
    read_input_registers,
    write_multiple_coils,
    write_multiple_registers,
    write_single_coil,
    write_single_register,
)
from protocols.modbus._maps import (
    Register,
    RegisterMap,
    decode_registers,
    first_block_start,
    read_plan,
)
from protocols.modbus._master import (
    NEED_DATA,
    Master,
    NeedData,
    character_time,
    inter_character_timeout,
    silent_interval,
)
from protocols.modbus._values import ORDERS, TYPES, decode_value, encode_value

__all__ = [
    "BROADCAST",
    "EXCEPTIONS",
    "FUNCTIONS",
    "LEVEL",
    "LEVEL_SEN0310",
    "MAPS",
    "MAX_ADU",
    "NEED_DATA",
    "ORDERS",
    "READ_COILS",
    "READ_DISCRETE_INPUTS",
    "READ_HOLDING_REGISTERS",
    "READ_INPUT_REGISTERS",
    "SDM120",
    "SDM630",
    "SOIL",
    "SOIL_ES103",
    "TYPES",
    "WRITE_MULTIPLE_COILS",
    "WRITE_MULTIPLE_REGISTERS",
    "WRITE_SINGLE_COIL",
    "WRITE_SINGLE_REGISTER",
    "Master",
    "ModbusException",
    "NeedData",
    "Register",
    "RegisterMap",
    "Request",
    "Response",
    "character_time",
    "crc16",
    "crc_bytes",
    "crc_ok",
    "decode_registers",
    "decode_value",
    "describe",
    "encode_frame",
    "encode_value",
    "exception_name",
    "first_block_start",
    "function_name",
    "get_map",
    "inter_character_timeout",
    "parse_frame",
    "parse_request",
    "parse_response",
    "read_coils",
    "read_discrete_inputs",
    "read_holding_registers",
    "read_input_registers",
    "read_plan",
    "silent_interval",
    "write_multiple_coils",
    "write_multiple_registers",
    "write_single_coil",
    "write_single_register",
]
