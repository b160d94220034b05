"""Wired M-Bus conformance on ../shared/vectors/mbus/libmbus (rscada/libmbus test frames).

test-frames/*.hex must decode to what libmbus' normalised XML (*.norm.xml) says, record by
record: value after normalisation, unit, quantity, storage number, tariff, subunit and
function. Where libmbus ignores a combinable VIFE that changes the meaning of a record,
DEVIATIONS holds what EN 13757-3 says instead (see docs/protocols/mbus.md).
error-frames/ and unsupported-frames/ must be rejected with a fitting reason.

One unittest.TestCase, plain asserts: these also run on MicroPython (`make micropython`).
"""

import unittest

from protocols._typing import TYPE_CHECKING
from protocols.errors import CHECKSUM, EXCEPTION, MALFORMED, TRUNCATED, UNSUPPORTED
from protocols.mbus import FrameParser, decode_response, describe, parse_frame
from protocols.tests import support

if TYPE_CHECKING:
    from protocols.mbus import Record, Telegram

BASE = "mbus/libmbus"

# libmbus unit -> (our unit, factor from the libmbus value to ours)
UNITS = {
    "Wh": ("Wh", 1),
    "J": ("J", 1),
    "m^3": ("m3", 1),
    "m^3/h": ("m3/h", 1),
    "W": ("W", 1),
    "J/h": ("J/h", 1),
    "°C": ("Cel", 1),
    "K": ("K", 1),
    "s": ("s", 1),
    "V": ("V", 1),
    "A": ("A", 1),
    "kg": ("kg", 1),
    "kg/h": ("kg/h", 1),
    "bar": ("Pa", 100000),
    "kWh": ("Wh", 1000),  # fixed data structure: libmbus keeps the raw unit
    "l": ("m3", 0.001),
}

# libmbus quantity -> our base name
QUANTITIES = {
    "Energy": "energy",
    "Volume": "volume",
    "Mass": "mass",
    "Volume flow": "volume_flow",
    "Mass flow": "mass_flow",
    "Power": "power",
    "Flow temperature": "flow_temperature",
    "Return temperature": "return_temperature",
    "External temperature": "external_temperature",
    "Temperature difference": "temperature_difference",
    "Pressure": "pressure",
    "On time": "on_time",
    "Operating time": "operating_time",
    "Averaging Duration": "averaging_duration",
    "Actuality Duration": "actuality_duration",
    "Fabrication No": "fabrication_number",
    "Time point (date)": "date",
    "Time point (date &amp; time)": "date_time",
    "H.C.A.": "hca",
    "Error flags": "error_flags",
    "Digital Input": "digital_input",
    "Software version": "software_version",
    "Firmware version": "firmware_version",
    "Model / Version": "model_version",
    "Parameter set identification": "parameter_set_id",
    "Customer location": "customer_location",
    "Voltage": "voltage",
    "Current": "current",
    "Manufacturer specific": "manufacturer_specific",
    "Reserved": "vif_",  # a reserved code: we name it after the code
}

FUNCTIONS = {
    "Instantaneous value": "",
    "Maximum value": "_max",
    "Minimum value": "_min",
    "Value during error state": "_error_state",
    "Actual value": "",  # fixed data structure
}

# libmbus medium text -> medium code of the header
MEDIA = {
    "Other": 0x00,
    "Oil": 0x01,
    "Electricity": 0x02,
    "Gas": 0x03,
    "Heat: Outlet": 0x04,
    "Warm water (30-90°C)": 0x06,
    "Water": 0x07,
    "Heat Cost Allocator": 0x08,
    "Heat: Inlet": 0x0C,
    "Heat / Cooling load meter": 0x0D,
    "Cold water": 0x16,
    "Breaker: Electricity": 0x20,
    "Heat": 0x04,  # fixed data structure (4-bit medium)
}

# (frame, record index) -> (name, value, unit): libmbus reads these records as if the
# combinable VIFE were absent. EN 13757-3 table 15: VIFE 0x50 / 0x58 = duration of the
# first lower / upper limit exceed in seconds; 0x6F = date (type F) of the end of the last
# occurrence, here of the maximum value of tariff 1 (all zero = not set).
DEVIATIONS = {
    ("SEN_Pollustat", 12): ("volume_flow_lower_limit_first_duration", 11582321, "s"),
    ("SEN_Pollustat", 13): ("volume_flow_upper_limit_first_duration", 756, "s"),
    ("landis+gyr_ultraheat_t230", 19): ("power_last_end_max_tariff1", None, None),
    ("landis+gyr_ultraheat_t230", 20): ("volume_flow_last_end_max_tariff1", None, None),
    ("landis+gyr_ultraheat_t230", 21): (
        "flow_temperature_last_end_max_tariff1",
        "2011-08-26T20:50:00",
        None,
    ),
    ("landis+gyr_ultraheat_t230", 22): (
        "return_temperature_last_end_max_tariff1",
        "2011-08-09T11:43:00",
        None,
    ),
}


