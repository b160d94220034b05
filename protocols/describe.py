"""`describe(protocol, data, options)`: the codecs' public face for technicians.

Every codec module named in PROTOCOLS exposes::

    def describe(data: bytes, options: dict) -> list[dict]

returning one dict per frame or payload found in `data`, in the JSON contract of
`estran decode --json`::

    {"protocol": "mbus", "valid": True, "error": None,
     "fields": {...protocol-specific header fields...},
     "readings": [{"name": "...", "value": 1.5, "unit": "Wh"}, ...]}

`options` carries the command-line options a codec understands (`key`, `mac`, `map`, ...).
Garbage never raises from `describe`: it becomes `valid: False` with the reason in `error`.
"""

from protocols._stream import NeedData
from protocols._typing import TYPE_CHECKING
from protocols.errors import MALFORMED, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from typing import Callable, Protocol, TypeVar

    Event = TypeVar("Event", covariant=True)

    class EventStream(Protocol[Event]):
        def next_event(self) -> "Event | NeedData": ...

    class FedStream(EventStream[Event], Protocol[Event]):
        def receive_data(self, data: "bytes") -> "None": ...

        def finish(self) -> "None": ...


PROTOCOLS = {
    "tic": "protocols.tic",
    "modbus": "protocols.modbus",
    "mbus": "protocols.mbus",
    "sdi12": "protocols.sdi12",
    "bthome": "protocols.bthome",
    "miflora": "protocols.miflora",
    "ultrasonic": "protocols.ultrasonic",
    "nmea": "protocols.nmea",
    "wmbus": "protocols.wmbus",
    "pms": "protocols.pms",
    "sds011": "protocols.sds011",
    "sps30": "protocols.sps30",
}


def describe(
    protocol: "str", data: "bytes", options: "dict[str, object]"
) -> "list[dict[str, object]]":
    """Decode `data` with the codec named `protocol`; see the module docstring."""
    if protocol not in PROTOCOLS:
        raise LocalProtocolError("unknown protocol %r" % protocol)
    name = PROTOCOLS[protocol]
    module = __import__(name, None, None, ["describe"])
    result: "list[dict[str, object]]" = module.describe(data, options)
    return result


def result(
    protocol: "str",
    valid: "bool",
    error: "str | None",
    fields: "dict[str, object]",
    readings: "list[dict[str, object]]",
) -> "dict[str, object]":
    """Build one contract dict (keeps key order stable for every codec)."""
    return {
        "protocol": protocol,
        "valid": valid,
        "error": error,
        "fields": fields,
        "readings": readings,
    }


def drain(
    stream: "EventStream[Event]",
    protocol: "str",
    describe_event: "Callable[[Event], dict[str, object]]",
    out: "list[dict[str, object]]",
) -> "None":
    """Append one contract dict per event of a stream parser until NEED_DATA: an error
    (RemoteProtocolError) as an invalid dict without fields, a frame as `describe_event`
    says."""
    while True:
        try:
            event = stream.next_event()
        except RemoteProtocolError as e:
            out.append(result(protocol, False, str(e), {}, []))
            continue
        if isinstance(event, NeedData):
            return
        out.append(describe_event(event))


def describe_stream(
    stream: "FedStream[Event]",
    protocol: "str",
    data: "bytes",
    describe_event: "Callable[[Event], dict[str, object]]",
    step: "int",
) -> "list[dict[str, object]]":
    """Feed `data` to a stream parser `step` bytes at a time, draining it after each step
    (so its bounded buffer holds at most a partial frame and a step; an overflow is said,
    not raised), then finish it: one contract dict per frame or error, and an invalid one
    when `data` held no frame at all."""
    out = []  # type: list[dict[str, object]]
    data = bytes(data)
    for offset in range(0, len(data), step):
        try:
            stream.receive_data(data[offset : offset + step])
        except RemoteProtocolError as e:
            out.append(result(protocol, False, str(e), {}, []))
        drain(stream, protocol, describe_event, out)
    try:
        stream.finish()
    except RemoteProtocolError as e:
        out.append(result(protocol, False, str(e), {}, []))
    if not out and data:
        out.append(
            result(protocol, False, "%s: no frame in %d bytes" % (MALFORMED, len(data)), {}, [])
        )
    return out


__all__ = ["PROTOCOLS", "describe", "describe_stream", "drain", "result"]
