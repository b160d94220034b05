"""Wireless M-Bus conformance on ../shared/vectors/wmbus (wmbusmeters' driver test telegrams).

Each vector is a telegram (L-field first, CRCs removed; a few wired M-Bus long frames), its
AES key when encrypted, and the values wmbusmeters publishes for it, the unit in the field
name's suffix (total_m3, flow_temperature_c, ...). A published value is reproduced when one
of our readings, converted from its SenML unit to the suffix's unit, equals it (relative
1e-6, or once rounded to the six decimals wmbusmeters prints). A published field without a
unit (hca, counter, ...) also needs our reading's name to match where its name maps to ours
(`names_for`: heat cost allocations, access counters, power factors); the others (mostly
manufacturers' counters) compare the value alone. Zero values are left out: they prove nothing. Telegrams are decoded in file order with one decoder per meter
model, twice, as a gateway that has heard the model's telegrams for a while decodes them: a
compact frame's layout is learned from a full telegram of the same meter (or is known in
advance, protocols/wmbus/_formats.py).

Asserted: at least 90 % of the published non-zero numeric values reproduced, every leak
alarm wmbusmeters reports found as our `leak` alarm, and no leak, burst or back-flow alarm of
ours on a vector whose published values name none (no false alarm). The percentage and the models below
100 % are printed (pytest -s). Coverage per model: docs/protocols/wmbus.md.

One unittest.TestCase, plain asserts: these also run on MicroPython (`make micropython`). The
encrypted vectors need AES: CPython's cryptography or MicroPython's cryptolib; an interpreter
with neither skips them and says so.
"""

import unittest

from protocols.errors import RemoteProtocolError
from protocols.tests import support
from protocols.wmbus import Decoder, _aes

PATH = "wmbus/wmbusmeters_vectors.json"
THRESHOLD = 90.0

# wmbusmeters' unit suffix -> ((our SenML unit, factor from ours to theirs), ...)
UNITS = {
    "m3": (("m3", 1.0),),
    "kwh": (("Wh", 1e-3), ("J", 1 / 3.6e6)),
    "mj": (("J", 1e-6),),
    "gj": (("J", 1e-9),),
    "c": (("Cel", 1.0), ("K", 1.0)),
    "k": (("K", 1.0),),
    "h": (("s", 1 / 3600.0),),
    "s": (("s", 1.0),),
    "d": (("s", 1 / 86400.0),),
    "y": (("s", 1 / (365.2422 * 86400.0)), ("a", 1.0)),  # wmbusmeters: tropical year
    "m3h": (("m3/h", 1.0),),
    "lh": (("m3/h", 1000.0),),
    "kw": (("W", 1e-3), ("J/h", 1 / 3.6e6)),
    "w": (("W", 1.0),),
    "v": (("V", 1.0),),
    "a": (("A", 1.0),),
    "bar": (("Pa", 1e-5),),
    "pa": (("Pa", 1.0),),
    "hz": (("Hz", 1.0),),
    "kvarh": (("varh", 1e-3),),
    "kvar": (("var", 1e-3),),
    "kva": (("VA", 1e-3),),
    "kvah": (("VAh", 1e-3),),
    "rh": (("%RH", 1.0),),
    "pct": (("%", 1.0), ("%RH", 1.0)),
    "ppm": (("ppm", 1.0),),
    "kg": (("kg", 1.0),),
}


def _numbers(readings: "list[object]") -> "list[tuple[float, str | None, str]]":
    out = []
    for m in readings:
        value = m.value  # type: ignore[attr-defined]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((float(value), m.unit, m.name))  # type: ignore[attr-defined]
    return out


def _digits(text: "str") -> "int | None":
    return int(text) if text and text.isdigit() else None


def names_for(field: "str") -> "tuple[str, bool] | None":
    """For a unitless published field whose name maps to ours: (our name, or its prefix;
    True when a prefix), else None (the value alone is compared).

    Heat cost allocation (``_hca``): ``consumption_at_set_date_N_hca`` is one of our
    ``hca_storage...`` (a stored value: the storage numbers differ, e.g. Hydroclima's history
    follows the billing-date record, storage 1), ``prev_NN_hca`` our ``hca_monthNN``, the current value ``hca``, any
    other ``..._hca`` one of our ``hca...`` readings; ``access_counter`` and
    ``async_msg_id_counter`` are our ``access_number``; a power factor is our
    ``power_factor...`` or an M-Bus ``dimensionless...`` record."""
    name = field.lower()
    if name.endswith("_hca"):
        stem = name[:-4]
        if stem.startswith("consumption_at_set_date"):
            return "hca_storage", True
        if stem.startswith("prev_"):
            n = _digits(stem[5:])
            if n is not None:
                return "hca_month%02d" % n, False
        if stem in ("current", "consumption", "current_consumption"):
            return "hca", False
        return "hca", True
    if name in ("access_counter", "async_msg_id_counter"):
        return "access_number", False
    if name.endswith("power_factor"):
        return "power_factor|dimensionless", True
    return None


