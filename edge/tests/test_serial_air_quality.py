"""Particulate-matter sensors and canal level gauges end to end: each source against its
simulator on a real pty, at the real line rate (pace 1), real protocol bytes both ways."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from edge.simulators.serial import (
    Fault,
    ModbusSimulator,
    ModbusSlave,
    OttPlsSimulator,
    PmsSimulator,
    Sds011Simulator,
    SpecError,
    Sps30Simulator,
    VegapulsSimulator,
    parse_spec,
)
from edge.simulators.serial.modbus import WATER_AMPLITUDE, WATER_MEAN
from edge.sources import SourceState
from edge.sources.serial import SerialConfigError, SerialPortConfig, SerialSource
from edge.tests.support.serial import MemorySink, running
from protocols import pms, sds011, sps30

LOW, HIGH = WATER_MEAN - WATER_AMPLITUDE - 0.05, WATER_MEAN + WATER_AMPLITUDE + 0.05


def fast(config: dict[str, object], **overrides: object) -> SerialPortConfig:
    config = dict(config)
    config.setdefault("reconnect_min", 0.1)
    config.setdefault("reconnect_max", 0.4)
    config.update(overrides)
    return SerialPortConfig.from_mapping(config)


def _device(port: dict[str, object], **changes: object) -> dict[str, object]:
    devices = port["devices"]
    assert isinstance(devices, list)
    devices[0].update(changes)
    return port


async def test_pms5003_active_mode(tmp_path: Path) -> None:
    async with PmsSimulator("ttyPMS0", directory=tmp_path, interval=0.5) as sim:
        assert sim.pace == 1.0
        port = _device(sim.port_config("air-1"), interval=0)
        config = fast(port)
        assert str(config.line) == "9600 8N1"
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: len(sink.values("air-1", "pm25")) >= 3, 10, "3 frames")
            sim.inject(Fault.bad_checksum(1))
            await sink.wait_for(lambda: sink.errors_for("checksum") >= 1, 5, "a bad frame")
            before = len(sink.values("air-1", "pm25"))
            await sink.wait_for(lambda: len(sink.values("air-1", "pm25")) > before, 5, "more")
        assert (pms.CMD_SLEEP, 1) in sim.commands and (pms.CMD_MODE, 1) in sim.commands
        quantities = sink.quantities("air-1")
        assert {"pm1", "pm25", "pm10", "count_over_0_3um", "count_over_10um"} <= quantities
        units = {r.quantity: r.unit for r in sink.readings}
        assert units["pm25"] == "ug/m3" and units["count_over_0_3um"] == "/cm3"
        pm25 = sink.values("air-1", "pm25")
        assert all(isinstance(v, int) and 0 <= v < 100 for v in pm25)
        assert set(sink.errors) == {("air-1", "checksum")}, sink.details
        assert sink.state == SourceState.UP


async def test_pms5003_passive_mode_reads_on_request(tmp_path: Path) -> None:
    async with PmsSimulator("ttyPMS1", directory=tmp_path) as sim:
        port = _device(sim.port_config("air-2"), passive=True, interval=0.7)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("air-2", "pm10")) >= 4, 10, "4 reads")
        assert not sim.active  # the gateway put it in passive mode
        reads = [c for c in sim.commands if c[0] == pms.CMD_READ]
        assert len(reads) >= 3
        # unsolicited frames only before the mode command took effect
        assert sim.stats["frames"] <= 2
        assert sim.stats["answers"] >= 2 + len(reads)
        assert not sink.errors, sink.details


async def test_pms_silent_sensor_is_counted_and_recovers(tmp_path: Path) -> None:
    async with PmsSimulator("ttyPMS2", directory=tmp_path, interval=0.5) as sim:
        port = _device(sim.port_config("air-3"), interval=0)
        sink = MemorySink()
        async with running(SerialSource(fast(port, silence_timeout=1.5)), sink):
            # past the wake-up and mode commands (answered), then the sensor goes quiet
            await sink.wait_for(lambda: len(sink.values("air-3", "pm25")) >= 3, 8, "frames")
            sim.inject(Fault.silence(2.5))
            await sink.wait_for(lambda: sink.errors_for("silence") == 1, 6, "silence")
            before = len(sink.readings)
            await sink.wait_for(lambda: len(sink.readings) > before, 6, "frames again")


async def test_sds011_duty_cycle_is_set_and_followed(tmp_path: Path) -> None:
    # a 1-minute working period, with the simulator's minute shortened to 2 s and its work
    # phase to 1 s (the line rate stays real): a frame every 2 s, asleep in between
    async with Sds011Simulator("ttySDS0", directory=tmp_path, minute=2.0, work=1.0) as sim:
        assert sim.period == 0  # it comes continuous from the factory
        port = _device(sim.port_config("air-sds"), duty_cycle=1, interval=0)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("air-sds", "pm25")) >= 4, 15, "4 frames")
        assert sim.period == 1 and not sim.query_mode and not sim.sleeping
        assert sim.commands[:3] == [sds011.SLEEP_WORK, sds011.REPORTING_MODE, sds011.WORKING_PERIOD]
        stamps = [r.ts_ms for r in sink.readings if r.quantity == "pm25"]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # the first frame may come before the period is set (it was continuous): after
        # that, one frame per cycle, not 1 Hz
        assert all(gap > 1200 for gap in gaps[1:]), gaps
        pm10 = sink.values("air-sds", "pm10")
        assert all(isinstance(v, float) and v > 0 for v in pm10)
        assert not sink.errors, sink.details


async def test_sds011_continuous_without_duty_cycle(tmp_path: Path) -> None:
    async with Sds011Simulator("ttySDS1", directory=tmp_path, interval=0.5) as sim:
        port = _device(sim.port_config("air-sds2"), interval=0)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("air-sds2", "pm25")) >= 3, 8, "frames")
            sim.inject(Fault.noise(7))
            before = len(sink.readings)
            await sink.wait_for(lambda: len(sink.readings) > before + 4, 8, "after noise")
        assert sim.commands == []  # nothing configured: nothing sent
        assert set(reason for _, reason in sink.errors) <= {"noise", "checksum", "malformed"}


async def test_sps30_start_then_read(tmp_path: Path) -> None:
    async with Sps30Simulator("ttySPS30", directory=tmp_path) as sim:
        port = _device(sim.port_config("air-sps"), interval=1.0)
        config = fast(port, response_timeout=0.3)
        assert str(config.line) == "115200 8N1"
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: len(sink.values("air-sps", "pm25")) >= 2, 10, "values")
            sim.measuring = False  # a power cut: the sensor forgets it was measuring
            count = sps30.START_MEASUREMENT
            starts = sim.commands.count(count)
            await sink.wait_for(lambda: sim.commands.count(count) > starts, 6, "a new start")
            before = len(sink.values("air-sps", "pm25"))
            await sink.wait_for(lambda: len(sink.values("air-sps", "pm25")) > before, 6, "more")
        assert {"pm1", "pm25", "pm4", "pm10", "count_pm0_5", "typical_size"} <= sink.quantities(
            "air-sps"
        )
        assert sink.errors_for("exception") == 1  # the read refused while not measuring
        assert set(reason for _, reason in sink.errors) == {"exception"}, sink.details


async def test_canal_radar_level_above_the_datum(tmp_path: Path) -> None:
    # the FMR20 as it leaves the factory: address 200, 9600 8E1
    async with ModbusSimulator(
        "ttyCANAL485",
        slaves=[ModbusSlave(200, "fmr20")],
        line=__import__("edge.simulators.serial", fromlist=["LineFormat"]).LineFormat(
            9600, 8, "E", 1
        ),
        directory=tmp_path,
    ) as sim:
        port = _device(sim.port_config("canal"), interval=0.5)
        config = fast(port, response_timeout=0.5)
        datum = config.devices[0].level_datum()
        assert datum is not None and datum.source == "distance" and datum.elevation == 3.2
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(
                lambda: len(sink.values("canal-fmr20-200", "level")) >= 2, 10, "levels"
            )
        levels = sink.values("canal-fmr20-200", "level")
        distances = sink.values("canal-fmr20-200", "distance")
        assert all(isinstance(v, float) and LOW <= v <= HIGH for v in levels), levels
        # level = datum - distance, to the millimetre, reading by reading
        for lv, d in zip(levels, distances, strict=False):
            assert lv == round(3.2 - float(d), 3)  # type: ignore[arg-type]
        assert {r.unit for r in sink.readings if r.quantity == "level"} == {"m"}
        assert not sink.errors, sink.details


async def test_pressure_probe_level_modbus_and_sdi12(tmp_path: Path) -> None:
    async with (
        ModbusSimulator(
            "ttyKELLER485", slaves=[ModbusSlave(1, "keller30")], directory=tmp_path
        ) as keller,
        OttPlsSimulator("ttySDI12-PLS", directory=tmp_path) as pls,
    ):
        modbus_port = _device(keller.port_config("canal-p"), interval=0.5)
        sdi12_port = _device(pls.port_config("canal-pls"), interval=2.0)
        sink = MemorySink()
        async with (
            running(SerialSource(fast(modbus_port)), sink),
            running(SerialSource(fast(sdi12_port)), sink),
        ):
            await sink.wait_for(
                lambda: (
                    len(sink.values("canal-p-keller30-1", "level")) >= 1
                    and len(sink.values("canal-pls", "level")) >= 1
                ),
                15,
                "levels from both probes",
            )
        for sensor in ("canal-p-keller30-1", "canal-pls"):
            level = sink.values(sensor, "level")[-1]
            assert isinstance(level, float) and LOW <= level <= HIGH, (sensor, level)
        pressure = sink.values("canal-p-keller30-1", "pressure")[-1]
        assert isinstance(pressure, float) and 15000 < pressure < 25000  # ~2 m of water, Pa
        depth = sink.values("canal-pls", "depth")[-1]
        assert sink.values("canal-pls", "level")[-1] == round(-1.5 + float(depth), 3)  # type: ignore[arg-type]
        assert not sink.errors, sink.details


@pytest.mark.parametrize(
    ("protocol", "device", "field"),
    [
        ("pms", {"sensor": "a", "sleep": True}, "sleep"),
        ("pms", {"sensor": "a", "passive": True, "sleep": True, "interval": 30}, "interval"),
        ("pms", {"sensor": "a", "model": "pms9000"}, "model"),
        ("pms", {"sensor": "a", "duty_cycle": 5}, "duty_cycle"),
        ("sds011", {"sensor": "a", "duty_cycle": 31}, "duty_cycle"),
        ("sds011", {"sensor": "a", "passive": True}, "passive"),
        ("sds011", {"sensor": "a", "datum": 2.0}, "datum"),
        ("sps30", {"sensor": "a", "interval": 0.2}, "interval"),
        ("modbus", {"sensor": "a", "address": 1, "map": "soil", "datum": 1.0}, "level_from"),
        ("modbus", {"sensor": "a", "address": 1, "model": "ott_pls"}, "model"),
        ("modbus", {"sensor": "a", "address": 1, "model": "fmr20", "density": 5.0}, "datum"),
        ("sdi12", {"sensor": "a", "address": "0", "level_from": "depth"}, "datum"),
        ("sdi12", {"sensor": "a", "address": "0", "datum": 1.0, "level_from": "up"}, "level_from"),
        # a level from a reading the device never gives: refused, not a level that never comes
        (
            "modbus",
            {
                "sensor": "a",
                "address": 200,
                "model": "fmr20",
                "datum": 3.2,
                "level_from": "pressure",
            },
            "level_from",
        ),
        (
            "modbus",
            {"sensor": "a", "address": 1, "map": "soil", "datum": 1.0, "level_from": "distance"},
            "level_from",
        ),
        (
            "sdi12",
            {"sensor": "a", "address": "0", "datum": -1.5, "level_from": "depth"},
            "level_from",
        ),
        (
            "sdi12",
            {
                "sensor": "a",
                "address": "0",
                "datum": 1.0,
                "names": "stage:m",
                "level_from": "depth",
            },
            "level_from",
        ),
    ],
)
def test_bad_settings_name_their_field(
    protocol: str, device: dict[str, object], field: str
) -> None:
    port = {"path": "/dev/ttyUSB0", "protocol": protocol, "devices": [device]}
    if protocol == "modbus" and "density" in device:
        device["datum"] = 2.0
    with pytest.raises(SerialConfigError) as caught:
        SerialPortConfig.from_mapping(port)
    assert caught.value.field == f"serial.devices[0].{field}", caught.value


def test_level_models_give_their_map_and_names() -> None:
    radar = SerialPortConfig.from_mapping(
        {
            "path": "/dev/ttyUSB0",
            "protocol": "modbus",
            "parity": "E",
            "devices": [{"sensor": "r", "address": 200, "model": "fmr20", "datum": 3.2}],
        }
    )
    assert radar.devices[0].resolved_map().name == "fmr20"
    probe = SerialPortConfig.from_mapping(
        {
            "path": "/dev/ttyUSB1",
            "protocol": "sdi12",
            "devices": [{"sensor": "p", "address": "0", "model": "vegapuls_c21", "datum": 5.0}],
        }
    )
    assert probe.devices[0].sdi12_names() is not None
    datum = probe.devices[0].level_datum()
    assert datum is not None and datum.source == "distance"
    snippet = radar.snippet()
    assert 'model = "fmr20"' in snippet and "datum = 3.2" in snippet


async def test_vegapuls_radar_on_sdi12(tmp_path: Path) -> None:
    async with VegapulsSimulator("ttySDI12-VEGA", directory=tmp_path) as sim:
        port = _device(sim.port_config("canal-vega"), interval=2.0)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("canal-vega", "level")) >= 1, 15, "level")
        quantities = sink.quantities("canal-vega")
        assert {"stage", "distance", "temperature", "reliability", "error_code", "level"} <= (
            quantities
        )
        distance = sink.values("canal-vega", "distance")[-1]
        level = sink.values("canal-vega", "level")[-1]
        assert level == round(3.2 - float(distance), 3)  # type: ignore[arg-type]
        assert isinstance(level, float) and LOW <= level <= HIGH
        assert not sink.errors, sink.details


@pytest.mark.parametrize(
    "spec",
    [
        "pms5003",
        "pms5003,interval=2",
        "sds011,period=5",
        "sds011,period=1,minute=2,work=1",
        "sps30",
        "canal-radar",
        "canal-pressure,address=7",
        "ott-pls,address=3",
        "vegapuls-c21",
    ],
)
def test_runner_specs_give_configs_the_daemon_accepts(spec: str) -> None:
    sim = parse_spec(spec, "/tmp/estran-sim-specs")
    config = SerialPortConfig.from_mapping(sim.port_config())
    assert config.snippet().startswith("[[serial]]")
    if spec == "canal-radar":
        assert str(config.line) == "9600 8E1" and config.devices[0].address == 200
    if spec.startswith("sds011,period=5"):
        assert config.devices[0].duty_cycle == 5


def test_runner_specs_refuse_bad_options() -> None:
    for bad in ("sds011,period=31", "sds011,period=x", "pms5003,colour=blue"):
        with pytest.raises(SpecError):
            parse_spec(bad)


async def test_pms_sleeps_between_passive_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fan's 30 s settling time shortened to 0.4 s, so that a test sees three cycles;
    # everything else (line rate, commands, replies) is real
    monkeypatch.setattr(pms, "WARMUP", 0.4)
    async with PmsSimulator("ttyPMS3", directory=tmp_path) as sim:
        port = _device(sim.port_config("air-4"), passive=True, sleep=True, interval=1.2)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("air-4", "pm25")) >= 4, 15, "reads")
            asleep_seen = sim.asleep
            for _ in range(20):  # between two reads it sleeps
                if sim.asleep:
                    asleep_seen = True
                    break
                await asyncio.sleep(0.05)
        assert asleep_seen
        wakes = sim.commands.count((pms.CMD_SLEEP, 1))
        sleeps = sim.commands.count((pms.CMD_SLEEP, 0))
        reads = sim.commands.count((pms.CMD_READ, 0))
        assert reads >= 3 and wakes >= reads and sleeps >= reads - 1, sim.commands
        assert not sink.errors, sink.details


async def test_pms_first_passive_read_waits_for_the_fan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every read, the first one after the port opens included, comes WARMUP after the
    # wake-up that preceded it (the fan's settling time, 30 s, shortened to 1 s; the bug read
    # 16 ms after it, so half the warm-up is a bound a loaded machine's delays cannot fail)
    monkeypatch.setattr(pms, "WARMUP", 1.0)
    async with PmsSimulator("ttyPMS5", directory=tmp_path) as sim:
        sim.asleep = True  # put to sleep by the gateway's previous run
        port = _device(sim.port_config("air-5"), passive=True, sleep=True, interval=2.0)
        sink = MemorySink()
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("air-5", "pm25")) >= 2, 20, "reads")
        woken_at = None
        settled = []
        for (cmd, value), at in zip(sim.commands, sim.command_times, strict=True):
            if (cmd, value) == (pms.CMD_SLEEP, 1):
                woken_at = at
            elif cmd == pms.CMD_READ:
                assert woken_at is not None, sim.commands
                settled.append(round(at - woken_at, 3))
        assert len(settled) >= 2 and min(settled) >= 0.5, settled
        readings = sink.values("air-5", "pm25")
        assert len(readings) <= len(settled), (readings, settled)  # none but the reads'
        # a frame it sent unasked while warming up (woken in active mode, before the mode
        # command: seen on a loaded machine) is counted, never read
        assert {reason for _, reason in sink.errors} <= {"warming_up"}, sink.details
