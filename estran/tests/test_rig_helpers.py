"""The rig's helpers for tests that start things by hand: availability checks, a scratch
PostgreSQL database, a serial simulator outside an environment file, a hub's readiness."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from estran.rig import (
    Child,
    RigError,
    Unavailable,
    estran_argv,
    free_port,
    hub_ready,
    need_program,
    serial_simulator,
    temporary_postgresql,
)


def test_need_program_finds_it_or_says_what_is_missing() -> None:
    assert need_program("sh").endswith("/sh")
    with pytest.raises(Unavailable, match=r"no-such-program-x is not installed \(apt-get it\)"):
        need_program("no-such-program-x", "apt-get it")


def test_a_scratch_postgresql_database_is_made_and_dropped() -> None:
    import psycopg

    with temporary_postgresql(prefix="estran_rigtest") as dsn:
        name = dsn.rpartition("/")[2]
        with psycopg.connect(dsn) as c:
            assert c.execute("select current_database()").fetchone() == (name,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3).close()
    with (
        pytest.raises(Unavailable, match="PostgreSQL not reachable"),
        temporary_postgresql(f"postgresql://root@127.0.0.1:{free_port()}/postgres"),
    ):
        pass


async def test_a_simulator_on_a_pty_gives_its_gateway_table(tmp_path: Path) -> None:
    async with serial_simulator("nmea,pace=1,name=ttyNMEA", tmp_path) as sim:
        assert Path(sim.port.path).exists()
        text = sim.port.toml(reconnect_min=0.1)
    doc = tomllib.loads(text)
    (port,) = doc["serial"]
    assert port["path"] == sim.port.path and port["protocol"] == "nmea"
    assert port["reconnect_min"] == 0.1 and port["devices"]


async def test_hub_ready_waits_for_health_and_reports_an_exit(tmp_path: Path) -> None:
    http = free_port()
    hub = Child(
        "hub",
        estran_argv("hub", "run", "--data", str(tmp_path / "hub"), "--http", f"127.0.0.1:{http}",
                    "--mqtt-listen", f"127.0.0.1:{free_port()}", "--log-level", "warning"),
        tmp_path / "hub.log",
    )  # fmt: skip
    async with hub:
        await hub_ready(f"http://127.0.0.1:{http}", hub)
    dead = Child("false", ["false"], tmp_path / "false.log")
    await dead.start()
    await dead.wait(10)
    with pytest.raises(RigError, match="the hub exited"):
        await hub_ready(f"http://127.0.0.1:{free_port()}", dead, timeout=5)
