"""EN 13757-3 code tables: VIF (primary, FD and FB extension tables), combinable VIFEs,
media, application errors, fixed-structure units. Data only, as dicts.

A value description is a tuple ``(quantity, unit, exponent, factor, kind)``:

- `quantity`: the reading's base name (snake_case), e.g. ``"volume"``.
- `unit`: the base unit after normalisation (SenML where SenML has one), or None.
- `exponent`, `factor`: normalised value = raw * factor * 10**exponent. `factor` turns
  minutes, hours and days into seconds and m3/min, m3/s into m3/h.
- `kind`: how to read the data field (see the KIND_* constants).

Sources: EN 13757-3:2004 and :2013 tables (primary VIF table, tables 14/15/16 of 2013 for
FD, FB and the combinable VIFEs). rscada/libmbus was used as a cross-check only.
"""

# How the data field of a record is to be read.
KIND_NUMBER = 0  # a measured value: scaled to the base unit
KIND_TIME = 1  # a time point: data type G (2 bytes), J (3), F (4) or I (6)
KIND_CODE = 2  # an identifier, bit field or count: unsigned, never scaled
KIND_MANUFACTURER = 3  # a manufacturer code (3 letters in 15 bits)

_SECONDS = (1, 60, 3600, 86400)  # nn = 00 seconds, 01 minutes, 10 hours, 11 days
_LONG_UNITS = ((3600, "s"), (86400, "s"), (1, "mo"), (1, "a"))  # hours, days, months, years


def _build_primary() -> "dict[int, tuple[str, str | None, int, int, int]]":
    t: "dict[int, tuple[str, str | None, int, int, int]]" = {}
    for n in range(8):
        t[0x00 + n] = ("energy", "Wh", n - 3, 1, KIND_NUMBER)
        t[0x08 + n] = ("energy", "J", n, 1, KIND_NUMBER)
        t[0x10 + n] = ("volume", "m3", n - 6, 1, KIND_NUMBER)
        t[0x18 + n] = ("mass", "kg", n - 3, 1, KIND_NUMBER)
        t[0x28 + n] = ("power", "W", n - 3, 1, KIND_NUMBER)
        t[0x30 + n] = ("power", "J/h", n, 1, KIND_NUMBER)
        t[0x38 + n] = ("volume_flow", "m3/h", n - 6, 1, KIND_NUMBER)
        t[0x40 + n] = ("volume_flow", "m3/h", n - 7, 60, KIND_NUMBER)  # m3/min
        t[0x48 + n] = ("volume_flow", "m3/h", n - 9, 3600, KIND_NUMBER)  # m3/s
        t[0x50 + n] = ("mass_flow", "kg/h", n - 3, 1, KIND_NUMBER)
    for n in range(4):
        t[0x20 + n] = ("on_time", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x24 + n] = ("operating_time", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x58 + n] = ("flow_temperature", "Cel", n - 3, 1, KIND_NUMBER)
        t[0x5C + n] = ("return_temperature", "Cel", n - 3, 1, KIND_NUMBER)
        t[0x60 + n] = ("temperature_difference", "K", n - 3, 1, KIND_NUMBER)
        t[0x64 + n] = ("external_temperature", "Cel", n - 3, 1, KIND_NUMBER)
        t[0x68 + n] = ("pressure", "Pa", n + 2, 1, KIND_NUMBER)  # 10^(nn-3) bar
        t[0x70 + n] = ("averaging_duration", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x74 + n] = ("actuality_duration", "s", 0, _SECONDS[n], KIND_NUMBER)
    t[0x6C] = ("date", None, 0, 1, KIND_TIME)
    t[0x6D] = ("date_time", None, 0, 1, KIND_TIME)
    t[0x6E] = ("hca", None, 0, 1, KIND_NUMBER)  # units for heat cost allocators
    t[0x78] = ("fabrication_number", None, 0, 1, KIND_CODE)
    t[0x79] = ("enhanced_identification", None, 0, 1, KIND_CODE)
    t[0x7A] = ("bus_address", None, 0, 1, KIND_CODE)
    t[0x7E] = ("any_vif", None, 0, 1, KIND_CODE)  # readout selection; odd in a response
    t[0x7F] = ("manufacturer_specific", None, 0, 1, KIND_NUMBER)
    # 0x6F is reserved; 0x7B, 0x7C, 0x7D are the FB, plain-text and FD escapes.
    return t


