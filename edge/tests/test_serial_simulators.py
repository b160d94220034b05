"""The simulators themselves, seen from the program's side of the pty: line physics,
protocol details a real device has (FCB repeats, secondary selection, collisions, Modbus
exceptions and writes, SDI-12 sleep), the control channel, specs and configuration."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.simulators.serial import (
    ControlServer,
    HeatMeter,
    LineFormat,
    LinkySimulator,
    MbusSimulator,
    ModbusSimulator,
    ModbusSlave,
    Sdi12Simulator,
    SpecError,
    WaterMeter,
    parse_spec,
    send_request,
)
from edge.sources.serial import LineSettings, SerialConfigError, SerialPortConfig, SerialTransport
from protocols import mbus, modbus, sdi12, tic


async def _collect(transport: SerialTransport, seconds: float) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        out += await transport.read(remaining)
    return bytes(out)


async def test_line_physics_speed_and_parity(tmp_path: Path) -> None:
    async with (
        LinkySimulator("ttyL", directory=tmp_path, pace=8, interval=0.1) as sim,
        SerialTransport(sim.path, LineSettings(1200, 7, "E", 1)) as port,
    ):
        clean = await _collect(port, 0.8)
        assert clean and max(clean) < 0x80  # 7 data bits: the parity bit is stripped
        assert any(f.valid for f in _frames(clean))
        port.configure(LineSettings(1200))  # 8N1: the parity bits show in bit 7
        port.reset_input()
        raw = await _collect(port, 0.8)
        assert any(b & 0x80 for b in raw)
        assert all(bin(b).count("1") % 2 == 0 for b in raw)  # even parity, every byte
        assert any(f.valid for f in _frames(raw))  # and TIC still decodes (masked)
        port.configure(LineSettings(9600, 7, "E", 1))  # wrong speed: garbage
        port.reset_input()
        garbage = await _collect(port, 0.8)
        assert garbage and not any(f.valid for f in _frames(garbage))


def _frames(data: bytes) -> list[tic.Frame]:
    stream = tic.TicStream()
    stream.receive_data(data)
    out = []
    while True:
        try:
            event = stream.next_event()
        except Exception:
            continue
        if not isinstance(event, tic.Frame):
            return out
        out.append(event)


async def _exchange(port: SerialTransport, request: bytes, wait: float = 0.3) -> bytes:
    port.take()
    await port.write(request)
    return await port.read_until_idle(0.05, wait)


async def test_modbus_exceptions_writes_and_new_address(tmp_path: Path) -> None:
    async with (
        ModbusSimulator("ttyM", slaves=[ModbusSlave(2, "soil")], directory=tmp_path, pace=0) as sim,
        SerialTransport(sim.path, LineSettings(9600)) as port,
    ):
        reply = await _exchange(port, modbus.read_holding_registers(2, 0, 4).encode())
        response = modbus.parse_response(reply, modbus.read_holding_registers(2, 0, 4))
        assert response.registers is not None and len(response.registers) == 4
        # a register outside the map: ILLEGAL DATA ADDRESS
        bad = modbus.read_holding_registers(2, 0x100, 2)
        with pytest.raises(modbus.ModbusException) as info:
            modbus.parse_response(await _exchange(port, bad.encode()), bad)
        assert info.value.code == 0x02
        # FC04 is not in this map: the same exception
        fc4 = modbus.read_input_registers(2, 0, 1)
        with pytest.raises(modbus.ModbusException):
            modbus.parse_response(await _exchange(port, fc4.encode()), fc4)
        # nobody at address 9: silence
        assert await _exchange(port, modbus.read_holding_registers(9, 0, 1).encode()) == b""
        # a frame with a bad CRC: silence (a slave ignores it)
        frame = bytearray(modbus.read_holding_registers(2, 0, 1).encode())
        frame[-1] ^= 0xFF
        assert await _exchange(port, bytes(frame)) == b""
        # FC16 then FC06: the settings registers; the new address takes effect after
        write = modbus.write_multiple_registers(2, 0x07D1, [1])
        modbus.parse_response(await _exchange(port, write.encode()), write)
        move = modbus.write_single_register(2, 0x07D0, 17)
        assert await _exchange(port, move.encode()) == move.encode()  # the echo
        moved = modbus.read_holding_registers(17, 0x07D0, 2)
        answer = modbus.parse_response(await _exchange(port, moved.encode()), moved)
        assert answer.registers == (17, 1)


async def test_mbus_fcb_repeat_and_next_telegram(tmp_path: Path) -> None:
    async with (
        MbusSimulator("ttyB", meters=[HeatMeter(6)], directory=tmp_path, pace=0) as sim,
        SerialTransport(sim.path, LineSettings(2400, 8, "E", 1)) as port,
    ):
        assert await _exchange(port, mbus.snd_nke(6)) == b"\xe5"
        first = await _exchange(port, mbus.req_ud2(6, True))
        again = await _exchange(port, mbus.req_ud2(6, True))  # same FCB: repeat
        second = await _exchange(port, mbus.req_ud2(6, False))  # toggled: next
        assert first == again != second
        t1 = mbus.decode_response(mbus.parse_frame(first))
        t2 = mbus.decode_response(mbus.parse_frame(second))
        assert t1.more_records_follow and not t2.more_records_follow
        assert t2.access_number == (t1.access_number or 0) + 1


async def test_mbus_secondary_selection_and_collision(tmp_path: Path) -> None:
    water, heat = WaterMeter(5, 11112222), HeatMeter(6, 33334444)
    async with (
        MbusSimulator("ttyB", meters=[water, heat], directory=tmp_path, pace=0) as sim,
        SerialTransport(sim.path, LineSettings(2400, 8, "E", 1)) as port,
    ):
        # 0xFE: both answer the REQ_UD2 at once, the master gets a wire-AND
        await _exchange(port, mbus.snd_nke(0xFE))
        collided = await _exchange(port, mbus.req_ud2(0xFE, True))
        with pytest.raises(Exception):  # noqa: B017 - any protocol error
            mbus.decode_response(mbus.parse_frame(collided))
        # select the heat meter by id with wildcards for the rest
        assert await _exchange(port, mbus.select_secondary("3333FFFF")) == b"\xe5"
        frame = mbus.parse_frame(await _exchange(port, mbus.req_ud2(0xFD, False)))
        assert mbus.decode_response(frame).id == 33334444
        # a selection that matches no meter deselects: nobody answers on 0xFD
        assert await _exchange(port, mbus.select_secondary(99999999)) == b""
        assert await _exchange(port, mbus.req_ud2(0xFD, True)) == b""


async def test_sdi12_sleeps_without_break(tmp_path: Path) -> None:
    async with (
        Sdi12Simulator("ttyS", address="4", directory=tmp_path, pace=0) as sim,
        SerialTransport(sim.path, LineSettings(1200, 7, "E", 1)) as port,
    ):
        assert await _exchange(port, b"4!") == b""  # asleep: no break, no answer
        await port.send_break("auto")
        assert await _exchange(port, b"4!") == b"4\r\n"
        assert await _exchange(port, b"4I!") == sdi12.format_identification(
            "4", "ESTRAN", "SOIL01", "100", "SN0042"
        )
        await asyncio.sleep(0.2)  # more than 100 ms of marking: back to sleep
        assert await _exchange(port, b"4!") == b""
        assert sim.commands == [b"4!", b"4I!"]


async def test_sdi12_ignores_the_wrong_format(tmp_path: Path) -> None:
    async with (
        Sdi12Simulator("ttyS", directory=tmp_path, pace=0) as sim,
        SerialTransport(sim.path, LineSettings(1200)) as port,  # 8N1
    ):
        await port.send_break("nul")
        assert await _exchange(port, b"0!") == b""
        assert sim.commands == []


async def test_control_channel(tmp_path: Path) -> None:
    sim = Sdi12Simulator("ttyS", directory=tmp_path, pace=0)
    server = ControlServer(str(tmp_path / "control.sock"), {sim.name: sim})
    async with sim:
        await server.start()
        try:
            path = str(tmp_path / "control.sock")
            listed = await send_request(path, {"list": True})
            assert listed["ok"] and listed["simulators"][0]["name"] == "ttyS"  # type: ignore[index]
            reply = await send_request(path, {"sim": "ttyS", "fault": "unplug"})
            assert reply["ok"] and not sim.plugged and not os.path.lexists(sim.path)
            reply = await send_request(path, {"sim": "ttyS", "fault": "replug"})
            assert reply["ok"] and sim.plugged and os.path.exists(sim.path)
            bad = await send_request(path, {"sim": "ttyS", "fault": "explode"})
            assert not bad["ok"] and "unknown fault" in str(bad["error"])
        finally:
            await server.stop()


def test_specs() -> None:
    sim = parse_spec("modbus,devices=sdm630@1+soil@2,baud=19200,parity=e,name=ttyX", "/tmp/x")
    assert isinstance(sim, ModbusSimulator)
    assert [s.address for s in sim.slaves] == [1, 2]
    assert sim.line == LineFormat(19200, 8, "E", 1) and sim.path == "/tmp/x/ttyX"
    assert parse_spec("linky-standard").line == LineFormat(9600, 7, "E", 1)
    for bad in ("nope", "modbus,devices=nomap@1", "nmea,colour=blue", "mbus,devices=gas@3"):
        with pytest.raises(SpecError):
            parse_spec(bad)


def test_simulator_configs_load() -> None:
    """Every simulator's port_config is a configuration the daemon accepts."""
    for spec in (
        "linky-historique",
        "linky-standard",
        "modbus,devices=sdm630@1+soil@2+level@80+level_sen0310@11+soil_es103@3",
        "mbus",
        "sdi12-soil",
        "maxbotix",
        "a02yyuw",
        "nmea",
    ):
        config = SerialPortConfig.from_mapping(parse_spec(spec).port_config())
        assert config.snippet().startswith("[[serial]]")


