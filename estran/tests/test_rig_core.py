"""The rig's core: one child process, one free port, one private Mosquitto, one faulty link."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from estran.rig import (
    Child,
    LinkProxy,
    LinkState,
    PrivateMosquitto,
    RigError,
    Unavailable,
    free_port,
    until,
    wait_port,
)


def need_mosquitto_or_skip() -> None:
    from estran.rig import mosquitto_binary

    try:
        mosquitto_binary()
    except Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{e} (CI=true: services are required)")
        pytest.skip(str(e))


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


# -- ports ------------------------------------------------------------------------------


async def test_a_free_port_refuses_until_someone_listens() -> None:
    port = free_port()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(RigError, match=str(port)):
        await wait_port(port, 0.2)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with server:
        await wait_port(port, 2)


def test_free_ports_are_outside_the_ephemeral_range_and_never_handed_twice() -> None:
    """Outgoing connections take their source ports from the ephemeral range: a port handed
    out there could be taken before the caller binds it (it happened to the demo's hub)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 < p < low for p in ports), [p for p in ports if p >= low]


async def test_until_returns_what_the_check_found_plain_or_awaited() -> None:
    calls: list[int] = []

    def plain() -> list[int]:
        calls.append(1)
        return calls if len(calls) >= 3 else []

    async def awaited() -> str:
        return "here"

    assert await until("three calls", plain, 5, every=0.01) == [1, 1, 1]
    assert await until("at once", awaited, 5) == "here"
    with pytest.raises(AssertionError, match=r"not within 0.05 s: never: it said no"):
        await until("never", lambda: False, 0.05, lambda: "it said no", every=0.01)


# -- the child process ----------------------------------------------------------------------


async def test_a_child_logs_restarts_and_reports_its_status(tmp_path: Path) -> None:
    code = "import sys; print('hello', sys.argv[1], flush=True); sys.exit(3)"
    child = Child("echo", [sys.executable, "-c", code, "one"], tmp_path / "logs" / "echo.log")
    await child.start()
    assert await child.wait(10) == 3 and not child.alive() and child.returncode == 3
    await child.start()
    assert await child.wait(10) == 3 and child.starts == 2
    log = child.log.read_text()
    assert log.count("hello one") == 2 and "--- start 2:" in log
    assert child.tail(1) == "hello one"


async def test_stop_is_sigterm_then_sigkill_within_its_bound(tmp_path: Path) -> None:
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    child = Child("deaf", [sys.executable, "-c", deaf], tmp_path / "deaf.log", pipe_stdout=True)
    await child.start()
    assert (await child.readline(10)).strip() == "up"
    t0 = time.monotonic()
    status = await child.stop(0.5)
    assert status == -signal.SIGKILL and time.monotonic() - t0 < 8
    assert child.stopping and not child.alive()


async def test_kill_is_a_power_cut_and_the_child_starts_again(tmp_path: Path) -> None:
    sleeper = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log"
    )
    async with sleeper:
        first = sleeper.pid
        assert await sleeper.kill_and_wait() == -signal.SIGKILL
        await sleeper.start()
        assert sleeper.alive() and sleeper.pid != first
        with pytest.raises(RigError, match="already running"):
            await sleeper.start()
    assert not sleeper.alive()


async def test_a_missing_program_is_a_rig_error(tmp_path: Path) -> None:
    child = Child("ghost", [str(tmp_path / "no-such-program")], tmp_path / "g.log")
    with pytest.raises(RigError, match="cannot start"):
        await child.start()


async def test_the_child_gets_the_extra_environment(tmp_path: Path) -> None:
    code = "import os; print(os.environ['RIG_TEST'])"
    child = Child("env", [sys.executable, "-c", code], tmp_path / "e.log", env={"RIG_TEST": "x42"})
    await child.start()
    await child.wait(10)
    assert child.tail(1) == "x42"


# -- the private broker ---------------------------------------------------------------------


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[PrivateMosquitto]:
    need_mosquitto_or_skip()
    async with PrivateMosquitto(tmp_path / "mq") as broker:
        yield broker