def _build_fd() -> "dict[int, tuple[str, str | None, int, int, int]]":
    """Main VIFE-code extension table (VIF = 0xFD)."""
    t: "dict[int, tuple[str, str | None, int, int, int]]" = {}
    for n in range(4):
        t[0x00 + n] = ("credit", None, n - 3, 1, KIND_NUMBER)  # local currency units
        t[0x04 + n] = ("debit", None, n - 3, 1, KIND_NUMBER)
        t[0x24 + n] = ("storage_interval", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x2C + n] = ("duration_since_readout", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x34 + n] = ("tariff_period", "s", 0, _SECONDS[n], KIND_NUMBER)
        t[0x3C + n] = ("transmission_period", "s", 0, _SECONDS[n], KIND_NUMBER)
        factor, unit = _LONG_UNITS[n]
        t[0x68 + n] = ("duration_since_cumulation", unit, 0, factor, KIND_NUMBER)
        t[0x6C + n] = ("battery_operating_time", unit, 0, factor, KIND_NUMBER)
    for n in (1, 2, 3):
        t[0x30 + n] = ("tariff_duration", "s", 0, _SECONDS[n], KIND_NUMBER)
    for n in range(16):
        t[0x40 + n] = ("voltage", "V", n - 9, 1, KIND_NUMBER)
        t[0x50 + n] = ("current", "A", n - 12, 1, KIND_NUMBER)
    codes = {
        0x08: "access_number",
        0x09: "medium",
        0x0B: "parameter_set_id",
        0x0C: "model_version",
        0x0D: "hardware_version",
        0x0E: "firmware_version",
        0x0F: "software_version",
        0x10: "customer_location",
        0x11: "customer",
        0x12: "access_code_user",
        0x13: "access_code_operator",
        0x14: "access_code_system_operator",
        0x15: "access_code_developer",
        0x16: "password",
        0x17: "error_flags",
        0x18: "error_mask",
        0x19: "security_key",
        0x1A: "digital_output",
        0x1B: "digital_input",
        0x1F: "remote_control",
        0x23: "tariff_subunit_descriptor",
        0x2A: "operator_specific_data",
        0x3B: "data_container",
        0x62: "control_signal",
        0x65: "day_change_time",
        0x66: "parameter_activation_state",
        0x67: "supplier_information",
        0x72: "daylight_saving",  # data type K
        0x73: "listening_window",  # data type L
        0x76: "manufacturer_data_container",
    }
    for code, name in codes.items():
        t[code] = (name, None, 0, 1, KIND_CODE)
    counts = {
        0x1E: "retry",
        0x20: "first_storage_number",
        0x21: "last_storage_number",
        0x22: "storage_block_size",
        0x3A: "dimensionless",
        0x60: "reset_counter",
        0x61: "cumulation_counter",
        0x63: "day_of_week",
        0x64: "week_number",
        0x75: "meter_stopped_count",
    }
    for code, name in counts.items():
        t[code] = (name, None, 0, 1, KIND_NUMBER)
    t[0x0A] = ("manufacturer", None, 0, 1, KIND_MANUFACTURER)
    t[0x1C] = ("baud_rate", "Bd", 0, 1, KIND_NUMBER)
    t[0x1D] = ("response_delay_time", None, 0, 1, KIND_NUMBER)  # in bit times
    t[0x28] = ("storage_interval", "mo", 0, 1, KIND_NUMBER)
    t[0x29] = ("storage_interval", "a", 0, 1, KIND_NUMBER)
    t[0x2B] = ("time_point_second", "s", 0, 1, KIND_NUMBER)
    t[0x30] = ("tariff_start", None, 0, 1, KIND_TIME)
    t[0x38] = ("tariff_period", "mo", 0, 1, KIND_NUMBER)
    t[0x39] = ("tariff_period", "a", 0, 1, KIND_NUMBER)
    t[0x70] = ("battery_change_date_time", None, 0, 1, KIND_TIME)
    t[0x71] = ("rf_level", "dBm", 0, 1, KIND_NUMBER)
    t[0x74] = ("remaining_battery_life", "s", 0, 86400, KIND_NUMBER)  # in days
    # 0x77..0x7F reserved.
    return t