def _named(ours: "str", wanted: "tuple[str, bool] | None") -> "bool":
    if wanted is None:
        return True
    target, prefix = wanted
    return any(
        ours == option or (prefix and ours.startswith(option)) for option in target.split("|")
    )


def _close(ours: "float", published: "float") -> "bool":
    """Equal within 1e-6 relative, or once rounded to the 6 decimals wmbusmeters prints."""
    return abs(ours - published) <= max(5.01e-7, 1e-6 * max(abs(ours), abs(published)))


def reproduced(
    field: "str", expected: "float", numbers: "list[tuple[float, str | None, str]]"
) -> "bool":
    suffix = field.split("_")[-1].lower()
    conversions = UNITS.get(suffix)
    wanted = names_for(field) if conversions is None else None
    for value, unit, name in numbers:
        if conversions is None:
            if _named(name, wanted) and _close(value, expected):
                return True
            continue
        for ours, factor in conversions:
            if unit == ours and _close(value * factor, expected):
                return True
    return False


# the alarms whose false report costs a call-out, and the words wmbusmeters uses for them
ALARM_WORDS = {
    "leak": ("LEAK",),
    "burst": ("BURST",),
    "backflow": ("BACKFLOW", "BACK_FLOW", "REVERSE", "BACKWARD_FLOW"),
}


def _expects(expected: "dict[str, object]", alarm: "str") -> "bool":
    """Whether the published values name `alarm` at all (now or in the past: a field whose
    name or text value holds one of its words and is not OK)."""
    words = ALARM_WORDS[alarm]
    for name, value in expected.items():
        if isinstance(value, str):
            upper = value.upper()
            for word in words:
                if word in upper:
                    return True
        if alarm in name.lower() and value not in (None, "", 0, False, "OK", "no"):
            return True
    return False


def _expects_leak(expected: "dict[str, object]") -> "bool":
    return _expects(expected, "leak")


def conformance() -> "dict[str, object]":
    """Decode every vector; the counts, the per-model coverage and the leak findings.

    Pass 1 lets each model's decoder hear its telegrams (compact frame layouts); pass 2
    scores them. Nothing is kept between vectors but counts (MicroPython's heap is small).
    """
    data = support.load_json(PATH)
    vectors = data["vectors"]  # type: ignore[index]
    aes = _aes.backend() is not None
    decoders: "dict[str, Decoder]" = {}
    total = 0
    hits = 0
    skipped = 0
    models: "dict[str, list[int]]" = {}
    misses: "list[str]" = []
    leaks_expected = 0
    leaks_found = 0
    leaks_missed: "list[str]" = []
    false_alarms: "list[str]" = []
    errors: "list[str]" = []
    for scoring in (False, True):
        for i, v in enumerate(vectors):
            model = v["driver"]
            counts = models.get(model)
            if counts is None:
                counts = [0, 0]
                models[model] = counts
            if v["key"] and not aes:
                skipped += 1 if scoring else 0
                continue
            decoder = decoders.get(model)
            if decoder is None:
                decoder = Decoder({})
                decoders[model] = decoder
            decoder._keys = {"*": bytes.fromhex(v["key"])} if v["key"] else {}
            numbers: "list[tuple[float, str | None, str]]" = []
            alarms: "dict[str, bool]" = {}
            try:
                telegram = decoder.decode(bytes.fromhex(v["telegram_hex"]))
                numbers = _numbers(telegram.measurements())
                alarms = telegram.alarms
            except RemoteProtocolError as e:
                if scoring:
                    errors.append("%s #%d: %s" % (model, i, e))
            if not scoring:
                continue
            expected = v["expected"]
            for name, value in expected.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
                    continue
                total += 1
                counts[1] += 1
                if reproduced(name, float(value), numbers):
                    hits += 1
                    counts[0] += 1
                else:
                    misses.append("%s %s=%s" % (model, name, value))
            if _expects_leak(expected):
                leaks_expected += 1
                if alarms.get("leak"):
                    leaks_found += 1
                else:
                    leaks_missed.append("%s #%d" % (model, i))
            for alarm in ALARM_WORDS:
                if alarms.get(alarm) and not _expects(expected, alarm):
                    false_alarms.append("%s #%d: %s" % (model, i, alarm))
    return {
        "total": total,
        "hits": hits,
        "percent": 100.0 * hits / total if total else 0.0,
        "skipped_vectors": skipped,
        "models": models,
        "misses": misses,
        "errors": errors,
        "leaks_expected": leaks_expected,
        "leaks_found": leaks_found,
        "leaks_missed": leaks_missed,
        "false_alarms": false_alarms,
    }