def _frame(relative: "str") -> "bytes":
    """A .hex vector: hex byte tokens separated by white space (one file has a lone 'D')."""
    return bytes([int(token, 16) for token in support.read_text(relative).split()])


def _tag(block: "str", name: "str") -> "str | None":
    start = block.find("<" + name + ">")
    if start < 0:
        return None
    start += len(name) + 2
    return block[start : block.find("</" + name + ">", start)]


def _snake(text: "str") -> "str":
    out = []
    for c in text.lower():
        if ("a" <= c <= "z") or ("0" <= c <= "9"):
            out.append(c)
        elif out and out[-1] != "_":
            out.append("_")
    return "".join(out).strip("_")


def _close(expected: "float", got: "object") -> "bool":
    # libmbus prints %f: six decimals
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    return abs(expected - got) <= 1e-6 + 1e-6 * abs(expected)


def _test_frames() -> "list[str]":
    return [n[:-4] for n in support.listdir(BASE + "/test-frames") if n.endswith(".hex")]


def _check_header(name: "str", telegram: "Telegram", xml: "str") -> "None":
    info = xml[xml.find("<SlaveInformation>") : xml.find("</SlaveInformation>")]
    fields = telegram.fields()
    assert str(fields["id"]) == _tag(info, "Id"), (name, fields["id"])
    manufacturer = _tag(info, "Manufacturer")
    if manufacturer is not None:
        assert fields["manufacturer"] == manufacturer, (name, fields["manufacturer"])
        assert fields["version"] == int(_tag(info, "Version") or "-1"), name
    assert fields["access_number"] == int(_tag(info, "AccessNumber") or "-1"), name
    assert fields["status"] == int(_tag(info, "Status") or "-1", 16), name
    medium = _tag(info, "Medium") or ""
    assert fields["medium_code"] == MEDIA[medium], (name, medium, fields["medium_code"])
    signature = _tag(info, "Signature")
    if signature is not None:
        assert fields["signature"] == int(signature, 16), name


def _check_record(name: "str", index: "int", record: "Record", block: "str") -> "None":
    rec_name = record.name
    value = record.value
    unit = record.unit
    where = (name, index, rec_name, value, unit)
    function = _tag(block, "Function")
    xml_value = _tag(block, "Value") or ""
    if function in ("Manufacturer specific", "More records follow"):
        assert rec_name == "manufacturer_data", where
        assert value == xml_value, where
        assert unit is None, where
        return
    deviation = DEVIATIONS.get((name, index))
    if deviation is not None:
        assert (rec_name, value, unit) == deviation, where
        return
    tail = FUNCTIONS[function or ""]
    for tag, word in (("StorageNumber", "_storage"), ("Tariff", "_tariff"), ("Device", "_subunit")):
        number = _tag(block, tag)
        if number is not None and number != "0":
            tail += word + number
    assert rec_name.endswith(tail), (where, tail)
    xml_unit = _tag(block, "Unit") or ""
    quantity = _tag(block, "Quantity")
    if quantity is None:  # fixed data structure: the quantity follows from the unit
        quantity = {"kWh": "Energy", "l": "Volume"}[xml_unit]
    base = QUANTITIES.get(quantity)
    if base is None:  # plain-text VIF: the text is the unit, its snake_case the name
        assert xml_unit == "-", where
        base = _snake(quantity.replace("&amp;", "&"))
        if isinstance(value, (int, float)):
            assert unit == quantity, where
    assert rec_name.startswith(base), (where, base)
    if not record.vifes and record.vif not in (0xFB, 0xFD):
        assert rec_name == base + tail, (where, base + tail)
    if quantity.startswith("Time point"):
        expected = xml_value[:-1] if xml_value.endswith("Z") else xml_value
        if "-00" in expected:  # libmbus prints unset or invalid dates as zeros
            assert value is None, where
        else:
            assert value == expected, (where, expected)
        assert unit is None, where
    elif xml_unit in UNITS:
        our_unit, factor = UNITS[xml_unit]
        assert unit == our_unit, (where, our_unit)
        assert _close(float(xml_value) * factor, value), (where, xml_value)
    else:
        try:
            expected_number = float(xml_value)
        except ValueError:
            assert value == xml_value, where  # text (LVAR), e.g. RVD235
            assert unit is None, where
        else:
            assert _close(expected_number, value), (where, xml_value)
            if xml_unit in ("", "Units for H.C.A.", "Reserved"):
                assert unit is None, where