def _build_fb() -> "dict[int, tuple[str, str | None, int, int, int]]":
    """Alternate extended VIF-code table (VIF = 0xFB)."""
    t: "dict[int, tuple[str, str | None, int, int, int]]" = {}
    for n in range(2):
        t[0x00 + n] = ("energy", "Wh", n + 5, 1, KIND_NUMBER)  # 10^(n-1) MWh
        t[0x02 + n] = ("reactive_energy", "varh", n + 3, 1, KIND_NUMBER)  # 10^n kvarh
        t[0x04 + n] = ("apparent_energy", "VAh", n + 3, 1, KIND_NUMBER)  # 10^n kVAh
        t[0x08 + n] = ("energy", "J", n + 8, 1, KIND_NUMBER)  # 10^(n-1) GJ
        t[0x10 + n] = ("volume", "m3", n + 2, 1, KIND_NUMBER)  # 10^(n+2) m3
        t[0x18 + n] = ("mass", "kg", n + 5, 1, KIND_NUMBER)  # 10^(n+2) t
        t[0x1A + n] = ("relative_humidity", "%RH", n - 1, 1, KIND_NUMBER)
        t[0x22 + n] = ("volume", "gal", n - 1, 1, KIND_NUMBER)  # US gallons (2004)
        t[0x28 + n] = ("power", "W", n + 5, 1, KIND_NUMBER)  # 10^(n-1) MW
        t[0x30 + n] = ("power", "J/h", n + 8, 1, KIND_NUMBER)  # 10^(n-1) GJ/h
    for n in range(4):
        t[0x0C + n] = ("energy", "cal", n + 5, 1, KIND_NUMBER)  # 10^(nn-1) MCal
        t[0x14 + n] = ("reactive_power", "var", n, 1, KIND_NUMBER)  # 10^(nn-3) kvar
        t[0x2C + n] = ("frequency", "Hz", n - 3, 1, KIND_NUMBER)
        t[0x34 + n] = ("apparent_power", "VA", n, 1, KIND_NUMBER)  # 10^(nn-3) kVA
        t[0x58 + n] = ("flow_temperature", "°F", n - 3, 1, KIND_NUMBER)
        t[0x5C + n] = ("return_temperature", "°F", n - 3, 1, KIND_NUMBER)
        t[0x60 + n] = ("temperature_difference", "°F", n - 3, 1, KIND_NUMBER)
        t[0x64 + n] = ("external_temperature", "°F", n - 3, 1, KIND_NUMBER)
        t[0x70 + n] = ("temperature_limit", "°F", n - 3, 1, KIND_NUMBER)
        t[0x74 + n] = ("temperature_limit", "Cel", n - 3, 1, KIND_NUMBER)
    for n in range(8):
        t[0x78 + n] = ("cumulative_max_power", "W", n - 3, 1, KIND_NUMBER)
    t[0x20] = ("volume", "ft3", 0, 1, KIND_NUMBER)
    t[0x21] = ("volume", "ft3", -1, 1, KIND_NUMBER)
    t[0x24] = ("volume_flow", "gal/min", -3, 1, KIND_NUMBER)  # 2004 table
    t[0x25] = ("volume_flow", "gal/min", 0, 1, KIND_NUMBER)
    t[0x26] = ("volume_flow", "gal/h", 0, 1, KIND_NUMBER)
    t[0x2A] = ("phase_voltage_voltage", "deg", -1, 1, KIND_NUMBER)
    t[0x2B] = ("phase_voltage_current", "deg", -1, 1, KIND_NUMBER)
    return t