_RESULT: "list[dict[str, object]]" = []


def _result() -> "dict[str, object]":
    if not _RESULT:
        _RESULT.append(conformance())
    return _RESULT[0]


class WmbusVectors(unittest.TestCase):
    def test_published_values_reproduced(self) -> "None":
        r = _result()
        print(
            "wmbus conformance: %d/%d published non-zero values reproduced = %.1f %%"
            % (r["hits"], r["total"], r["percent"])
        )
        if r["skipped_vectors"]:
            print(
                "  %d encrypted vectors skipped: no AES on this interpreter" % r["skipped_vectors"]
            )
        models = r["models"]
        for model in sorted(models):  # type: ignore[call-overload]
            hit, total = models[model]  # type: ignore[index]
            if hit < total:
                print("  %-14s %d/%d" % (model, hit, total))
        assert r["percent"] >= THRESHOLD, "%.1f %% < %.0f %%" % (r["percent"], THRESHOLD)  # type: ignore[operator]

    def test_every_leak_alarm_found(self) -> "None":
        r = _result()
        print("wmbus leak alarms: %d of %d found" % (r["leaks_found"], r["leaks_expected"]))
        assert r["leaks_expected"], "the vectors should hold leak alarms"
        assert not r["leaks_missed"], r["leaks_missed"]

    def test_no_false_alarm(self) -> "None":
        """No leak, burst or back-flow alarm where the published values name none: a false
        alarm sends someone out at night."""
        r = _result()
        print("wmbus false alarms: %d" % len(r["false_alarms"]))  # type: ignore[arg-type]
        assert not r["false_alarms"], r["false_alarms"]

    def test_encrypted_vectors_decrypt(self) -> "None":
        if _aes.backend() is None:
            support.skip("no AES on this interpreter (neither cryptography nor cryptolib)")
        data = support.load_json(PATH)
        failures = []
        count = 0
        for v in data["vectors"]:  # type: ignore[index]
            if not v["key"]:
                continue
            count += 1
            try:
                Decoder({"*": bytes.fromhex(v["key"])}).decode(bytes.fromhex(v["telegram_hex"]))
            except RemoteProtocolError as e:
                if "compact frame" not in str(e):
                    failures.append("%s: %s" % (v["driver"], e))
        assert count, "the vectors should hold encrypted telegrams"
        assert not failures, failures

    def test_every_telegram_through_formats_a_b_and_each_dongle(self) -> None:
        """Each wireless telegram framed as format A and B (CRCs added, then checked and
        removed), and through each dongle's serial framing fed a byte at a time, comes back the
        same and decodes the same."""
        from protocols._stream import NeedData
        from protocols.wmbus import dongles, frame_format_a, frame_format_b, strip_crcs

        data = support.load_json(PATH)
        count = 0
        for v in data["vectors"]:  # type: ignore[index]
            telegram = bytes.fromhex(v["telegram_hex"])
            if telegram[0] == 0x68 or telegram[0] + 1 != len(telegram):
                continue  # wired frames, and telegrams whose L-field does not fit
            count += 1
            for framed in (frame_format_a(telegram), frame_format_b(telegram)):
                stripped, _fmt = strip_crcs(framed)
                assert stripped[1:] == telegram[1:], v["driver"]
            for dongle, wire in (
                (dongles.IM871A, dongles.im871a_telegram(telegram)),
                (dongles.AMB8465, dongles.amber_telegram(telegram)),
                (dongles.RTLWMBUS, dongles.rtlwmbus_line(telegram)),
            ):
                stream = dongles.stream(dongle)
                events = []
                for i in range(len(wire)):
                    stream.receive_data(wire[i : i + 1])
                    while True:
                        event = stream.next_event()
                        if isinstance(event, NeedData):
                            break
                        events.append(event)
                assert len(events) == 1, (dongle, v["driver"])
                assert events[0].frame == telegram, (dongle, v["driver"])  # type: ignore[attr-defined]
        assert count > 150

    def test_unitless_values_match_by_name_where_the_names_map(self) -> None:
        """A heat cost allocation of 52 is not reproduced by some other reading that is 52."""
        assert not reproduced("consumption_at_set_date_2_hca", 52.0, [(52.0, None, "volume")])
        assert reproduced("consumption_at_set_date_2_hca", 52.0, [(52.0, None, "hca_storage3")])
        assert not reproduced("prev_03_hca", 7.0, [(7.0, None, "hca_month02")])
        assert reproduced("prev_03_hca", 7.0, [(7.0, None, "hca_month03")])
        assert not reproduced("access_counter", 9.0, [(9.0, None, "dimensionless")])
        assert reproduced("pulse_weight_counter", 10.0, [(10.0, None, "manufacturer_specific_2c")])
