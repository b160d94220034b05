"""`estran bench decode`: frames per second per codec, the BTHome peer parser side by side.

The frames are the codecs' own conformance vectors, read at run time from
../shared/vectors (or `--vectors`, or $ESTRAN_VECTORS): valid frames as a gateway sees them,
without the entries that the vectors mark as deliberately wrong. Every codec is driven only
through `protocols.describe.describe(protocol, data, options)`, the stable contract of
`estran decode --json`, so the bench depends on no codec's internals. A codec whose module
does not import, or that has no frames, is reported as skipped with the reason.

When the vectors folder is absent, frames are built with the codecs' builders where they
exist (ultrasonic), and the other protocols are skipped. The particulate-matter codecs (pms,
sds011, sps30) read our own vectors, committed in protocols/tests/data, in both cases.

Anchor: on the BTHome v2 vectors, the peer parser `bthome-ble` (Home Assistant's) decodes the
same payloads in the same run; `ratio` is ours / peer in payloads per second (> 1: we are
faster). Both sides start from fresh state per payload, as `describe` does: a new
`BTHomeBluetoothDeviceData` per payload (with the bind key for encrypted ones), the
`BluetoothServiceInfoBleak` that it requires built beforehand and not timed.
"""

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from protocols.describe import PROTOCOLS, describe

Options = dict[str, object]
Sample = tuple[bytes, Options]
Report = dict[str, Any]

# What `estran decode` passes to every codec; a sample overrides some of them.
BASE_OPTIONS: Options = {"key": None, "mac": None, "map": None}


