"""Faults on real ptys: noise and bad checksums counted by reason, silence reported,
unplug and replug recovered, a port absent at start found when it appears."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.simulators.serial import (
    A02yyuwSimulator,
    Fault,
    LinkySimulator,
    MaxBotixSimulator,
    MbusSimulator,
    ModbusSimulator,
    ModbusSlave,
    NmeaSimulator,
    Sdi12Simulator,
    SerialSimulator,
    WaterMeter,
)
from edge.sources import SourceState
from edge.sources.serial import SerialPortConfig, SerialSource
from edge.tests.support.serial import MemorySink, running


def config_of(sim: SerialSimulator, sensor: str, **overrides: object) -> SerialPortConfig:
    port = sim.port_config(sensor)
    devices = port["devices"]
    assert isinstance(devices, list)
    for device in devices:
        if device.get("interval", 0):
            device["interval"] = 0.3
    port.update({"reconnect_min": 0.1, "reconnect_max": 0.3, "response_timeout": 0.4})
    port.update(overrides)
    return SerialPortConfig.from_mapping(port)


async def _checksum_then_noise(sim: SerialSimulator, sensor: str, quantity: str) -> MemorySink:
    """Run the source; inject bad checksums, then noise; readings must go on."""
    sink = MemorySink()
    async with running(SerialSource(config_of(sim, sensor)), sink):
        await sink.wait_for(lambda: bool(sink.values(sensor, quantity)), 8, "first reading")
        sim.inject(Fault.bad_checksum(2))
        await sink.wait_for(lambda: sink.errors_for("checksum") >= 1, 8, "checksum errors")
        sim.inject(Fault.noise(24))
        before = sum(sink.errors.values())
        await sink.wait_for(lambda: sum(sink.errors.values()) > before, 8, "noise counted")
        count = len(sink.values(sensor, quantity))
        await sink.wait_for(
            lambda: len(sink.values(sensor, quantity)) > count, 8, "readings after the faults"
        )
    assert sink.state == SourceState.UP
    assert all(reason != "unplugged" for _, reason in sink.errors)
    return sink


async def test_tic_bad_checksum_and_noise(tmp_path: Path) -> None:
    async with LinkySimulator("ttyLINKY0", directory=tmp_path, pace=8, interval=0.2) as sim:
        sink = await _checksum_then_noise(sim, "linky", "PAPP")
        # the group with the bad checksum is dropped, the others of its frame are kept
        assert sink.errors[("linky", "checksum")] >= 1


async def test_nmea_bad_checksum_and_noise(tmp_path: Path) -> None:
    async with NmeaSimulator("ttyNMEA0", directory=tmp_path, pace=4, interval=0.2) as sim:
        await _checksum_then_noise(sim, "wx", "depth")


async def test_a02yyuw_bad_checksum_and_noise(tmp_path: Path) -> None:
    async with A02yyuwSimulator("ttyA02", directory=tmp_path, pace=1, interval=0.05) as sim:
        await _checksum_then_noise(sim, "bin", "distance")


async def test_maxbotix_garbled_frame_is_malformed(tmp_path: Path) -> None:
    async with MaxBotixSimulator("ttyMB", directory=tmp_path, pace=1, interval=0.05) as sim:
        sink = MemorySink()
        async with running(SerialSource(config_of(sim, "bin")), sink):
            await sink.wait_for(lambda: bool(sink.values("bin", "distance")), 5, "distance")
            sim.inject(Fault.bad_checksum(1))  # no checksum in MaxBotix frames: a bad char
            await sink.wait_for(lambda: sink.errors_for("malformed") >= 1, 5, "malformed")


async def test_modbus_bad_crc_noise_and_silence(tmp_path: Path) -> None:
    async with ModbusSimulator(
        "ttyRS485-0", slaves=[ModbusSlave(1, "sdm120")], directory=tmp_path, pace=0
    ) as sim:
        sink = MemorySink()
        async with running(SerialSource(config_of(sim, "m")), sink):
            await sink.wait_for(lambda: bool(sink.values("m-sdm120-1", "voltage")), 5, "voltage")
            sim.inject(Fault.bad_checksum(1))
            await sink.wait_for(lambda: sink.errors_for("checksum") >= 1, 5, "CRC error")
            sim.inject(Fault.noise(8))
            await sink.wait_for(lambda: sum(sink.errors.values()) >= 2, 5, "noise error")
            sim.inject(Fault.silence(1.0))
            await sink.wait_for(lambda: sink.errors_for("no_response") >= 1, 5, "no_response")
            count = len(sink.values("m-sdm120-1", "voltage"))
            await sink.wait_for(
                lambda: len(sink.values("m-sdm120-1", "voltage")) > count, 5, "answers again"
            )


async def test_mbus_bad_checksum_is_retried(tmp_path: Path) -> None:
    async with MbusSimulator("ttyMBUS0", meters=[WaterMeter(5)], directory=tmp_path, pace=0) as sim:
        sink = MemorySink()
        async with running(SerialSource(config_of(sim, "w")), sink):
            await sink.wait_for(lambda: bool(sink.values("w-water-12345678", "volume")), 5, "vol")
            sim.inject(Fault.bad_checksum(1))
            await sink.wait_for(lambda: sink.errors_for("checksum") >= 1, 5, "checksum")
            count = len(sink.values("w-water-12345678", "volume"))
            await sink.wait_for(
                lambda: len(sink.values("w-water-12345678", "volume")) > count, 5, "volume again"
            )


async def test_sdi12_bad_crc_is_counted_and_retried(tmp_path: Path) -> None:
    async with Sdi12Simulator("ttySDI", measure_time=0.1, directory=tmp_path, pace=1) as sim:
        port = sim.port_config("soil")
        port["devices"][0]["measurement"] = "MC"  # type: ignore[index]
        port["devices"][0]["interval"] = 0.3  # type: ignore[index]
        port.update({"reconnect_min": 0.1, "response_timeout": 0.3})
        sink = MemorySink()
        async with running(SerialSource(SerialPortConfig.from_mapping(port)), sink):
            await sink.wait_for(lambda: bool(sink.values("soil", "moisture")), 8, "moisture")
            sim.inject(Fault.bad_checksum(1))
            await sink.wait_for(lambda: sink.errors_for("checksum") >= 1, 8, "CRC error")
            count = len(sink.values("soil", "moisture"))
            await sink.wait_for(lambda: len(sink.values("soil", "moisture")) > count, 8, "again")


async def test_stream_silence_is_reported_and_cleared(tmp_path: Path) -> None:
    async with NmeaSimulator("ttyNMEA0", directory=tmp_path, pace=4, interval=0.2) as sim:
        sink = MemorySink()
        config = config_of(sim, "wx", silence_timeout=0.6)
        async with running(SerialSource(config), sink):
            await sink.wait_for(lambda: bool(sink.values("wx", "depth")), 5, "depth")
            sim.inject(Fault.silence())
            await sink.wait_for(lambda: sink.errors_for("silence") == 1, 5, "silence")
            assert sink.states[-1][1] == SourceState.UP and "no valid frame" in sink.states[-1][2]
            await asyncio.sleep(1.0)
            assert sink.errors_for("silence") == 1  # once per silence, not once per second
            sim.inject(Fault.resume())
            count = len(sink.values("wx", "depth"))
            await sink.wait_for(lambda: len(sink.values("wx", "depth")) > count, 5, "depth back")
            await sink.wait_for(lambda: sink.states[-1] == (config.source_name, "up", ""), 2, "up")


async def test_unplug_and_replug_recovered(tmp_path: Path) -> None:
    async with LinkySimulator("ttyLINKY0", directory=tmp_path, pace=8, interval=0.2) as sim:
        config = config_of(sim, "linky")
        source = SerialSource(config)
        sink = MemorySink()
        async with running(source, sink):
            await sink.wait_for(lambda: bool(sink.values("linky", "BASE")), 5, "BASE")
            sim.inject(Fault.unplug())
            await sink.wait_for(lambda: sink.state == SourceState.DOWN, 5, "DOWN")
            assert sink.errors[(config.source_name, "unplugged")] == 1
            await asyncio.sleep(0.8)  # several retries while the port is gone
            assert sink.errors[(config.source_name, "unplugged")] == 1
            assert sink.errors[(config.source_name, "unavailable")] == 0  # one per outage
            assert source.state == SourceState.DOWN
            sim.inject(Fault.replug())  # a new pty behind the same path
            count = len(sink.values("linky", "BASE"))
            await sink.wait_for(lambda: len(sink.values("linky", "BASE")) > count, 8, "back")
            assert sink.state == SourceState.UP
            assert source.connects == 2


async def test_unplug_with_automatic_replug_on_a_master_bus(tmp_path: Path) -> None:
    async with ModbusSimulator(
        "ttyRS485-0", slaves=[ModbusSlave(2, "soil")], directory=tmp_path, pace=0
    ) as sim:
        sink = MemorySink()
        async with running(SerialSource(config_of(sim, "p")), sink):
            await sink.wait_for(lambda: bool(sink.values("p-soil-2", "moisture")), 5, "moisture")
            sim.inject(Fault.unplug(seconds=0.5))
            await sink.wait_for(lambda: sink.state == SourceState.DOWN, 5, "DOWN")
            count = len(sink.values("p-soil-2", "moisture"))
            await sink.wait_for(lambda: len(sink.values("p-soil-2", "moisture")) > count, 8, "up")


async def test_port_absent_at_start(tmp_path: Path) -> None:
    sim = LinkySimulator("ttyLATE", directory=tmp_path, pace=8, interval=0.2)
    config = config_of(sim, "late")
    sink = MemorySink()
    async with running(SerialSource(config), sink):
        await sink.wait_for(lambda: sink.state == SourceState.DOWN, 3, "DOWN")
        await asyncio.sleep(0.5)
        assert sink.errors == {(config.source_name, "unavailable"): 1}
        async with sim:
            await sink.wait_for(lambda: bool(sink.values("late", "BASE")), 8, "BASE")