async def test_private_mosquitto_crashes_and_restarts_on_its_port(
    mosquitto: PrivateMosquitto,
) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="rig-a", timeout=5):
        pass
    await mosquitto.kill_and_wait()
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="rig-b", timeout=2):
            pass
    await mosquitto.start()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="rig-c", timeout=5):
        pass
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


async def test_a_broken_configuration_is_said_with_the_log(tmp_path: Path) -> None:
    need_mosquitto_or_skip()
    broker = PrivateMosquitto(tmp_path, extra=["no_such_option 1"])
    with pytest.raises(RigError, match="did not listen"):
        await broker.start()
    assert not broker.alive()


# -- the link ---------------------------------------------------------------------------------


async def test_the_link_counts_every_byte_both_ways() -> None:
    server, port = await echo_server()
    async with server, LinkProxy(port) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"x" * 1000)
        assert await asyncio.wait_for(reader.readexactly(1000), 5) == b"x" * 1000
        writer.close()
        assert link.bytes_up == 1000 and link.bytes_down == 1000 and link.total_bytes == 2000
        assert link.connections == 1


async def test_a_cut_resets_connections_until_restored() -> None:
    server, port = await echo_server()
    async with server, LinkProxy(port) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        link.cut()
        assert link.state is LinkState.CUT
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            writer.write(b"ping")
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(4), 5)
        r2, w2 = await asyncio.open_connection("127.0.0.1", link.port)  # accepted, then reset
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(r2.readexactly(1), 5)
        link.restore()
        r3, w3 = await asyncio.open_connection("127.0.0.1", link.port)
        w3.write(b"pong")
        assert await asyncio.wait_for(r3.readexactly(4), 5) == b"pong"
        for w in (writer, w2, w3):
            w.close()


async def test_a_blackhole_stalls_and_restore_resumes_the_stream() -> None:
    server, port = await echo_server()
    async with server, LinkProxy(port) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"
        link.blackhole()
        writer.write(b"b")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 0.5)
        link.restore()
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"b"
        writer.close()


async def test_a_delay_holds_every_byte_and_keeps_the_order() -> None:
    server, port = await echo_server()
    async with server, LinkProxy(port) as link:
        link.delay_s = 0.3
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        t0 = time.monotonic()
        writer.write(b"12")
        await writer.drain()
        writer.write(b"34")
        got = await asyncio.wait_for(reader.readexactly(4), 10)
        assert got == b"1234" and time.monotonic() - t0 >= 0.6  # 0.3 s each way
        writer.close()


async def test_the_link_repeats_mqtt_publishes_with_their_dup_flag(
    mosquitto: PrivateMosquitto,
) -> None:
    async with (
        LinkProxy(mosquitto.port, mqtt=True, seed=1) as link,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="rig-sub") as sub,
    ):
        await sub.subscribe("rig/#", qos=1)
        link.duplicate = 1.0
        async with aiomqtt.Client("127.0.0.1", link.port, identifier="rig-pub") as pub:
            await pub.publish("rig/one", b"1", qos=1)
            await pub.publish("rig/zero", b"0", qos=0)
        got = []
        async with asyncio.timeout(5):
            async for message in sub.messages:
                got.append(message.topic.value)
                if len(got) == 4:
                    break
    assert sorted(got) == ["rig/one", "rig/one", "rig/zero", "rig/zero"]
    assert link.duplicated == 2


def test_a_stream_that_is_not_mqtt_is_refused() -> None:
    from estran.rig._proxy import _MqttFramer

    framer = _MqttFramer()
    assert framer.feed(b"\x30\x03\x00\x01") == []
    assert framer.feed(b"t\xc0\x00") == [b"\x30\x03\x00\x01t", b"\xc0\x00"]
    with pytest.raises(RigError, match="not MQTT"):
        _MqttFramer().feed(b"\x30\xff\xff\xff\xff\x01")