def default_vectors() -> Path:
    """$ESTRAN_VECTORS, else ../shared/vectors beside the project root."""
    env = os.environ.get("ESTRAN_VECTORS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def _unhex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()).replace(":", ""))


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _marked_bad(entry: dict[str, Any]) -> bool:
    """True for entries the vectors mark as deliberately wrong."""
    for key in ("checksum_ok", "crc_ok", "response_crc_ok"):
        if entry.get(key) is False:
            return True
    if entry.get("dict") == "WRONG_RTU_RESPONSES":
        return True
    expected = entry.get("expected")
    return isinstance(expected, str) and expected.upper().startswith("REJECT")


def _sample(data: bytes, **options: object) -> Sample:
    return data, {**BASE_OPTIONS, **options}


# -- frames of each protocol, from the vectors ---------------------------------------------


def _tic(root: Path) -> list[Sample]:
    out = []
    for path in sorted((root / "tic").glob("*.json")):
        doc = _load(path)
        if isinstance(doc, dict) and "raw_hex" in doc and not _marked_bad(doc):
            out.append(_sample(_unhex(doc["raw_hex"])))
    return out


def _modbus(root: Path) -> list[Sample]:
    out = []
    pairs = root / "modbus" / "minimalmodbus_rtu_pairs.json"
    if pairs.exists():
        for p in _load(pairs).get("pairs", []):
            if "response_hex" in p and not _marked_bad(p):
                out.append(_sample(_unhex(p["response_hex"])))
    devices = root / "modbus" / "rs485_devices_frames.json"
    if devices.exists():
        for v in _load(devices).get("vectors", []):
            if "response" in v and not _marked_bad(v):
                out.append(_sample(_unhex(v["response"])))
    return out


def _mbus(root: Path) -> list[Sample]:
    folder = root / "mbus" / "libmbus" / "test-frames"
    return [_sample(_unhex(p.read_text(encoding="ascii"))) for p in sorted(folder.glob("*.hex"))]


def _sdi12(root: Path) -> list[Sample]:
    path = root / "sdi12" / "sdi12_vectors.json"
    if not path.exists():
        return []
    doc = _load(path)
    out = [
        _sample(_unhex(v["response_hex"]))
        for v in doc.get("crc_vectors", [])
        if "response_hex" in v and not _marked_bad(v)
    ]
    for v in doc.get("plain_exchanges", []):
        resp = v.get("resp")
        if isinstance(resp, str) and resp:
            out.append(_sample(resp.replace("<CR>", "\r").replace("<LF>", "\n").encode("ascii")))
    return out


def _nmea(root: Path) -> list[Sample]:
    path = root / "nmea" / "nmea0183_vectors.json"
    if not path.exists():
        return []
    out = []
    for v in _load(path).get("vectors", []):
        if _marked_bad(v):
            continue
        if "wire_hex" in v:
            out.append(_sample(_unhex(v["wire_hex"])))
        elif "sentence" in v:
            out.append(_sample((v["sentence"] + "\r\n").encode("ascii")))
    return out


def _bthome(root: Path) -> list[Sample]:
    path = root / "ble" / "bthome_v2_vectors.json"
    if not path.exists():
        return []
    out = []
    for v in _load(path).get("vectors", []):
        for payload in v.get("payloads_hex", []):
            out.append(_sample(_unhex(payload), key=v.get("bindkey"), mac=v.get("mac")))
    return out


def _miflora(root: Path) -> list[Sample]:
    path = root / "ble" / "miflora_vectors.json"
    if not path.exists():
        return []
    doc = _load(path)
    out = [
        _sample(_unhex(v["hex"]), mac=v.get("address"))
        for v in doc.get("advertisement", {}).get("vectors", [])
    ]
    out += [_sample(_unhex(v["hex"])) for v in doc.get("gatt", {}).get("vectors", [])]
    return out


def _ultrasonic(root: Path) -> list[Sample]:
    path = root / "ultrasonic" / "ultrasonic_vectors.json"
    if not path.exists():
        return []
    doc = _load(path)
    out = []
    for section in ("maxbotix_ascii", "a02yyuw_me007ys_uart"):
        for v in doc.get(section, {}).get("vectors", []):
            if "hex" in v and not _marked_bad(v):
                out.append(_sample(_unhex(v["hex"])))
    return out


def _wmbus(root: Path) -> list[Sample]:
    """Wireless M-Bus telegrams (wmbusmeters' driver tests), with their AES keys."""
    path = root / "wmbus" / "wmbusmeters_vectors.json"
    if not path.exists():
        return []
    return [
        _sample(_unhex(v["telegram_hex"]), key=v.get("key"))
        for v in _load(path).get("vectors", [])
        if v.get("telegram_hex")
    ]


def _air_quality(protocol: str) -> list[Sample]:
    """Our own particulate-matter vectors, committed with the code (they are not in
    ../shared/vectors): valid frames of the sensor side only."""
    import protocols

    path = Path(protocols.__file__).parent / "tests" / "data" / "air_quality_vectors.json"
    if not path.exists():
        return []
    doc = _load(path)
    sections = {"pms": ("frames", "replies"), "sds011": ("frames",), "sps30": ("miso",)}
    out = []
    for key in sections[protocol]:
        for v in doc.get(protocol, {}).get(key, []):
            if "hex" in v and not _marked_bad(v) and "error" not in v:
                out.append(_sample(_unhex(v["hex"])))
    return out


LOADERS: dict[str, Callable[[Path], list[Sample]]] = {
    "tic": _tic,
    "modbus": _modbus,
    "mbus": _mbus,
    "sdi12": _sdi12,
    "nmea": _nmea,
    "bthome": _bthome,
    "miflora": _miflora,
    "ultrasonic": _ultrasonic,
    "wmbus": _wmbus,
    "pms": lambda _root: _air_quality("pms"),
    "sds011": lambda _root: _air_quality("sds011"),
    "sps30": lambda _root: _air_quality("sps30"),
}


# -- frames built with the codecs' builders, when there are no vectors ----------------------


def _built_ultrasonic() -> list[Sample]:
    from protocols.ultrasonic import build_a02, build_maxbotix

    frames = [build_maxbotix(480), build_maxbotix(123, 3), build_a02(1953), build_a02(417)]
    return [_sample(f) for f in frames]


BUILDERS: dict[str, Callable[[], list[Sample]]] = {
    "ultrasonic": _built_ultrasonic,
    "pms": lambda: _air_quality("pms"),
    "sds011": lambda: _air_quality("sds011"),
    "sps30": lambda: _air_quality("sps30"),
}


def samples_for(protocol: str, vectors: Path | None) -> tuple[list[Sample], str]:
    """(samples, where they came from); empty samples with the reason when there are none."""
    if vectors is not None and vectors.is_dir():
        loader = LOADERS.get(protocol)
        if loader is None:
            return [], f"no vector loader for {protocol}"
        try:
            found = loader(vectors)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return [], f"vectors unreadable: {type(e).__name__}: {e}"
        return found, "vectors" if found else f"no {protocol} frames in {vectors}"
    builder = BUILDERS.get(protocol)
    if builder is None:
        return [], f"no vectors at {vectors} and no frame builder"
    return builder(), "builders"


# -- timing --------------------------------------------------------------------------------


def _time_loop(run_once: Callable[[], None], seconds: float) -> tuple[int, float]:
    """Run `run_once` until `seconds` have passed (at least once): (passes, elapsed)."""
    passes = 0
    start = time.perf_counter()
    while True:
        run_once()
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return passes, elapsed


def bench_protocol(
    protocol: str, module: str, samples: list[Sample], seconds: float
) -> tuple[Report, list[Sample]]:
    """Time `describe` over `samples`; returns the report and the samples that decoded."""
    try:
        codec = importlib.import_module(module)
    except Exception as e:  # a codec being written may not import yet: skip, say why
        return {"skipped": f"{module} not importable: {type(e).__name__}: {e}"}, []
    if not callable(getattr(codec, "describe", None)):
        return {"skipped": f"{module} has no describe() yet"}, []
    usable: list[Sample] = []
    frames = valid = size = 0
    first_error: str | None = None
    for data, options in samples:
        try:
            results = describe(protocol, data, options)
        except Exception as e:  # the bench reports codec crashes instead of dying on them
            first_error = first_error or f"{type(e).__name__}: {e}"
            continue
        usable.append((data, options))
        frames += len(results)
        valid += sum(1 for r in results if r.get("valid"))
        size += len(data)
    if not usable or not frames:
        reason = "no frame decoded"
        if first_error:
            reason += f" (describe raised {first_error})"
        return {"skipped": reason}, []

    def run_once() -> None:
        for data, options in usable:
            describe(protocol, data, options)

    passes, elapsed = _time_loop(run_once, seconds)
    report: Report = {
        "frames": frames,
        "frames_per_s": round(frames * passes / elapsed, 1),
        "bytes_per_s": round(size * passes / elapsed, 1),
        "payloads": len(usable),
        "payloads_per_s": round(len(usable) * passes / elapsed, 1),
        "valid": valid,
        "passes": passes,
        "seconds": round(elapsed, 4),
    }
    if len(usable) < len(samples):
        report["dropped"] = {"count": len(samples) - len(usable), "first_error": first_error}
    return report, usable


def bench_bthome_ble(samples: list[Sample], ours: Report | None, seconds: float) -> Report:
    """The peer parser on the same payloads; ratio = ours / peer in payloads per second."""
    anchor: Report = {"name": "bthome-ble"}
    if not samples:
        anchor["skipped"] = "no BTHome payloads to compare on"
        return anchor
    try:
        from importlib.metadata import version

        from bleak.backends.device import BLEDevice
        from bthome_ble import BTHomeBluetoothDeviceData
        from habluetooth import BluetoothServiceInfoBleak
    except ImportError as e:
        anchor["skipped"] = f"bthome-ble not importable: {e}"
        return anchor
    anchor["version"] = version("bthome-ble")
    uuid = "0000fcd2-0000-1000-8000-00805f9b34fb"
    inputs = []
    for data, options in samples:
        address = str(options.get("mac") or "A4:C1:38:00:00:01").upper()
        key = options.get("key")
        info = BluetoothServiceInfoBleak(
            name="bench",
            address=address,
            rssi=-60,
            manufacturer_data={},
            service_data={uuid: data},
            service_uuids=[uuid],
            source="local",
            device=BLEDevice(address, None, None),
            advertisement=None,
            connectable=False,
            time=0.0,
            tx_power=None,
        )
        inputs.append((info, bytes.fromhex(key) if isinstance(key, str) else None))

    def run_once() -> None:
        for info, bindkey in inputs:
            BTHomeBluetoothDeviceData(bindkey).update(info)

    # bthome-ble logs a warning for some vector payloads (object ids out of order): keep its
    # logger quiet while timing, so that we measure parsing rather than log formatting.
    logger = logging.getLogger("bthome_ble")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        run_once()  # warm-up (imports, caches), as for ours
        passes, elapsed = _time_loop(run_once, seconds)
    finally:
        logger.setLevel(level)
    peer_rate = len(inputs) * passes / elapsed
    anchor.update(
        {
            "frames": len(inputs),
            "frames_per_s": round(peer_rate, 1),
            "bytes_per_s": round(sum(len(d) for d, _ in samples) * passes / elapsed, 1),
            "passes": passes,
            "seconds": round(elapsed, 4),
            "method": "fresh parser per payload; service info prebuilt, not timed; logging quiet",
        }
    )
    if ours is not None and "payloads_per_s" in ours:
        anchor["ours_frames_per_s"] = ours["payloads_per_s"]
        anchor["ratio"] = round(ours["payloads_per_s"] / peer_rate, 3)
    else:
        anchor["ratio"] = None
        anchor["note"] = "our bthome codec was not measured: no ratio"
    return anchor


def run(
    vectors: Path | None,
    seconds: float,
    protocols: dict[str, str] | None = None,
) -> Report:
    """The whole benchmark: {"protocols": {...}, "anchors": [...]}."""
    table = PROTOCOLS if protocols is None else protocols
    results: dict[str, Report] = {}
    anchors: list[Report] = []
    bthome_samples: list[Sample] = []
    for name, module in table.items():
        samples, origin = samples_for(name, vectors)
        if not samples:
            results[name] = {"skipped": origin}
            continue
        report, usable = bench_protocol(name, module, samples, seconds)
        if "skipped" not in report:
            report["source"] = origin
        results[name] = report
        if name == "bthome":
            bthome_samples = usable or samples
    if "bthome" in table:
        bthome = results.get("bthome")
        ours = bthome if bthome is not None and "skipped" not in bthome else None
        if not bthome_samples:
            bthome_samples, _ = samples_for("bthome", vectors)
        anchors.append(bench_bthome_ble(bthome_samples, ours, seconds))
    return {"protocols": results, "anchors": anchors}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}"
    return "" if value is None else str(value)