def test_config_errors_name_the_field() -> None:
    base: dict[str, object] = {"path": "/dev/ttyUSB0", "protocol": "modbus"}
    cases: list[tuple[dict[str, object], str]] = [
        ({**base, "devices": [{"sensor": "a", "address": 300, "map": "sdm120"}]}, "address"),
        ({**base, "devices": [{"sensor": "a", "address": 1, "map": "nope"}]}, "map"),
        ({**base, "devices": [{"sensor": "a", "address": 1}]}, "map"),  # the file's key
        (
            {**base, "parity": "X", "devices": [{"sensor": "a", "address": 1, "map": "soil"}]},
            "parity",
        ),
        ({**base, "baud": "fast", "devices": []}, "baud"),
        (
            {**base, "devices": [{"sensor": "a", "address": 1, "map": "soil", "colour": 1}]},
            "colour",
        ),
        (
            {
                "path": "/dev/ttyS1",
                "protocol": "mbus",
                "devices": [{"sensor": "a", "address": "12345678ZZZZ0104"}],
            },
            "address",
        ),
        ({"path": "/dev/ttyS1", "protocol": "sdi12", "devices": [{"sensor": "a"}]}, "address"),
    ]
    for data, fieldname in cases:
        with pytest.raises(SerialConfigError) as info:
            SerialPortConfig.from_mapping(data, "serial[0]")
        assert info.value.field.startswith("serial[0]") and fieldname in info.value.field, (
            data,
            info.value,
        )


def test_runner_and_inject_cli(tmp_path: Path) -> None:
    """The runner as a technician starts it, and a fault sent with the inject command."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.simulators.serial",
            "--dir",
            str(tmp_path),
            "--spec",
            "sdm120,pace=0",
            "--duration",
            "20",
            "--config",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        lines = [runner.stdout.readline() for _ in range(2)]
        assert "ttySDM120" in lines[0] and "control socket" in lines[1]
        config = json.loads(
            runner.stdout.readline() + "".join(iter(runner.stdout.readline, "]\n")) + "]"
        )
        assert config[0]["protocol"] == "modbus"
        inject = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge.simulators.serial",
                "inject",
                "--control",
                str(tmp_path / "control.sock"),
                "ttySDM120",
                "unplug",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert inject.returncode == 0 and json.loads(inject.stdout)["ok"]
        assert not os.path.lexists(tmp_path / "ttySDM120")
    finally:
        runner.terminate()
        runner.wait(timeout=10)
    assert runner.returncode == 0