PRIMARY_VIF = _build_primary()
FD_VIF = _build_fd()
FB_VIF = _build_fb()


# Combinable (orthogonal) VIFE codes, table 15 of EN 13757-3:2013 (record error codes of the
# 2004 edition where 2013 kept them). An entry is (suffix, action, number, unit):
#   "name"     only qualifies the name;
#   "per"      qualifies the name and appends `unit` to the unit;
#   "time"     the value is a time point (date type from the data length);
#   "count"    the value is a count: unit and exponent dropped;
#   "duration" the value is a duration: unit "s", factor `number`, exponent dropped;
#   "scale"    adds `number` to the decimal exponent (the name is left alone);
#   "offset"   the record is an additive correction: adds `number` to the exponent.
def _build_combinable() -> "dict[int, tuple[str, str, int, str]]":
    t: "dict[int, tuple[str, str, int, str]]" = {}
    errors = {
        0x01: "too_many_difes",
        0x02: "storage_not_implemented",
        0x03: "unit_not_implemented",
        0x04: "tariff_not_implemented",
        0x05: "function_not_implemented",
        0x06: "data_class_not_implemented",
        0x07: "data_size_not_implemented",
        0x0B: "too_many_vifes",
        0x0C: "illegal_vif_group",
        0x0D: "illegal_vif_exponent",
        0x0E: "vif_dif_mismatch",
        0x0F: "unimplemented_action",
        0x15: "no_data",
        0x16: "data_overflow",
        0x17: "data_underflow",
        0x18: "data_error",
        0x1C: "premature_end_of_record",
    }
    for code in range(0x01, 0x20):
        t[code] = ("_record_error_%02x" % code, "name", 0, "")
    for code, text in errors.items():
        t[code] = ("_record_error_" + text, "name", 0, "")
    t[0x12] = ("_average", "name", 0, "")
    t[0x13] = ("_inverse_compact_profile", "name", 0, "")
    t[0x14] = ("_relative_deviation", "name", 0, "")
    t[0x1D] = ("_standard_conformant", "name", 0, "")
    t[0x1E] = ("_compact_profile_with_register", "name", 0, "")
    t[0x1F] = ("_compact_profile", "name", 0, "")
    per = (
        ("_per_second", "/s"),
        ("_per_minute", "/min"),
        ("_per_hour", "/h"),
        ("_per_day", "/d"),
        ("_per_week", "/wk"),
        ("_per_month", "/mo"),
        ("_per_year", "/a"),
    )
    for i, (suffix, unit) in enumerate(per):
        t[0x20 + i] = (suffix, "per", 0, unit)
    t[0x27] = ("_per_measurement", "name", 0, "")
    t[0x28] = ("_per_input_pulse0", "name", 0, "")
    t[0x29] = ("_per_input_pulse1", "name", 0, "")
    t[0x2A] = ("_per_output_pulse0", "name", 0, "")
    t[0x2B] = ("_per_output_pulse1", "name", 0, "")
    per_units = (
        ("_per_litre", "/l"),
        ("_per_m3", "/m3"),
        ("_per_kg", "/kg"),
        ("_per_kelvin", "/K"),
        ("_per_kwh", "/kWh"),
        ("_per_gj", "/GJ"),
        ("_per_kw", "/kW"),
        ("_per_kelvin_litre", "/(K.l)"),
        ("_per_volt", "/V"),
        ("_per_ampere", "/A"),
        ("_times_second", ".s"),
        ("_times_second_per_volt", ".s/V"),
        ("_times_second_per_ampere", ".s/A"),
    )
    for i, (suffix, unit) in enumerate(per_units):
        t[0x2C + i] = (suffix, "per", 0, unit)
    t[0x39] = ("_start", "time", 0, "")
    t[0x3A] = ("_uncorrected", "name", 0, "")
    t[0x3B] = ("_forward", "name", 0, "")  # accumulated only if positive
    t[0x3C] = ("_backward", "name", 0, "")  # absolute value accumulated only if negative
    t[0x3D] = ("_non_metric", "name", 0, "")
    t[0x3E] = ("_at_base_conditions", "name", 0, "")
    t[0x3F] = ("_obis", "name", 0, "")
    for u, limit in ((0, "_lower_limit"), (8, "_upper_limit")):
        t[0x40 + u] = (limit, "name", 0, "")
        t[0x41 + u] = (limit + "_exceeds", "count", 0, "")
        t[0x42 + u] = (limit + "_first_begin", "time", 0, "")
        t[0x43 + u] = (limit + "_first_end", "time", 0, "")
        t[0x44 + u] = ("_vife_%02x" % (0x44 + u), "name", 0, "")
        t[0x45 + u] = ("_vife_%02x" % (0x45 + u), "name", 0, "")
        t[0x46 + u] = (limit + "_last_begin", "time", 0, "")
        t[0x47 + u] = (limit + "_last_end", "time", 0, "")
        for n in range(4):
            t[0x50 + u + n] = (limit + "_first_duration", "duration", _SECONDS[n], "")
            t[0x54 + u + n] = (limit + "_last_duration", "duration", _SECONDS[n], "")
    for n in range(4):
        t[0x60 + n] = ("_first_duration", "duration", _SECONDS[n], "")
        t[0x64 + n] = ("_last_duration", "duration", _SECONDS[n], "")
    t[0x68] = ("_during_lower_limit", "name", 0, "")
    t[0x69] = ("_leakage", "name", 0, "")
    t[0x6A] = ("_first_begin", "time", 0, "")
    t[0x6B] = ("_first_end", "time", 0, "")
    t[0x6C] = ("_during_upper_limit", "name", 0, "")
    t[0x6D] = ("_overflow", "name", 0, "")
    t[0x6E] = ("_last_begin", "time", 0, "")
    t[0x6F] = ("_last_end", "time", 0, "")
    for n in range(8):
        t[0x70 + n] = ("", "scale", n - 6, "")
    for n in range(4):
        t[0x78 + n] = ("_offset", "offset", n - 3, "")
    t[0x7D] = ("", "scale", 3, "")
    t[0x7E] = ("_future", "name", 0, "")
    # 0x7C (extension table follows) and 0x7F (manufacturer specific) are handled by the
    # record parser. 0x00 means "no error" and qualifies nothing.
    return t


