"""Each serial source end to end against its simulator: real ptys, real protocol bytes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from edge.simulators.serial import (
    A02yyuwSimulator,
    HeatMeter,
    LineFormat,
    LinkySimulator,
    MaxBotixSimulator,
    MbusSimulator,
    ModbusSimulator,
    ModbusSlave,
    NmeaSimulator,
    Sdi12Simulator,
    WaterMeter,
)
from edge.sources import SourceState
from edge.sources.serial import DeviceConfig, SerialPortConfig, SerialSource
from edge.tests.support.serial import MemorySink, running


def fast(config: dict[str, object], **overrides: object) -> SerialPortConfig:
    """The simulator's own configuration, with test timings."""
    config = dict(config)
    config.setdefault("reconnect_min", 0.1)
    config.setdefault("reconnect_max", 0.4)
    config.update(overrides)
    return SerialPortConfig.from_mapping(config)


async def test_tic_historique(tmp_path: Path) -> None:
    async with LinkySimulator("ttyLINKY0", directory=tmp_path, pace=8, interval=0.2) as sim:
        config = fast(sim.port_config("linky-1"))
        assert config.line.baud == 1200 and config.line.bytesize == 7
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: len(sink.values("linky-1", "BASE")) >= 2, 8, "BASE")
        base = sink.values("linky-1", "BASE")
        assert all(isinstance(v, int) for v in base)
        assert base == sorted(base)  # the index only goes up
        assert abs(int(base[-1]) - sim.index_wh) < 100  # type: ignore[call-overload]
        papp = sink.values("linky-1", "PAPP")[-1]
        assert isinstance(papp, int) and 120 <= papp <= 8500
        units = {r.quantity: r.unit for r in sink.readings}
        assert units["BASE"] == "Wh" and units["PAPP"] == "VA" and units["IINST"] == "A"
        assert not sink.errors, sink.details
        assert sink.state == SourceState.UP


async def test_tic_standard(tmp_path: Path) -> None:
    async with LinkySimulator(
        "ttyLINKY1", mode="standard", directory=tmp_path, pace=4, interval=0.3
    ) as sim:
        config = fast(sim.port_config("linky-std"))
        assert config.line.baud == 9600
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: len(sink.values("linky-std", "EAST")) >= 2, 8, "EAST")
        quantities = sink.quantities("linky-std")
        assert {"EAST", "SINSTS", "IRMS1", "URMS1", "PREF", "STGE.contact_sec"} <= quantities
        assert sink.values("linky-std", "PREF")[-1] == 9000  # kVA normalised to VA
        assert not sink.errors, sink.details


async def test_modbus_bus_of_three(tmp_path: Path) -> None:
    slaves = [ModbusSlave(1, "sdm630"), ModbusSlave(2, "soil"), ModbusSlave(80, "level")]
    async with ModbusSimulator("ttyRS485-0", slaves=slaves, directory=tmp_path, pace=4) as sim:
        port = sim.port_config("bldg")
        for device in port["devices"]:  # type: ignore[attr-defined]
            device["interval"] = 0.5
        sink = MemorySink()
        async with running(SerialSource(fast(port, response_timeout=0.5)), sink):
            await sink.wait_for(
                lambda: all(
                    len(sink.values(s, q)) >= 2
                    for s, q in (
                        ("bldg-sdm630-1", "total_active_energy"),
                        ("bldg-soil-2", "moisture"),
                        ("bldg-level-80", "distance"),
                    )
                ),
                15,
                "two polls of every device",
            )
        sdm = sink.quantities("bldg-sdm630-1")
        assert len(sdm) == len(slaves[0].map.registers)  # every register of the map
        voltage = sink.values("bldg-sdm630-1", "l1_voltage")[-1]
        assert isinstance(voltage, float) and 220 < voltage < 240
        assert 0 < float(sink.values("bldg-soil-2", "moisture")[-1]) < 100  # type: ignore[arg-type]
        assert 0.3 <= float(sink.values("bldg-level-80", "distance")[-1]) <= 1.2  # type: ignore[arg-type]
        energy = sink.values("bldg-sdm630-1", "total_active_energy")
        assert energy[-1] >= energy[0]  # type: ignore[operator]
        # one timestamp per poll: all the readings of one poll share it
        stamps = {r.ts_ms for r in sink.readings if r.sensor == "bldg-sdm630-1"}
        assert len(stamps) <= len(sink.values("bldg-sdm630-1", "l1_voltage"))
        assert not sink.errors, sink.details


async def test_modbus_line_settings_must_match(tmp_path: Path) -> None:
    """A bus at 19200 8E1: the right settings read it, 9600 8N1 gets no answer at all."""
    line = LineFormat(19200, 8, "E", 1)
    async with ModbusSimulator(
        "ttyRS485-1", slaves=[ModbusSlave(7, "sdm120")], line=line, directory=tmp_path, pace=0
    ) as sim:
        port = sim.port_config("m")
        port["devices"][0]["interval"] = 0.3  # type: ignore[index]
        good = MemorySink()
        async with running(SerialSource(fast(port, response_timeout=0.3)), good):
            await good.wait_for(
                lambda: len(good.values("m-sdm120-7", "voltage")) >= 1, 5, "voltage"
            )
        assert not good.errors
        bad = MemorySink()
        wrong = fast(port, baud=9600, parity="N", response_timeout=0.2)
        async with running(SerialSource(wrong), bad):
            await bad.wait_for(lambda: bad.errors_for("no_response") >= 2, 5, "no_response")
        assert not bad.readings


