"""`describe(data, options)`: M-Bus bytes to the `estran decode --json` contract."""

from protocols.describe import result
from protocols.errors import MALFORMED, TRUNCATED, UNSUPPORTED, RemoteProtocolError
from protocols.mbus.frames import KIND_ACK, Frame, FrameParser
from protocols.mbus.records import FUNCTION_MANUFACTURER
from protocols.mbus.telegram import Telegram, decode_into

_CHUNK = 256


def _frame_fields(frame: "Frame") -> "dict[str, object]":
    fields: "dict[str, object]" = {"frame": frame.kind}
    if frame.kind != KIND_ACK:
        fields["control"] = frame.control
        fields["address"] = frame.address
        if frame.ci is not None:
            fields["ci"] = frame.ci
    return fields


def describe_frame(frame: "Frame") -> "dict[str, object]":
    """One frame as a contract dict; never raises RemoteProtocolError."""
    if frame.kind == KIND_ACK:
        return result("mbus", True, None, _frame_fields(frame), [])
    telegram = Telegram(frame)
    try:
        decode_into(telegram, frame)
    except RemoteProtocolError as e:
        header = telegram.access_number is not None or telegram.id is not None
        fields = telegram.fields() if header else _frame_fields(frame)
        readings = [m.as_dict() for m in telegram.measurements()]
        return result("mbus", False, str(e), fields, readings)
    readings = [m.as_dict() for m in telegram.measurements()]
    standard = [r for r in telegram.records if r.function != FUNCTION_MANUFACTURER]
    if telegram.records and not standard and telegram.records[0].data:
        size = len(telegram.records[0].data)
        error = "%s: only manufacturer-specific data (%d bytes), nothing standard to decode" % (
            UNSUPPORTED,
            size,
        )
        return result("mbus", False, error, telegram.fields(), readings)
    return result("mbus", True, None, telegram.fields(), readings)


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One dict per frame found in `data`; a run of garbage (or a broken frame) gives one
    invalid dict with the first reason; an incomplete frame at the end gives TRUNCATED."""
    results: "list[dict[str, object]]" = []
    parser = FrameParser()
    pos = 0
    in_error = False
    while True:
        try:
            event = parser.next_event()
        except RemoteProtocolError as e:
            if not in_error:
                results.append(result("mbus", False, str(e), {}, []))
                in_error = True
            continue
        if not isinstance(event, Frame):
            if pos >= len(data):
                break
            parser.receive_data(data[pos : pos + _CHUNK])
            pos += _CHUNK
            continue
        in_error = False
        results.append(describe_frame(event))
    if parser.garbage and not in_error:
        message = "%s: %d bytes that start no frame" % (MALFORMED, parser.garbage)
        results.append(result("mbus", False, message, {}, []))
    elif parser.buffered and not in_error:
        message = "%s: incomplete frame at the end (%d bytes)" % (TRUNCATED, parser.buffered)
        results.append(result("mbus", False, message, {}, []))
    return results


__all__ = ["describe", "describe_frame"]