def _print_table(report: Report) -> None:
    console = Console()
    table = Table("protocol", "frames", "frames/s", "bytes/s", "note", title="estran bench decode")
    for name, r in report["protocols"].items():
        if "skipped" in r:
            table.add_row(name, "", "", "", f"[yellow]skipped[/]: {r['skipped']}")
            continue
        note = f"{r['valid']}/{r['frames']} valid, {r['source']}"
        if "dropped" in r:
            note += f", {r['dropped']['count']} dropped"
        table.add_row(name, str(r["frames"]), _fmt(r["frames_per_s"]), _fmt(r["bytes_per_s"]), note)
    for a in report["anchors"]:
        if "skipped" in a:
            table.add_row(f"peer {a['name']}", "", "", "", f"[yellow]skipped[/]: {a['skipped']}")
            continue
        ratio = a.get("ratio")
        note = (
            f"v{a['version']}; ours/peer = {ratio:.2f}" if ratio is not None else a.get("note", "")
        )
        table.add_row(
            f"peer {a['name']}",
            str(a["frames"]),
            _fmt(a["frames_per_s"]),
            _fmt(a["bytes_per_s"]),
            note,
        )
    console.print(table)


@click.command("decode")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last line).")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.0, min_open=True),
    default=0.3,
    show_default=True,
    help="Timing per protocol.",
)
@click.option(
    "--vectors",
    "vectors",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Vectors folder (default: $ESTRAN_VECTORS or ../shared/vectors).",
)
def bench_decode(as_json: bool, seconds: float, vectors: Path | None) -> None:
    """Frames per second per protocol, over the codecs' vectors; the BTHome peer parser
    (bthome-ble) measured side by side on the same payloads."""
    report = run(vectors if vectors is not None else default_vectors(), seconds)
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print_table(report)