async def test_mbus_primary_and_secondary_multi_telegram(tmp_path: Path) -> None:
    water, heat = WaterMeter(5, 12345678), HeatMeter(6, 87654321)
    async with MbusSimulator("ttyMBUS0", meters=[water, heat], directory=tmp_path, pace=4) as sim:
        port = sim.port_config("bldg")
        devices = port["devices"]
        assert isinstance(devices, list)
        devices[1]["address"] = heat.secondary  # the heat meter by secondary address
        for device in devices:
            device["interval"] = 0.5
        sink = MemorySink()
        async with running(SerialSource(fast(port, response_timeout=0.5)), sink):
            await sink.wait_for(
                lambda: (
                    len(sink.values("bldg-heat-87654321", "return_temperature")) >= 2
                    and len(sink.values("bldg-water-12345678", "volume")) >= 2
                ),
                15,
                "both meters twice",
            )
        heat_q = sink.quantities("bldg-heat-87654321")
        # energy comes in the first telegram, temperatures in the second (FCB toggled)
        assert {"energy", "power", "flow_temperature", "return_temperature"} <= heat_q
        assert "manufacturer_data" not in heat_q
        assert {"volume", "volume_flow"} <= sink.quantities("bldg-water-12345678")
        volume = sink.values("bldg-water-12345678", "volume")[-1]
        assert isinstance(volume, float) and math.isclose(volume, water.volume_l / 1000, abs_tol=1)
        assert not sink.errors, sink.details


@pytest.mark.parametrize("measurement", ["M", "MC", "C", "CC"])
async def test_sdi12_measure_then_read(tmp_path: Path, measurement: str) -> None:
    async with Sdi12Simulator(
        "ttySDI12-0", address="3", measure_time=0.2, directory=tmp_path, pace=1
    ) as sim:
        port = sim.port_config("soil")
        port["devices"][0]["interval"] = 0.5  # type: ignore[index]
        port["devices"][0]["measurement"] = measurement  # type: ignore[index]
        sink = MemorySink()
        async with running(SerialSource(fast(port, response_timeout=0.3)), sink):
            await sink.wait_for(lambda: len(sink.values("soil", "moisture")) >= 2, 10, "moisture")
        assert {r.unit for r in sink.readings if r.quantity == "temperature"} == {"Cel"}
        assert 5 <= float(sink.values("soil", "moisture")[-1]) <= 55  # type: ignore[arg-type]
        start = {"M": b"3M!", "MC": b"3MC!", "C": b"3C!", "CC": b"3CC!"}[measurement]
        assert start in sim.commands and b"3D0!" in sim.commands
        # errors may happen (a sensor gone back to sleep), but every poll ends in values
        assert sink.errors_for("checksum") == 0


async def test_maxbotix_distance_and_fill(tmp_path: Path) -> None:
    async with MaxBotixSimulator("ttyMB0", directory=tmp_path, pace=1, interval=0.05) as sim:
        sink = MemorySink()
        async with running(SerialSource(fast(sim.port_config("bin-7"))), sink):
            await sink.wait_for(lambda: len(sink.values("bin-7", "fill")) >= 5, 5, "fill")
        distance = sink.values("bin-7", "distance")[-1]
        fill = sink.values("bin-7", "fill")[-1]
        assert isinstance(distance, float) and 0.3 <= distance <= 1.2
        assert isinstance(fill, float) and 0 <= fill <= 100
        assert not sink.errors, sink.details


async def test_a02yyuw_distance_and_fill(tmp_path: Path) -> None:
    async with A02yyuwSimulator("ttyA02", directory=tmp_path, pace=1, interval=0.05) as sim:
        sink = MemorySink()
        port = sim.port_config("bin-8")
        port["devices"][0]["interval"] = 0.2  # type: ignore[index]
        async with running(SerialSource(fast(port)), sink):
            await sink.wait_for(lambda: len(sink.values("bin-8", "distance")) >= 3, 5, "distance")
        ts = [r.ts_ms for r in sink.readings if r.quantity == "distance"]
        assert all(b - a >= 150 for a, b in itertools.pairwise(ts))  # decimated
        assert not sink.errors, sink.details


async def test_nmea_instrument(tmp_path: Path) -> None:
    async with NmeaSimulator("ttyNMEA0", directory=tmp_path, pace=2, interval=0.3) as sim:
        sink = MemorySink()
        async with running(SerialSource(fast(sim.port_config("marina-wx"))), sink):
            await sink.wait_for(lambda: len(sink.values("marina-wx", "depth")) >= 2, 6, "depth")
        quantities = sink.quantities("marina-wx")
        expected = {
            "lat",
            "lon",
            "apparent_wind_angle",
            "apparent_wind_speed",
            "depth",
            "water_temperature",
            "temperature_AIR",
            "pressure_BARO",
            "humidity_HUM",
        }
        assert expected <= quantities
        lat = sink.values("marina-wx", "lat")[-1]
        assert isinstance(lat, float) and math.isclose(lat, 46.15, abs_tol=0.01)
        assert not sink.errors, sink.details


async def test_nmea_talker_filter(tmp_path: Path) -> None:
    async with NmeaSimulator("ttyNMEA1", directory=tmp_path, pace=2, interval=0.3) as sim:
        config = SerialPortConfig(
            path=sim.path,
            protocol="nmea",
            devices=(DeviceConfig("gps", address="GP", interval=0), DeviceConfig("wx", interval=0)),
        )
        sink = MemorySink()
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: bool(sink.values("wx", "depth")), 6, "depth")
        assert "depth" not in sink.quantities("gps") and "lat" in sink.quantities("gps")
        assert "lat" not in sink.quantities("wx")
