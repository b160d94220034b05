"""`estran edge wmbus listen` from outside: the installed command against a simulated
dongle on a pty, with keys from a gateway configuration file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from edge.simulators.serial import RadioMeter, WmbusDongleSimulator

ESTRAN = os.path.join(os.path.dirname(sys.executable), "estran")
KEY5 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
KEY7 = bytes.fromhex("0F0E0D0C0B0A09080706050403020100")


async def _estran(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        ESTRAN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_listen_lists_meters_and_the_ones_without_a_key(tmp_path: Path) -> None:
    meters = [
        RadioMeter("izar", "21242472"),
        RadioMeter("oms5", "44556677", key=KEY5),
        RadioMeter("oms7", "22862420", key=KEY7),
    ]
    sim = WmbusDongleSimulator(
        "ttyLISTEN", dongle="amb8465", meters=meters, interval=0.5, directory=tmp_path
    )
    async with sim:
        config = tmp_path / "edge.toml"
        config.write_text(
            '[gateway]\nid = "gw-town-hall"\n\n'
            f'[[serial]]\npath = "{sim.path}"\nprotocol = "wmbus"\ndongle = "amb8465"\n\n'
            '[[serial.devices]]\nsensor = "water-oms7"\naddress = "EFE-22862420"\n'
            f'key = "{KEY7.hex()}"\n\n'
            '[[serial.devices]]\nsensor = "water-kam"\naddress = "44556677"\n'
        )
        code, out, err = await _estran(
            "edge", "wmbus", "listen", "--config", str(config), "--seconds", "3", "--json"
        )
        assert code == 1, err  # one meter lacks its key
        report = json.loads(out)
        rows = {r["meter"]: r for r in report["meters"]}
        assert rows["KAM-44556677"]["key"] == "missing"
        assert rows["KAM-44556677"]["sensor"] == "water-kam"
        assert rows["KAM-44556677"]["encryption_mode"] == 5
        assert rows["EFE-22862420"]["key"] == "ok"
        assert rows["DME-21242472"]["key"] == "clear"
        assert rows["DME-21242472"]["sensor"] is None
        assert report["without_key"] == ["KAM-44556677"]
        assert KEY7.hex() not in out.lower() and KEY7.hex() not in err.lower()

        code, out, err = await _estran(
            "edge", "wmbus", "listen", "--port", sim.path, "--dongle", "amb8465", "--seconds", "2"
        )
        assert code == 1 and "missing" in out and "Traceback" not in err

    code, _out, err = await _estran(
        "edge", "wmbus", "listen", "--port", str(tmp_path / "absent"), "--seconds", "1"
    )
    assert code == 2 and "cannot open" in err and "Traceback" not in err


async def test_listen_names_the_device_type_of_meters_it_cannot_decrypt(tmp_path: Path) -> None:
    """The device type is in the clear link/transport header: `listen` shows it for a meter
    whose key is missing and for one whose key is wrong, as `estran decode wmbus` does."""
    meters = [
        RadioMeter("oms5", "44556677", key=KEY5),
        RadioMeter("oms7", "22862420", key=KEY7),
    ]
    sim = WmbusDongleSimulator(
        "ttyTYPES", dongle="im871a", meters=meters, interval=0.5, directory=tmp_path
    )
    async with sim:
        config = tmp_path / "edge.toml"
        config.write_text(
            '[gateway]\nid = "gw-town-hall"\n\n'
            f'[[serial]]\npath = "{sim.path}"\nprotocol = "wmbus"\ndongle = "im871a"\n\n'
            '[[serial.devices]]\nsensor = "water-oms7"\naddress = "EFE-22862420"\n'
            f'key = "{KEY5.hex()}"\n'
        )
        code, out, err = await _estran(
            "edge", "wmbus", "listen", "--config", str(config), "--seconds", "3", "--json"
        )
        assert code == 1, err
        rows = {r["meter"]: r for r in json.loads(out)["meters"]}
        assert rows["KAM-44556677"]["key"] == "missing"
        assert rows["EFE-22862420"]["key"] == "wrong"
        assert rows["KAM-44556677"]["device_type"] == "water", rows
        assert rows["EFE-22862420"]["device_type"] == "water", rows
        code, out, err = await _estran(
            "edge", "wmbus", "listen", "--port", sim.path, "--dongle", "im871a", "--seconds", "2"
        )
        lines = [line for line in out.splitlines() if "KAM-44556677" in line]
        assert lines and "water" in lines[0], out


async def test_listen_gives_the_signal_with_its_unit_for_each_dongle(tmp_path: Path) -> None:
    """iM871A and AMB8465 measure the RSSI in dBm (negative); rtl-wmbus prints a level in its
    own scale (positive): never in the same field, never without its unit."""
    meters = [RadioMeter("izar", "21242472")]
    for dongle in ("im871a", "amb8465", "rtlwmbus"):
        sim = WmbusDongleSimulator(
            f"tty-{dongle}", dongle=dongle, meters=meters, interval=0.4, directory=tmp_path
        )
        async with sim:
            args = ("edge", "wmbus", "listen", "--port", sim.path, "--dongle", dongle)
            code, out, err = await _estran(*args, "--seconds", "2", "--json")
            assert code == 0, err
            (row,) = json.loads(out)["meters"]
            code, text, err = await _estran(*args, "--seconds", "2")
            assert code == 0, err
        if dongle == "rtlwmbus":
            assert row["rssi_dbm"] is None and row["rtlwmbus_level"] > 0, row
            assert "(not dBm)" in text, text
        else:
            assert row["rtlwmbus_level"] is None and -120 < row["rssi_dbm"] < 0, row
            assert " dBm" in text and "not dBm" not in text, text