ERROR_REASONS = {
    "premature_end_of_data1": TRUNCATED,
    "premature_end_of_data2": TRUNCATED,
    "premature_end_of_dif1": TRUNCATED,
    "premature_end_of_dif2": TRUNCATED,
    "premature_end_of_var_vif1": TRUNCATED,
    "premature_end_of_vif1": TRUNCATED,
    "too_short_header": TRUNCATED,
    "too_long_var_vif": MALFORMED,
    "too_many_dife": MALFORMED,
    "too_many_vife": MALFORMED,
}

UNSUPPORTED_REASONS = {
    "invalid_length": MALFORMED,  # L = 0
    "invalid_length2": TRUNCATED,  # fixed data structure one byte short
    "manual_frame1": MALFORMED,  # no frame start
    "manual_frame4": UNSUPPORTED,  # SND_UD from the master (set primary address)
    "manual_frame5": UNSUPPORTED,  # SND_UD from the master (set secondary address)
    "manual_frame6": UNSUPPORTED,
    "svm_f22_telegram2": UNSUPPORTED,  # nothing but manufacturer-specific data
}


class MbusVectors(unittest.TestCase):
    def test_test_frames_decode_like_libmbus_normalised_xml(self) -> "None":
        names = _test_frames()
        assert len(names) >= 38, names
        checked = 0
        for name in names:
            telegram = decode_response(parse_frame(_frame(BASE + "/test-frames/" + name + ".hex")))
            xml = support.read_text(BASE + "/test-frames/" + name + ".norm.xml")
            _check_header(name, telegram, xml)
            blocks = xml.split("<DataRecord")[1:]
            assert len(blocks) == len(telegram.records), (name, len(blocks), len(telegram.records))
            for index in range(len(blocks)):
                _check_record(name, index, telegram.records[index], blocks[index])
                checked += 1
        assert checked == 447, checked

    def test_describe_test_frames_are_valid_with_one_reading_per_record(self) -> "None":
        for name in _test_frames():
            data = _frame(BASE + "/test-frames/" + name + ".hex")
            results = describe(data, {})
            assert len(results) == 1, name
            result = results[0]
            assert result["protocol"] == "mbus"
            assert result["valid"] is True, (name, result["error"])
            assert result["error"] is None
            xml = support.read_text(BASE + "/test-frames/" + name + ".norm.xml")
            readings = result["readings"]
            assert isinstance(readings, list)
            assert len(readings) == xml.count("<DataRecord"), name
            fields = result["fields"]
            assert isinstance(fields, dict)
            for key in ("id", "manufacturer", "version", "medium", "access_number", "status"):
                assert key in fields, (name, key)
            for reading in readings:
                assert sorted(reading) == ["name", "unit", "value"], (name, reading)

    def test_example_amtron_heat_meter_values(self) -> "None":
        telegram = decode_response(parse_frame(_frame(BASE + "/test-frames/example_data_01.hex")))
        assert telegram.id == 3575845
        assert telegram.manufacturer == "AMT"
        assert telegram.medium == 0x04
        assert telegram.signature == 0xB627
        got = [(r.name, r.value, r.unit) for r in telegram.records]
        assert got == [
            ("energy", 1389817000, "Wh"),  # 24-bit integer 1389817 x 10^3 Wh
            ("volume", 504647.0, "m3"),  # 24-bit integer 5046470 x 10^-1 m3
            ("power", 0.0, "W"),
            ("volume_flow", 0.0, "m3/h"),
            ("flow_temperature", 41.737434, "Cel"),
            ("return_temperature", 35.46365, "Cel"),
        ], got

    def test_kamstrup_tariffs_subunit_and_manufacturer_block(self) -> "None":
        telegram = decode_response(parse_frame(_frame(BASE + "/test-frames/kamstrup_382_005.hex")))
        names = [r.name for r in telegram.records]
        assert names == [
            "energy",
            "on_time",
            "power",
            "power_max",
            "energy_tariff1_subunit1",
            "energy_tariff2_subunit1",
            "manufacturer_data",
        ], names
        assert telegram.records[1].value == 32400  # 9 hours in seconds
        assert telegram.records[6].value == "00 " * 15 + "10"

    def test_negative_bcd_and_storage_numbers_of_landis_gyr(self) -> "None":
        telegram = decode_response(
            parse_frame(_frame(BASE + "/test-frames/landis+gyr_ultraheat_t230.hex"))
        )
        by_name = {}
        for r in telegram.records:
            by_name[r.name] = (r.value, r.unit)
        assert by_name["temperature_difference"] == (-0.2, "K")  # BCD 'F00002' x 10^-1
        assert by_name["energy_tariff5"] == (0, "Wh")  # two DIFEs: tariff 1 + 1 << 2
        assert by_name["date_time_storage510"] == ("2027-01-01T00:00:00", None)
        assert by_name["averaging_duration_tariff1"] == (420, "s")  # 7 minutes

    def test_fixed_data_structure_normalised(self) -> "None":
        telegram = decode_response(parse_frame(_frame(BASE + "/test-frames/sen_pollusonic_2.hex")))
        assert telegram.id == 90919293
        assert telegram.medium_name == "heat"
        assert [(r.name, r.value, r.unit) for r in telegram.records] == [
            ("energy", 6531000, "Wh"),
            ("volume", 0.069, "m3"),
        ]

    def test_plain_text_vif_and_lvar_text(self) -> "None":
        telegram = decode_response(
            parse_frame(_frame(BASE + "/test-frames/itron_cyble_m-bus_v1.4_water.hex"))
        )
        got = [(r.name, r.value, r.unit) for r in telegram.records[:4]]
        assert got == [
            ("fabrication_number", 12000071, None),
            ("cust_id", "TEST CYBLE", None),
            ("date_time", "2012-01-24T13:43:00", None),
            ("bat_time", 4338, "bat. time"),
        ], got

    # Error frames: the reason each must be rejected with.

    def test_error_frames_are_rejected_with_the_right_reason(self) -> "None":
        names = [n[:-4] for n in support.listdir(BASE + "/error-frames") if n.endswith(".hex")]
        assert len(names) >= 20, names
        for name in names:
            results = describe(_frame(BASE + "/error-frames/" + name + ".hex"), {})
            assert len(results) == 1, (name, results)
            result = results[0]
            assert result["valid"] is False, name
            error = result["error"]
            assert isinstance(error, str)
            reason = error.split(":")[0]
            try:
                xml = support.read_text(BASE + "/error-frames/" + name + ".xml")
            except OSError:
                xml = ""
            if xml:
                # an application error (CI 0x70) reported by the meter: the text libmbus prints
                expected = (
                    (_tag(xml, "Error") or "")
                    .lower()
                    .replace("\u00b4", "")
                    .replace(", truncated", "")
                )
                assert reason == EXCEPTION, (name, error)
                assert expected in error.lower(), (name, error, expected)
            else:
                assert reason == ERROR_REASONS[name], (name, error)

    def test_unsupported_frames_are_rejected_with_the_right_reason(self) -> "None":
        names = [
            n[:-4] for n in support.listdir(BASE + "/unsupported-frames") if n.endswith(".hex")
        ]
        assert len(names) >= 7, names
        for name in names:
            results = describe(_frame(BASE + "/unsupported-frames/" + name + ".hex"), {})
            assert results, name
            for result in results:
                assert result["valid"] is False, (name, result)
            error = results[0]["error"]
            assert isinstance(error, str)
            assert error.split(":")[0] == UNSUPPORTED_REASONS[name], (name, error)

    def test_stream_of_all_frames_with_garbage_fed_byte_by_byte(self) -> "None":
        frames = [_frame(BASE + "/test-frames/" + n + ".hex") for n in _test_frames()]
        stream = b""
        for i, frame in enumerate(frames):
            stream += bytes([0x00, 0xFF, 0x42][: i % 4]) + frame
        parser = FrameParser()
        got = []
        errors = []
        for i in range(len(stream)):
            parser.receive_data(stream[i : i + 1])
            while True:
                try:
                    frame = parser.next_event()
                except Exception as e:  # RemoteProtocolError for the garbage
                    errors.append(e)
                    continue
                if not hasattr(frame, "encode"):
                    break
                got.append(frame.encode())
        assert got == frames
        assert len(errors) == sum(1 for i in range(len(frames)) if i % 4)
        for e in errors:
            assert getattr(e, "reason", None) == MALFORMED

    def test_checksum_error_is_detected_and_the_stream_recovers(self) -> "None":
        frame = _frame(BASE + "/test-frames/GWF-MTKcoder.hex")
        broken = frame[:-2] + bytes([(frame[-2] + 1) & 0xFF]) + frame[-1:]
        results = describe(broken + frame, {})
        assert [r["valid"] for r in results] == [False, True]
        assert str(results[0]["error"]).startswith(CHECKSUM + ":")