COMBINABLE = _build_combinable()

# Codes after the combinable extension VIFE 0x7C (table 16 of EN 13757-3:2013).
COMBINABLE_EXTENSION = {
    0x01: "_l1",
    0x02: "_l2",
    0x03: "_l3",
    0x04: "_neutral",
    0x05: "_l1_l2",
    0x06: "_l2_l3",
    0x07: "_l3_l1",
    0x08: "_q1",
    0x09: "_q2",
    0x0A: "_q3",
    0x0B: "_q4",
    0x0C: "_import_minus_export",
    0x10: "_absolute",
    0x11: "_type_c",
    0x12: "_type_d",
    0x13: "_to_meter",
    0x14: "_from_meter",
}

# Medium / device type of the variable data header (EN 13757-3:2013 table 3 and
# EN 13757-7), names in plain words.
MEDIUM = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat (outlet)",
    0x05: "steam",
    0x06: "warm water (30-90 °C)",
    0x07: "water",
    0x08: "heat cost allocator",
    0x09: "compressed air",
    0x0A: "cooling load meter (outlet)",
    0x0B: "cooling load meter (inlet)",
    0x0C: "heat (inlet)",
    0x0D: "heat / cooling load meter",
    0x0E: "bus / system component",
    0x0F: "unknown medium",
    0x14: "calorific value",
    0x15: "hot water (>= 90 °C)",
    0x16: "cold water",
    0x17: "dual register (hot/cold) water",
    0x18: "pressure",
    0x19: "A/D converter",
    0x1A: "smoke detector",
    0x1B: "room sensor",
    0x1C: "gas detector",
    0x20: "breaker (electricity)",
    0x21: "valve (gas or water)",
    0x25: "customer unit (display)",
    0x28: "waste water",
    0x29: "garbage",
    0x31: "communication controller",
    0x32: "unidirectional repeater",
    0x33: "bidirectional repeater",
    0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)",
}

