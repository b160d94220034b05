"""SDI-12 v1.3: command builders, response parsing with CRC, and a sans-IO master sequence.

SDI-12 runs at 1200 baud, 7 data bits, even parity, 1 stop bit, on one half-duplex line.
A data recorder (us) wakes the sensors with a break, sends a command (`a...!`, the first
character an address) and reads one response line (`a...<CR><LF>`). This package moves no
bytes and keeps no clock: it builds the commands, frames and parses the responses, and its
`MeasureSequence` says what to send next, whether to send a break first, and how long to wait.

    >>> seq = MeasureSequence("0")
    >>> seq.start()            # Send(b'0M!', wake=True)
    >>> seq.receive(b"00053\\r\\n")   # Wait(5 s, service request expected)
    >>> seq.receive(b"0\\r\\n")       # the service request: Send(b'0D0!', wake=False)
    >>> seq.receive(b"0+3.14+2.718+1.414\\r\\n")   # Done([3.14, 2.718, 1.414])

Values are decoded as written: without a decimal point they are ints (`+345` -> 345),
otherwise floats (`+3.14` -> 3.14). SDI-12 carries no units: readings are named `value1` ..
`valueN` with unit None unless a mapping (`names`, from configuration) gives names and units.

One concern per module: `_commands` (line settings and timing, CRC, command builders and
`parse_command`), `_responses` (response types, `parse_response`, the sensor-side
`format_*`), `_sequence` (`LineReader` framing, `MeasureSequence`), `_describe` (`readings`,
`parse_names`, `describe`). Import from `protocols.sdi12`.

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols.sdi12._commands import (
    ACKNOWLEDGE,
    ADDRESS_CHANGE_MS,
    BAUD_RATE,
    BREAK_AFTER_IDLE_MS,
    BREAK_MS,
    BYTE_FORMAT,
    CHANGE_ADDRESS,
    CHAR_GAP_MS,
    CHAR_MS,
    CONCURRENT,
    CONTINUOUS,
    DATA,
    EXTENDED,
    IDENTIFY,
    MARKING_MS,
    MAX_LINE,
    MAX_VALUES_C,
    MAX_VALUES_M,
    MEASURE,
    RESPONSE_MS,
    RETRY_MAX_MS,
    RETRY_MIN_MS,
    SENSOR_WAKE_MS,
    TRIES,
    VERIFY,
    WAKES,
    Command,
    acknowledge,
    change_address,
    continuous,
    crc16,
    encode_crc,
    extended,
    identify,
    parse_command,
    query_address,
    send_data,
    start_concurrent,
    start_measurement,
    start_verification,
)
from protocols.sdi12._describe import describe, parse_names, readings
from protocols.sdi12._responses import (
    Acknowledge,
    DataValues,
    ExtendedResponse,
    Identification,
    MeasurementStart,
    format_data,
    format_identification,
    format_measurement,
    format_value,
    parse_response,
    parse_response_text,
    parse_values,
)
from protocols.sdi12._sequence import Done, LineReader, MeasureSequence, Send, Wait

__all__ = [
    "ACKNOWLEDGE",
    "ADDRESS_CHANGE_MS",
    "BAUD_RATE",
    "BREAK_AFTER_IDLE_MS",
    "BREAK_MS",
    "BYTE_FORMAT",
    "CHANGE_ADDRESS",
    "CHAR_GAP_MS",
    "CHAR_MS",
    "CONCURRENT",
    "CONTINUOUS",
    "DATA",
    "EXTENDED",
    "IDENTIFY",
    "MARKING_MS",
    "MAX_LINE",
    "MAX_VALUES_C",
    "MAX_VALUES_M",
    "MEASURE",
    "RESPONSE_MS",
    "RETRY_MAX_MS",
    "RETRY_MIN_MS",
    "SENSOR_WAKE_MS",
    "TRIES",
    "VERIFY",
    "WAKES",
    "Acknowledge",
    "Command",
    "DataValues",
    "Done",
    "ExtendedResponse",
    "Identification",
    "LineReader",
    "MeasureSequence",
    "MeasurementStart",
    "Send",
    "Wait",
    "acknowledge",
    "change_address",
    "continuous",
    "crc16",
    "describe",
    "encode_crc",
    "extended",
    "format_data",
    "format_identification",
    "format_measurement",
    "format_value",
    "identify",
    "parse_command",
    "parse_names",
    "parse_response",
    "parse_response_text",
    "parse_values",
    "query_address",
    "readings",
    "send_data",
    "start_concurrent",
    "start_measurement",
    "start_verification",
]