# Medium of the fixed data structure (4 bits: counter 2 bits 7-6, counter 1 bits 7-6).
FIXED_MEDIUM = {
    0x0: "other",
    0x1: "oil",
    0x2: "electricity",
    0x3: "gas",
    0x4: "heat",
    0x5: "steam",
    0x6: "hot water",
    0x7: "water",
    0x8: "heat cost allocator",
    0xA: "gas (mode 2)",
    0xB: "heat (mode 2)",
    0xC: "hot water (mode 2)",
    0xD: "water (mode 2)",
    0xE: "heat cost allocator (mode 2)",
}


def _build_fixed_units() -> "dict[int, tuple[str, str | None, int, int, int]]":
    """Units of the fixed data structure counters (6 bits)."""
    t: "dict[int, tuple[str, str | None, int, int, int]]" = {}
    for n in range(9):
        t[0x02 + n] = ("energy", "Wh", n, 1, KIND_NUMBER)  # Wh .. 100 MWh
        t[0x0B + n] = ("energy", "J", n + 3, 1, KIND_NUMBER)  # kJ .. 100 GJ
        t[0x14 + n] = ("power", "W", n, 1, KIND_NUMBER)  # W .. 100 MW
        t[0x1D + n] = ("power", "J/h", n + 3, 1, KIND_NUMBER)  # kJ/h .. 100 GJ/h
        t[0x26 + n] = ("volume", "m3", n - 6, 1, KIND_NUMBER)  # ml .. 100 m3
        t[0x2F + n] = ("volume_flow", "m3/h", n - 6, 1, KIND_NUMBER)  # ml/h .. 100 m3/h
    t[0x00] = ("time_hms", None, 0, 1, KIND_CODE)
    t[0x01] = ("date_dmy", None, 0, 1, KIND_CODE)
    t[0x38] = ("temperature", "Cel", -3, 1, KIND_NUMBER)
    t[0x39] = ("hca", None, 0, 1, KIND_NUMBER)
    t[0x3F] = ("value", None, 0, 1, KIND_NUMBER)  # without units
    # 0x3A..0x3D reserved; 0x3E "same but historic" is resolved by the telegram parser.
    return t


FIXED_UNITS = _build_fixed_units()

# General application errors (CI = 0x70), EN 13757-3 table 10.
APPLICATION_ERRORS = {
    0x00: "unspecified error",
    0x01: "unimplemented CI-field",
    0x02: "buffer too long, truncated",
    0x03: "too many records",
    0x04: "premature end of record",
    0x05: "more than 10 DIFEs",
    0x06: "more than 10 VIFEs",
    0x07: "reserved",
    0x08: "application busy",
    0x09: "too many readouts",
}

# Status byte of the headers (bits 0-4; 5-7 are manufacturer specific).
STATUS_APPLICATION = {0: None, 1: "application_busy", 2: "application_error", 3: "alarm"}
STATUS_FLAGS = ((0x04, "power_low"), (0x08, "permanent_error"), (0x10, "temporary_error"))

__all__ = [
    "APPLICATION_ERRORS",
    "COMBINABLE",
    "COMBINABLE_EXTENSION",
    "FB_VIF",
    "FD_VIF",
    "FIXED_MEDIUM",
    "FIXED_UNITS",
    "KIND_CODE",
    "KIND_MANUFACTURER",
    "KIND_NUMBER",
    "KIND_TIME",
    "MEDIUM",
    "PRIMARY_VIF",
    "STATUS_APPLICATION",
    "STATUS_FLAGS",
]
